/**
 * Round 13 in Chromium: a Connection's `sink` over the browser transport, against a TestServer on
 * 127.0.0.1 that stops reading and is then killed. Chromium keeps a closed socket's
 * `bufferedAmount` (as the WebSocket standard says), so a sink waiting for it to fall below the
 * high-water mark waited for good, polling every 5 ms. Page script: test/browser/r13connection.ts.
 */
import { Effect } from "effect"
import { expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { r13 as R13 } from "./browser/r13connection.js"
import { chromiumSession, describeChromium, pageApi } from "./support/chromium.js"

const call = pageApi<typeof R13>("r13")

const session = chromiumSession(["r13connection"])

describeChromium("round 13 in Chromium: the Connection's sink", () => {
  session.hooks()

  it(
    "a sink waiting for a peer that stopped reading, the peer then killed: the sink fails SendError WriteFailed (the frame it waits on was never sent) once the socket is CLOSED, though Chromium still counts the unsent bytes in bufferedAmount",
    async () => {
      const server = await session.inScope(TestServer.make({ handler: "ignore", record: false }))
      await Effect.runPromise(server.pauseReading)
      const { page } = await session.page("r13connection")
      expect(await call(page, "start", server.url)).toBeGreaterThan(64 * 1024)
      const [peer] = await Effect.runPromise(server.peers)
      await Effect.runPromise(peer!.terminate)
      const outcome = await call(page, "finish")
      expect(outcome.closed).toBe(1006)
      expect(outcome.readyState).toBe(3)
      expect(outcome.buffered).toBeGreaterThan(64 * 1024)
      // The frame that took the buffer past the mark waits for the browser to send it (its write
      // completion); the close fails it. (Before browser writes were held past the mark, the sink
      // waited in its own poll of bufferedAmount, which ends with NotOpen.)
      expect(outcome.sink).toBe("SendError WriteFailed")
    },
    30_000
  )
})
