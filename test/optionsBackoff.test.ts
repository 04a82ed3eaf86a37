/**
 * `Reconnect.defaultSchedule` is built apart from `exponentialBackoff`'s option checks (so that a
 * browser bundle that never calls `exponentialBackoff` does not carry them): it is still
 * `exponentialBackoff()`, delay for delay.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Random, Schedule } from "effect"
import { Reconnect } from "../src/index.js"

/** The first `count` delays of a schedule, in milliseconds, drawn with a seeded Random. */
const delays = (schedule: Schedule.Schedule<unknown, unknown>, count: number) =>
  Schedule.run(Schedule.delays(schedule), 0, Array.from({ length: count }, () => undefined)).pipe(
    Effect.map((out) => Array.from(out, Duration.toMillis)),
    Effect.withRandom(Random.make("lifeline"))
  )

describe("Reconnect.defaultSchedule", () => {
  it.effect("the delays of exponentialBackoff() with the same random draws", () =>
    Effect.gen(function*() {
      const fromDefault = yield* delays(Reconnect.defaultSchedule, 12)
      expect(fromDefault).toEqual(yield* delays(Reconnect.exponentialBackoff(), 12))
      // 1.1 s x 2^n, jitter 0.9 around it, capped at 30 s.
      expect(fromDefault[0]).toBeGreaterThanOrEqual(110)
      expect(fromDefault[0]).toBeLessThanOrEqual(2090)
      expect(Math.max(...fromDefault)).toBeLessThanOrEqual(30_000)
      expect(Math.max(...fromDefault.slice(6))).toBeGreaterThan(2090)
    }))
})
