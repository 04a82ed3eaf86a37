/**
 * A smoke run of the throughput benchmark's core (`runCase`, what each fork runs) against the
 * project's echo server: raw ws only (the lifeline contenders run from the compiled `dist/`,
 * which `npm test` does not build), two tiny runs, each recorded with its run index; and how the
 * runs are dealt to forks and merged back.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ws } from "../bench/contenders/ws.js"
import type { CaseResult } from "../bench/throughput.js"
import { failedCase, mergeRuns, runCase, runsOfFork } from "../bench/throughput.js"
import { TestServer } from "../src/testing/index.js"

describe("bench smoke", () => {
  it.scoped("runCase times each run of each contender and keeps its run index", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const result = yield* Effect.promise(() =>
        runCase(server.url, [ws], { size: 64, kind: "text", count: 200 }, [3, 8], false)
      )
      expect(result.failures).toEqual({})
      const runs = result.runs.ws ?? []
      expect(runs.map((run) => run.run)).toEqual([3, 8])
      for (const run of runs) {
        expect(run.rate).toBeGreaterThan(0)
        expect(run.cpuMsPer1k).toBeGreaterThan(0)
      }
      // Two runs of 200 and the warm-up run of 100, each on its own connection.
      expect((yield* server.received).length).toBe(500)
      expect(yield* server.accepted).toBe(3)
    }))
})

describe("bench forks", () => {
  it("deal every run to exactly one fork, run k to fork k mod forks", () => {
    expect([0, 1, 2, 3, 4].map((fork) => runsOfFork(10, 5, fork))).toEqual([[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]])
    expect([0, 1].map((fork) => runsOfFork(5, 2, fork))).toEqual([[0, 2, 4], [1, 3]])
    expect(runsOfFork(3, 5, 4)).toEqual([])
  })

  it("merge the forks' runs back in run order, and fail a fork's missing cases for every contender", () => {
    const run = (index: number) => ({ run: index, rate: 100 + index, cpuMsPer1k: 1, gcMsPer1k: 0 })
    const fromForks: Array<CaseResult> = [
      { runs: { ws: [run(0), run(2)], client: [run(0)] }, failures: {} },
      { runs: { ws: [run(1)] }, failures: { client: "closed during the run" } }
    ]
    expect(mergeRuns(fromForks, "ws").map((entry) => entry.run)).toEqual([0, 1, 2])
    expect(mergeRuns(fromForks, "client").map((entry) => entry.rate)).toEqual([100])
    expect(mergeRuns(fromForks, "connection")).toEqual([])
    expect(failedCase(["ws", "connection"], "the process ended")).toEqual({
      runs: {},
      failures: { ws: "the process ended", connection: "the process ended" }
    })
  })
})
