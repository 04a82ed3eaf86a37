/**
 * The round trip's path (a benchmark target: p50 within 1.2x raw ws's), held by what cannot flake:
 * which callbacks a lone message schedules and which writes a lone frame makes. Figures in
 * bench/README.md (`bench/abRoundTrip.ts`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber } from "effect"
import type * as Net from "node:net"
import { Connection } from "../src/index.js"
import { InboundBuffer } from "../src/internal/primitives/inboundBuffer.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"

const immediates = (): number => process.getActiveResourcesInfo().filter((name) => name === "Immediate").length

const weighed = (capacity: number) =>
  new InboundBuffer<string>(
    capacity,
    { pause: () => true, resume: () => {}, overflow: () => {} },
    Number.POSITIVE_INFINITY,
    (item) => item.length
  )

/** A reader of `buffer` that records each chunk until it has `total` items. */
const readInto = (buffer: InboundBuffer<string>, total: number) =>
  Effect.gen(function*() {
    const chunks: Array<Array<string>> = []
    const reader = yield* Effect.fork(Effect.gen(function*() {
      while (chunks.flat().length < total) chunks.push(Chunk.toArray(yield* buffer.pull))
    }))
    yield* Effect.yieldNow()
    return { chunks, reader }
  })

/** Offers each item from its own check-phase callback, all in one turn, as Node runs socket reads. */
const offerInOneTurn = (buffer: InboundBuffer<string>, items: ReadonlyArray<string>) =>
  Effect.sync(() => {
    for (const item of items) setImmediate(() => buffer.offer(item))
  })

describe("Connection: the round trip's path", () => {
  it.live("a small message wakes a waiting reader with no check-phase callback; a large one still holds its turn's later wakes", () =>
    Effect.gen(function*() {
      const small = weighed(1000)
      const { chunks, reader } = yield* readInto(small, 1)
      const before = immediates()
      small.offer("x".repeat(64))
      expect(immediates()).toBe(before)
      yield* Fiber.join(reader)
      expect(chunks).toEqual([["x".repeat(64)]])

      const large = weighed(1000)
      const read = yield* readInto(large, 1)
      large.offer("y".repeat(16 * 1024))
      expect(immediates()).toBe(before + 1)
      yield* Fiber.join(read.reader)
    }))

  it.live("small messages from separate reads of one turn each wake the reader; large ones wake it twice a turn", () =>
    Effect.gen(function*() {
      const small = weighed(1000)
      const smallRead = yield* readInto(small, 3)
      yield* offerInOneTurn(small, ["a", "b", "c"])
      yield* Fiber.join(smallRead.reader)
      expect(smallRead.chunks).toEqual([["a"], ["b"], ["c"]])

      const big = (letter: string) => letter.repeat(16 * 1024)
      const large = weighed(1000)
      const largeRead = yield* readInto(large, 3)
      yield* offerInOneTurn(large, [big("a"), big("b"), big("c")])
      yield* Fiber.join(largeRead.reader)
      expect(largeRead.chunks).toEqual([[big("a")], [big("b"), big("c")]])
    }))

  it.live("the first small frame of a tick is written at once, uncorked; the next ones of that tick are corked together", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const connection = yield* Connection.connect(server.url)
        // Internals: the TCP socket under ws.
        const tcp = (connection as unknown as { socket: { tcp: Net.Socket } }).socket.tcp
        const corked = yield* Effect.sync(() => {
          const states: Array<number> = []
          const socket = (connection as unknown as {
            socket: { send: (data: string, callback?: (error?: Error) => void) => void }
          }).socket
          // Three frames in one synchronous run (one tick).
          for (let index = 0; index < 3; index++) {
            socket.send("x".repeat(64))
            states.push(tcp.writableCorked)
          }
          return states
        })
        expect(corked).toEqual([0, 1, 1])
        // The tick's end lifts the cork.
        yield* Effect.promise(() => new Promise<void>((resolve) => process.nextTick(resolve)))
        expect(tcp.writableCorked).toBe(0)
        // And a lone frame on a later tick leaves at once again.
        yield* Effect.sync(() => {
          ;(connection as unknown as { socket: { send: (data: string) => void } }).socket.send("y")
        })
        expect(tcp.writableCorked).toBe(0)
      }).pipe(Effect.scoped)
    ).pipe(provideNode))
})
