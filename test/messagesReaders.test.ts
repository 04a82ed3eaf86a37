/**
 * `messages` read by more than one fiber while no connection is there to read (before the first
 * open, between a session's end and the next): each reader waits for the next connection, and
 * each is woken by it (and by the Client's end), none in another's place.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import { Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { provideNode } from "./support/node.js"

describe("messages: readers waiting for a connection", () => {
  // Without it the connection's wait had one slot: the second reader took the first's, which
  // waited for ever (its `messages` never ended, not even at `close`).
  it.scopedLive("two readers that start before the first open are both woken by it, and both streams end at close", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url })
      expect((yield* client.state.get)._tag).toBe("Connecting")
      const first = yield* Effect.fork(Stream.runCollect(client.messages))
      const second = yield* Effect.fork(Stream.runCollect(client.messages))
      // Both are waiting for the connection (no frame can reach them before it opens).
      for (let turn = 0; turn < 20; turn++) yield* Effect.yieldNow()
      yield* awaitState(client, isTag("Open"))
      for (let index = 0; index < 20; index++) yield* server.broadcast(`m${index}`)
      expect(yield* client.close()).toEqual([])
      const read = (reader: typeof first) =>
        Fiber.join(reader).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "never ended" }))
      const chunks = [yield* read(first), yield* read(second)].map(Chunk.toArray)
      // Each frame read once, by one of them: those the Client had taken before it closed.
      const all = chunks.flat() as Array<string>
      expect(new Set(all).size).toBe(all.length)
    }).pipe(provideNode))

  it.scopedLive("a reader interrupted while it waits for a connection leaves the other waiting one to be woken", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const client = yield* Client.make({ url: server.url })
      const first = yield* Effect.fork(Stream.runCollect(client.messages))
      const second = yield* Effect.fork(Stream.runHead(client.messages))
      for (let turn = 0; turn < 20; turn++) yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      yield* Effect.orDie(server.restart)
      yield* client.reconnect
      yield* awaitState(client, isTag("Open"))
      yield* server.broadcast("hello")
      const head = yield* Fiber.join(second).pipe(
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "never woken" })
      )
      expect(head).toMatchObject({ _tag: "Some", value: "hello" })
      expect(yield* client.close()).toEqual([])
    }).pipe(provideNode))
})
