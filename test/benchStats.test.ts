/**
 * The bench's bootstrap interval of a ratio of medians: exact when the runs do not vary, around
 * the ratio when they do, the same on every call (seeded), and absent for too few runs.
 */
import { describe, expect, it } from "@effect/vitest"
import { withRatios } from "../bench/results.js"
import { ratioInterval, summarize } from "../bench/util.js"

describe("ratioInterval", () => {
  it("is the ratio itself when no run varies", () => {
    expect(ratioInterval([200, 200, 200, 200], [100, 100, 100])).toEqual([2, 2])
  })

  it("brackets the ratio of medians when runs vary, and is the same on every call", () => {
    const runs = [90, 95, 100, 105, 110, 98, 102, 97, 103, 100]
    const baseline = [100, 104, 96, 110, 90, 101, 99, 102, 98, 100]
    const [low, high] = ratioInterval(runs, baseline)!
    expect(low).toBeLessThan(1)
    expect(high).toBeGreaterThan(1)
    expect(low).toBeGreaterThan(0.85)
    expect(high).toBeLessThan(1.15)
    expect(ratioInterval(runs, baseline)).toEqual([low, high])
  })

  it("is absent for fewer than 3 runs, and for the baseline's own row", () => {
    expect(ratioInterval([1, 2], [1, 2, 3])).toBeUndefined()
    const row = (contender: "ws" | "connection", runs: Array<number>) => ({
      measurement: "m",
      unit: "msg/s",
      better: "higher" as const,
      contender,
      summary: summarize(runs),
      baseline: "ws" as const
    })
    const [ws, connection] = withRatios([row("ws", [100, 100, 100]), row("connection", [150, 150, 150])])
    expect(ws!.ratioInterval).toBeUndefined()
    expect(connection!.ratio).toBe(1.5)
    expect(connection!.ratioInterval).toEqual([1.5, 1.5])
  })
})
