// The default reconnect schedule, held to the herd figures it was chosen for, in the model that
// steps the real Schedule (bench/herdModel.ts): seeded, no clock, no sockets, so it cannot flake.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Random } from "effect"
import { simulateHerd } from "../bench/herdModel.js"
import { Reconnect } from "../src/index.js"

const herd = (schedule: Parameters<typeof simulateHerd>[0], seed: string) =>
  simulateHerd(schedule, 1000, 1000).pipe(Effect.withRandom(Random.make(seed)))

describe("reconnect herd model (1,000 clients, 1 s outage)", () => {
  it.effect("the default spreads the return: at most 9 % in any 100 ms, median within 0.9 s, half a failed retry", () =>
    Effect.gen(function*() {
      for (const seed of ["a", "b", "c"]) {
        const model = yield* herd(Reconnect.defaultSchedule, seed)
        expect(model.peak).toBeLessThanOrEqual(0.09)
        expect(model.median).toBeLessThanOrEqual(900)
        expect(model.failed).toBeLessThan(0.6)
      }
    }))

  it.effect("the model tells a front-loaded schedule: full jitter from 500 ms peaks above 12 %", () =>
    Effect.gen(function*() {
      const model = yield* herd(Reconnect.exponentialBackoff({ base: "250 millis", jitter: 1 }), "a")
      expect(model.peak).toBeGreaterThan(0.12)
      expect(model.failed).toBeGreaterThan(1.5)
    }))
})
