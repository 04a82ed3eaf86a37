/**
 * What the Node transport installs where it is loaded, for a process that may hold thousands of
 * Clients, and what runs where it is not (a browser bundle, which holds a Client or two): timers
 * on setTimeout one per timer, then one per 10 ms slot; a Clock's scheduler read at each use, then
 * once; `{ url }` decoded by the checks, each
 * Client its settings, then shared per URL; a `platform: "node"` transport without `checkOptions`
 * has none (headers ignored, as a browser's), then every header refused; `util.inspect` of a
 * ConnectError is Effect's, then has its cause too. Nothing this file imports statically loads the Node
 * transport: the tests run in order, the "before" ones first, and the later ones load it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either, Option, Runtime, TestClock } from "effect"
import { inspect } from "node:util"
import type { Options as ClientOptions } from "../src/Client.js"
import { ConnectError } from "../src/Errors.js"
import { LiveConnection } from "../src/internal/connection.js"
import { clientSettings, decodeClientOptions, optionChecksOf } from "../src/internal/options.js"
import type { Timers } from "../src/internal/primitives/timers.js"
import { timersOn } from "../src/internal/primitives/timers.js"
import type { Transport } from "../src/Transport.js"
import { awaitSleeper } from "./support/testClock.js"

/** Node timers now (the live clock). */
const timeouts = () => process.getActiveResourcesInfo().filter((name) => name === "Timeout").length

const loadNodeTransport = Effect.promise(() => import("../src/NodeTransport.js"))

/**
 * 20 timers of 20 ms on `timers`, every other one cancelled: how many Timeouts they made. The
 * others fire, in order.
 */
const twentyTimers = (timers: Timers) =>
  Effect.gen(function*() {
    const before = timeouts()
    const fired: Array<number> = []
    const targets = Array.from({ length: 20 }, (_, index) => ({ fire: () => fired.push(index) }))
    const handles = targets.map((target) => timers.after(20, target))
    const made = timeouts() - before
    for (let index = 1; index < 20; index += 2) timers.cancel(handles[index], targets[index]!)
    yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 80)))
    expect(fired).toEqual(Array.from({ length: 10 }, (_, index) => 2 * index))
    return made
  })

/** On the TestClock: a timer fires when the clock is moved past it, a cancelled one never. */
const onTestClock = Effect.gen(function*() {
  const timers = timersOn(yield* Effect.clock, yield* Effect.runtime<never>())
  const fired: Array<string> = []
  timers.after(100, { fire: () => fired.push("a") })
  const target = { fire: () => fired.push("b") }
  timers.cancel(timers.after(50, target), target)
  yield* awaitSleeper
  yield* TestClock.adjust("99 millis")
  expect(fired).toEqual([])
  yield* TestClock.adjust("1 millis")
  yield* Effect.yieldNow()
  expect(fired).toEqual(["a"])
})

/** Timers on a Clock with the live scheduler, made twice: how many times its scheduler was read. */
const schedulerReads = () => {
  const live = Clock.make()
  // Effect's live Clock has `scheduler()`, not in the Clock interface.
  const read = Reflect.get(live, "scheduler") as () => unknown
  let reads = 0
  const clock: Clock.Clock = Object.assign(Object.create(live) as Clock.Clock, {
    scheduler: () => {
      reads++
      return read.call(live)
    }
  })
  const first = timersOn(clock, Runtime.defaultRuntime)
  expect(timersOn(clock, Runtime.defaultRuntime)).toBe(first)
  expect(first).toBe(timersOn(Clock.make(), Runtime.defaultRuntime))
  return reads
}

const url = "ws://127.0.0.1:1/"
const urlOnly = { url } as ClientOptions

const NodeInspectSymbol = Symbol.for("nodejs.util.inspect.custom")

/** A wrapper of the Node transport that built its own object: no `checkOptions`. */
const unchecked: Transport = { platform: "node", open: () => Either.left({ reason: "InvalidOptions", detail: "" }) }
/** `util.inspect` of a ConnectError with a cause: its last line. */
const inspectedLast = () =>
  inspect(new ConnectError({ reason: "InvalidUrl", url, detail: "bad", cause: new TypeError("no") })).split("\n").at(-1)

describe("without the Node transport loaded (a browser bundle)", () => {
  it.live("timers on setTimeout: one Timeout per timer", () =>
    Effect.gen(function*() {
      expect(yield* twentyTimers(timersOn(Clock.make(), Runtime.defaultRuntime))).toBe(20)
    }))

  it.effect("timers on the TestClock: fibers on that Clock", () => onTestClock)

  it("a Clock's scheduler is read at each timersOn", () => {
    expect(schedulerReads()).toBe(2)
  })

  it("{ url } alone: decoded by the checks, each Client its own settings, the same as with the shortcut", () => {
    const first = clientSettings(urlOnly)
    const second = clientSettings(urlOnly)
    expect(second).not.toBe(first)
    expect(second).toEqual(first)
    expect(first).toEqual(Either.getOrThrow(decodeClientOptions({ url, eventsCapacity: undefined })))
    expect(first.invalid).toBeUndefined()
  })

  it("a Node transport without checkOptions: none (its headers ignored, as a browser's)", () => {
    expect(optionChecksOf(unchecked)).toBeUndefined()
  })

  it("util.inspect of a ConnectError: Effect's (the message and the stack), no cause; of a Connection, its fields", () => {
    expect(inspectedLast()).toMatch(/^\s+at /)
    expect(NodeInspectSymbol in LiveConnection.prototype).toBe(false)
  })
})

describe("with the Node transport loaded", () => {
  it.live("timers on setTimeout: one Timeout per 10 ms slot, shared by the timers due in it", () =>
    Effect.gen(function*() {
      const plain = timersOn(Clock.make(), Runtime.defaultRuntime)
      yield* loadNodeTransport
      const shared = timersOn(Clock.make(), Runtime.defaultRuntime)
      expect(shared).not.toBe(plain)
      // Within one 10 ms slot, or two if the loop crossed a slot's end.
      expect(yield* twentyTimers(shared)).toBeLessThanOrEqual(2)
      // A timer made before keeps its Timers: cancelled through them, it never fires.
      const fired: Array<string> = []
      const target = { fire: () => fired.push("early") }
      plain.cancel(plain.after(10, target), target)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 30)))
      expect(fired).toEqual([])
    }))

  it.effect("a Clock's scheduler is read once", () =>
    Effect.gen(function*() {
      yield* loadNodeTransport
      expect(schedulerReads()).toBe(1)
    }))

  it.effect("timers on the TestClock: still fibers on that Clock", () =>
    Effect.gen(function*() {
      yield* loadNodeTransport
      yield* onTestClock
    }))

  it.effect("{ url } alone: shared by the Clients to one URL, the same settings as the checks decode", () =>
    Effect.gen(function*() {
      yield* loadNodeTransport
      const first = clientSettings(urlOnly)
      expect(clientSettings(urlOnly)).toBe(first)
      expect(first).toEqual(Either.getOrThrow(decodeClientOptions({ url, eventsCapacity: undefined })))
      // Other options, or an invalid url: decoded by the checks.
      expect(clientSettings({ url, heartbeat: false })).not.toBe(first)
      expect(clientSettings({ url: 42 } as unknown as ClientOptions).invalid).toContain("url: ")
    }))

  it.effect("a Node transport without checkOptions: every header and any tls refused, none (`{}`) accepted", () =>
    Effect.gen(function*() {
      yield* loadNodeTransport
      const checks = optionChecksOf(unchecked)!
      expect(Either.getLeft(checks.headers({ a: "b" })).pipe(Option.map(({ message }) => message))).toEqual(
        Option.some("not sent: this Node transport has no checkOptions (a wrapper passes it on: { ...inner, open })")
      )
      expect(Either.isLeft(checks.tls({}))).toBe(true)
      expect(checks.headers({})).toEqual(Either.right({}))
    }))

  it.effect("util.inspect of a ConnectError: its cause too, redacted; of a Connection, its toJSON", () =>
    Effect.gen(function*() {
      yield* loadNodeTransport
      expect(inspectedLast()).toBe("  [cause]: TypeError: no")
      const connection = Object.create(LiveConnection.prototype) as LiveConnection
      const toJSON = { _id: "lifeline/Connection" }
      Object.defineProperty(connection, "toJSON", { value: () => toJSON })
      expect((connection as unknown as Record<symbol, () => unknown>)[NodeInspectSymbol]!()).toBe(toJSON)
    }))
})
