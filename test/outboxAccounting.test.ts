/**
 * The outbox's accounting while Open, over a real socket whose write completions the test holds
 * back and releases (the frames are really written; only the moment they are reported is the
 * test's). Each case would fail without the fix it names.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Exit, Fiber, Layer, Logger } from "effect"
import { Client, LiteClient, NodeTransport, Transport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitReceived } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitSuspended } from "./support/poll.js"
import { withSend } from "./support/wrappedTransport.js"

/** A transport over the real one whose write callbacks wait until `release`; "THROW" throws. */
const heldWrites = () => {
  const held: Array<() => void> = []
  const transport = withSend(NodeTransport.make, (socket, data, callback) => {
    if (data === "THROW") throw new TypeError("cannot send THROW")
    socket.send(data, (error) => {
      held.push(() => callback?.(error))
    })
  })
  /** Reports the oldest `count` writes done (waiting, bounded, for ws to have called back). */
  const release = (count: number) =>
    Effect.gen(function*() {
      for (let turn = 0; turn < 500 && held.length < count; turn++) yield* Effect.sleep("2 millis")
      for (const done of held.splice(0, count)) done()
    })
  return {
    release,
    layer: Layer.merge(Layer.succeed(Transport.Transport, transport), Logger.remove(Logger.defaultLogger))
  }
}

const bytes = (size: number, fill = 0): Uint8Array => new Uint8Array(size).fill(fill)

type Make = (options: Client.Options) => Effect.Effect<Client.Client, never, Scope.Scope | Transport.Transport>

// The full Client and the small one (LiteClient): the same accounting.
for (
  const [name, make] of [["Client", Client.make], ["LiteClient", LiteClient.make]] as ReadonlyArray<
    readonly [string, Make]
  >
) {
  describe(`${name} outbox accounting while Open`, () => {
    it.live("suspend: a waiting sender is not passed by later messages that would fit; it goes first once room frees", () => {
      const writes = heldWrites()
      return withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const client = yield* make({
          url: server.url,
          heartbeat: false,
          outbox: { maxBytes: 100, overflow: "suspend" }
        })
        yield* client.awaitOpen
        yield* client.enqueue(bytes(60, 1)) // in flight
        const big = yield* Effect.fork(client.send(bytes(80, 2))) // 60 + 80 > 100: waits
        yield* awaitSuspended(big)
        // 60 + 30 would fit, but the 80 waits ahead of it: this one waits behind it.
        const small = yield* Effect.fork(client.enqueue(bytes(30, 3)))
        yield* awaitSuspended(small)
        expect(big.unsafePoll()).toBe(null)
        expect(small.unsafePoll()).toBe(null)
        yield* writes.release(1)
        yield* writes.release(1)
        expect(Exit.isSuccess(yield* big.await)).toBe(true)
        yield* Fiber.join(small)
        yield* writes.release(1)
        // Written in the order they were sent.
        yield* awaitReceived(server, 3)
        expect((yield* server.received).map((frame) => (frame as Uint8Array)[0])).toEqual([1, 2, 3])
        expect(yield* client.outboxSize).toBe(0)
      })).pipe(Effect.provide(writes.layer))
    })

    it.live("a buffer transferred after enqueue does not skew the byte bound: it settles by the size counted at hand-off", () => {
      const writes = heldWrites()
      return withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const client = yield* make({ url: server.url, heartbeat: false, outbox: { maxBytes: 100 } })
        yield* client.awaitOpen
        const frame = bytes(60)
        yield* client.enqueue(frame)
        // ws has copied it (client frames are masked): the sender may reuse or transfer it.
        structuredClone(frame.buffer, { transfer: [frame.buffer] })
        yield* writes.release(1)
        expect(yield* client.outboxSize).toBe(0)
        // The whole 100 bytes are free again.
        yield* client.enqueue(bytes(60))
        yield* client.enqueue(bytes(40))
        expect(yield* client.outboxSize).toBe(2)
        yield* writes.release(2)
      })).pipe(Effect.provide(writes.layer))
    })

    it.live("a suspended send admitted when room frees, whose write throws: its sender gets WriteFailed, and it is counted", () => {
      const writes = heldWrites()
      return withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const client = yield* make({
          url: server.url,
          heartbeat: false,
          outbox: { capacity: 1, overflow: "suspend" }
        })
        yield* client.awaitOpen
        const first = yield* Effect.fork(client.send("A"))
        yield* awaitSuspended(first)
        const second = yield* Effect.fork(client.send("THROW"))
        yield* awaitSuspended(second)
        yield* writes.release(1)
        yield* Fiber.join(first)
        expect(yield* Effect.flip(Fiber.join(second))).toMatchObject({
          _tag: "SendError",
          reason: "WriteFailed",
          payload: "THROW"
        })
        expect(yield* client.failed).toBe(1)
      })).pipe(Effect.provide(writes.layer))
    })

    it.live("close returns what was in flight, then what was suspended, and counts every one of them", () => {
      const writes = heldWrites()
      return withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const client = yield* make({
          url: server.url,
          heartbeat: false,
          outbox: { capacity: 1, overflow: "suspend" },
          connection: { closeTimeout: "100 millis" }
        })
        yield* client.awaitOpen
        const senders = yield* Effect.forEach(
          ["A", "B", "C"],
          (frame) => Effect.tap(Effect.fork(client.send(frame)), awaitSuspended)
        )
        const unsent = yield* client.close()
        expect(unsent).toEqual(["A", "B", "C"])
        for (const sender of senders) {
          expect(yield* Effect.flip(Fiber.join(sender))).toMatchObject({ _tag: "SendError", reason: "Closed" })
        }
        expect(yield* client.failed).toBe(3)
      })).pipe(Effect.provide(writes.layer))
    })
  })
}
