/**
 * A Client in Chromium written to faster than its peer reads: browsers give no write completion,
 * so lifeline counts a frame written once no more than the high-water mark (1 MiB) is buffered up
 * to its end. What waits behind it is held by the outbox, as on Node: a burst of `enqueue`s is
 * refused `OutboxFull` past it (nothing piles up in `bufferedAmount`, nothing is lost silently),
 * and a `sink` waits. (Before, every frame counted as written once the browser had it: 20,000
 * enqueues of 1 kB were all taken, the sink ran to its end at once.) Page script:
 * test/browser/burst.ts.
 */
import { Effect } from "effect"
import { expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { burst as Burst } from "./browser/burst.js"
import { chromiumSession, describeChromium, pageApi } from "./support/chromium.js"

const call = pageApi<typeof Burst>("burst")

const session = chromiumSession(["burst"])

describeChromium("Chromium: a Client written to faster than its peer reads", () => {
  session.hooks()

  it(
    "20,000 enqueues of 1 kB to a peer that stopped reading: what the outbox holds past the 1 MiB buffered is taken, the rest refused OutboxFull at once; the peer reads again: every one taken arrives once, in order; failed 0",
    async () => {
      const server = await session.inScope(TestServer.make({ handler: "ignore" }))
      await Effect.runPromise(server.pauseReading)
      const { page } = await session.page("burst")
      const { refusals, taken } = await call(page, "enqueue", server.url, 20_000, 1000)
      expect(refusals).toEqual(["SendError OutboxFull"])
      // The 1 MiB under the mark and the outbox's 1,024 at least (more as the browser and the
      // kernel took bytes meanwhile); not all.
      expect(taken.length).toBeGreaterThanOrEqual(1024 + 1024)
      expect(taken.length).toBeLessThan(20_000)
      await Effect.runPromise(server.resumeReading)
      const received = await Effect.runPromise(server.awaitReceived(taken.length, 20_000))
      expect(received).toEqual(taken.map((index) => `${index}:${"x".repeat(1000)}`))
      expect(await call(page, "finish")).toEqual({ sink: "none", failed: 0, outbox: 0 })
    },
    30_000
  )

  it(
    "Stream.run(client.sink) of 20,000 frames of 1 kB to a peer that stopped reading: the sink is held back (it stops taking frames), then runs to its end once the peer reads; every frame arrives once, in order; failed 0",
    async () => {
      const server = await session.inScope(TestServer.make({ handler: "ignore" }))
      await Effect.runPromise(server.pauseReading)
      const { page } = await session.page("burst")
      const held = await call(page, "sink", server.url, 20_000, 1000)
      expect(held.done).toBe(false)
      expect(held.taken).toBeLessThan(20_000)
      await Effect.runPromise(server.resumeReading)
      const received = await Effect.runPromise(server.awaitReceived(20_000, 20_000))
      expect(received).toEqual(Array.from({ length: 20_000 }, (_, index) => `${index}:${"y".repeat(1000)}`))
      expect(await call(page, "finish")).toEqual({ sink: "Success", failed: 0, outbox: 0 })
    },
    30_000
  )
})
