/**
 * The inbound buffer holds a wake back until the check phase (`setImmediate`). Fake timers must
 * not keep a message from its reader: installed after the buffer's module loaded they do not
 * touch the `setImmediate` it took; installed before, it wakes the reader at every message.
 */
import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import { Chunk, Effect, Fiber, Option, Stream } from "effect"
import type { InboundBuffer as Buffer } from "../src/internal/primitives/inboundBuffer.js"
import { startReader } from "./support/inbound.js"

// Taken before any test fakes timers: the offers come from real turns of the event loop.
const realImmediate = globalThis.setImmediate
const nextTurn = () => new Promise<void>((resolve) => realImmediate(resolve))

/** Offers 1, 2, 3 from three real turns, one after the other, and returns the chunks read. */
const readAcrossTurns = (InboundBuffer: typeof Buffer) =>
  Effect.gen(function*() {
    const { buffer, chunks, reader } = yield* startReader(InboundBuffer, 1000, 3)
    for (const item of [1, 2, 3]) {
      yield* Effect.promise(nextTurn)
      buffer.offer(item)
    }
    yield* Fiber.join(reader).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "held back" as const }))
    return chunks
  })

describe("inbound buffer and fake timers", () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it.live("fake timers installed after the module loaded: every message reaches the reader", () =>
    Effect.gen(function*() {
      const { InboundBuffer } = yield* Effect.promise(() => import("../src/internal/primitives/inboundBuffer.js"))
      vi.useFakeTimers({ toFake: ["setImmediate", "clearImmediate"] })
      expect(yield* readAcrossTurns(InboundBuffer)).toEqual([[1], [2], [3]])
    }))

  it.live("fake timers installed before the module loaded: every message wakes the reader at once", () =>
    Effect.gen(function*() {
      vi.useFakeTimers({ toFake: ["setImmediate", "clearImmediate"] })
      vi.resetModules()
      const { InboundBuffer } = yield* Effect.promise(() => import("../src/internal/primitives/inboundBuffer.js"))
      expect(yield* readAcrossTurns(InboundBuffer)).toEqual([[1], [2], [3]])
    }))
})

describe("streamOfPulls", () => {
  it.effect("emits each pulled chunk in order, skips empty ones, and ends when the pull fails with None", () =>
    Effect.gen(function*() {
      // Imported here, like the buffer above: this file controls when that module loads.
      const { streamOfPulls } = yield* Effect.promise(() => import("../src/internal/primitives/inboundBuffer.js"))
      const script = [Chunk.make(1, 2), Chunk.empty<number>(), Chunk.make(3)]
      let pulls = 0
      const pull = Effect.suspend(() => {
        const next = script[pulls++]
        return next === undefined ? Effect.fail(Option.none()) : Effect.succeed(next)
      })
      const chunks = yield* Stream.runCollect(
        Stream.mapChunks(streamOfPulls(pull, pull), (chunk) => Chunk.of(Chunk.toArray(chunk)))
      )
      expect(Chunk.toArray(chunks)).toEqual([[1, 2], [3]])
      expect(pulls).toBe(4)
    }))
})

/** A source that records what the buffer asks of it; `canPause: false` is a browser's socket. */
const recordingSource = (canPause = true) => {
  const calls: Array<"pause" | "resume" | "overflow"> = []
  return {
    calls,
    pause: () => {
      calls.push("pause")
      return canPause
    },
    resume: () => {
      calls.push("resume")
    },
    overflow: () => {
      calls.push("overflow")
    }
  }
}

const loadBuffer = Effect.promise(() => import("../src/internal/primitives/inboundBuffer.js"))
const length = (item: string): number => item.length

describe("inbound buffer: the byte bound", () => {
  it.effect("pauses when the bytes reach the bound, before the frame bound, and resumes once drained", () =>
    Effect.gen(function*() {
      const { InboundBuffer } = yield* loadBuffer
      const source = recordingSource()
      const buffer = new InboundBuffer<string>(100, source, 10, length)
      buffer.offer("aaaa")
      buffer.offer("bbbb")
      expect(source.calls).toEqual([])
      buffer.offer("cc")
      expect(source.calls).toEqual(["pause"])
      expect(buffer.isPaused).toBe(true)
      expect(Chunk.toArray(yield* buffer.pull)).toEqual(["aaaa", "bbbb", "cc"])
      expect(source.calls).toEqual(["pause", "resume"])
      expect(buffer.isPaused).toBe(false)
      // Drained means counted from zero again: 9 bytes do not reach 10.
      buffer.offer("123456789")
      expect(source.calls).toEqual(["pause", "resume"])
    }))

  it.effect("a single frame over the byte bound is taken whole, then the source pauses", () =>
    Effect.gen(function*() {
      const { InboundBuffer } = yield* loadBuffer
      const source = recordingSource()
      const buffer = new InboundBuffer<string>(100, source, 10, length)
      const big = "x".repeat(50)
      buffer.offer(big)
      expect(buffer.size).toBe(1)
      expect(source.calls).toEqual(["pause"])
      expect(Chunk.toArray(yield* buffer.pull)).toEqual([big])
      expect(source.calls).toEqual(["pause", "resume"])
    }))

  it.effect("the frame bound still holds with a byte bound", () =>
    Effect.gen(function*() {
      const { InboundBuffer } = yield* loadBuffer
      const source = recordingSource()
      const buffer = new InboundBuffer<string>(3, source, 1000, length)
      buffer.offer("a")
      buffer.offer("b")
      expect(source.calls).toEqual([])
      buffer.offer("c")
      expect(source.calls).toEqual(["pause"])
    }))

  it.effect("a source that cannot pause is ended when two frames reach the byte bound; a lone frame over it is let through", () =>
    Effect.gen(function*() {
      const { InboundBuffer } = yield* loadBuffer
      const source = recordingSource(false)
      const buffer = new InboundBuffer<string>(100, source, 10, length)
      buffer.offer("x".repeat(50))
      expect(source.calls).toEqual(["pause"])
      expect(buffer.isPaused).toBe(false)
      buffer.offer("y")
      expect(source.calls).toEqual(["pause", "pause", "overflow"])
      // Accumulated frames reaching the byte bound end it, as the frame bound does.
      const other = recordingSource(false)
      const accumulated = new InboundBuffer<string>(100, other, 10, length)
      for (const item of ["aaaa", "bbbb", "cc"]) accumulated.offer(item)
      expect(other.calls).toEqual(["pause", "overflow"])
    }))
})

describe("inbound budget: one bound across a Client's connections", () => {
  it.effect("the bound is on the total unread; a connection that opens at the bound starts paused; reading everything resumes it", () =>
    Effect.gen(function*() {
      const { InboundBudget, InboundBuffer } = yield* loadBuffer
      const budget = new InboundBudget(4, 1000)
      const first = recordingSource()
      const one = new InboundBuffer<string>(4, first, 1000, length, budget)
      one.opened()
      one.adopt()
      for (const item of ["a", "b", "c"]) one.offer(item)
      expect(first.calls).toEqual([])
      one.offer("d")
      expect(first.calls).toEqual(["pause"])
      // That connection ends with its 4 frames unread; the next one opens at the bound.
      one.end()
      const second = recordingSource()
      const two = new InboundBuffer<string>(4, second, 1000, length, budget)
      two.opened()
      two.adopt()
      expect(second.calls).toEqual(["pause"])
      expect(two.isPaused).toBe(true)
      expect(budget.frames).toBe(4)
      // Reading the first connection's frames leaves nothing unread: the current socket resumes.
      expect(Chunk.toArray(yield* one.pull)).toEqual(["a", "b", "c", "d"])
      expect(budget.frames).toBe(0)
      expect(second.calls).toEqual(["pause", "resume"])
      expect(first.calls).toEqual(["pause"])
      two.offer("e")
      expect(budget).toMatchObject({ frames: 1, bytes: 1 })
    }))

  it.effect("a connection paused at open takes nothing until resumed (ws hands a paused socket's read data over when it closes)", () =>
    Effect.gen(function*() {
      const { InboundBudget, InboundBuffer } = yield* loadBuffer
      const budget = new InboundBudget(2, 1000)
      const one = new InboundBuffer<string>(2, recordingSource(), 1000, length, budget)
      one.opened()
      one.adopt()
      one.offer("a")
      one.offer("b")
      one.end()
      const source = recordingSource()
      const held = new InboundBuffer<string>(2, source, 1000, length, budget)
      held.opened()
      held.adopt()
      held.offer("flushed at close")
      expect(held.size).toBe(0)
      expect(budget.frames).toBe(2)
      expect(Chunk.toArray(yield* one.pull)).toEqual(["a", "b"])
      expect(source.calls).toEqual(["pause", "resume"])
      held.offer("c")
      expect(Chunk.toArray(yield* held.pull)).toEqual(["c"])
    }))

  it.effect("bytes are bounded across connections too", () =>
    Effect.gen(function*() {
      const { InboundBudget, InboundBuffer } = yield* loadBuffer
      const budget = new InboundBudget(100, 10)
      const one = new InboundBuffer<string>(100, recordingSource(), 10, length, budget)
      one.opened()
      one.adopt()
      one.offer("123456")
      one.end()
      const source = recordingSource()
      const two = new InboundBuffer<string>(100, source, 10, length, budget)
      two.opened()
      two.adopt()
      expect(source.calls).toEqual([])
      two.offer("1234")
      expect(source.calls).toEqual(["pause"])
    }))

  it.effect("frames of a connection the Client never adopted (its onOpen failed) are dropped when the next one opens", () =>
    Effect.gen(function*() {
      const { InboundBudget, InboundBuffer } = yield* loadBuffer
      const budget = new InboundBudget(4, 1000)
      const abandoned = new InboundBuffer<string>(4, recordingSource(), 1000, length, budget)
      abandoned.opened()
      for (const item of ["a", "b", "c", "d"]) abandoned.offer(item)
      abandoned.end()
      const source = recordingSource()
      const next = new InboundBuffer<string>(4, source, 1000, length, budget)
      next.opened()
      next.adopt()
      expect(source.calls).toEqual([])
      expect(budget).toMatchObject({ frames: 0, bytes: 0 })
      expect(Option.isNone(yield* Effect.flip(abandoned.pull))).toBe(true)
    }))

  it.effect("a source that cannot pause, opened at the bound, is ended by its first frame", () =>
    Effect.gen(function*() {
      const { InboundBudget, InboundBuffer } = yield* loadBuffer
      const budget = new InboundBudget(1, 1000)
      const first = recordingSource(false)
      const one = new InboundBuffer<string>(1, first, 1000, length, budget)
      one.opened()
      one.adopt()
      one.offer("a")
      expect(first.calls).toEqual(["pause", "overflow"])
      one.end()
      const second = recordingSource(false)
      const two = new InboundBuffer<string>(1, second, 1000, length, budget)
      two.opened()
      two.adopt()
      expect(second.calls).toEqual(["pause"])
      two.offer("b")
      expect(second.calls).toEqual(["pause", "pause", "overflow"])
    }))
})
