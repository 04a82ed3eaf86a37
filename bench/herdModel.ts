// The herd without CPU or network: how a reconnect Schedule alone spreads clients over the
// server's return. Each client loses its connection at a random moment in the first 20 ms,
// retries by the schedule (a retry before the return fails at once), and is back at its first
// retry after the return. Steps lifeline's own `exponentialBackoff`, so it models the real
// policy. Seeded: the same arguments print the same table.
//
//   npx tsx bench/herdModel.ts [clients] [outage ms, comma-separated]
//
// Prints, per schedule and outage: the densest 100 ms (share of clients), the median and 90th
// percentile time from the return to the retry that gets through, and failed retries per client.
// `test/herdModel.test.ts` holds the default schedule to its figures in CI.
import type { Duration, Schedule } from "effect"
import { Effect, Random, ScheduleDecision, ScheduleIntervals } from "effect"
import { realpathSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Reconnect } from "../src/index.js"
import { densest, median, percentile } from "./util.js"

const SEEDS = 7
const WINDOW_MS = 100

const candidates: ReadonlyArray<readonly [string, Schedule.Schedule<Duration.Duration>]> = [
  ["default (1.1 s, x2, jitter 0.9)", Reconnect.defaultSchedule],
  ["1 s, x2, jitter 0.9", Reconnect.exponentialBackoff({ base: "1 second" })],
  ["1.2 s, x2, jitter 0.9", Reconnect.exponentialBackoff({ base: "1200 millis" })],
  ["full jitter from 500 ms", Reconnect.exponentialBackoff({ base: "250 millis", jitter: 1 })]
]

export interface HerdModel {
  /** The largest share of the clients back within one 100 ms window. */
  readonly peak: number
  /** Median time from the return to a client's retry that gets through, ms. */
  readonly median: number
  readonly p90: number
  /** Retries that failed (before the return), per client. */
  readonly failed: number
  /** Clients whose schedule stopped (or stopped moving) before the return; not in median or p90. */
  readonly gaveUp: number
}

/** Retries per client before the model gives a client up: a schedule that stops advancing. */
const MAX_RETRIES = 10_000

/** `clients` clients retrying by `schedule` through an outage of `outage` ms; uses the Random service. */
export const simulateHerd = (
  schedule: Schedule.Schedule<unknown>,
  clients: number,
  outage: number
): Effect.Effect<HerdModel> =>
  Effect.gen(function*() {
    const back: Array<number> = []
    let failed = 0
    for (let client = 0; client < clients; client++) {
      let now = (yield* Random.next) * 20
      let state: unknown = schedule.initial
      for (let retry = 0; retry < MAX_RETRIES; retry++) {
        const [next, , decision] = yield* schedule.step(now, undefined, state)
        state = next
        if (ScheduleDecision.isDone(decision)) break
        now = ScheduleIntervals.start(decision.intervals)
        if (now >= outage) {
          back.push(now - outage)
          break
        }
        failed++
      }
    }
    back.sort((a, b) => a - b)
    return {
      peak: densest(back, WINDOW_MS) / clients,
      median: median(back),
      p90: percentile(back, 90),
      failed: failed / clients,
      gaveUp: (clients - back.length) / clients
    }
  })

const main = (clients: number, outages: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    console.log(
      `${clients} clients; per outage: densest 100 ms, median and p90 after the return, failed retries per client`
    )
    for (const [label, schedule] of candidates) {
      const cells: Array<string> = []
      for (const outage of outages) {
        const runs = []
        for (let seed = 0; seed < SEEDS; seed++) {
          runs.push(
            yield* simulateHerd(schedule, clients, outage).pipe(
              Effect.withRandom(Random.make(`${label}/${outage}/${seed}`))
            )
          )
        }
        const peak = median(runs.map((run) => run.peak * 100))
        const mid = median(runs.map((run) => run.median))
        const p90 = median(runs.map((run) => run.p90))
        const failed = median(runs.map((run) => run.failed))
        const gaveUp = median(runs.map((run) => run.gaveUp))
        const stopped = gaveUp > 0 ? `, ${(gaveUp * 100).toFixed(1)} % gave up` : ""
        cells.push(
          `${outage} ms: ${peak.toFixed(1)} %, ${mid.toFixed(0)} / ${p90.toFixed(0)} ms, ${failed.toFixed(2)}${stopped}`
        )
      }
      console.log(`${label.padEnd(32)} ${cells.join(" | ")}`)
    }
  })

// Run as a script (not imported by the test): compare real paths, so a symlinked path still runs.
const entry = process.argv[1]
if (entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) {
  const clients = Number(process.argv[2] ?? 1000)
  const outages = (process.argv[3] ?? "500,1000,2000,5000").split(",").map(Number)
  Effect.runSync(main(clients, outages))
}
