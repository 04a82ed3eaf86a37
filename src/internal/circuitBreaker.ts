/**
 * The circuit breaker as one state machine: `transition` is the only place the state changes
 * (and so the only place that emits an event and updates the metrics). Time comes from the
 * `Clock` captured at construction, so a `TestClock` drives it: durations (the open period, the
 * failure ratio's window) on its monotonic reading, `retryAt` on its wall clock.
 */
import type { Clock, Stream, Subscribable as SubscribableType } from "effect"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as StreamModule from "effect/Stream"
import * as Subscribable from "effect/Subscribable"
import type { Options } from "../CircuitBreaker.js"
import { CircuitOpenError } from "../Errors.js"
import type { ClientError } from "../Reconnect.js"
import { isRetryable } from "../Reconnect.js"
import { CircuitState } from "./circuitBreakerState.js"
import type { CircuitTransition } from "./circuitBreakerState.js"
import * as Metrics from "./metrics.js"
import { Listeners } from "./primitives/listeners.js"
import type { Timers, TimerTarget } from "./primitives/timers.js"
import { monotonicMillis, timersOn } from "./primitives/timers.js"

/** How a Closed breaker decides to open. @inline */
export type TripPolicy =
  | { readonly _tag: "ConsecutiveFailures"; readonly threshold: number }
  | {
    readonly _tag: "FailureRatio"
    readonly threshold: number
    readonly window: Duration.DurationInput
    readonly minimumCalls: number
    readonly buckets?: number | undefined
  }

/** The public options (`CircuitBreaker.Options`, documented there): one declaration. */
export type BreakerOptions = Options

export interface CircuitBreaker {
  readonly endpoint: string
  readonly state: SubscribableType.Subscribable<CircuitState>
  readonly events: Stream.Stream<CircuitTransition>
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  readonly isolate: Effect.Effect<void>
  readonly reset: Effect.Effect<void>
}

const CLIENT_ERROR_TAGS: ReadonlySet<unknown> = new Set([
  "ConnectError",
  "TimeoutError",
  "Disconnected",
  "OnOpenError",
  "CircuitOpenError"
])

/** The default predicate: a lifeline error counts when `Reconnect.isRetryable` says so; any other error counts. */
export const defaultIsFailure = (error: unknown): boolean =>
  typeof error === "object" && error !== null && CLIENT_ERROR_TAGS.has(Reflect.get(error, "_tag"))
    ? isRetryable(error as ClientError)
    : true

/** The default open period: 5 s, doubling at each opening in a row, at most 60 s. */
export const defaultOpenFor: Schedule.Schedule<Duration.Duration, unknown> = /* @__PURE__ */ Schedule.modifyDelay(
  Schedule.exponential(Duration.seconds(5)),
  (delay) => Duration.min(delay, Duration.seconds(60))
)

/** `retryAt` while Isolated: the largest Date, as no time is known until `reset`. */
export const NEVER = 8_640_000_000_000_000

interface Counter {
  success(now: number): void
  /** Counts a failure; true when the breaker must open. */
  failure(now: number): boolean
  clear(): void
}

class ConsecutiveCounter implements Counter {
  private count = 0
  constructor(private readonly threshold: number) {}
  success(): void {
    this.count = 0
  }
  failure(): boolean {
    return ++this.count >= this.threshold
  }
  clear(): void {
    this.count = 0
  }
}

/**
 * Failures and successes in `buckets` slices of the window: slice i covers [i x w, (i + 1) x w)
 * with w = window / buckets, and the window is the current slice and the `buckets - 1` before it.
 */
class RatioCounter implements Counter {
  private readonly slice: number
  private readonly ids: Array<number>
  private readonly oks: Array<number>
  private readonly kos: Array<number>
  constructor(
    private readonly threshold: number,
    window: number,
    private readonly minimumCalls: number,
    private readonly buckets: number
  ) {
    this.slice = window / buckets
    this.ids = new Array<number>(buckets).fill(-Infinity)
    this.oks = new Array<number>(buckets).fill(0)
    this.kos = new Array<number>(buckets).fill(0)
  }
  private bucket(now: number): number {
    const id = Math.floor(now / this.slice)
    const k = id % this.buckets
    if (this.ids[k] !== id) {
      this.ids[k] = id
      this.oks[k] = 0
      this.kos[k] = 0
    }
    return k
  }
  success(now: number): void {
    const k = this.bucket(now)
    this.oks[k] = this.oks[k]! + 1
  }
  failure(now: number): boolean {
    const k = this.bucket(now)
    this.kos[k] = this.kos[k]! + 1
    const oldest = Math.floor(now / this.slice) - this.buckets
    let oks = 0
    let kos = 0
    for (let k = 0; k < this.buckets; k++) {
      if (this.ids[k]! > oldest) {
        oks += this.oks[k]!
        kos += this.kos[k]!
      }
    }
    const calls = oks + kos
    return calls >= this.minimumCalls && kos / calls >= this.threshold
  }
  clear(): void {
    this.ids.fill(-Infinity)
  }
}

export interface Settings {
  readonly endpoint: string
  readonly counter: () => Counter
  readonly isFailure: (error: unknown) => boolean
  readonly openFor: Schedule.Schedule<unknown, number>
  readonly trials: number
  readonly successes: number
}

const positiveInteger = (value: number): boolean => Number.isInteger(value) && value >= 1

/** The most slices a failure ratio's window may be kept in. */
export const MAX_BUCKETS = 1000

/** A value in a message: never throws (a Symbol, an object without a primitive form). */
const shown = (value: unknown): string => {
  try {
    return typeof value === "symbol" ? value.toString() : String(value)
  } catch {
    return "a value that cannot be printed"
  }
}

/**
 * The settings, or why the options cannot work. Never throws: options whose reading throws (a
 * getter, a Proxy: untyped code) cannot work either. Each option is read once.
 */
export const settingsOf = (input: BreakerOptions | null | undefined): Settings | string => {
  try {
    return readSettings(input)
  } catch {
    return "CircuitBreaker: the options cannot be read (reading them threw: a getter or a Proxy?)"
  }
}

const readSettings = (input: BreakerOptions | null | undefined): Settings | string => {
  if (input !== undefined && input !== null && typeof input !== "object") {
    return "CircuitBreaker: options must be an object"
  }
  const options: BreakerOptions = input ?? {}
  const problems: Array<string> = []
  const policy = options.policy ?? { _tag: "ConsecutiveFailures", threshold: 5 }
  let counter: () => Counter
  const tag = typeof policy === "object" && policy !== null ? policy._tag : undefined
  if (tag === "ConsecutiveFailures") {
    const { threshold } = policy as Extract<TripPolicy, { _tag: "ConsecutiveFailures" }>
    if (!positiveInteger(threshold)) problems.push(`threshold must be an integer >= 1 (got ${shown(threshold)})`)
    counter = () => new ConsecutiveCounter(threshold)
  } else if (tag === "FailureRatio") {
    const { buckets = 10, minimumCalls, threshold, window: windowInput } = policy as Extract<
      TripPolicy,
      { _tag: "FailureRatio" }
    >
    const window = Duration.decodeUnknown(windowInput)
    const windowMillis = Option.isSome(window) && Duration.isFinite(window.value)
      ? Duration.toMillis(window.value)
      : NaN
    if (!(typeof threshold === "number" && threshold > 0 && threshold <= 1)) {
      problems.push(`threshold must be in (0, 1] (got ${shown(threshold)})`)
    }
    if (!(windowMillis > 0)) problems.push(`window must be a finite duration above zero (got ${shown(windowInput)})`)
    if (!positiveInteger(minimumCalls)) {
      problems.push(`minimumCalls must be an integer >= 1 (got ${shown(minimumCalls)})`)
    }
    // Three arrays of `buckets` numbers, all summed at each failure: 2 ** 32 of them cannot be made
    // (a RangeError in the constructor), 10 ** 8 take gigabytes.
    if (!positiveInteger(buckets) || buckets > MAX_BUCKETS) {
      problems.push(`buckets must be an integer in [1, ${MAX_BUCKETS}] (got ${shown(buckets)})`)
    }
    counter = () => new RatioCounter(threshold, windowMillis, minimumCalls, buckets)
  } else {
    problems.push("policy must be consecutiveFailures(...) or failureRatio(...)")
    counter = () => new ConsecutiveCounter(5)
  }
  const { endpoint = "circuit", isFailure, openFor, successes = 1, trials = 1 } = options
  if (typeof endpoint !== "string") problems.push("endpoint must be a string")
  if (!positiveInteger(trials)) problems.push(`trials must be an integer >= 1 (got ${shown(trials)})`)
  if (!positiveInteger(successes)) problems.push(`successes must be an integer >= 1 (got ${shown(successes)})`)
  // Used only at the first failure or opening: checked here, or they would die inside a transition.
  if (isFailure !== undefined && typeof isFailure !== "function") {
    problems.push("isFailure must be a function")
  }
  if (openFor !== undefined && !Schedule.isSchedule(openFor)) {
    problems.push("openFor must be a Schedule")
  } else if (openFor !== undefined) {
    // A schedule done at its first step, or whose first delay is zero (`Schedule.forever`,
    // `recurs(n)`, `once`), would open the breaker for no time at all: no breaker. One that dies
    // or suspends (not synchronous) there gives none either: `open` would keep a period of zero.
    const now = Date.now()
    const first = Effect.runSyncExit(openFor.step(now, 1, openFor.initial))
    if (
      !Exit.isSuccess(first) ||
      ScheduleDecision.isDone(first.value[2]) || ScheduleIntervals.start(first.value[2].intervals) <= now
    ) {
      problems.push(
        "openFor gives no open period at the first opening (done, a delay of zero, or it died or was not synchronous: Schedule.forever, recurs and once have none); use e.g. Schedule.spaced or Schedule.exponential"
      )
    }
  }
  if (problems.length > 0) return `CircuitBreaker: ${problems.join("; ")}`
  return {
    endpoint,
    counter,
    isFailure: isFailure ?? defaultIsFailure,
    openFor: openFor ?? defaultOpenFor,
    trials,
    successes
  }
}

/** What the transition function reacts to. */
type Input =
  | "success" // a call admitted while Closed succeeded (or failed in a way that does not count)
  | "failure" // a call admitted while Closed failed in a way that counts
  | "trialSuccess"
  | "trialFailure"
  | "trialAbandoned" // a trial interrupted or dead: frees its slot, counts nothing
  | "elapsed" // the open period is over
  | "isolate"
  | "reset"

type Outcome = "success" | "failure" | "none"

interface ClosedHandlers<A, E> {
  readonly onSuccess: (value: A) => Effect.Effect<A>
  readonly onFailure: (cause: Cause.Cause<E>) => Effect.Effect<never, E>
}

const CLOSED = /* @__PURE__ */ CircuitState.Closed()
const HALF_OPEN = /* @__PURE__ */ CircuitState.HalfOpen()
const ISOLATED = /* @__PURE__ */ CircuitState.Isolated()
const NEVER_DATE = /* @__PURE__ */ new Date(NEVER)
/** A time as a Date: past the largest Date (a period of `Duration.infinity`, of a million years) the largest, as Isolated's. */
const dateAt = (millis: number): Date => new Date(Math.min(millis, NEVER))

const stateTags: Record<CircuitState["_tag"], ReadonlyArray<MetricLabel.MetricLabel>> = {
  Closed: [/* @__PURE__ */ MetricLabel.make("state", "Closed")],
  Open: [/* @__PURE__ */ MetricLabel.make("state", "Open")],
  HalfOpen: [/* @__PURE__ */ MetricLabel.make("state", "HalfOpen")],
  Isolated: [/* @__PURE__ */ MetricLabel.make("state", "Isolated")]
}
const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

export class Breaker implements CircuitBreaker, TimerTarget {
  private current: CircuitState = CLOSED
  /** Bumped at every change of state: a trial or a timer of an earlier state is ignored. */
  private generation = 0
  private readonly counter: Counter
  private scheduleState: unknown
  private openings = 0
  private lastDelay = 0
  /**
   * While Open: the end of the open period on the Clock's monotonic reading. A step of the wall
   * clock (NTP, a user, a VM restored) neither ends it early (forward: a trial at once) nor
   * stretches it (back: the Client suspended for its 5 s recheck).
   */
  private openUntil = 0
  private inflight = 0
  private trialSuccesses = 0
  private readonly timers: Timers
  private timer: unknown = undefined
  /** The generation the timer was started in: one that fires after a change of state is ignored. */
  private timerGeneration = -1
  private shut = false
  private readonly listeners = new Listeners<CircuitTransition>()
  /** Told once when a call refused while every trial slot was taken may be admitted (see `whenFree`). */
  private waiting: Set<() => void> | undefined = undefined
  readonly state: SubscribableType.Subscribable<CircuitState>
  readonly events: Stream.Stream<CircuitTransition>
  readonly endpoint: string

  constructor(
    private readonly settings: Settings,
    private readonly runtime: Runtime.Runtime<never>,
    private readonly clock: Clock.Clock,
    /** Told of each state entered (a registry keeps the breakers that are not Closed). */
    private readonly onEnter?: (breaker: Breaker, state: CircuitState) => void
  ) {
    this.endpoint = settings.endpoint
    this.counter = settings.counter()
    this.scheduleState = settings.openFor.initial
    this.timers = timersOn(clock, runtime)
    this.state = Subscribable.make({
      get: Effect.sync(() => this.observe()),
      // The current state, then the state entered by each transition.
      changes: StreamModule.map(
        this.listeners.stream(() => {
          const state = this.observe()
          return [{ from: state, to: state }]
        }, { bufferSize: 64, strategy: "sliding" }),
        (transition) => transition.to
      )
    })
    this.events = this.listeners.stream(() => [], { bufferSize: 64, strategy: "sliding" })
  }

  /** The state now: an Open breaker whose `retryAt` has come is HalfOpen (the timer may not have run yet). */
  private observe(): CircuitState {
    const state = this.current
    if (state._tag === "Open" && monotonicMillis(this.clock) >= this.openUntil) {
      this.transition("elapsed")
    }
    return this.current
  }

  run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
    Effect.suspend(() =>
      this.current._tag === "Closed"
        ? Effect.matchCauseEffect(effect, this.closedHandlers as ClosedHandlers<A, E>)
        : this.guarded(effect)
    )

  /** The Closed path: no mask (there is no slot to give back), constant handlers. */
  private readonly closedHandlers: ClosedHandlers<unknown, unknown> = {
    onSuccess: (value) => {
      if (this.current._tag === "Closed") this.transition("success")
      return Effect.succeed(value)
    },
    onFailure: (cause) => {
      if (this.current._tag === "Closed") {
        const outcome = this.failureOutcome(cause)
        if (outcome !== "none") this.transition(outcome)
      }
      return Effect.failCause(cause)
    }
  }

  /**
   * Calls `wake` once, at the next change of state or when a trial's slot frees, whichever comes
   * first; the Client's wait after a refusal in HalfOpen (every slot taken, `retryAt` now), which
   * would otherwise retry at its schedule's pace while the trial runs (a fleet with a fast schedule
   * spun on refusals and starved the trial it waited on). At once when a call would not be refused
   * so now: a slot may have freed between the refusal and this call. Returns what cancels it.
   * `wake` must not throw.
   */
  whenFree(wake: () => void): () => void {
    if (this.observe()._tag !== "HalfOpen" || this.inflight < this.settings.trials) {
      wake()
      return () => {}
    }
    const waiting = this.waiting ??= new Set()
    waiting.add(wake)
    return () => waiting.delete(wake)
  }

  /** Wakes every `whenFree` waiter, once. */
  private freed(): void {
    const waiting = this.waiting
    if (waiting === undefined) return
    this.waiting = undefined
    for (const wake of waiting) {
      // A Client's wake runs its timer code here (a Clock of the user's may throw): the others are
      // still woken, and the throw goes on on its own, not into this transition's caller.
      try {
        wake()
      } catch (defect) {
        queueMicrotask(() => {
          throw defect
        })
      }
    }
  }

  readonly isolate: Effect.Effect<void> = Effect.sync(() => this.transition("isolate"))
  readonly reset: Effect.Effect<void> = Effect.sync(() => this.transition("reset"))

  /** Every state but Closed: admission under the mask, so a trial's slot is always given back. */
  private guarded<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<A, E | CircuitOpenError, R> => {
        const state = this.observe()
        switch (state._tag) {
          case "Closed":
            return Effect.matchCauseEffect(restore(effect), this.closedHandlers as ClosedHandlers<A, E>)
          case "Open":
            return Effect.fail(
              new CircuitOpenError({ endpoint: this.endpoint, retryAt: this.retryAtNow(state.retryAt) })
            )
          case "Isolated":
            return Effect.fail(new CircuitOpenError({ endpoint: this.endpoint, retryAt: NEVER_DATE }))
          case "HalfOpen": {
            if (this.inflight >= this.settings.trials) {
              // Every slot is taken; one may free at any time.
              const retryAt = new Date(this.clock.unsafeCurrentTimeMillis())
              return Effect.fail(new CircuitOpenError({ endpoint: this.endpoint, retryAt }))
            }
            this.inflight++
            const generation = this.generation
            return Effect.onExit(restore(effect), (exit) => {
              if (generation === this.generation) {
                const outcome = this.outcome(exit)
                this.transition(
                  outcome === "success" ? "trialSuccess" : outcome === "failure" ? "trialFailure" : "trialAbandoned"
                )
              }
              return Effect.void
            })
          }
        }
      })
    )
  }

  /**
   * An open breaker's `retryAt` as the wall clock reads now: the one it opened with (every refusal
   * of one open period gives the same), unless the wall clock stepped a second or more since.
   */
  private retryAtNow(openedWith: Date): Date {
    const now = Math.round(this.clock.unsafeCurrentTimeMillis() + this.openUntil - monotonicMillis(this.clock))
    return Math.abs(now - openedWith.getTime()) < 1000 ? openedWith : dateAt(now)
  }

  /** Success, a failure the predicate counts, or nothing (interrupted, a defect). An error the predicate does not count is a success: the endpoint answered. */
  private outcome(exit: Exit.Exit<unknown, unknown>): Outcome {
    return Exit.isSuccess(exit) ? "success" : this.failureOutcome(exit.cause)
  }

  private failureOutcome(cause: Cause.Cause<unknown>): Outcome {
    const failure = Cause.failureOption(cause)
    if (Option.isNone(failure)) return "none"
    try {
      // Only `false` is a success: a predicate that returns anything else (a block body without its
      // `return`: undefined) counts the failure, as one that throws, rather than never opening.
      return this.settings.isFailure(failure.value) === false ? "success" : "failure"
    } catch {
      return "failure"
    }
  }

  /** THE transition function: every change of the breaker's state goes through here. */
  private transition(input: Input): void {
    const state = this.current
    if (input === "isolate") {
      if (state._tag !== "Isolated") this.enter(ISOLATED)
      return
    }
    if (input === "reset") {
      if (state._tag === "Closed") this.restart()
      else this.enter(CLOSED)
      return
    }
    switch (state._tag) {
      case "Closed": {
        // The failure ratio's window is a duration: monotonic.
        if (input === "success") this.counter.success(monotonicMillis(this.clock))
        else if (input === "failure" && this.counter.failure(monotonicMillis(this.clock))) this.open()
        return
      }
      case "Open": {
        if (input === "elapsed") this.enter(HALF_OPEN)
        return
      }
      case "HalfOpen": {
        switch (input) {
          case "trialSuccess":
            this.inflight--
            if (++this.trialSuccesses >= this.settings.successes) this.enter(CLOSED)
            else this.freed()
            return
          case "trialFailure":
            this.open()
            return
          case "trialAbandoned":
            this.inflight--
            this.freed()
            return
          default:
            return
        }
      }
      case "Isolated":
        return
    }
  }

  /** Opens for the next period of the schedule. */
  private open(): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.openings++
    // Schedules are synchronous (Random and Clock aside, which the runtime provides); one that is
    // done, suspends or dies keeps the last period.
    const exit = Runtime.runSyncExit(this.runtime, this.settings.openFor.step(now, this.openings, this.scheduleState))
    if (Exit.isSuccess(exit)) {
      const [next, , decision] = exit.value
      if (ScheduleDecision.isContinue(decision)) {
        this.scheduleState = next
        this.lastDelay = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
      }
    }
    this.openUntil = monotonicMillis(this.clock) + this.lastDelay
    this.enter(CircuitState.Open({ retryAt: dateAt(now + this.lastDelay) }))
  }

  /** Closed afresh: no failures counted, the open schedule from its start. */
  private restart(): void {
    this.counter.clear()
    this.openings = 0
    this.lastDelay = 0
    this.scheduleState = this.settings.openFor.initial
  }

  private enter(next: CircuitState): void {
    const from = this.current
    this.current = next
    this.generation++
    this.timers.cancel(this.timer, this)
    this.timer = undefined
    switch (next._tag) {
      case "Closed":
        this.restart()
        break
      case "Open":
        this.counter.clear()
        this.startTimer(this.lastDelay)
        break
      case "HalfOpen":
        this.inflight = 0
        this.trialSuccesses = 0
        break
      case "Isolated":
        this.counter.clear()
        break
    }
    Metrics.circuitTransitions.unsafeUpdate(1, stateTags[next._tag])
    if (!this.shut) {
      if (from._tag === "Closed") Metrics.circuitsOpen.unsafeModify(1, NO_TAGS)
      else if (next._tag === "Closed") Metrics.circuitsOpen.unsafeModify(-1, NO_TAGS)
    }
    this.listeners.emit({ from, to: next })
    this.onEnter?.(this, next)
    this.freed()
  }

  /** Moves an Open breaker to HalfOpen when its period ends, so `state.changes` and `events` show it without a call. */
  private startTimer(delay: number): void {
    if (this.shut) return
    this.timerGeneration = this.generation
    this.timer = this.timers.after(Math.max(0, delay), this)
  }

  /** The open period is over. */
  fire(): void {
    if (this.timerGeneration !== this.generation) return
    this.timer = undefined
    this.transition("elapsed")
  }

  /** The end of the breaker's scope: no timer left behind, the gauge no longer counts it. */
  readonly shutdown: Effect.Effect<void> = Effect.sync(() => {
    if (this.shut) return
    this.shut = true
    if (this.current._tag !== "Closed") Metrics.circuitsOpen.unsafeModify(-1, NO_TAGS)
    this.timers.cancel(this.timer, this)
    this.timer = undefined
  })
}
