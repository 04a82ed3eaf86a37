import { expect } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { Connection } from "../../src/index.js"
import { TestServer } from "../../src/testing/index.js"

/** A numbered 64 KiB text frame: about one socket read each. */
const frame = (index: number): string => `${String(index).padStart(4, "0")}${"x".repeat(64 * 1024)}`

/**
 * The server sends `count` numbered 64 KiB frames at once to a Connection with the given inbound
 * capacity; every frame must arrive whole and in order, and the connection must still be open.
 */
export const expectLargeFrameBurst = (count: number, inboundCapacity: number) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    const connection = yield* Connection.connect(server.url, { inboundCapacity })
    const indexes = Array.from({ length: count }, (_, index) => index)
    yield* Effect.forEach(indexes, (index) => server.broadcast(frame(index)))
    const received = Chunk.toArray(yield* connection.messages.pipe(Stream.take(count), Stream.runCollect))
    expect(received.map((message) => (typeof message === "string" ? message.slice(0, 4) : "binary"))).toEqual(
      indexes.map((index) => String(index).padStart(4, "0"))
    )
    expect(received.every((message, index) => message === frame(index))).toBe(true)
    expect(yield* connection.readyState).toBe(1)
  })
