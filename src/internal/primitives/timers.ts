/**
 * Callback timers that follow the Clock of the fiber that made them, for state machines that run
 * on callbacks rather than fibers (the Client's heartbeat). On a Clock with a scheduler (the live
 * one: setTimeout) a timer is scheduled on it (setTimeout itself: one per timer, or, where the
 * Node transport is loaded, one per 10 ms slot shared by the timers due in it, `nodeTimers.ts`);
 * on a Clock without one (`TestClock`) it is a fiber sleeping on that Clock, so tests can move
 * time. A timer calls a method of its target rather than a closure: a timer per idle client costs
 * one Timeout (a place in its slot's array on Node) and nothing else.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"

/**
 * The Clock's monotonic reading, in millis: for durations (a heartbeat's silence, a connect's
 * latency), never for a time shown to a user. Effect's live Clock reads the wall clock for its
 * millis (`Date.now()`: an NTP step, a user setting the time or a VM restored moves it back or on)
 * and `process.hrtime` (or `performance.now()`) for its nanos, which no step moves; `TestClock`
 * moves both together, so tests drive either.
 */
export const monotonicMillis = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000

/** What a timer calls when it fires. */
export interface TimerTarget {
  readonly fire: () => void
}

export interface Timers {
  /** Calls `target.fire()` once after `millis`; returns the handle that `cancel` takes. */
  readonly after: (millis: number, target: TimerTarget) => unknown
  /** Cancels the timer `after` returned for `target` (a no-op once it fired, or for undefined). */
  readonly cancel: (handle: unknown, target: TimerTarget) => void
}

/**
 * A wait that ends once: by its timer (`timedOut`) or from outside (`finish`). Either way its
 * timer is cancelled and `ended` runs, once. The Connection's wait for OPEN and the Client's
 * backoff are both one of these: one timer each, no racing fibers.
 */
export abstract class TimedWait implements TimerTarget {
  private timer: unknown = undefined
  private done = false
  constructor(private readonly timers: Timers) {}

  /** Starts the timer, unless the wait has already ended. */
  start(millis: number): void {
    if (!this.done) this.timer = this.timers.after(millis, this)
  }

  fire(): void {
    if (this.finish()) this.timedOut()
  }

  /** Fires now, the timer cancelled: what `fire` starts again is the only timer then. */
  fireNow(): void {
    this.timers.cancel(this.timer, this)
    this.timer = undefined
    this.fire()
  }

  /** Ends the wait; false when it had already ended. */
  finish(): boolean {
    if (this.done) return false
    this.done = true
    this.timers.cancel(this.timer, this)
    this.ended()
    return true
  }

  /** The timer fired first. */
  protected abstract timedOut(): void
  /** The wait is over, by whatever means. */
  protected abstract ended(): void
}

// Beyond this, setTimeout fires at once: wait in steps instead.
export const MAX_TIMER_MILLIS = 2 ** 31 - 1

const fireTarget = (target: TimerTarget): void => target.fire()

/** A wait longer than one setTimeout can hold, in steps. */
class LongWait implements TimerTarget {
  handle: ReturnType<typeof setTimeout>
  constructor(private remaining: number, private readonly target: TimerTarget) {
    this.handle = this.step()
  }

  private step(): ReturnType<typeof setTimeout> {
    const wait = Math.min(this.remaining, MAX_TIMER_MILLIS)
    this.remaining -= wait
    return setTimeout(fireTarget, wait, this)
  }

  fire(): void {
    if (this.remaining > 0) this.handle = this.step()
    else this.target.fire()
  }
}

/** Timers on setTimeout, one each: what a browser page (a Client or two) runs on. */
export const plainTimers: Timers = {
  after: (millis, target) =>
    millis <= MAX_TIMER_MILLIS ? setTimeout(fireTarget, millis, target) : new LongWait(millis, target),
  cancel: (handle) => {
    if (handle !== undefined) {
      clearTimeout(handle instanceof LongWait ? handle.handle : handle as ReturnType<typeof setTimeout>)
    }
  }
}

/**
 * The Clock's own scheduler, read through the Clock (`scheduler()`, which Effect's live Clock has
 * and `TestClock` has not), rather than by comparing the Clock with the live one: a Clock made by
 * `Clock.make()` or a custom Clock with a scheduler works the same way. Reading it runs an Effect
 * (a fiber of its own).
 */
export const readScheduler = (clock: Clock.Clock): Clock.ClockScheduler | undefined => {
  const scheduler: unknown = Reflect.get(clock, "scheduler")
  if (typeof scheduler !== "function") return undefined
  const read = Effect.runSyncExit(scheduler.call(clock) as Effect.Effect<Clock.ClockScheduler>)
  return read._tag === "Success" ? read.value : undefined
}

// The timers on setTimeout and the reading of a Clock's scheduler: the plain ones, or those the
// Node transport installs where it is loaded (`nodeTimers.ts`: one setTimeout per 10 ms slot, each
// Clock's scheduler read once, for a process that holds thousands of Clients). A timer is
// cancelled through the Timers that made it.
let liveTimers = plainTimers
let schedulerOf = readScheduler

/** From now on, timers on setTimeout are `timers`, and a Clock's scheduler is read by `read` (the Node transport's). */
export const useTimers = (timers: Timers, read: (clock: Clock.Clock) => Clock.ClockScheduler | undefined): void => {
  liveTimers = timers
  schedulerOf = read
}

// Effect's scheduler for its live Clock: setTimeout. Timers on it use setTimeout the same way,
// without the closures per call that `unsafeSchedule` makes (one timer per idle client counts).
const setTimeoutScheduler = readScheduler(Clock.make())

const schedulerTimers = (scheduler: Clock.ClockScheduler): Timers => ({
  after: (millis, target) => scheduler.unsafeSchedule(() => target.fire(), Duration.millis(millis)),
  cancel: (handle) => {
    if (handle !== undefined) (handle as Clock.CancelToken)()
  }
})

/** Timers on `clock`; `runtime` runs the sleeping fibers when the clock has no scheduler (`TestClock`). */
export const timersOn = <R>(clock: Clock.Clock, runtime: Runtime.Runtime<R>): Timers => {
  const scheduler = schedulerOf(clock)
  if (scheduler === undefined) return fiberTimers(clock, runtime)
  return scheduler === setTimeoutScheduler ? liveTimers : schedulerTimers(scheduler)
}

/** Timers on the current fiber's Clock. */
export const currentTimers: Effect.Effect<Timers> = Effect.flatMap(
  Effect.clock,
  (clock) => Effect.map(Effect.runtime<never>(), (runtime) => timersOn(clock, runtime))
)

const fiberTimers = <R>(clock: Clock.Clock, runtime: Runtime.Runtime<R>): Timers => ({
  // Not immediate: like setTimeout, a timer never fires inside `after`, even for 0 ms.
  after: (millis, target) =>
    Runtime.runFork(runtime)(Effect.zipRight(clock.sleep(Duration.millis(millis)), Effect.sync(() => target.fire())), {
      immediate: false
    }),
  cancel: (handle) => {
    if (handle !== undefined) (handle as Fiber.RuntimeFiber<void>).unsafeInterruptAsFork(FiberId.none)
  }
})
