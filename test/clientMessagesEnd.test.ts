/**
 * `messages` of a Client Closed by an error ends once read out, instead of waiting for a
 * connection that may never come; `reconnect` opens it again for a new read. Real sockets on
 * 127.0.0.1.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Duration } from "effect"
import { Chunk, Effect, Fiber, Option, Stream } from "effect"
import { Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { provideNode } from "./support/node.js"

/** The reader's outcome, bounded: `"still waiting"` if `messages` did not end within `within`. */
const readToEnd = (client: Client.Client, within: Duration.DurationInput = "3 seconds") =>
  Stream.runCollect(client.messages).pipe(
    Effect.map(Chunk.toReadonlyArray),
    Effect.timeoutTo({ duration: within, onTimeout: () => "still waiting" as const, onSuccess: (read) => read })
  )

describe("Client messages after a Closed by an error", () => {
  it.scopedLive("a fatal close code: the reader gets the frames before it, then the stream ends", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, heartbeat: false })
      yield* client.awaitOpen
      // The reader waits on an open, empty stream when the close comes.
      const reader = yield* Effect.fork(readToEnd(client))
      yield* server.broadcast("one")
      yield* server.broadcast("two")
      yield* server.closeAll(1008, "policy")
      const closed = yield* awaitState(client, isTag("Closed"))
      expect(Option.map(closed._tag === "Closed" ? closed.error : Option.none(), (error) => [
        error._tag,
        error._tag === "Disconnected" ? error.code : undefined
      ])).toEqual(Option.some(["Disconnected", 1008]))
      expect(yield* Fiber.join(reader)).toEqual(["one", "two"])
      // Read again while Closed: it ends at once, with nothing.
      expect(yield* readToEnd(client)).toEqual([])
    }).pipe(provideNode))

  it.scopedLive("reconnect opens it again: a new read gets the next connection's frames", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, heartbeat: false })
      yield* client.awaitOpen
      yield* server.closeAll(1008, "policy")
      yield* awaitState(client, isTag("Closed"))
      expect(yield* readToEnd(client)).toEqual([])
      yield* client.reconnect
      // Read from the start of the reconnect, before its connection exists.
      const reader = yield* Effect.fork(
        client.messages.pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
      )
      yield* client.awaitOpen
      yield* server.broadcast("after")
      expect(yield* Fiber.join(reader)).toEqual(["after"])
      // Closed on purpose: the stream ends, and reconnect cannot open it again.
      yield* client.close()
      yield* client.reconnect
      expect(yield* readToEnd(client)).toEqual([])
    }).pipe(provideNode))

  it.scopedLive("options that cannot work: the Client starts Closed, and messages ends at once", () =>
    Effect.gen(function*() {
      const client = yield* Client.make({ url: "ws://127.0.0.1:1", outbox: { capacity: -1 } })
      const closed = yield* awaitState(client, isTag("Closed"))
      expect(closed._tag === "Closed" ? Option.map(closed.error, (error) => error._tag) : Option.none())
        .toEqual(Option.some("ConnectError"))
      expect(yield* readToEnd(client)).toEqual([])
    }).pipe(provideNode))
})
