/**
 * Callback timers that follow the Clock of the fiber that made them, for state machines that run
 * on callbacks rather than fibers (the Client's heartbeat). On a Clock with a scheduler (the live
 * one: setTimeout) a timer is scheduled on it (setTimeout itself: one per 10 ms slot, shared by
 * the timers due in it); on a Clock without one (`TestClock`) it is a fiber sleeping on that
 * Clock, so tests can move time. A timer calls a method of its target rather than a closure: a
 * timer per idle client costs a place in its slot's array and nothing else.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"

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

// Beyond this, setTimeout fires at once: a later slot waits in steps.
const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * Timers on setTimeout share one setTimeout per slot of SLOT_MILLIS of `performance.now()`: a timer
 * fires at the end of its slot (up to SLOT_MILLIS late), with the other timers due in it, in the
 * order they were set. An idle Client's heartbeat then costs a place in an array, not a Timeout of
 * its own (about 200 bytes with its arguments array: idle memory per client is a target), and many
 * Clients that open or back off together share their timers.
 */
const SLOT_MILLIS = 10

class Slot {
  targets: Array<TimerTarget | undefined> = []
  live = 0
  timer: ReturnType<typeof setTimeout>
  constructor(readonly at: number) {
    this.timer = arm(this)
  }
}

const slots = new Map<number, Slot>()

const arm = (slot: Slot) => setTimeout(fireSlot, Math.min(slot.at - performance.now(), MAX_TIMER_MILLIS), slot)

const fireSlot = (slot: Slot): void => {
  // A step of a wait longer than setTimeout holds (or a timer that came a little early).
  if (slot.at - performance.now() >= 1) {
    slot.timer = arm(slot)
    return
  }
  slots.delete(slot.at)
  // By index: a target cancelled by one fired before it is skipped.
  const targets = slot.targets
  for (let index = 0; index < targets.length; index++) targets[index]?.fire()
}

const liveTimers: Timers = {
  after: (millis, target) => {
    const at = Math.ceil((performance.now() + millis) / SLOT_MILLIS) * SLOT_MILLIS
    let slot = slots.get(at)
    if (slot === undefined) slots.set(at, slot = new Slot(at))
    slot.live++
    slot.targets.push(target)
    return slot
  },
  cancel: (handle, target) => {
    if (handle === undefined) return
    const slot = handle as Slot
    const index = slot.targets.indexOf(target)
    if (index === -1) return
    slot.targets[index] = undefined
    // Its last timer cancelled (and not fired yet): no handle left behind (invariant 7).
    if (--slot.live === 0 && slots.get(slot.at) === slot) {
      clearTimeout(slot.timer)
      slots.delete(slot.at)
    }
  }
}

/**
 * The Clock's own scheduler, read through the Clock (`scheduler()`, which Effect's live Clock has
 * and `TestClock` has not), rather than by comparing the Clock with the live one: a Clock made by
 * `Clock.make()` or a custom Clock with a scheduler works the same way.
 */
const schedulerOf = (clock: Clock.Clock): Clock.ClockScheduler | undefined => {
  const known = schedulers.get(clock)
  if (known !== undefined) return known === NO_SCHEDULER ? undefined : known
  const scheduler: unknown = Reflect.get(clock, "scheduler")
  let found: Clock.ClockScheduler | undefined = undefined
  if (typeof scheduler === "function") {
    const read = Effect.runSyncExit(scheduler.call(clock) as Effect.Effect<Clock.ClockScheduler>)
    if (read._tag === "Success") found = read.value
  }
  schedulers.set(clock, found ?? NO_SCHEDULER)
  return found
}

// Each Clock's scheduler, read once: reading it runs an Effect (a fiber of its own), and every
// Client made reads the same Clock (`timersOn`), most of them Effect's live one.
const NO_SCHEDULER = Symbol("lifeline/NoScheduler")
const schedulers = new WeakMap<Clock.Clock, Clock.ClockScheduler | typeof NO_SCHEDULER>()

// Effect's scheduler for its live Clock: setTimeout. Timers on it use setTimeout the same way,
// without the closures per call that `unsafeSchedule` makes (one timer per idle client counts).
const setTimeoutScheduler = schedulerOf(Clock.make())

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
