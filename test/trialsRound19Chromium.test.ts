/**
 * Round 19 in Chromium: frames the platform's `WebSocket.send` refuses, through the browser
 * transport. Round 17 made `send` throw them (so `Connection.write`/`send` and a Client's `send`
 * fail `SendError WriteFailed` at once), tested over Node's own WebSocket (undici) only
 * (trialsRound17Workers.test.ts). Here the same frames in Chromium: a Uint8Array whose buffer was
 * transferred to a Worker (detached), and a view over a SharedArrayBuffer (the page is served with
 * COOP/COEP, so that it is cross-origin isolated and can make one). Page script:
 * test/browser/refused.ts.
 */
import { Effect } from "effect"
import { expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { refusedPage as RefusedPage } from "./browser/refused.js"
import { chromiumSession, describeChromium, pageApi } from "./support/chromium.js"

const call = pageApi<typeof RefusedPage>("refusedPage")

// Cross-origin isolated: a page can make a SharedArrayBuffer only then.
const session = chromiumSession(["refused"], {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp"
})

describeChromium("round 19 in Chromium: frames WebSocket.send refuses, through the browser transport", () => {
  session.hooks()
  const inScope = session.inScope
  const page = async () => (await session.page("refused")).page

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
    30_000
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
      30_000
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
      30_000
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
      30_000
    )
  }
})
