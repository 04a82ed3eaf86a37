/**
 * A few seconds of the soak (`npm run soak` runs it for minutes): a Client sending all the time
 * through seeded faults, every message accounted for at the end. The seed is fixed, so the faults
 * are the same each run; their timing still depends on the machine.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { fleet, TRIALS } from "../soak/fleet.js"
import { soak } from "../soak/soak.js"
import { NodeTransport } from "../src/index.js"

describe("soak smoke", () => {
  it.live(
    "every message sent through a few seconds of faults is written or failed once, and every echo was written",
    () =>
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
      }).pipe(Effect.provide(NodeTransport.layer)),
    30_000
  )
})

describe("fleet soak smoke", () => {
  it.live(
    "20 Clients over 2 servers through a kill and a 503 period: every send accounted, at most `trials` probes per open period, every Client failed over and home again",
    () =>
      Effect.gen(function*() {
        const lines: Array<string> = []
        const report = yield* fleet({
          durationMs: 0,
          seed: 7,
          clients: 20,
          servers: 2,
          sendEveryMs: 100,
          warmupMs: 200,
          sampleEveryMs: 1_000,
          deadMs: [600, 600],
          calmMs: [100, 100],
          openForMs: [200, 400],
          returnToPrimaryMs: 150,
          script: [["kill", 0], ["reject", 1]],
          heapUsed: () => 0,
          log: (line) => lines.push(line),
          // A hang guard here (the soak's own bound is 10 s): twice, on a machine loaded by the other
          // test files (load average 7-10), ten Clients took longer to fail over.
          recoveryMs: 30_000
        })
        expect(report.problems).toEqual([])
        expect(lines).toHaveLength(2)
        const [kill, reject] = report.faults
        // Each node's ten Clients moved to the other one and came back after the heal.
        expect(kill).toMatchObject({
          fault: "kill",
          server: 0,
          handshakes: 0,
          affected: 10,
          moved: 10,
          away: 10,
          returned: 10
        })
        expect(reject).toMatchObject({ fault: "reject", server: 1, affected: 10, moved: 10, away: 10, returned: 10 })
        // The breaker opened during each; after the first wave, at most one probe per open period.
        for (const record of [kill!, reject!]) {
          expect(record.openPeriods).toBeGreaterThanOrEqual(1)
          expect(record.trials).toBeLessThanOrEqual(TRIALS * record.openPeriods)
        }
        expect(reject!.handshakes).toBe(reject!.firstWave + reject!.probes)
        expect(reject!.probes).toBeLessThanOrEqual(TRIALS * reject!.openPeriods)
        const failed = Object.values(report.failed).reduce((total, count) => total + (count ?? 0), 0)
        expect(report.sent).toBeGreaterThan(100)
        expect(report.written + failed).toBe(report.sent)
        expect(report.echoed).toBeGreaterThan(0)
        expect(report.echoed).toBeLessThanOrEqual(report.written)
      }).pipe(Effect.provide(NodeTransport.layer)),
    30_000
  )
})
