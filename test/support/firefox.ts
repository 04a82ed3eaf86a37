/**
 * Firefox for tests: Debian's Firefox ESR, driven with no driver. playwright-core 1.65 can launch
 * a Firefox over WebDriver BiDi (`channel: "moz-firefox"`), but its `newContext` sends
 * `emulation.setMediaFeaturesOverride`, which Firefox ESR 153 does not know ("unknown command"):
 * no page can be opened that way.
 *
 * So: the page kit of test/support/polledBrowser.ts (an http server on 127.0.0.1, a runner page
 * that takes commands from it, each test's page in an iframe), with
 * `firefox-esr --headless --no-remote --profile <fresh dir> <origin>/runner.html`.
 * Firefox is started once per test file (seconds: its startup is most of the file's time) and its
 * process group killed at the end; the profile (a user.js: no updates, telemetry, first-run pages,
 * and every connection but to 127.0.0.1 sent to a proxy that is not there) is removed.
 *
 * `firefoxPath` finds it: `FIREFOX_PATH` if set, else /usr/bin/firefox-esr or /usr/bin/firefox.
 * None: `describeFirefox` skips its tests with one loud warning (`.ci/run` installs firefox-esr).
 */
import * as ChildProcess from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe } from "vitest"
import type { PolledKit, PolledPage, PolledSession } from "./polledBrowser.js"
import { polledSession, startPolledBrowser } from "./polledBrowser.js"

/** Where Firefox is, or why it is not there. `FIREFOX_PATH`, when set, is the only place looked at. */
export const firefoxPath = (): { readonly path: string } | { readonly missing: string } => {
  const fromEnv = process.env["FIREFOX_PATH"]
  const candidates = fromEnv === undefined || fromEnv === ""
    ? ["/usr/bin/firefox-esr", "/usr/bin/firefox"]
    : [fromEnv]
  const found = candidates.find((path) => existsSync(path))
  return found === undefined ? { missing: `no Firefox at ${candidates.join(", ")}` } : { path: found }
}

let warned = false

/** `describe`, or `describe.skip` with one loud warning when there is no Firefox. */
export const describeFirefox = (name: string, body: () => void): void => {
  const found = firefoxPath()
  if ("path" in found) {
    describe(name, body)
    return
  }
  if (!warned) {
    warned = true
    console.warn(
      `\n*** Firefox tests SKIPPED: ${found.missing}. Install it (apt-get install firefox-esr) or set FIREFOX_PATH. ***\n`
    )
  }
  describe.skip(name, body)
}

/** The profile's preferences: quiet, and no network but 127.0.0.1. */
const PREFS: Readonly<Record<string, string | number | boolean>> = {
  "app.update.disabledForTesting": true,
  "app.update.auto": false,
  "app.normandy.enabled": false,
  "browser.shell.checkDefaultBrowser": false,
  "browser.startup.page": 0,
  "browser.startup.homepage": "about:blank",
  "browser.startup.homepage_override.mstone": "ignore",
  "startup.homepage_welcome_url": "about:blank",
  "startup.homepage_welcome_url.additional": "",
  "browser.aboutwelcome.enabled": false,
  "browser.newtabpage.enabled": false,
  "browser.safebrowsing.malware.enabled": false,
  "browser.safebrowsing.phishing.enabled": false,
  "browser.safebrowsing.downloads.enabled": false,
  "browser.safebrowsing.blockedURIs.enabled": false,
  "browser.search.update": false,
  "browser.sessionstore.resume_from_crash": false,
  "browser.tabs.warnOnClose": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "datareporting.healthreport.uploadEnabled": false,
  "datareporting.usage.uploadEnabled": false,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.unified": false,
  "toolkit.telemetry.server": "",
  "telemetry.fog.test.localhost_port": -1,
  "extensions.update.enabled": false,
  "extensions.getAddons.cache.enabled": false,
  "media.gmp-manager.updateEnabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.http.speculative-parallel-limit": 0,
  "network.prefetch-next": false,
  "network.manage-offline-status": false,
  "dom.disable_open_during_load": false,
  "dom.max_script_run_time": 0,
  "dom.min_background_timeout_value": 0,
  "dom.timeout.enable_budget_timer_throttling": false,
  "hangmonitor.timeout": 0,
  // Anything but 127.0.0.1 goes to a proxy on port 9 of 127.0.0.1, where nothing listens.
  "network.proxy.type": 1,
  "network.proxy.http": "127.0.0.1",
  "network.proxy.http_port": 9,
  "network.proxy.ssl": "127.0.0.1",
  "network.proxy.ssl_port": 9,
  "network.proxy.share_proxy_settings": true,
  "network.proxy.no_proxies_on": "127.0.0.1",
  "network.proxy.allow_hijacking_localhost": false
}

/** What a test file holds for its whole run: one http server, one Firefox. */
export type FirefoxKit = PolledKit

/**
 * Bundles the page scripts, serves them on 127.0.0.1 (with `headers` on every answer: e.g.
 * COOP/COEP) and starts Firefox on the runner page (bounded: 40 s to its first request).
 */
export const startFirefox = (
  pages: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {},
  prefs: Readonly<Record<string, string | number | boolean>> = {}
): Promise<FirefoxKit> => {
  const found = firefoxPath()
  if (!("path" in found)) return Promise.reject(new Error(found.missing))
  return startPolledBrowser("Firefox", pages, headers, (runner) => {
    const profile = mkdtempSync(join(tmpdir(), "lifeline-firefox-"))
    writeFileSync(
      join(profile, "user.js"),
      Object.entries({ ...PREFS, ...prefs }).map(([key, value]) =>
        `user_pref(${JSON.stringify(key)}, ${JSON.stringify(value)});`
      )
        .join("\n")
    )
    // Its own process group (detached): killed whole at the end, content processes included.
    const child = ChildProcess.spawn(found.path, ["--headless", "--no-remote", "--profile", profile, runner], {
      detached: true,
      stdio: "ignore",
      env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: "1", MOZ_HEADLESS: "1" }
    })
    return { child, cleanup: () => rmSync(profile, { recursive: true, force: true }) }
  })
}

/** One test's page: an iframe in the runner, and what went wrong in it (collected when it closes). */
export type FirefoxPage = PolledPage

/**
 * A test file's Firefox: the kit, started once for the file, and what each test opened (pages,
 * then scopes), closed after it, every page's errors expected empty. Call `hooks()` inside the
 * file's `describeFirefox`, so that a machine without Firefox starts none.
 */
export type FirefoxSession = PolledSession

export const firefoxSession = (
  bundles: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {},
  prefs: Readonly<Record<string, string | number | boolean>> = {}
): FirefoxSession => polledSession(() => startFirefox(bundles, headers, prefs), 45_000)
