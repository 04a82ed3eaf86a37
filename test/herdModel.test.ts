// The default reconnect schedule, held to the herd figures it was chosen for, in the model that
// steps the real Schedule (bench/herdModel.ts): seeded, no clock, no sockets, so it cannot flake.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Random } from "effect"
import { simulateHerd } from "../bench/herdModel.js"
import { median } from "../bench/util.js"
import { Reconnect } from "../src/index.js"

/** 1,000 clients through a 1 s outage, ten seeds: the median of each figure. */
const herd = (schedule: Parameters<typeof simulateHerd>[0]) =>
  Effect.forEach(
    Array.from({ length: 10 }, (_, seed) => seed),
    (seed) => simulateHerd(schedule, 1000, 1000).pipe(Effect.withRandom(Random.make(`herd-${seed}`)))
  ).pipe(
    Effect.map((runs) => ({
      peak: median(runs.map((run) => run.peak)),
      median: median(runs.map((run) => run.median)),
      failed: median(runs.map((run) => run.failed)),
      gaveUp: Math.max(...runs.map((run) => run.gaveUp))
    }))
  )

describe("reconnect herd model (1,000 clients, 1 s outage)", () => {
  it.effect("the default spreads the return: about 8 % in the densest 100 ms, median within 0.9 s", () =>
    Effect.gen(function*() {
      const model = yield* herd(Reconnect.defaultSchedule)
      // 0.082 here; a base of 1 s gives 0.089, full jitter from 500 ms 0.136.
      expect(model.peak).toBeLessThanOrEqual(0.086)
      expect(model.median).toBeLessThanOrEqual(900)
      expect(model.failed).toBeLessThan(0.6)
      expect(model.gaveUp).toBe(0)
    }))

  it.effect("the model tells a front-loaded schedule: a base of 1 s and full jitter from 500 ms fail that bound", () =>
    Effect.gen(function*() {
      expect((yield* herd(Reconnect.exponentialBackoff({ base: "1 second" }))).peak).toBeGreaterThan(0.086)
      const fullJitter = yield* herd(Reconnect.exponentialBackoff({ base: "250 millis", jitter: 1 }))
      expect(fullJitter.peak).toBeGreaterThan(0.12)
      expect(fullJitter.failed).toBeGreaterThan(1.5)
    }))
})
