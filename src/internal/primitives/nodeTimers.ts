/**
 * Timers for a process that holds many Clients, installed by the Node transport where it is loaded
 * (`install`); a browser page holds a Client or two, and its bundle keeps the plain ones
 * (`timers.ts`: a setTimeout per timer, the Clock's scheduler read at each `timersOn`).
 *
 * Timers on setTimeout share one setTimeout per slot of SLOT_MILLIS of `performance.now()`: a
 * timer fires at the end of its slot (up to SLOT_MILLIS late), with the other timers due in it, in
 * the order they were set. An idle Client's heartbeat then costs a place in an array, not a
 * Timeout of its own (about 200 bytes with its arguments array: idle memory per client is a
 * target), and many Clients that open or back off together share their timers.
 *
 * Each Clock's scheduler is read once: reading it runs an Effect (a fiber of its own), and every
 * Client made reads the same Clock, most of them Effect's live one.
 */
import type * as Clock from "effect/Clock"
import type { Timers, TimerTarget } from "./timers.js"
import { MAX_TIMER_MILLIS, readScheduler, useTimers } from "./timers.js"

// Each Clock's scheduler, read once.
const NO_SCHEDULER = Symbol("lifeline/NoScheduler")
const schedulers = new WeakMap<Clock.Clock, Clock.ClockScheduler | typeof NO_SCHEDULER>()

const schedulerOnce = (clock: Clock.Clock): Clock.ClockScheduler | undefined => {
  const known = schedulers.get(clock)
  if (known !== undefined) return known === NO_SCHEDULER ? undefined : known
  const found = readScheduler(clock)
  schedulers.set(clock, found ?? NO_SCHEDULER)
  return found
}

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
  // By index: a target cancelled by one fired before it is skipped. A target that throws does not
  // take the rest of its slot with it (they may be other Clients' timers, each its own setTimeout
  // before the slots): the error is thrown again on its own, as its own setTimeout would have.
  const targets = slot.targets
  for (let index = 0; index < targets.length; index++) {
    try {
      targets[index]?.fire()
    } catch (error) {
      queueMicrotask(() => {
        throw error
      })
    }
  }
}

export const slotTimers: Timers = {
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

/** Slots armed and not yet fired: for tests (every Client closed, none is left). */
export const armedSlots = (): number => slots.size

/** For every timer made from here on (the Node transport calls it where it is loaded). */
export const install = (): void => useTimers(slotTimers, schedulerOnce)
