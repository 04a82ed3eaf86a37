/**
 * `SharedTimers`: the one `setTimeout` that every heartbeat on the live Clock shares. Order and
 * counts only: each wait is bounded by a count of turns, never asserted on its length.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SharedTimers } from "../src/internal/primitives/timers.js"
import { withNoHandlesLeft } from "./support/handles.js"

const timeouts = (): number => process.getActiveResourcesInfo().filter((name) => name === "Timeout").length

/** Waits, a few milliseconds at a time (at most 400 rounds), until `done()`; dies if it never is. */
const until = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let round = 0; round < 400 && !done(); round++) {
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))
    }
    if (!done()) return yield* Effect.dieMessage("the timers never fired")
  })

describe("SharedTimers", () => {
  it.live("fires each timer once, in the order they fall due, whatever the order they were set in", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const timers = new SharedTimers()
      const fired: Array<string> = []
      timers.after(40, { fire: () => fired.push("c") })
      timers.after(10, { fire: () => fired.push("a") })
      timers.after(25, { fire: () => fired.push("b") })
      timers.after(0, { fire: () => fired.push("now") })
      yield* until(() => fired.length === 4)
      expect(fired).toEqual(["now", "a", "b", "c"])
      expect(timers.size).toEqual({ armed: 0, entries: 0 })
    })))

  it.live("never fires a timer before its time on performance.now()", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const timers = new SharedTimers()
      const lateness: Array<number> = []
      for (const millis of [1, 3, 7, 12]) {
        const due = performance.now() + millis
        timers.after(millis, { fire: () => lateness.push(performance.now() - due) })
      }
      yield* until(() => lateness.length === 4)
      for (const late of lateness) expect(late).toBeGreaterThanOrEqual(0)
    })))

  it.live("a cancelled timer never fires; with none left armed, its setTimeout is cleared and the heap emptied", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const timers = new SharedTimers()
      const before = timeouts()
      const fired: Array<string> = []
      const first = timers.after(20, { fire: () => fired.push("first") })
      const second = timers.after(30, { fire: () => fired.push("second") })
      expect(timeouts()).toBe(before + 1)
      timers.cancel(first)
      timers.cancel(first)
      expect(timers.size).toEqual({ armed: 1, entries: 2 })
      timers.cancel(second)
      expect(timers.size).toEqual({ armed: 0, entries: 0 })
      expect(timeouts()).toBe(before)
      const third = timers.after(5, { fire: () => fired.push("third") })
      yield* until(() => fired.length === 1)
      timers.cancel(third)
      expect(fired).toEqual(["third"])
    })))

  it.live("a thousand timers hold one setTimeout; a target that sets itself again when it fires (a heartbeat) goes on", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const timers = new SharedTimers()
      const before = timeouts()
      const handles = Array.from({ length: 1000 }, (_, index) => timers.after(10_000 + index, { fire: () => {} }))
      expect(timeouts()).toBe(before + 1)
      let beats = 0
      let handle: unknown = undefined
      const heartbeat = {
        fire: () => {
          beats++
          if (beats < 3) handle = timers.after(2, heartbeat)
        }
      }
      handle = timers.after(2, heartbeat)
      yield* until(() => beats === 3)
      expect(timers.size.armed).toBe(1000)
      timers.cancel(handle)
      for (const each of handles) timers.cancel(each)
      expect(timers.size).toEqual({ armed: 0, entries: 0 })
      expect(timeouts()).toBe(before)
    })))
})
