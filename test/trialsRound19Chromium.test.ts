/**
 * Round 19 in Chromium: frames the platform's `WebSocket.send` refuses, through the browser
 * transport. Round 17 made `send` throw them (so `Connection.write`/`send` and a Client's `send`
 * fail `SendError WriteFailed` at once), tested over Node's own WebSocket (undici) only
 * (trialsRound17Workers.test.ts). Here the same frames in Chromium: a Uint8Array whose buffer was
 * transferred to a Worker (detached), and a view over a SharedArrayBuffer (the page is served with
 * COOP/COEP, so that it is cross-origin isolated and can make one). Page script:
 * test/browser/refused.ts, served by this file's own http server (the kit's sets no headers).
 */
import { Effect, Exit, Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, afterEach, beforeAll, expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { refusedPage as RefusedPage } from "./browser/refused.js"
import type { ChromiumKit, TestPage } from "./support/chromium.js"
import { bundlePage, describeChromium, openPage, pageApi, startChromium } from "./support/chromium.js"

const call = pageApi<typeof RefusedPage>("refusedPage")

const html = `<!doctype html><html><head><meta charset="utf-8"><title>refused</title></head>` +
  `<body><script type="module" src="/refused.js"></script></body></html>`

describeChromium("round 19 in Chromium: frames WebSocket.send refuses, through the browser transport", () => {
  let kit: ChromiumKit | undefined
  let isolated: ChromiumKit | undefined
  let server: Http.Server | undefined
  let pages: Array<TestPage> = []
  let scopes: Array<Scope.CloseableScope> = []

  beforeAll(async () => {
    const bundle = await bundlePage("refused")
    // Cross-origin isolated: a page can make a SharedArrayBuffer only then.
    server = Http.createServer((request, response) => {
      const headers = {
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
        "cache-control": "no-store"
      }
      if (request.url === "/refused.html") {
        response.writeHead(200, { ...headers, "content-type": "text/html" }).end(html)
      } else if (request.url === "/refused.js") {
        response.writeHead(200, { ...headers, "content-type": "text/javascript" }).end(bundle)
      } else response.writeHead(request.url === "/favicon.ico" ? 204 : 404).end()
    })
    await new Promise<void>((resolve, reject) => {
      server!.once("error", reject)
      server!.listen(0, "127.0.0.1", () => resolve())
    })
    kit = await startChromium([])
    isolated = { ...kit, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
  }, 30_000)

  afterAll(async () => {
    await kit?.close()
    server?.closeAllConnections()
    await new Promise<void>((resolve) => server === undefined ? resolve() : server.close(() => resolve()))
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

  /** Runs `effect` in a scope closed after the test (a TestServer). */
  const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> => {
    const scope = Effect.runSync(Scope.make())
    scopes.push(scope)
    return Effect.runPromise(Scope.extend(effect, scope))
  }

  const page = async () => {
    const opened = await openPage(isolated!, "refused")
    pages.push(opened)
    return opened.page
  }

  /** What the server received: text as is, a binary frame as its length. */
  const receivedBy = (server: TestServer.TestServer) =>
    Effect.runPromise(
      Effect.map(
        server.received,
        (frames) => frames.map((frame) => typeof frame === "string" ? frame : frame.byteLength)
      )
    )

  it(
    "Chromium's own WebSocket.send: a view over a SharedArrayBuffer throws a TypeError (\"must not be shared\"); a Uint8Array whose buffer went to a Worker does NOT throw: it sends an empty binary frame",
    async () => {
      const p = await page()
      expect(await call(p, "crossOriginIsolated")).toBe(true)
      const server = await inScope(TestServer.make())
      const shared = await call(p, "raw", server.url, "shared")
      expect(shared).toEqual({
        thrown: {
          threw: true,
          name: "TypeError",
          message: "Failed to execute 'send' on 'WebSocket': The provided ArrayBufferView value must not be shared."
        },
        byteLength: 8,
        buffered: 0
      })
      await Effect.runPromise(server.awaitReceived(1))
      expect(await receivedBy(server)).toEqual(["after"])
      const detached = await call(p, "raw", server.url, "detached")
      expect(detached).toEqual({ thrown: { threw: false, name: "", message: "" }, byteLength: 0, buffered: 0 })
      await Effect.runPromise(server.awaitReceived(3))
      expect(await receivedBy(server)).toEqual(["after", 0, "after"])
    },
    15_000
  )

  /** Why each is refused: Chromium's own TypeError, or the transport's for a detached buffer. */
  const causes = {
    shared: "Failed to execute 'send' on 'WebSocket': The provided ArrayBufferView value must not be shared.",
    detached: "the frame's ArrayBuffer is detached (transferred to another thread)"
  }

  for (
    const [kind, what] of [["shared", "over a SharedArrayBuffer"], [
      "detached",
      "whose buffer was transferred to a Worker"
    ]] as const
  ) {
    it(
      `Connection.write and connection.send of a frame ${what}: each fails SendError WriteFailed with that frame; the connection stays open and the next frames are all the server gets (empty frames not detached included)`,
      async () => {
        const p = await page()
        const server = await inScope(TestServer.make())
        const result = await call(p, "connection", server.url, kind)
        expect(result).toEqual({
          write: { exit: "SendError WriteFailed", payloadIsFrame: true, cause: causes[kind] },
          send: { exit: "SendError WriteFailed", payloadIsFrame: true, cause: causes[kind] },
          readyState: 1,
          after: "success",
          empty: ["success", "success"]
        })
        // Then two empty frames that are not detached: the transport's check leaves them alone.
        await Effect.runPromise(server.awaitReceived(3))
        expect(await receivedBy(server)).toEqual(["after", 0, 0])
      },
      15_000
    )

    it(
      `a Client's send of a frame ${what} while a large frame waits on the mark (the server paused): it fails WriteFailed at once, the large one succeeds, the others arrive in order, failed 0`,
      async () => {
        const p = await page()
        const server = await inScope(TestServer.make())
        await Effect.runPromise(server.pauseReading)
        // 8 MiB: more than the loopback's kernel buffers take, so it waits on the mark (1 KiB).
        const large = 8 * 1024 * 1024
        expect(await call(p, "clientStart", server.url, kind, large)).toEqual({
          outboxSize: 1,
          refused: "SendError WriteFailed"
        })
        await Effect.runPromise(server.resumeReading)
        expect(await call(p, "clientFinish")).toEqual({
          large: { exit: "success", payloadIsFrame: false, cause: "" },
          refused: { exit: "SendError WriteFailed", payloadIsFrame: true, cause: causes[kind] },
          after: "success",
          // Refused at once (nothing was accepted): not counted in `failed`, as on Node's WebSocket.
          failed: 0
        })
        await Effect.runPromise(server.awaitReceived(4))
        expect(await receivedBy(server)).toEqual(["one", "two", large, "after"])
      },
      15_000
    )

    it(
      `a frame ${what} as a Client's app-level heartbeat message: Closed ConnectError InvalidOptions "the heartbeat failed" at the first probe`,
      async () => {
        const p = await page()
        const server = await inScope(TestServer.make())
        const result = await call(p, "heartbeat", server.url, kind)
        expect(result.states).toEqual(["Connecting", "Open", "Closed"])
        expect(result.error).toBe("ConnectError InvalidOptions")
        expect(result.message).toContain(`the heartbeat failed: ${causes[kind]}`)
        expect(await Effect.runPromise(server.accepted)).toBe(1)
        expect(await receivedBy(server)).toEqual([])
      },
      15_000
    )
  }
})
