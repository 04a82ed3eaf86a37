/**
 * The bench's bootstrap interval of a ratio of medians: exact when the runs do not vary, around
 * the ratio when they do, the same on every call (seeded), and absent for too few runs. And its
 * tables: the printed one within 120 columns, the Markdown one whole.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Row } from "../bench/results.js"
import { withRatios } from "../bench/results.js"
import { renderMarkdown, renderTable } from "../bench/table.js"
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

describe("bench table", () => {
  const row = (measurement: string, contender: Row["contender"], median: number, note?: string): Row => ({
    measurement,
    unit: "msg/s",
    better: "higher",
    contender,
    summary: { median, min: median * 0.9, max: median * 1.1, runs: [median * 0.9, median, median * 1.1] },
    ratio: median / 1000,
    baseline: "ws",
    ...(contender === "ws" ? {} : { ratioInterval: [median / 1100, median / 900] as const }),
    ...(note === undefined ? {} : { note })
  })
  const rows = [
    row("throughput 64 KiB binary", "ws", 1000),
    row("throughput 64 KiB binary", "platform", 123_456),
    row("throughput 64 KiB binary", "client", 999, `failed: ${"a very long error message ".repeat(10)}`),
    row("herd: median time from server return to the client reporting open (1,000 clients)", "connection", 12.5)
  ]

  it("the printed table fits 120 columns; the Markdown table keeps every cell whole", () => {
    const printed = renderTable(rows).split("\n")
    expect(Math.max(...printed.map((line) => line.length))).toBeLessThanOrEqual(120)
    expect(printed.some((line) => line.startsWith("lifeline Client") && line.endsWith("…"))).toBe(true)
    const markdown = renderMarkdown(rows)
    expect(markdown).toContain("a very long error message ".repeat(10).trim())
    expect(markdown.split("\n")).toHaveLength(2 + rows.length)
  })
})
