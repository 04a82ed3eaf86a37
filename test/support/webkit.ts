/**
 * WebKit for tests: Debian's WebKitGTK (Safari's engine; gir1.2-webkit2-4.1, from Python through
 * python3-gi), on a virtual display (Xvfb), driven with no driver: the page kit of
 * test/support/polledBrowser.ts (as Firefox's), with `/usr/bin/python3 webkitRunner.py
 * <origin>/runner.html` (test/support/webkitRunner.py: its own Xvfb, one offscreen WebView,
 * ephemeral, no network but 127.0.0.1). Started once per test file (about 2 s here) and its
 * process group (Xvfb and WebKit's web and network processes) killed at the end.
 *
 * `webkitMissing` says what is not there: Xvfb (`xvfb`), or WebKit2 4.1's introspection
 * (`gir1.2-webkit2-4.1`, with `python3-gi`). Then `describeWebKit` skips its tests with one loud
 * warning (`.ci/run` installs them).
 */
import * as ChildProcess from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe } from "vitest"
import type { PolledKit, PolledSession } from "./polledBrowser.js"
import { polledSession, startPolledBrowser } from "./polledBrowser.js"

const RUNNER = fileURLToPath(new URL("./webkitRunner.py", import.meta.url))

/** What is missing for WebKit here, with the Debian packages that bring it; undefined if nothing. */
export const webkitMissing = (): string | undefined => {
  if (!existsSync("/usr/bin/Xvfb")) return "no /usr/bin/Xvfb (apt-get install xvfb)"
  const gi = ChildProcess.spawnSync(
    "/usr/bin/python3",
    ["-c", "import gi; gi.require_version('Gtk', '3.0'); gi.require_version('WebKit2', '4.1')"],
    { stdio: "ignore", timeout: 10_000 }
  )
  return gi.status === 0
    ? undefined
    : "no WebKit2 4.1 for /usr/bin/python3 (apt-get install gir1.2-webkit2-4.1 python3-gi)"
}

let warned = false

/** `describe`, or `describe.skip` with one loud warning when WebKit or Xvfb is missing. */
export const describeWebKit = (name: string, body: () => void): void => {
  const missing = webkitMissing()
  if (missing === undefined) {
    describe(name, body)
    return
  }
  if (!warned) {
    warned = true
    console.warn(`\n*** WebKit tests SKIPPED: ${missing}; .ci/run installs them. ***\n`)
  }
  describe.skip(name, body)
}

/** Bundles the page scripts, serves them on 127.0.0.1 (with `headers`) and starts WebKit on the runner page. */
export const startWebKit = (
  pages: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {}
): Promise<PolledKit> =>
  startPolledBrowser("WebKit", pages, headers, (runner) => {
    // GTK and WebKit's own files (dconf's ~/.cache/dconf/user was written at each start) in a
    // directory of ours, removed at the end: nothing under $HOME.
    const scratch = mkdtempSync(join(tmpdir(), "lifeline-webkit-"))
    return {
      // Its own process group (detached): killed whole at the end. Its stdin is a pipe: should this
      // process die first, the runner sees it close and ends.
      child: ChildProcess.spawn("/usr/bin/python3", [RUNNER, runner], {
        detached: true,
        stdio: ["pipe", "ignore", "ignore"],
        env: {
          ...process.env,
          XDG_CACHE_HOME: scratch,
          XDG_CONFIG_HOME: scratch,
          XDG_DATA_HOME: scratch,
          XDG_RUNTIME_DIR: scratch,
          GDK_BACKEND: "x11",
          WEBKIT_DISABLE_COMPOSITING_MODE: "1",
          NO_AT_BRIDGE: "1"
        }
      }),
      cleanup: () => rmSync(scratch, { recursive: true, force: true })
    }
  })

/**
 * A test file's WebKit: the kit, started once for the file, and what each test opened (pages,
 * then scopes), closed after it, every page's errors expected empty. Call `hooks()` inside the
 * file's `describeWebKit`, so that a machine without WebKit starts none.
 */
export const webkitSession = (
  bundles: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {}
): PolledSession => polledSession(() => startWebKit(bundles, headers), 45_000)
