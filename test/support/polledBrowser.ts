/**
 * A browser driven with no driver, by a page (shared by the Firefox and WebKit kits,
 * test/support/firefox.ts and webkit.ts): the page bundles (`bundlePage`, as for Chromium) on an
 * http server on 127.0.0.1, and the browser started (by the caller's `launch`, in its own process
 * group) on `<origin>/runner.html`. The runner page long-polls the server for commands (GET /next)
 * and posts each result back (POST /result):
 * - `open`: a fresh iframe on /<name>.html (its own window: the sockets it made go with it);
 * - `call`: `iframe.contentWindow[api][method](...args)` (method "": `[api](...args)`), awaited,
 *   plain data back;
 * - `close`: the iframe removed, with the `error`s, `unhandledrejection`s and `console.error`s
 *   its window saw (recorded by a classic script that runs before the page's module).
 * A page may call back into Node: `window.serverControl(method, args)` posts to /control, answered
 * by the handler given to `kit.setControl` (the compat scenarios' ServerControl).
 * The browser is started once per test file and its process group killed at the end.
 */
import type * as ChildProcess from "node:child_process"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { BrowserSession } from "./chromium.js"
import { browserSession, bundlePage, servePageFile } from "./chromium.js"

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

export interface Command {
  readonly op: "open" | "call" | "close" | "errors" | "quit"
  readonly frame?: number
  readonly name?: string
  readonly api?: string
  readonly method?: string
  readonly args?: ReadonlyArray<unknown>
}

/** What a test file holds for its whole run: one http server, one browser. */
export interface PolledKit {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  /** How long the browser took from its start to its runner's first request (ms). */
  readonly startup: number
  /** What answers a page's `serverControl(method, args)` (POST /control); none: an error. */
  readonly setControl: (
    handler: ((method: string, args: ReadonlyArray<unknown>) => Promise<unknown>) | undefined
  ) => void
  /** Runs a command in the runner page (bounded: `within` ms). */
  readonly command: (command: Command, within?: number) => Promise<unknown>
  readonly close: () => Promise<void>
}

/** A started browser: its process (the leader of its own group), and what to remove once it is gone. */
export interface Launched {
  readonly child: ChildProcess.ChildProcess
  readonly cleanup?: () => void
}

/**
 * Bundles the page scripts, serves them on 127.0.0.1 (with `headers` on every answer: e.g.
 * COOP/COEP) and starts the browser (`launch`, given the runner page's URL) on the runner page
 * (bounded: `within` ms to its first request). `browser` names it in errors.
 */
export const startPolledBrowser = async (
  browser: string,
  pages: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>>,
  launch: (runner: string) => Launched,
  within = 40_000
): Promise<PolledKit> => {
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
        else waiter?.reject(new Error(`in ${browser}: ${result.error}`))
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
  const started = Date.now()
  let launched: Launched
  try {
    launched = launch(`${origin}/runner.html`)
  } catch (error) {
    server.closeAllConnections()
    server.close()
    throw error
  }
  const { child } = launched
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async () => {
    if (child.pid !== undefined) {
      // The group even when its leader has exited: a runner that died left Xvfb and WebKit's
      // processes running in it (review of round 21).
      try {
        process.kill(-child.pid, "SIGKILL")
      } catch {
        // gone already
      }
      if (child.exitCode === null && child.signalCode === null) {
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
      }
    }
    for (const response of polls.splice(0)) response.destroy()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    launched.cleanup?.()
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  const loaded = await Promise.race([
    firstPoll.then(() => true),
    exited.then(() => false),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), within))
  ])
  clearTimeout(timer)
  if (!loaded) {
    await stop()
    throw new Error(`${browser} did not load the runner page within ${within} ms`)
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
          reject(new Error(`${browser}: no answer to ${JSON.stringify(command).slice(0, 200)} in ${within} ms`))
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
export interface PolledPage {
  readonly frame: number
  readonly errors: Array<string>
  readonly close: () => Promise<void>
}

/**
 * A test file's browser: the kit, started once for the file (`start`, bounded: `startWithin` ms),
 * and what each test opened (pages, then scopes), closed after it, every page's errors expected
 * empty. Call `hooks()` inside the file's describe, so that a machine without the browser starts none.
 */
export type PolledSession = BrowserSession<PolledKit, PolledPage>

export const polledSession = (start: () => Promise<PolledKit>, startWithin: number): PolledSession => {
  let frames = 0
  return browserSession(start, startWithin, async (kit, name) => {
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
export const polledApi =
  <Api extends Record<string, (...args: Array<any>) => unknown>>(session: PolledSession, name: string) =>
  <K extends keyof Api & string>(
    page: PolledPage,
    method: K,
    ...args: Parameters<Api[K]>
  ): Promise<Awaited<ReturnType<Api[K]>>> =>
    session.kit().command({ op: "call", frame: page.frame, api: name, method, args }) as Promise<
      Awaited<ReturnType<Api[K]>>
    >
