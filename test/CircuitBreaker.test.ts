/**
 * The circuit breaker alone: each trip policy, the predicate, the open Schedule, half-open trials,
 * isolate/reset, interruption, events and metrics, the registry (with real refused handshakes on
 * 127.0.0.1), and a model-based property test against a small reference model, all on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Deferred,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Metric,
  MetricLabel,
  Option,
  Runtime,
  RuntimeFlags,
  Schedule,
  Scope,
  Stream,
  Supervisor,
  TestClock
} from "effect"
import { CircuitBreaker, CircuitOpenError, ConnectError, Connection, Reconnect } from "../src/index.js"
import { NEVER } from "../src/internal/circuitBreaker.js"
import * as Metrics from "../src/internal/metrics.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { closedPort } from "./support/ports.js"

const down = new ConnectError({ reason: "ConnectionRefused", url: "ws://127.0.0.1:9/", detail: "refused" }, true)
const unauthorized = new ConnectError({
  reason: "HandshakeRejected",
  url: "ws://127.0.0.1:9/",
  detail: "401",
  status: 401
}, true)

const now = Effect.clockWith((clock) => clock.currentTimeMillis)
const stateOf = (breaker: CircuitBreaker.CircuitBreaker) => breaker.state.get
const tagOf = (breaker: CircuitBreaker.CircuitBreaker) => Effect.map(breaker.state.get, (state) => state._tag)

/** Runs a call that fails with `error` through the breaker; returns its error. */
const failWith = (breaker: CircuitBreaker.CircuitBreaker, error: unknown = down) =>
  Effect.flip(breaker.run(Effect.fail(error)))
const succeed = (breaker: CircuitBreaker.CircuitBreaker) => breaker.run(Effect.void)
const times = (n: number, effect: Effect.Effect<unknown, unknown>) =>
  Effect.forEach(Array.from({ length: n }), () => Effect.exit(effect), { discard: true })

/** The error of a call the breaker refused: it fails with CircuitOpenError and never runs the effect. */
const rejected = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    let ran = false
    const error = yield* Effect.flip(breaker.run(Effect.sync(() => {
      ran = true
    })))
    expect(ran).toBe(false)
    expect(error).toBeInstanceOf(CircuitOpenError)
    return error as CircuitOpenError
  })

/** A call held open until released with an outcome, forked; resolves once it is admitted or refused. */
interface Held {
  readonly fiber: Fiber.RuntimeFiber<void, unknown>
  readonly admitted: boolean
  readonly release: (outcome: "success" | "failure" | "ignored") => Effect.Effect<Exit.Exit<void, unknown>>
}
const hold = (breaker: CircuitBreaker.CircuitBreaker): Effect.Effect<Held> =>
  Effect.gen(function*() {
    const admitted = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<"success" | "failure" | "ignored">()
    const fiber = yield* Effect.forkDaemon(breaker.run(Effect.gen(function*() {
      yield* Deferred.succeed(admitted, undefined)
      const outcome = yield* Deferred.await(gate)
      if (outcome === "failure") return yield* Effect.fail(down)
      if (outcome === "ignored") return yield* Effect.fail(unauthorized)
    })))
    const first = yield* Effect.raceFirst(
      Effect.as(Deferred.await(admitted), true),
      Effect.as(Fiber.await(fiber), false)
    )
    return {
      fiber,
      admitted: first,
      release: (outcome) => Effect.zipRight(Deferred.succeed(gate, outcome), Fiber.await(fiber))
    }
  })

describe("CircuitBreaker: trip policies", () => {
  it.scoped("consecutive failures (default 5): a success resets the count; the fifth in a row opens for 5 s", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ endpoint: "ws://node/" })
      yield* times(4, failWith(breaker))
      yield* succeed(breaker)
      yield* times(4, failWith(breaker))
      expect(yield* tagOf(breaker)).toBe("Closed")
      const error = yield* failWith(breaker)
      expect(error).toBe(down)
      const openedAt = yield* now
      expect(yield* stateOf(breaker)).toEqual(CircuitBreaker.State.Open({ retryAt: new Date(openedAt + 5000) }))
      const refused = yield* rejected(breaker)
      expect(refused.endpoint).toBe("ws://node/")
      expect(refused.retryAt.getTime()).toBe(openedAt + 5000)
      yield* TestClock.adjust("4999 millis")
      expect(yield* tagOf(breaker)).toBe("Open")
      yield* TestClock.adjust("1 millis")
      expect(yield* tagOf(breaker)).toBe("HalfOpen")
    }))

  it.scoped("failure ratio: not below minimumCalls, not below the threshold, only calls inside the window", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.failureRatio({ threshold: 0.5, window: "10 seconds", minimumCalls: 4 }),
        openFor: Schedule.spaced("1 minute")
      })
      // 3 failures of 3: under minimumCalls.
      yield* times(3, failWith(breaker))
      expect(yield* tagOf(breaker)).toBe("Closed")
      // 10 s later they have left the window: 1 failure of 1.
      yield* TestClock.adjust("10 seconds")
      yield* failWith(breaker)
      expect(yield* tagOf(breaker)).toBe("Closed")
      // 1 failure, 4 successes, 1 failure: 2 of 6 < 0.5.
      yield* times(4, succeed(breaker))
      yield* failWith(breaker)
      expect(yield* tagOf(breaker)).toBe("Closed")
      // 3 of 7 < 0.5; 4 of 8 >= 0.5: open.
      yield* failWith(breaker)
      expect(yield* tagOf(breaker)).toBe("Closed")
      yield* failWith(breaker)
      expect(yield* stateOf(breaker)).toEqual(CircuitBreaker.State.Open({ retryAt: new Date((yield* now) + 60_000) }))
    }))

  it.scoped("failure ratio: the window slides by slices (10 s in 10 slices: a call leaves it 9 to 10 s later)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.failureRatio({ threshold: 1, window: "10 seconds", minimumCalls: 2 })
      })
      yield* failWith(breaker) // at 0 ms, slice 0
      yield* TestClock.adjust("9999 millis") // slice 9: slice 0 still inside
      yield* failWith(breaker)
      expect(yield* tagOf(breaker)).toBe("Open")

      const late = yield* CircuitBreaker.make({
        policy: CircuitBreaker.failureRatio({ threshold: 1, window: "10 seconds", minimumCalls: 2 })
      })
      yield* failWith(late) // slice 1 (10.0-10.999 s on the TestClock's time)
      yield* TestClock.adjust("10 seconds") // slice 11: slice 1 has left
      yield* failWith(late)
      expect(yield* tagOf(late)).toBe("Closed")
    }))

  it.scoped("predicate: a 401 ConnectError does not count (it is a success: the node answered); a custom predicate decides", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(3) })
      yield* times(10, failWith(breaker, unauthorized))
      expect(yield* tagOf(breaker)).toBe("Closed")
      // 2 failures, a 401, 2 failures: never 3 in a row.
      yield* times(2, failWith(breaker))
      yield* failWith(breaker, unauthorized)
      yield* times(2, failWith(breaker))
      expect(yield* tagOf(breaker)).toBe("Closed")
      yield* failWith(breaker)
      expect(yield* tagOf(breaker)).toBe("Open")

      const custom = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(2),
        isFailure: (error) => error === "boom"
      })
      yield* times(5, failWith(custom, "meh"))
      expect(yield* tagOf(custom)).toBe("Closed")
      yield* times(2, failWith(custom, "boom"))
      expect(yield* tagOf(custom)).toBe("Open")
      expect(CircuitBreaker.defaultIsFailure(unauthorized)).toBe(false)
      expect(CircuitBreaker.defaultIsFailure(down)).toBe(true)
      expect(CircuitBreaker.defaultIsFailure(new Error("anything else"))).toBe(true)
    }))

  it.scoped("interruptions and defects count nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(2) })
      yield* failWith(breaker)
      yield* Effect.exit(breaker.run(Effect.die("bug")))
      yield* Effect.exit(breaker.run(Effect.interrupt))
      expect(yield* tagOf(breaker)).toBe("Closed")
      yield* failWith(breaker)
      expect(yield* tagOf(breaker)).toBe("Open")
    }))
})

describe("CircuitBreaker: open period, half-open, isolate", () => {
  it.scoped("the open period is a Schedule: it grows between openings in a row and starts again after closing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        openFor: Schedule.exponential("1 second")
      })
      const retryAts: Array<number> = []
      const openFor = Effect.gen(function*() {
        const state = yield* stateOf(breaker)
        if (state._tag !== "Open") return yield* Effect.dieMessage(`expected Open, got ${state._tag}`)
        const period = state.retryAt.getTime() - (yield* now)
        retryAts.push(period)
        yield* TestClock.adjust(Duration.millis(period))
        expect(yield* tagOf(breaker)).toBe("HalfOpen")
      })
      yield* failWith(breaker)
      yield* openFor
      yield* failWith(breaker) // the trial fails
      yield* openFor
      yield* failWith(breaker)
      yield* openFor
      yield* succeed(breaker) // the trial succeeds: Closed
      expect(yield* tagOf(breaker)).toBe("Closed")
      yield* failWith(breaker)
      yield* openFor
      expect(retryAts).toEqual([1000, 2000, 4000, 1000])
    }))

  it.scoped("a schedule that is done keeps its last period", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        openFor: Schedule.exponential("1 second").pipe(Schedule.intersect(Schedule.recurs(2)))
      })
      const periods: Array<number> = []
      for (let opening = 0; opening < 3; opening++) {
        yield* failWith(breaker)
        const state = yield* stateOf(breaker)
        const period = state._tag === "Open" ? state.retryAt.getTime() - (yield* now) : -1
        periods.push(period)
        yield* TestClock.adjust(Duration.millis(period))
      }
      expect(periods).toEqual([1000, 2000, 2000])
    }))

  it.scoped("half-open lets `trials` calls run at once, refuses the rest with retryAt now, closes after `successes`", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        openFor: Schedule.spaced("1 second"),
        trials: 2,
        successes: 3
      })
      yield* failWith(breaker)
      yield* TestClock.adjust("1 second")
      const first = yield* hold(breaker)
      const second = yield* hold(breaker)
      expect([first.admitted, second.admitted]).toEqual([true, true])
      const refused = yield* rejected(breaker)
      expect(refused.retryAt.getTime()).toBe(yield* now)
      expect(Exit.isSuccess(yield* first.release("success"))).toBe(true)
      const third = yield* hold(breaker)
      expect(third.admitted).toBe(true)
      expect((yield* hold(breaker)).admitted).toBe(false)
      yield* second.release("ignored") // a 401: the node answered, a success
      expect(yield* tagOf(breaker)).toBe("HalfOpen")
      yield* third.release("success")
      expect(yield* tagOf(breaker)).toBe("Closed")
    }))

  it.scoped("a trial that fails opens again at once; a late trial of that half-open period counts nothing in the next", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        openFor: Schedule.spaced("1 second"),
        trials: 2,
        successes: 1
      })
      yield* failWith(breaker)
      yield* TestClock.adjust("1 second")
      const first = yield* hold(breaker)
      const second = yield* hold(breaker)
      yield* first.release("failure")
      expect(yield* stateOf(breaker)).toEqual(CircuitBreaker.State.Open({ retryAt: new Date((yield* now) + 1000) }))
      // The next half-open period: the late trial's success is not one of its trials.
      yield* TestClock.adjust("1 second")
      const third = yield* hold(breaker)
      expect(third.admitted).toBe(true)
      yield* second.release("success")
      expect(yield* tagOf(breaker)).toBe("HalfOpen")
      yield* third.release("success")
      expect(yield* tagOf(breaker)).toBe("Closed")
    }))

  it.scoped("interrupting a trial frees its slot, and counts nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        openFor: Schedule.spaced("1 second")
      })
      yield* failWith(breaker)
      yield* TestClock.adjust("1 second")
      const trial = yield* hold(breaker)
      expect(trial.admitted).toBe(true)
      expect((yield* hold(breaker)).admitted).toBe(false)
      yield* Fiber.interrupt(trial.fiber)
      expect(yield* tagOf(breaker)).toBe("HalfOpen")
      const next = yield* hold(breaker)
      expect(next.admitted).toBe(true)
      yield* next.release("success")
      expect(yield* tagOf(breaker)).toBe("Closed")
    }))

  it.scoped("isolate holds it open (retryAt: the largest Date) until reset, from any state; reset starts afresh", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(2),
        openFor: Schedule.exponential("1 second")
      })
      yield* breaker.isolate
      expect(yield* tagOf(breaker)).toBe("Isolated")
      expect((yield* rejected(breaker)).retryAt.getTime()).toBe(NEVER)
      yield* TestClock.adjust("1 hour")
      expect(yield* tagOf(breaker)).toBe("Isolated")
      yield* breaker.reset
      expect(yield* tagOf(breaker)).toBe("Closed")
      // Open, then isolated: the open period's end does not release it.
      yield* times(2, failWith(breaker))
      yield* breaker.isolate
      yield* TestClock.adjust("1 minute")
      expect(yield* tagOf(breaker)).toBe("Isolated")
      yield* breaker.reset
      // One failure before the reset does not carry over; the schedule starts again (1 s).
      yield* failWith(breaker)
      yield* breaker.reset
      yield* failWith(breaker)
      expect(yield* tagOf(breaker)).toBe("Closed")
      yield* failWith(breaker)
      expect(yield* stateOf(breaker)).toEqual(CircuitBreaker.State.Open({ retryAt: new Date((yield* now) + 1000) }))
    }))

  it.effect("options that cannot work are a defect (IllegalArgumentException) naming each problem", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Effect.scoped(
          CircuitBreaker.make({
            trials: 0,
            policy: CircuitBreaker.failureRatio({ threshold: 2, window: "0 millis", minimumCalls: 1 })
          })
        )
      )
      expect(Exit.isFailure(exit) && exit.cause._tag === "Die").toBe(true)
      const defect = Exit.isFailure(exit) && exit.cause._tag === "Die" ? exit.cause.defect : undefined
      expect(defect).toMatchObject({
        _tag: "IllegalArgumentException",
        message:
          "CircuitBreaker: threshold must be in (0, 1] (got 2); window must be a finite duration above zero (got 0 millis); trials must be an integer >= 1 (got 0)"
      })
    }))

  it.effect("options a JavaScript caller can get wrong (not a Schedule, not a function, no policy, null) are refused at make, not at the first trip", () =>
    Effect.gen(function*() {
      const defectOf = (options: unknown) =>
        Effect.map(
          Effect.exit(Effect.scoped(CircuitBreaker.make(options as CircuitBreaker.Options))),
          (exit) => Exit.isFailure(exit) && exit.cause._tag === "Die" ? exit.cause.defect : exit._tag
        )
      // Before, `openFor: "30 seconds"` was accepted and the first opening died inside `run`.
      expect(yield* defectOf({ openFor: "30 seconds", isFailure: 3 })).toMatchObject({
        _tag: "IllegalArgumentException",
        message: "CircuitBreaker: isFailure must be a function; openFor must be a Schedule"
      })
      expect(yield* defectOf({ policy: { _tag: "Sometimes" } })).toMatchObject({
        _tag: "IllegalArgumentException",
        message: "CircuitBreaker: policy must be consecutiveFailures(...) or failureRatio(...)"
      })
      expect(yield* defectOf(7)).toMatchObject({ message: "CircuitBreaker: options must be an object" })
      // null and undefined are no options: the defaults.
      expect(yield* defectOf(null)).toBe("Success")
      expect(yield* defectOf(undefined)).toBe("Success")
    }))

  it("Reconnect.isRetryable: CircuitOpenError is transient", () => {
    expect(Reconnect.isRetryable(new CircuitOpenError({ endpoint: "ws://node/", retryAt: new Date(0) }))).toBe(true)
  })
})

/** Counts the fibers started and the Effect operations run (with the OpSupervision runtime flag on). */
class OpCounter extends Supervisor.AbstractSupervisor<number> {
  ops = 0
  fibers = 0
  readonly value = Effect.sync(() => this.ops)
  override onStart(): void {
    this.fibers++
  }
  override onEffect(): void {
    this.ops++
  }
}

describe("CircuitBreaker: the Closed path", () => {
  const counter = new OpCounter()
  it.scoped("starts no fiber and adds three Effect operations per call (suspend, match, succeed)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make()
      const ops = (effect: Effect.Effect<unknown, unknown>) =>
        Effect.gen(function*() {
          const before = { ops: counter.ops, fibers: counter.fibers }
          for (let call = 0; call < 100; call++) yield* Effect.exit(effect)
          return { ops: (counter.ops - before.ops) / 100, fibers: counter.fibers - before.fibers }
        })
      const bare = yield* ops(Effect.void)
      const guarded = yield* ops(breaker.run(Effect.void))
      const failing = yield* ops(breaker.run(Effect.fail(unauthorized)))
      expect(guarded.fibers).toBe(0)
      expect(failing.fibers).toBe(0)
      expect(guarded.ops - bare.ops).toBe(3)
      expect(yield* tagOf(breaker)).toBe("Closed")
    }).pipe(Effect.provide(Layer.merge(Supervisor.addSupervisor(counter), RuntimeFlags.enableOpSupervision))))
})

describe("CircuitBreaker: events, state changes, metrics", () => {
  it.scoped("every transition is an event, a state change and a metric; the gauge counts breakers not Closed", () =>
    Effect.gen(function*() {
      const counter = (state: string) =>
        Effect.map(
          Metric.value(Metrics.circuitTransitions.pipe(Metric.taggedWithLabels([MetricLabel.make("state", state)]))),
          (value) => value.count
        )
      const before = {
        Open: yield* counter("Open"),
        HalfOpen: yield* counter("HalfOpen"),
        Closed: yield* counter("Closed"),
        Isolated: yield* counter("Isolated")
      }
      const gaugeBefore = (yield* Metric.value(Metrics.circuitsOpen)).value
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.consecutiveFailures(1),
        openFor: Schedule.spaced("1 second")
      })
      const events = yield* Stream.runCollect(Stream.take(breaker.events, 5)).pipe(Effect.fork)
      const changes = yield* Stream.runCollect(Stream.take(breaker.state.changes, 6)).pipe(Effect.fork)
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      const firstTwo = yield* Stream.runCollect(Stream.take(breaker.events, 2)).pipe(Effect.fork)
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      yield* failWith(breaker)
      const openedAt = yield* now
      expect((yield* Metric.value(Metrics.circuitsOpen)).value).toBe(gaugeBefore + 1)
      // The timer moves it to HalfOpen without any call or read.
      yield* TestClock.adjust("1 second")
      expect(Chunk.toArray(yield* awaitDone(firstTwo)).map((transition) => transition.to._tag)).toEqual([
        "Open",
        "HalfOpen"
      ])
      yield* succeed(breaker)
      expect((yield* Metric.value(Metrics.circuitsOpen)).value).toBe(gaugeBefore)
      yield* breaker.isolate
      yield* breaker.reset
      const open = CircuitBreaker.State.Open({ retryAt: new Date(openedAt + 1000) })
      const { Closed, HalfOpen, Isolated } = CircuitBreaker.State
      expect(Chunk.toArray(yield* Fiber.join(events))).toEqual([
        { from: Closed(), to: open },
        { from: open, to: HalfOpen() },
        { from: HalfOpen(), to: Closed() },
        { from: Closed(), to: Isolated() },
        { from: Isolated(), to: Closed() }
      ])
      expect(Chunk.toArray(yield* Fiber.join(changes))).toEqual([
        Closed(),
        open,
        HalfOpen(),
        Closed(),
        Isolated(),
        Closed()
      ])
      expect(yield* counter("Open")).toBe(before.Open + 1)
      expect(yield* counter("HalfOpen")).toBe(before.HalfOpen + 1)
      expect(yield* counter("Closed")).toBe(before.Closed + 2)
      expect(yield* counter("Isolated")).toBe(before.Isolated + 1)
    }))

  it.live("a breaker or registry whose scope closes while open leaves no timer behind, and the gauge as it was", () =>
    Effect.gen(function*() {
      const gaugeBefore = (yield* Metric.value(Metrics.circuitsOpen)).value
      yield* withNoHandlesLeft(Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.consecutiveFailures(1),
          openFor: Schedule.spaced("1 hour")
        })
        const timersBefore = timers()
        yield* failWith(breaker)
        // (Timers of earlier tests may still end meanwhile: counts are compared as bounds.)
        expect(timers()).toBeGreaterThanOrEqual(1)
        expect(timers()).toBeLessThanOrEqual(timersBefore + 1)
        // Leaving Open stops its timer.
        yield* breaker.isolate
        yield* awaitTimers(timersBefore)
        yield* breaker.reset
        yield* failWith(breaker)
        expect((yield* Metric.value(Metrics.circuitsOpen)).value).toBe(gaugeBefore + 1)
      }))
      expect((yield* Metric.value(Metrics.circuitsOpen)).value).toBe(gaugeBefore)
      yield* withNoHandlesLeft(
        Effect.gen(function*() {
          const registry = yield* CircuitBreaker.Registry
          for (const path of ["a", "b"]) yield* failWith(yield* registry.forEndpoint(`ws://127.0.0.1:9/${path}`))
          expect((yield* Metric.value(Metrics.circuitsOpen)).value).toBe(gaugeBefore + 2)
        }).pipe(
          Effect.provide(
            CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(1), openFor: Schedule.spaced("1 hour") })
          )
        )
      )
      expect((yield* Metric.value(Metrics.circuitsOpen)).value).toBe(gaugeBefore)
    }))
})

/** Waits (bounded: 100 turns of the event loop) for a fiber to end, and returns its value. */
const awaitDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 100; turn++) {
      const exit = yield* Fiber.poll(fiber)
      if (Option.isSome(exit)) return yield* exit.value
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    return yield* Effect.dieMessage("the fiber did not end")
  })

/** Node timers now (live clock). */
const timers = () => process.getActiveResourcesInfo().filter((name) => name === "Timeout").length
/** Waits (bounded) until the timers are back to at most `count` (an earlier test's may end too). */
const awaitTimers = (count: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 50; turn++) {
      if (timers() <= count) return
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    expect(timers()).toBeLessThanOrEqual(count)
  })

describe("CircuitBreaker.Registry", () => {
  it.effect("one breaker per endpoint: redacted origin + path, no userinfo, query or fragment", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.Registry
      const a = yield* registry.forEndpoint("ws://user:s3cret@127.0.0.1:9/feed?token=t0ps3cret#x")
      const b = yield* registry.forEndpoint(" WS://127.0.0.1:9/feed ")
      const c = yield* registry.forEndpoint("ws://127.0.0.1:9/other")
      expect(a).toBe(b)
      expect(c).not.toBe(a)
      expect(a.endpoint).toBe("ws://127.0.0.1:9/feed")
      expect(CircuitBreaker.endpointKey("ws://user:s3cret@host:bad port/p?token=t0ps3cret")).toBe(
        "ws://redacted@host:bad%20port/p"
      )
    }).pipe(Effect.provide(CircuitBreaker.layer())))

  it.effect("two endpoints whose keys show alike (an `@` in the path) have a breaker each: one failing opens only its own", () =>
    Effect.gen(function*() {
      const registry = yield* CircuitBreaker.Registry
      const a = yield* registry.forEndpoint("ws://127.0.0.1:9/users/@me")
      const b = yield* registry.forEndpoint("ws://127.0.0.2:9/users/@me")
      expect(a.endpoint).toBe("ws://redacted@me")
      expect(b.endpoint).toBe("ws://redacted@me")
      expect(b).not.toBe(a)
      expect(yield* registry.forEndpoint("ws://user:pw@127.0.0.1:9/users/@me?token=t#x")).toBe(a)
      yield* a.run(Effect.fail(down)).pipe(Effect.flip)
      expect(yield* tagOf(a)).toBe("Open")
      expect(yield* tagOf(b)).toBe("Closed")
    }).pipe(Effect.provide(CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(1) }))))

  it.scoped("1,000 callers to a dead node share one breaker: at most `trials` handshakes per open period", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const url = `ws://127.0.0.1:${port}/`
      const registry = yield* CircuitBreaker.Registry
      let handshakes = 0
      const dial = Effect.gen(function*() {
        const breaker = yield* registry.forEndpoint(url)
        return yield* breaker.run(Effect.scoped(Effect.zipRight(
          Effect.sync(() => handshakes++),
          Connection.connect(url)
        )))
      }).pipe(Effect.flip)
      // Three refused handshakes open it.
      const first = yield* Effect.forEach(Array.from({ length: 3 }), () => dial)
      expect(first.map((error) => error._tag === "ConnectError" ? error.reason : error._tag)).toEqual(
        Array(3).fill("ConnectionRefused")
      )
      const breaker = yield* registry.forEndpoint(url)
      expect(yield* tagOf(breaker)).toBe("Open")
      // While open: 1,000 callers, no handshake.
      const whileOpen = yield* Effect.forEach(Array.from({ length: 1000 }), () => dial, { concurrency: "unbounded" })
      expect(whileOpen.every((error) => error._tag === "CircuitOpenError")).toBe(true)
      expect(handshakes).toBe(3)
      // Each of two open periods later: 1,000 callers, exactly `trials` (2) handshakes.
      for (let period = 1; period <= 2; period++) {
        const state = yield* stateOf(breaker)
        if (state._tag !== "Open") return yield* Effect.dieMessage("expected Open")
        yield* TestClock.adjust(Duration.millis(state.retryAt.getTime() - (yield* now)))
        const errors = yield* Effect.forEach(Array.from({ length: 1000 }), () => dial, { concurrency: "unbounded" })
        expect(errors.filter((error) => error._tag === "ConnectError")).toHaveLength(2)
        expect(errors.filter((error) => error._tag === "CircuitOpenError")).toHaveLength(998)
        expect(handshakes).toBe(3 + 2 * period)
        expect(yield* tagOf(breaker)).toBe("Open")
      }
    }).pipe(
      Effect.provide(
        Layer.merge(CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(3), trials: 2 }), quietNode)
      )
    ))
})

// ---------------------------------------------------------------------------------------------
// Model-based test: the breaker against a small reference model, command by command.

const THRESHOLD = 2
const TRIALS = 2
const SUCCESSES = 2
/** openFor in the model: 1 s doubling at each opening in a row, at most 8 s. */
const periodOf = (opening: number) => Math.min(1000 * 2 ** (opening - 1), 8000)

interface PendingCall {
  readonly kind: "closed" | "trial"
  readonly generation: number
}
interface Model {
  state: "Closed" | "Open" | "HalfOpen" | "Isolated"
  generation: number
  retryAt: number
  now: number
  consecutive: number
  openings: number
  inflight: number
  successes: number
  readonly pending: Array<PendingCall>
}
interface Real {
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly held: Array<Held>
  readonly run: <A>(effect: Effect.Effect<A, unknown, never>) => Promise<A>
}

const enter = (model: Model, state: Model["state"]) => {
  model.state = state
  model.generation++
  if (state === "Closed") {
    model.consecutive = 0
    model.openings = 0
  }
  if (state === "HalfOpen") {
    model.inflight = 0
    model.successes = 0
  }
  if (state === "Open" || state === "Isolated") model.consecutive = 0
}
const openModel = (model: Model) => {
  model.openings++
  enter(model, "Open")
  model.retryAt = model.now + periodOf(model.openings)
}
/** The model's view now: Open whose retryAt has come is HalfOpen. */
const settleTime = (model: Model) => {
  if (model.state === "Open" && model.now >= model.retryAt) enter(model, "HalfOpen")
}

/** After each command: the same state, the same retryAt, never more than TRIALS trials running. */
const checkSame = (model: Model, real: Real) =>
  real.run(Effect.gen(function*() {
    settleTime(model)
    const state = yield* real.breaker.state.get
    expect(state._tag).toBe(model.state)
    if (state._tag === "Open") expect(state.retryAt.getTime()).toBe(model.retryAt)
    expect(model.inflight).toBeLessThanOrEqual(TRIALS)
  }))

class Start implements fc.AsyncCommand<Model, Real> {
  check = () => true
  async run(model: Model, real: Real) {
    await start(model, real)
    await checkSame(model, real)
  }
  toString = () => "Start"
}

/** Starts a held call in both; true when it was admitted (then it is the last pending call). */
const start = async (model: Model, real: Real): Promise<boolean> => {
  settleTime(model)
  const held = await real.run(hold(real.breaker))
  let admitted: boolean
  if (model.state === "Closed") admitted = true
  else if (model.state === "HalfOpen" && model.inflight < TRIALS) {
    model.inflight++
    admitted = true
  } else admitted = false
  expect(held.admitted).toBe(admitted)
  if (admitted) {
    real.held.push(held)
    model.pending.push({ kind: model.state === "Closed" ? "closed" : "trial", generation: model.generation })
  } else {
    const exit = await real.run(Fiber.await(held.fiber))
    const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
    expect(error).toBeInstanceOf(CircuitOpenError)
    const expected = model.state === "Open" ? model.retryAt : model.state === "Isolated" ? NEVER : model.now
    expect((error as CircuitOpenError).retryAt.getTime()).toBe(expected)
  }
  return admitted
}

type Outcome = "success" | "failure" | "ignored" | "interrupt"

/** Ends the pending call at `index` (modulo) with `outcome` in both. */
const finish = async (model: Model, real: Real, index: number, outcome: Outcome): Promise<void> => {
  settleTime(model)
  const at = index % model.pending.length
  const call = model.pending.splice(at, 1)[0]!
  const held = real.held.splice(at, 1)[0]!
  if (outcome === "interrupt") await real.run(Fiber.interrupt(held.fiber))
  else await real.run(held.release(outcome))
  const success = outcome === "success" || outcome === "ignored"
  if (call.kind === "closed") {
    if (model.state === "Closed" && outcome !== "interrupt") {
      if (success) model.consecutive = 0
      else if (++model.consecutive >= THRESHOLD) openModel(model)
    }
  } else if (model.state === "HalfOpen" && call.generation === model.generation) {
    if (outcome === "interrupt") model.inflight--
    else if (success) {
      model.inflight--
      if (++model.successes >= SUCCESSES) enter(model, "Closed")
    } else openModel(model)
  }
}

class Finish implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number, readonly outcome: Outcome) {}
  check = (model: Readonly<Model>) => model.pending.length > 0
  async run(model: Model, real: Real) {
    await finish(model, real, this.index, this.outcome)
    await checkSame(model, real)
  }
  toString = () => `Finish(${this.index}, ${this.outcome})`
}

/** Three calls started at once: in HalfOpen, more than the trial slots. */
class Burst implements fc.AsyncCommand<Model, Real> {
  check = () => true
  async run(model: Model, real: Real) {
    for (let call = 0; call < 3; call++) await start(model, real)
    await checkSame(model, real)
  }
  toString = () => "Burst"
}

/** A call that ends as soon as it is admitted. */
class Call implements fc.AsyncCommand<Model, Real> {
  constructor(readonly outcome: Outcome) {}
  check = () => true
  async run(model: Model, real: Real) {
    if (await start(model, real)) await finish(model, real, model.pending.length - 1, this.outcome)
    await checkSame(model, real)
  }
  toString = () => `Call(${this.outcome})`
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly millis: number) {}
  check = () => true
  async run(model: Model, real: Real) {
    await real.run(TestClock.adjust(Duration.millis(this.millis)))
    model.now += this.millis
    await checkSame(model, real)
  }
  toString = () => `Advance(${this.millis})`
}

/** Advances the clock exactly to the end of the open period (or by 1 ms when not Open). */
class Elapse implements fc.AsyncCommand<Model, Real> {
  check = () => true
  async run(model: Model, real: Real) {
    const millis = model.state === "Open" ? Math.max(1, model.retryAt - model.now) : 1
    await real.run(TestClock.adjust(Duration.millis(millis)))
    model.now += millis
    await checkSame(model, real)
  }
  toString = () => "Elapse"
}

class Isolate implements fc.AsyncCommand<Model, Real> {
  check = () => true
  async run(model: Model, real: Real) {
    await real.run(real.breaker.isolate)
    settleTime(model)
    if (model.state !== "Isolated") enter(model, "Isolated")
    await checkSame(model, real)
  }
  toString = () => "Isolate"
}

/**
 * Isolate, then a call refused and a pending call ended while Isolated, then Reset: a standalone
 * Isolate would leave most of a run refusing every call.
 */
class Isolation implements fc.AsyncCommand<Model, Real> {
  constructor(readonly index: number, readonly outcome: Outcome) {}
  check = () => true
  async run(model: Model, real: Real) {
    await new Isolate().run(model, real)
    await start(model, real)
    if (model.pending.length > 0) await finish(model, real, this.index, this.outcome)
    await checkSame(model, real)
    await new Reset().run(model, real)
  }
  toString = () => `Isolation(${this.index}, ${this.outcome})`
}

class Reset implements fc.AsyncCommand<Model, Real> {
  check = () => true
  async run(model: Model, real: Real) {
    await real.run(real.breaker.reset)
    settleTime(model)
    if (model.state !== "Closed") enter(model, "Closed")
    model.consecutive = 0
    model.openings = 0
    await checkSame(model, real)
  }
  toString = () => "Reset"
}

const outcome = fc.constantFrom<Outcome>("success", "failure", "failure", "ignored", "interrupt")
const advance = fc.oneof(fc.constantFrom(1, 999, 1000, 2000, 4000, 8000), fc.integer({ min: 1, max: 9000 })).map((
  millis
) => new Advance(millis))
// Calls, outcomes and the end of open periods listed several times (fc.commands picks among the
// list evenly), Reset or an isolation once, so that runs reach HalfOpen with every trial slot taken.
const commands = fc.commands([
  fc.constant(new Start()),
  fc.constant(new Burst()),
  fc.tuple(fc.nat(20), outcome).map(([index, outcome]) => new Finish(index, outcome)),
  fc.tuple(fc.nat(20), outcome).map(([index, outcome]) => new Finish(index, outcome)),
  outcome.map((outcome) => new Call(outcome)),
  outcome.map((outcome) => new Call(outcome)),
  outcome.map((outcome) => new Call(outcome)),
  advance,
  fc.constant(new Elapse()),
  fc.constant(new Elapse()),
  fc.oneof(
    fc.constant(new Reset()),
    fc.tuple(fc.nat(20), outcome).map(([index, outcome]) => new Isolation(index, outcome))
  )
], { maxCommands: 60, size: "max" })

describe("CircuitBreaker: model-based", () => {
  it.effect("no transition the model forbids, trials respected, retryAt exact (fc.commands, TestClock)", () =>
    Effect.gen(function*() {
      const runtime = yield* Effect.runtime<never>()
      const run = <A>(effect: Effect.Effect<A, unknown, never>) => Runtime.runPromise(runtime)(effect)
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(commands, async (cmds) => {
            const scope = await run(Scope.make())
            const held: Array<Held> = []
            try {
              const breaker = await run(
                CircuitBreaker.make({
                  policy: CircuitBreaker.consecutiveFailures(THRESHOLD),
                  openFor: Schedule.exponential("1 second").pipe(
                    Schedule.modifyDelay((delay) => Duration.min(delay, Duration.seconds(8)))
                  ),
                  trials: TRIALS,
                  successes: SUCCESSES
                }).pipe(Effect.provideService(Scope.Scope, scope))
              )
              const start = await run(now)
              await fc.asyncModelRun(
                () => ({
                  model: {
                    state: "Closed" as Model["state"],
                    generation: 0,
                    retryAt: 0,
                    now: start,
                    consecutive: 0,
                    openings: 0,
                    inflight: 0,
                    successes: 0,
                    pending: []
                  },
                  real: { breaker, held, run }
                }),
                cmds
              )
            } finally {
              await run(Effect.forEach(held, (call) => Fiber.interrupt(call.fiber), { discard: true }))
              await run(Scope.close(scope, Exit.void))
            }
          }),
          { numRuns: 60, seed: 20261129 }
        )
      )
    }))
})
