/**
 * A reader's wait on the inbound buffer has no canceler (Effect's interruption handler around
 * every wait cost the round trip 12-23 us: bench/README.md). What an interrupted wait leaves
 * behind must then neither take a message from the next reader nor pile up.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Layer, Option, RuntimeFlags, Supervisor } from "effect"
import { InboundBuffer } from "../src/internal/primitives/inboundBuffer.js"
import { pullAcrossYield } from "./support/yieldOnce.js"

const source = { pause: () => true, resume: () => {}, overflow: () => {} }

/** The waits the buffer holds (internal). */
const waitsOf = (buffer: InboundBuffer<string>): number =>
  (buffer as unknown as { waiters?: ReadonlyArray<unknown> }).waiters?.length ?? 0

/** Counts the Effect operations every fiber runs (with the OpSupervision runtime flag on). */
class OpCounter extends Supervisor.AbstractSupervisor<number> {
  ops = 0
  readonly value = Effect.sync(() => this.ops)
  override onEffect(): void {
    this.ops++
  }
}

/** A reader forked on `buffer`, waiting (its fiber has run up to the wait). */
const waitingReader = (buffer: InboundBuffer<string>) =>
  Effect.gen(function*() {
    const reader = yield* Effect.fork(buffer.pull)
    for (let turn = 0; turn < 10 && waitsOf(buffer) === 0; turn++) yield* Effect.yieldNow()
    expect(waitsOf(buffer)).toBeGreaterThan(0)
    return reader
  })

describe("inbound buffer: waits without a canceler", () => {
  it.live("readers interrupted while they wait do not take the next message: the reader that waits now does", () =>
    Effect.gen(function*() {
      const buffer = new InboundBuffer<string>(16, source)
      for (let index = 0; index < 3; index++) yield* Fiber.interrupt(yield* waitingReader(buffer))
      const reader = yield* waitingReader(buffer)
      buffer.offer("after")
      const chunk = yield* Fiber.join(reader).pipe(
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "lost" })
      )
      expect(Chunk.toArray(chunk)).toEqual(["after"])
      expect(buffer.size).toBe(0)
    }))

  it.live("two readers waiting: one message goes to one of them, the other waits on and gets the next", () =>
    Effect.gen(function*() {
      const buffer = new InboundBuffer<string>(16, source)
      const first = yield* waitingReader(buffer)
      const second = yield* Effect.fork(buffer.pull)
      yield* Effect.yieldNow()
      buffer.offer("one")
      for (let turn = 0; turn < 20 && first.unsafePoll() === null && second.unsafePoll() === null; turn++) {
        yield* Effect.yieldNow()
      }
      buffer.offer("two")
      const joined = (reader: typeof first) =>
        Fiber.join(reader).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "not woken" }))
      const chunks = [yield* joined(first), yield* joined(second)].map(Chunk.toArray)
      expect(chunks.flat().sort()).toEqual(["one", "two"])
    }))

  it.live("1,000 waits interrupted on an idle buffer leave at most one behind (each new wait drops those of ended fibers)", () =>
    Effect.gen(function*() {
      const buffer = new InboundBuffer<string>(16, source)
      for (let index = 0; index < 1000; index++) yield* Fiber.interrupt(yield* waitingReader(buffer))
      expect(waitsOf(buffer)).toBeLessThanOrEqual(1)
      // A pull that loses a race (its fiber goes on) leaves its wait too, dropped by the next.
      for (let index = 0; index < 100; index++) {
        yield* Effect.race(buffer.pull, Effect.yieldNow())
      }
      expect(waitsOf(buffer)).toBeLessThanOrEqual(1)
      buffer.offer("still read")
      expect(Chunk.toArray(yield* buffer.pull)).toEqual(["still read"])
    }))

  it.live("a pull that waits for its message runs no interruption handler: at most 6 operations more than one that finds it", () => {
    const counter = new OpCounter()
    return Effect.gen(function*() {
      const buffer = new InboundBuffer<string>(16, source)
      const opsOf = (read: Effect.Effect<unknown, unknown>) =>
        Effect.gen(function*() {
          const before = counter.ops
          for (let index = 0; index < 100; index++) yield* read
          return (counter.ops - before) / 100
        })
      const found = yield* opsOf(Effect.zipRight(Effect.sync(() => buffer.offer("x")), buffer.pull))
      const waited = yield* opsOf(
        Effect.zipRight(Effect.sync(() => setImmediate(() => buffer.offer("x"))), buffer.pull)
      )
      // effect 3.22.4: 4 more with a wait that has no canceler, 12 more with one (Effect.async
      // returning its canceler wraps the wait in onInterrupt).
      expect(waited - found).toBeLessThanOrEqual(6)
    }).pipe(Effect.provide(Layer.merge(Supervisor.addSupervisor(counter), RuntimeFlags.enableOpSupervision)))
  })
  // Without the check in the wait, a yield between the pull's look at the buffer and its wait
  // let the item (or the end) in unseen: the reader waited for a next one (a lone reply: for
  // ever). effect 3.22.4: a yield before the pull's 8th or 9th operation.
  it.live("an item offered, or the end, while the reader had yielded at any point of its pull (between its look and its wait too) reaches it", () =>
    Effect.gen(function*() {
      for (const what of ["item", "end"] as const) {
        for (let at = 1; at <= 30; at++) {
          const buffer = new InboundBuffer<string>(16, source)
          const arrive = () => what === "item" ? buffer.offer(`at ${at}`) : buffer.end()
          // No yield that early in its pull: it arrives once the reader waits.
          const exit = yield* pullAcrossYield(buffer.pull, at, arrive, what, () => waitsOf(buffer) > 0)
          if (what === "item") expect(exit).toEqual(Exit.succeed(Chunk.of(`at ${at}`)))
          else expect(exit).toEqual(Exit.fail(Option.none()))
        }
      }
    }))
})
