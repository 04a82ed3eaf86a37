/**
 * A smoke run of the throughput benchmark's core (`runCase`, what each fork runs) against the
 * project's echo server: raw ws only (the lifeline contenders run from the compiled `dist/`,
 * which `npm test` does not build), two tiny runs, each recorded with its run index.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ws } from "../bench/contenders/ws.js"
import { runCase } from "../bench/throughput.js"
import { TestServer } from "../src/testing/index.js"

describe("bench smoke", () => {
  it.scoped("runCase times each run of each contender and keeps its run index", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const result = yield* Effect.promise(() => runCase(server.url, [ws], { size: 64, kind: "text", count: 200 }, [3, 8], false))
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
