/**
 * A few seconds of the soak (`npm run soak` runs it for minutes): a Client sending all the time
 * through seeded faults, every message accounted for at the end. The seed is fixed, so the faults
 * are the same each run; their timing still depends on the machine.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { NodeTransport } from "../src/index.js"
import { soak } from "../soak/soak.js"

describe("soak smoke", () => {
  it.live("every message sent through a few seconds of faults is written or failed once, and every echo was written", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const report = yield* soak({
        durationMs: 4_000,
        seed: 7,
        sendEveryMs: 5,
        warmupMs: 300,
        sampleEveryMs: 1_000,
        // Without a GC first heapUsed swings by more than the limit in seconds: not checked here.
        heapUsed: () => 0,
        log: (line) => lines.push(line)
      })
      expect(report.problems).toEqual([])
      const injected = Object.values(report.faults).reduce((total, count) => total + (count ?? 0), 0)
      expect(injected).toBeGreaterThanOrEqual(1)
      expect(lines).toHaveLength(injected)
      expect(report.sent).toBeGreaterThan(200)
      const failed = Object.values(report.failed).reduce((total, count) => total + (count ?? 0), 0)
      expect(report.written + failed).toBe(report.sent)
      expect(report.echoed).toBeGreaterThan(0)
      expect(report.echoed).toBeLessThanOrEqual(report.written)
    }).pipe(Effect.provide(NodeTransport.layer)), 30_000)
})
