/**
 * Firefox for tests: Debian's Firefox ESR, driven with no driver. playwright-core 1.65 can launch
 * a Firefox over WebDriver BiDi (`channel: "moz-firefox"`), but its `newContext` sends
 * `emulation.setMediaFeaturesOverride`, which Firefox ESR 153 does not know ("unknown command"):
 * no page can be opened that way.
 *
 * So: the page bundles (`bundlePage`, as for Chromium) on an http server on 127.0.0.1, and
 * `firefox-esr --headless --no-remote --profile <fresh dir> <origin>/runner.html`. The runner page
 * long-polls the server for commands (GET /next) and posts each result back (POST /result):
 * - `open`: a fresh iframe on /<name>.html (its own window: the sockets it made go with it);
 * - `call`: `iframe.contentWindow[api][method](...args)` (method "": `[api](...args)`), awaited,
 *   plain data back;
 * - `close`: the iframe removed, with the `error`s, `unhandledrejection`s and `console.error`s
 *   its window saw (recorded by a classic script that runs before the page's module).
 * A page may call back into Node: `window.serverControl(method, args)` posts to /control, answered
 * by the handler given to `kit.setControl` (the compat scenarios' ServerControl).
 * Firefox is started once per test file (seconds: its startup is most of the file's time) and its
 * process group killed at the end; the profile (a user.js: no updates, telemetry, first-run pages,
 * and every connection but to 127.0.0.1 sent to a proxy that is not there) is removed.
 *
 * `firefoxPath` finds it: `FIREFOX_PATH` if set, else /usr/bin/firefox-esr or /usr/bin/firefox.
 * None: `describeFirefox` skips its tests with one loud warning (`.ci/run` installs firefox-esr).
 */
import * as ChildProcess from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe } from "vitest"
import type { BrowserSession } from "./chromium.js"
import { browserSession, bundlePage, servePageFile } from "./chromium.js"

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

/** Records what goes wrong in a frame's window before its module runs: `error`, `unhandledrejection`, console.error. */
const RECORDER = `<script>
window.__errors = [];
addEventListener("error", (e) => __errors.push("error: " + (e.error && e.error.stack ? e.error.message + "\\n" + e.error.stack : e.message)));
addEventListener("unhandledrejection", (e) => __errors.push("unhandledrejection: " + (e.reason && e.reason.message !== undefined ? e.reason.name + ": " + e.reason.message : String(e.reason))));
const consoleError = console.error.bind(console);
console.error = (...args) => { __errors.push("console.error: " + args.map(String).join(" ")); consoleError(...args) };
window.serverControl = (method, args) => fetch("/control", { method: "POST", body: JSON.stringify({ method, args }) })
  .then((response) => response.json())
  .then((answer) => answer.ok ? answer.value : Promise.reject(new Error(answer.error)));
</script>`

const html = (name: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${name}</title>${RECORDER}</head>` +
  `<body><script type="module" src="/${name}.js"></script></body></html>`

/** The runner: commands from GET /next, each run at once (not in turn), results to POST /result. */
const RUNNER = `<!doctype html><html><head><meta charset="utf-8"><title>runner</title></head><body><script>
const frames = new Map();
const post = (body) => fetch("/result", { method: "POST", body: JSON.stringify(body) });
const ready = (frame) => new Promise((resolve, reject) => {
  const until = Date.now() + 10000;
  const look = () => {
    const w = frame.contentWindow;
    if (w && w.pageReady === true) return resolve();
    if (Date.now() > until) return reject(new Error("the page did not set pageReady in 10 s"));
    setTimeout(look, 10);
  };
  look();
});
const run = async (command) => {
  if (command.op === "open") {
    const frame = document.createElement("iframe");
    frame.src = "/" + command.name + ".html";
    document.body.appendChild(frame);
    frames.set(command.frame, frame);
    await ready(frame);
    return null;
  }
  const frame = frames.get(command.frame);
  if (frame === undefined) throw new Error("no frame " + command.frame);
  const w = frame.contentWindow;
  if (command.op === "errors") return w.__errors.splice(0);
  if (command.op === "close") {
    const errors = w.__errors.splice(0);
    frame.remove();
    frames.delete(command.frame);
    return errors;
  }
  const target = w[command.api];
  return await (command.method === "" ? target(...command.args) : target[command.method](...command.args));
};
const loop = async () => {
  for (;;) {
    let command;
    try { command = await (await fetch("/next")).json(); } catch { await new Promise((r) => setTimeout(r, 50)); continue; }
    if (command.op === "quit") return;
    run(command).then(
      (value) => post({ id: command.id, ok: true, value: value === undefined ? null : value }),
      (error) => post({ id: command.id, ok: false, error: String(error && error.stack ? error.message + "\\n" + error.stack : error) })
    );
  }
};
loop();
</script></body></html>`

interface Command {
  readonly op: "open" | "call" | "close" | "errors" | "quit"
  readonly frame?: number
  readonly name?: string
  readonly api?: string
  readonly method?: string
  readonly args?: ReadonlyArray<unknown>
}

/** What a test file holds for its whole run: one http server, one Firefox. */
export interface FirefoxKit {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  /** How long Firefox took from its start to its runner's first request (ms). */
  readonly startup: number
  /** What answers a page's `serverControl(method, args)` (POST /control); none: an error. */
  readonly setControl: (
    handler: ((method: string, args: ReadonlyArray<unknown>) => Promise<unknown>) | undefined
  ) => void
  /** Runs a command in the runner page (bounded: `within` ms). */
  readonly command: (command: Command, within?: number) => Promise<unknown>
  readonly close: () => Promise<void>
}

/**
 * Bundles the page scripts, serves them on 127.0.0.1 (with `headers` on every answer: e.g.
 * COOP/COEP) and starts Firefox on the runner page (bounded: 40 s to its first request).
 */
export const startFirefox = async (
  pages: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {},
  prefs: Readonly<Record<string, string | number | boolean>> = {}
): Promise<FirefoxKit> => {
  const found = firefoxPath()
  if (!("path" in found)) throw new Error(found.missing)
  const bundles = new Map<string, string>()
  for (const name of pages) bundles.set(name, await bundlePage(name))
  const queue: Array<Command & { readonly id: number }> = []
  const polls: Array<Http.ServerResponse> = []
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  let control: ((method: string, args: ReadonlyArray<unknown>) => Promise<unknown>) | undefined
  let connected: (() => void) | undefined
  const firstPoll = new Promise<void>((resolve) => connected = resolve)
  const deliver = () => {
    while (queue.length > 0 && polls.length > 0) {
      polls.shift()!.writeHead(200, { ...headers, "content-type": "application/json", "cache-control": "no-store" })
        .end(JSON.stringify(queue.shift()))
    }
  }
  const server = Http.createServer((request, response) => {
    if (request.url === "/next") {
      connected?.()
      polls.push(response)
      response.on("close", () => {
        const at = polls.indexOf(response)
        if (at >= 0) polls.splice(at, 1)
      })
      deliver()
      return
    }
    if (request.url === "/control" && request.method === "POST") {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const answer = (body: unknown) =>
          response.writeHead(200, { ...headers, "content-type": "application/json" }).end(JSON.stringify(body))
        const { args, method } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          method: string
          args: ReadonlyArray<unknown>
        }
        if (control === undefined) return answer({ ok: false, error: `no control for ${method}` })
        control(method, args ?? []).then(
          (value) => answer({ ok: true, value: value ?? null }),
          (error: unknown) => answer({ ok: false, error: String(error) })
        )
      })
      return
    }
    if (request.url === "/result" && request.method === "POST") {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        response.writeHead(204, headers).end()
        const result = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          id: number
          ok: boolean
          value?: unknown
          error?: string
        }
        const waiter = pending.get(result.id)
        pending.delete(result.id)
        if (result.ok) waiter?.resolve(result.value)
        else waiter?.reject(new Error(`in Firefox: ${result.error}`))
      })
      return
    }
    if (request.url === "/favicon.ico") {
      response.writeHead(204).end()
      return
    }
    if (request.url === "/runner.html") {
      response.writeHead(200, { ...headers, "content-type": "text/html", "cache-control": "no-store" }).end(RUNNER)
      return
    }
    servePageFile(request, response, bundles, headers, html)
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const profile = mkdtempSync(join(tmpdir(), "lifeline-firefox-"))
  writeFileSync(
    join(profile, "user.js"),
    Object.entries({ ...PREFS, ...prefs }).map(([key, value]) =>
      `user_pref(${JSON.stringify(key)}, ${JSON.stringify(value)});`
    )
      .join("\n")
  )
  const started = Date.now()
  // Its own process group (detached): killed whole at the end, content processes included.
  const child = ChildProcess.spawn(found.path, [
    "--headless",
    "--no-remote",
    "--profile",
    profile,
    `${origin}/runner.html`
  ], {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: "1", MOZ_HEADLESS: "1" }
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL")
      } catch {
        // gone already
      }
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
    }
    for (const response of polls.splice(0)) response.destroy()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    rmSync(profile, { recursive: true, force: true })
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  const started40 = await Promise.race([
    firstPoll.then(() => true),
    exited.then(() => false),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 40_000))
  ])
  clearTimeout(timer)
  if (!started40) {
    await stop()
    throw new Error("Firefox did not load the runner page within 40 s")
  }
  const startup = Date.now() - started
  let next = 0
  return {
    origin,
    startup,
    setControl: (handler) => {
      control = handler
    },
    command: (command, within = 10_000) =>
      new Promise((resolve, reject) => {
        const id = next++
        const timeout = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`Firefox: no answer to ${JSON.stringify(command).slice(0, 200)} in ${within} ms`))
        }, within)
        pending.set(id, {
          resolve: (value) => {
            clearTimeout(timeout)
            resolve(value)
          },
          reject: (error) => {
            clearTimeout(timeout)
            reject(error)
          }
        })
        queue.push({ ...command, id })
        deliver()
      }),
    close: stop
  }
}

/** One test's page: an iframe in the runner, and what went wrong in it (collected when it closes). */
export interface FirefoxPage {
  readonly frame: number
  readonly errors: Array<string>
  readonly close: () => Promise<void>
}

/**
 * A test file's Firefox: the kit, started once for the file, and what each test opened (pages,
 * then scopes), closed after it, every page's errors expected empty. Call `hooks()` inside the
 * file's `describeFirefox`, so that a machine without Firefox starts none.
 */
export type FirefoxSession = BrowserSession<FirefoxKit, FirefoxPage>

export const firefoxSession = (
  bundles: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {},
  prefs: Readonly<Record<string, string | number | boolean>> = {}
): FirefoxSession => {
  let frames = 0
  return browserSession(() => startFirefox(bundles, headers, prefs), 45_000, async (kit, name) => {
    const frame = frames++
    await kit.command({ op: "open", frame, name }, 15_000)
    const errors: Array<string> = []
    let closed = false
    return {
      frame,
      errors,
      close: async () => {
        if (closed) return
        closed = true
        errors.push(...(await kit.command({ op: "close", frame }) as Array<string>))
      }
    }
  })
}

/**
 * The API a page script puts on `globalThis[name]`, called from Node: `call(page, method, ...args)`
 * runs `globalThis[name][method](...args)` in the page's frame (plain data in and out).
 */
export const firefoxApi =
  <Api extends Record<string, (...args: Array<any>) => unknown>>(session: FirefoxSession, name: string) =>
  <K extends keyof Api & string>(
    page: FirefoxPage,
    method: K,
    ...args: Parameters<Api[K]>
  ): Promise<Awaited<ReturnType<Api[K]>>> =>
    session.kit().command({ op: "call", frame: page.frame, api: name, method, args }) as Promise<
      Awaited<ReturnType<Api[K]>>
    >
