/**
 * Chromium for tests: Debian's browser driven by playwright-core (never a browser download), page
 * scripts bundled by esbuild for the browser, served from 127.0.0.1.
 *
 * - `chromiumPath` finds the browser: `CHROMIUM_PATH` if set, else /usr/bin/chromium or
 *   /usr/bin/chromium-browser.
 *   None: `describeChromium` skips its tests with one warning that says why (`.ci/run` installs it).
 * - `bundlePage` builds a page entry of test/browser/ (platform "browser"): esbuild refuses a Node
 *   builtin there, and the metafile is checked to hold no `ws`.
 * - `startChromium` (once per test file): the bundles on an http server on 127.0.0.1 (port 0)
 *   and one browser; `openPage` gives each test a fresh context and page that records every
 *   `pageerror` and console error.
 *
 * A new page script: add test/browser/<name>.ts and pass "<name>" to `startChromium`; it is served
 * at /<name>.html, which loads it as a module and waits for it to set `window.pageReady = true`.
 * "<name>-vite" is the same script built by Vite (Rollup) as an app's production build, served at
 * /<name>-vite.html.
 */
import { Effect, Exit, Scope } from "effect"
import { build } from "esbuild"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { chromium } from "playwright-core"
import { build as viteBuild } from "vite"
import { afterAll, afterEach, beforeAll, describe, expect } from "vitest"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/** Where Chromium is, or why it is not there. `CHROMIUM_PATH`, when set, is the only place looked at. */
export const chromiumPath = (): { readonly path: string } | { readonly missing: string } => {
  const fromEnv = process.env["CHROMIUM_PATH"]
  const candidates = fromEnv === undefined || fromEnv === ""
    ? ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
    : [fromEnv]
  const found = candidates.find((path) => existsSync(path))
  return found === undefined ? { missing: `no Chromium at ${candidates.join(", ")}` } : { path: found }
}

let warned = false

/** `describe`, or `describe.skip` with one loud warning when there is no Chromium. */
export const describeChromium = (name: string, body: () => void): void => {
  const found = chromiumPath()
  if ("path" in found) {
    describe(name, body)
    return
  }
  if (!warned) {
    warned = true
    console.warn(
      `\n*** Chromium tests SKIPPED: ${found.missing}. Install it (apt-get install chromium) or set CHROMIUM_PATH. ***\n`
    )
  }
  describe.skip(name, body)
}

/** Launch flags: no sandbox (root in CI), and no background traffic to a network that is not there. */
export const CHROMIUM_ARGS: ReadonlyArray<string> = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--disable-default-apps",
  "--metrics-recording-only",
  "--mute-audio"
]

/** The package's entries, as the pages import them, resolved to the source. */
const ALIASES: Readonly<Record<string, string>> = {
  "effect-lifeline/browser": here("../../src/browser.ts"),
  "effect-lifeline/LiteClient": here("../../src/LiteClient.ts"),
  "effect-lifeline/compat": here("../../src/compat.ts"),
  "effect-lifeline/platform": here("../../src/platform.ts")
}

/** The Node-only modules among a bundle's inputs: a page bundle must have none. */
const refuseNodeOnly = (name: string, inputs: ReadonlyArray<string>): void => {
  const nodeOnly = inputs.filter((input) => /(^|\/)node_modules\/ws\/|^node:/.test(input))
  if (nodeOnly.length > 0) throw new Error(`the ${name} page bundle pulls Node-only modules: ${nodeOnly.join(", ")}`)
}

/** test/browser/<name>.ts built by Vite, as an app's production build (Rollup, esbuild's minifier). */
const bundleWithVite = async (name: string): Promise<string> => {
  const built = await viteBuild({
    configFile: false,
    logLevel: "silent",
    resolve: { alias: ALIASES },
    build: {
      write: false,
      minify: "esbuild",
      target: "es2022",
      modulePreload: false,
      rollupOptions: { input: here(`../browser/${name}.ts`), output: { format: "es", inlineDynamicImports: true } }
    }
  })
  const output = (Array.isArray(built) ? built[0] : built) as {
    readonly output: ReadonlyArray<{ readonly type: string; readonly code?: string; readonly modules?: object }>
  }
  const chunk = output.output.find((item) => item.type === "chunk")!
  refuseNodeOnly(`${name}-vite`, Object.keys(chunk.modules ?? {}))
  return chunk.code!
}

/**
 * Bundles test/browser/<name>.ts for the browser (esbuild; "<name>-vite": Vite); fails if it pulls
 * a Node builtin or `ws`.
 */
export const bundlePage = async (name: string): Promise<string> => {
  if (name.endsWith("-vite")) return bundleWithVite(name.slice(0, -"-vite".length))
  const result = await build({
    entryPoints: [here(`../browser/${name}.ts`)],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    // Minified: a page loads and parses it once per test (half a second unminified, on 2 busy cores).
    minify: true,
    alias: ALIASES,
    logLevel: "silent"
  })
  refuseNodeOnly(name, Object.keys(result.metafile.inputs))
  return result.outputFiles[0]!.text
}

const html = (name: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${name}</title></head>` +
  `<body><script type="module" src="/${name}.js"></script></body></html>`

/**
 * Answers `/<name>.html` (a page that loads the bundle, from `html`) or `/<name>.js` (the bundle),
 * with `headers`, for a page kit's server; 404 for anything else.
 */
export const servePageFile = (
  request: Http.IncomingMessage,
  response: Http.ServerResponse,
  bundles: ReadonlyMap<string, string>,
  headers: Readonly<Record<string, string>>,
  html: (name: string) => string
): void => {
  const match = /^\/([\w-]+)\.(html|js)$/.exec(request.url ?? "")
  const bundle = match === null ? undefined : bundles.get(match[1]!)
  if (match === null || bundle === undefined) {
    response.writeHead(404).end()
    return
  }
  const isHtml = match[2] === "html"
  response.writeHead(200, {
    ...headers,
    "content-type": isHtml ? "text/html" : "text/javascript",
    "cache-control": "no-store"
  })
  response.end(isHtml ? html(match[1]!) : bundle)
}

/** What a test file holds for its whole run: one http server, one browser. */
export interface ChromiumKit {
  readonly browser: Browser
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
  readonly close: () => Promise<void>
}

/**
 * Bundles the page scripts, serves them on 127.0.0.1 (with `headers` on each page and script: e.g.
 * COOP/COEP, which make a page cross-origin isolated) and launches Chromium (bounded: 30 s).
 */
export const startChromium = async (
  pages: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {}
): Promise<ChromiumKit> => {
  const found = chromiumPath()
  if (!("path" in found)) throw new Error(found.missing)
  const bundles = new Map<string, string>()
  for (const name of pages) bundles.set(name, await bundlePage(name))
  const server = Http.createServer((request, response) => {
    // No favicon: an empty answer rather than a 404, which Chrome would log as a console error.
    if (request.url === "/favicon.ico") {
      response.writeHead(204).end()
      return
    }
    servePageFile(request, response, bundles, headers, html)
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  // A fresh profile per run: playwright makes one in the temp dir for `launch`; the crash dumps
  // and caches go to a directory of ours, removed on close.
  const scratch = mkdtempSync(join(tmpdir(), "lifeline-chromium-"))
  let browser: Browser
  try {
    browser = await chromium.launch({
      executablePath: found.path,
      headless: true,
      args: [...CHROMIUM_ARGS, `--disk-cache-dir=${scratch}`, `--crash-dumps-dir=${scratch}`],
      timeout: 30_000
    })
  } catch (error) {
    server.close()
    rmSync(scratch, { recursive: true, force: true })
    throw error
  }
  return {
    browser,
    origin,
    close: async () => {
      await browser.close().catch(() => {})
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(scratch, { recursive: true, force: true })
    }
  }
}

/** Chrome's own line for a WebSocket that failed to connect or closed abnormally: expected in some tests. */
const SOCKET_ERROR = /^WebSocket connection to 'wss?:\/\/127\.0\.0\.1:\d+\/?[^']*' failed/

/** One test's page: its own context (offline is per context), and what went wrong in it. */
export interface TestPage {
  readonly page: Page
  readonly context: BrowserContext
  /** `pageerror`s and console errors, Chrome's WebSocket failures excepted: every test expects none. */
  readonly errors: Array<string>
  /** Chrome's console lines for WebSocket connections that failed, in order. */
  readonly socketErrors: Array<string>
  readonly close: () => Promise<void>
}

/** A fresh context and page on /<name>.html, ready (the script set `window.pageReady`). */
export const openPage = async (kit: ChromiumKit, name: string): Promise<TestPage> => {
  const context = await kit.browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(10_000)
  const errors: Array<string> = []
  const socketErrors: Array<string> = []
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.stack ?? error.message}`))
  page.on("console", (message) => {
    if (message.type() !== "error") return
    const text = message.text()
    if (SOCKET_ERROR.test(text)) socketErrors.push(text)
    else errors.push(`console.error: ${text}`)
  })
  await page.goto(`${kit.origin}/${name}.html`)
  await page.waitForFunction(() => (globalThis as { pageReady?: boolean }).pageReady === true, undefined, {
    timeout: 10_000
  })
  return { page, context, errors, socketErrors, close: () => context.close().catch(() => {}) }
}

/** Polls `check` (in Node) until it holds: at most `within` ms (a hang guard: 10 s by default), every 10 ms. */
export const eventually = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  within = 10_000
): Promise<void> => {
  const until = Date.now() + within
  for (let turn = 0; turn < within / 10 + 1; turn++) {
    if (await check()) return
    if (Date.now() > until) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out after ${within} ms waiting for ${what}`)
}

/**
 * A test file's browser: its kit, started once for the file (`start`, within `startWithin` ms), and
 * what each test opened (pages, then scopes: servers and the like), closed after it, with every
 * page's errors expected empty. Call `hooks()` inside the file's describe that skips without the
 * browser, so that a machine without it starts none. The Chromium and Firefox sessions are this.
 */
export interface BrowserSession<Kit, P> {
  /** The running kit (inside a test). */
  readonly kit: () => Kit
  /** A fresh page on /<name>.html, closed after the test. */
  readonly page: (name: string) => Promise<P>
  /** Runs `effect` in a scope closed after the test (a TestServer, an rpc server...). */
  readonly inScope: <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Promise<A>
  readonly hooks: () => void
}

export const browserSession = <
  Kit extends { readonly close: () => Promise<void> },
  P extends {
    readonly errors: ReadonlyArray<string>
    readonly close: () => Promise<void>
  }
>(
  start: () => Promise<Kit>,
  startWithin: number,
  open: (kit: Kit, name: string) => Promise<P>
): BrowserSession<Kit, P> => {
  let kit: Kit | undefined
  let pages: Array<P> = []
  let scopes: Array<Scope.CloseableScope> = []
  return {
    kit: () => kit!,
    page: async (name) => {
      const opened = await open(kit!, name)
      pages.push(opened)
      return opened
    },
    inScope: (effect) => {
      const scope = Effect.runSync(Scope.make())
      scopes.push(scope)
      return Effect.runPromise(Scope.extend(effect, scope))
    },
    hooks: () => {
      beforeAll(async () => {
        kit = await start()
      }, startWithin)
      afterAll(async () => {
        await kit?.close()
      })
      afterEach(async () => {
        const opened = pages
        pages = []
        for (const each of opened) await each.close()
        const held = scopes
        scopes = []
        for (const scope of held) await Effect.runPromise(Scope.close(scope, Exit.void))
        for (const each of opened) expect(each.errors).toEqual([])
      })
    }
  }
}

/** A test file's Chromium (`browserSession`). */
export type ChromiumSession = BrowserSession<ChromiumKit, TestPage>

export const chromiumSession = (
  bundles: ReadonlyArray<string>,
  headers: Readonly<Record<string, string>> = {}
): ChromiumSession => browserSession(() => startChromium(bundles, headers), 30_000, openPage)

/**
 * The API a page script puts on `globalThis[name]`, called from Node: `call(page, method, ...args)`
 * runs `globalThis[name][method](...args)` in the page (plain data in and out), typed by the script.
 */
export const pageApi =
  <Api extends Record<string, (...args: Array<any>) => unknown>>(name: string) =>
  <K extends keyof Api & string>(
    page: Page,
    method: K,
    ...args: Parameters<Api[K]>
  ): Promise<Awaited<ReturnType<Api[K]>>> =>
    page.evaluate(
      ([name, method, args]) =>
        (globalThis as unknown as Record<string, Record<string, (...args: ReadonlyArray<unknown>) => unknown>>)[name]![
          method
        ]!(...args),
      [name, method, args] as const
    ) as Promise<Awaited<ReturnType<Api[K]>>>
