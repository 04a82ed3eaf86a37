/**
 * The performance primitives under `src/internal/primitives`, each alone: the outbox's bounds and
 * strategies, the listener set and its stream, and timers that follow the Clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Effect, ExecutionStrategy, Exit, Fiber, Runtime, Scope, Stream } from "effect"
import type { SendError } from "../src/Errors.js"
import { Listeners } from "../src/internal/primitives/listeners.js"
import type { Entry, Overflow } from "../src/internal/primitives/outbox.js"
import { Outbox } from "../src/internal/primitives/outbox.js"
import { SessionScope } from "../src/internal/primitives/sessionScope.js"
import { plainTimers, timersOn } from "../src/internal/primitives/timers.js"

/** An outbox and a log of what happened to each entry. */
const outboxOf = (capacity: number, maxBytes: number, overflow: Overflow) => {
  const outbox = new Outbox(capacity, maxBytes, overflow)
  const log: Array<string> = []
  const entry = (payload: string): Entry => ({
    payload,
    bytes: payload.length,
    done: (error: SendError | undefined) => log.push(`${payload}:${error === undefined ? "written" : error.reason}`)
  })
  const offer = (payload: string) => outbox.offer(entry(payload), () => log.push(`${payload}:admitted`))
  return { outbox, log, offer }
}

describe("Outbox", () => {
  it("counts what is queued and what is in flight, in messages and in bytes", () => {
    const { log, offer, outbox } = outboxOf(3, 10, "fail")
    offer("aaaa")
    expect(outbox.handOffAll().map((e) => e.payload)).toEqual(["aaaa"])
    expect([outbox.size, outbox.pending, outbox.inFlightBytes]).toEqual([0, 1, 4])
    offer("bbbb")
    // 4 in flight + 4 queued + 4 > 10 bytes.
    offer("cccc")
    expect(log).toEqual(["aaaa:admitted", "bbbb:admitted", "cccc:OutboxFull"])
    outbox.settled(4)
    offer("cc")
    offer("d")
    // Three pending (bbbb queued, cc, d): the count bound.
    offer("e")
    expect(log.slice(3)).toEqual(["cc:admitted", "d:admitted", "e:OutboxFull"])
  })

  it("a message larger than maxBytes is accepted when nothing else is pending", () => {
    const { log, offer, outbox } = outboxOf(10, 4, "fail")
    offer("0123456789")
    offer("x")
    expect(log).toEqual(["0123456789:admitted", "x:OutboxFull"])
    outbox.handOffAll()
    outbox.settled(10)
    offer("x")
    expect(log.at(-1)).toBe("x:admitted")
  })

  it("dropOldest drops queued entries until the new one fits; with everything in flight the new one fails", () => {
    const { log, offer, outbox } = outboxOf(10, 6, "dropOldest")
    offer("aa")
    offer("bb")
    offer("cccc")
    // 2 + 2 + 4 > 6: the oldest goes, and 2 + 4 fits.
    expect(log).toEqual(["aa:admitted", "bb:admitted", "cccc:admitted", "aa:Dropped"])
    outbox.handOffAll()
    offer("dddd")
    expect(log.at(-1)).toBe("dddd:OutboxFull")
  })

  it("suspend holds offers in order until room frees; none is passed by a later one", () => {
    const { log, offer, outbox } = outboxOf(1, 100, "suspend")
    offer("a")
    outbox.handOffAll()
    offer("b")
    offer("c")
    expect(outbox.hasWaiting).toBe(true)
    outbox.settled(1)
    expect(log).toEqual(["a:admitted", "b:admitted"])
    expect(outbox.handOffAll().map((e) => e.payload)).toEqual(["b"])
    outbox.settled(1)
    expect(log.at(-1)).toBe("c:admitted")
    expect(outbox.hasWaiting).toBe(false)
  })

  it("failAll fails queued and suspended entries with Closed and returns them in order", () => {
    const { log, offer, outbox } = outboxOf(1, 100, "suspend")
    offer("a")
    offer("b")
    expect(outbox.failAll("Closed")).toEqual(["a", "b"])
    expect(log).toEqual(["a:admitted", "a:Closed", "b:Closed"])
    expect([outbox.size, outbox.pending, outbox.hasWaiting]).toEqual([0, 0, false])
  })
})

describe("Listeners", () => {
  it("calls each listener synchronously, in order of adding, until it is removed", () => {
    const listeners = new Listeners<number>()
    const seen: Array<string> = []
    const removeA = listeners.add((n) => seen.push(`a${n}`))
    listeners.add((n) => seen.push(`b${n}`))
    listeners.emit(1)
    removeA()
    listeners.emit(2)
    expect(seen).toEqual(["a1", "b1", "b2"])
  })

  it.live("stream: the first values, then every value emitted while it runs, none between", () =>
    Effect.gen(function*() {
      const listeners = new Listeners<number>()
      const reader = yield* Effect.fork(
        Stream.runCollect(Stream.take(listeners.stream(() => [0], { bufferSize: "unbounded" }), 3))
      )
      yield* Effect.sleep("10 millis")
      listeners.emit(1)
      listeners.emit(2)
      expect(Chunk.toArray(yield* Fiber.join(reader))).toEqual([0, 1, 2])
    }))
})

/** Node timers now (the live clock). */
const timeouts = () => process.getActiveResourcesInfo().filter((name) => name === "Timeout").length

describe("timers follow the Clock", () => {
  // On the TestClock, before and after the Node transport installs its timers: test/nodeInstalls.test.ts.

  it.live("a Clock made with Clock.make() (not the default one) schedules on its own scheduler: setTimeout", () =>
    Effect.gen(function*() {
      const timers = timersOn(Clock.make(), Runtime.defaultRuntime)
      const fired: Array<string> = []
      timers.after(5, { fire: () => fired.push("a") })
      const target = { fire: () => fired.push("b") }
      timers.cancel(timers.after(5, target), target)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 30)))
      expect(fired).toEqual(["a"])
    }))

  it.live("on setTimeout without the Node transport (browsers): one Timeout per timer; one longer than setTimeout holds (2^31 ms) waits in steps, cancelled with its last step", () =>
    Effect.gen(function*() {
      const timers = timersOn(Clock.make(), Runtime.defaultRuntime)
      expect(timers).toBe(plainTimers)
      const before = timeouts()
      const fired: Array<string> = []
      const target = { fire: () => fired.push("long") }
      const handle = timers.after(2 ** 31 + 1000, target)
      const short = { fire: () => fired.push("short") }
      timers.after(5, short)
      expect(timeouts()).toBe(before + 2)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 30)))
      expect(fired).toEqual(["short"])
      const live = timeouts()
      timers.cancel(handle, target)
      expect(timeouts()).toBe(live - 1)
    }))
})

/** A scope alone: `SessionScope` over a plain class (a Client's session mixes it into its heartbeat). */
class PlainScope extends SessionScope(class {}) {}

describe("SessionScope", () => {
  it.effect("runs its finalizers once, newest first, with the Exit it is closed with; one added after the close runs at once", () =>
    Effect.gen(function*() {
      const scope = new PlainScope()
      const seen: Array<string> = []
      const note = (name: string) => (exit: Exit.Exit<unknown, unknown>) =>
        Effect.sync(() => seen.push(`${name}:${exit._tag}`))
      yield* Scope.addFinalizerExit(scope, note("a"))
      yield* Scope.addFinalizerExit(scope, note("b"))
      yield* Scope.close(scope, Exit.fail("down"))
      yield* Scope.close(scope, Exit.void)
      yield* Scope.addFinalizerExit(scope, note("c"))
      expect(seen).toEqual(["b:Failure", "a:Failure", "c:Failure"])
    }))

  it.effect("a finalizer that dies does not keep the others from running; a forked child closes with it", () =>
    Effect.gen(function*() {
      const scope = new PlainScope()
      const seen: Array<string> = []
      yield* Scope.addFinalizer(scope, Effect.sync(() => seen.push("first")))
      yield* Scope.addFinalizer(scope, Effect.die("boom"))
      const child = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      yield* Scope.addFinalizer(child, Effect.sync(() => seen.push("child")))
      yield* Scope.close(scope, Exit.void)
      expect(seen).toEqual(["child", "first"])
      // Usable where a Scope is expected.
      expect(yield* Effect.scoped(Effect.succeed(1)).pipe(Scope.extend(scope))).toBe(1)
    }))
})

describe("Outbox, never used", () => {
  it("failAll on an outbox that never queued leaves the shared empty array empty", () => {
    const first = outboxOf(1, 100, "suspend")
    first.offer("a")
    first.offer("b")
    expect(first.outbox.failAll("Closed")).toEqual(["a", "b"])
    const fresh = outboxOf(1, 100, "suspend")
    expect(fresh.outbox.failAll("Closed")).toEqual([])
    fresh.offer("c")
    expect(fresh.outbox.handOffAll().map((entry) => entry.payload)).toEqual(["c"])
  })
})
