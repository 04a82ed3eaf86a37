/** The compat socket's delays: partysocket's, spread upwards by the jitter, stepped without waiting. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, ScheduleDecision, ScheduleIntervals } from "effect"
import type { DelayOptions } from "../../src/internal/compat/schedule.js"
import { reconnectSchedule } from "../../src/internal/compat/schedule.js"

/** The delays the schedule gives, in ms, until it is done or `limit` of them. */
const delays = (options: DelayOptions, limit: number) =>
  Effect.gen(function*() {
    const schedule = reconnectSchedule(options)
    let state = schedule.initial
    let now = 0
    const out: Array<number> = []
    for (let step = 0; step < limit; step++) {
      const [next, , decision] = yield* schedule.step(now, undefined, state)
      if (ScheduleDecision.isDone(decision)) break
      const at = ScheduleIntervals.start(decision.intervals)
      out.push(at - now)
      now = at
      state = next
    }
    return out
  })

const partysocket = { min: 3000, max: 10_000, factor: 1.3, jitter: 0, maxRetries: Number.POSITIVE_INFINITY }

describe("reconnectSchedule", () => {
  it.effect("with no jitter: partysocket's delays, min x factor^n up to max", () =>
    Effect.gen(function*() {
      const seen = yield* delays(partysocket, 7)
      expect(seen.map(Math.round)).toEqual([3000, 3900, 5070, 6591, 8568, 10_000, 10_000])
    }))

  it.effect("maxRetries: done after that many delays", () =>
    Effect.gen(function*() {
      expect(yield* delays({ ...partysocket, maxRetries: 3 }, 10)).toHaveLength(3)
      expect(yield* delays({ ...partysocket, maxRetries: 0 }, 10)).toHaveLength(0)
    }))

  it.effect("with jitter 0.5: each delay in [d, 1.5 d], never above max, and spread", () =>
    Effect.gen(function*() {
      const firsts: Array<number> = []
      for (let client = 0; client < 1000; client++) {
        const seen = yield* delays({ ...partysocket, jitter: 0.5 }, 8)
        firsts.push(seen[0]!)
        for (const delay of seen) expect(delay).toBeLessThanOrEqual(10_000)
        expect(seen[0]).toBeGreaterThanOrEqual(3000)
        expect(seen[0]).toBeLessThanOrEqual(4500)
        // At the cap: within [max / 1.5, max], not all at max.
        expect(seen[7]).toBeGreaterThanOrEqual(10_000 / 1.5)
      }
      // 1000 clients that lost the same server do not come back together: no 100 ms bucket holds 10 %
      // (uniform over 1.5 s: about 6.7 % each).
      const buckets = new Map<number, number>()
      for (const delay of firsts) buckets.set(Math.floor(delay / 100), (buckets.get(Math.floor(delay / 100)) ?? 0) + 1)
      expect(Math.max(...buckets.values())).toBeLessThan(100)
      expect(buckets.size).toBe(15)
    }))
})
