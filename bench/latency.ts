// 2. Round-trip latency at a modest rate, and 3. connect latency (handshake to open).
import type { Contender } from "./contenders/types.js"
import type { Row } from "./results.js"
import { warmUp } from "./throughput.js"
import { forceGc, makePayload, percentile, summarize, turnOrder, withTimeout } from "./util.js"

export interface LatencySettings {
  readonly runs: number
  /** Round trips per run, one in flight, `spacing` ms apart. */
  readonly roundTrips: number
  readonly spacing: number
  /** Sequential connects per run. */
  readonly connects: number
  /** A full garbage collection before each run (`--gc-before-runs`); see `ThroughputSettings`. */
  readonly collectBeforeRuns: boolean
  readonly log: (line: string) => void
}

/** One run: the values of `count` samples. */
type Sample = (contender: Contender, count: number) => Promise<Array<number>>

/** A short warm-up, then `sample` for every contender (in another order each run); p50 and p99 per run. */
const measurePercentiles = async (
  name: string,
  contenders: ReadonlyArray<Contender>,
  runs: number,
  count: number,
  sample: Sample,
  collectBeforeRuns: boolean,
  log: (line: string) => void
): Promise<Array<Omit<Row, "ratio">>> => {
  const p50 = new Map<Contender, Array<number>>(contenders.map((contender) => [contender, []]))
  const p99 = new Map<Contender, Array<number>>(contenders.map((contender) => [contender, []]))
  const failures = new Map<Contender, string>()
  for (const contender of contenders) await sample(contender, Math.ceil(count / 5)).catch(() => undefined)
  for (let run = 0; run < runs; run++) {
    for (const index of turnOrder(run, contenders.length)) {
      const contender = contenders[index]!
      if (collectBeforeRuns) forceGc()
      try {
        const values = await sample(contender, count)
        p50.get(contender)!.push(percentile(values, 50))
        p99.get(contender)!.push(percentile(values, 99))
      } catch (error) {
        failures.set(contender, error instanceof Error ? error.message : String(error))
      }
    }
  }
  const baseline = contenders[0]!.name
  const rows: Array<Omit<Row, "ratio">> = []
  for (const [label, series] of [["p50", p50], ["p99", p99]] as const) {
    for (const contender of contenders) {
      const failure = failures.get(contender)
      rows.push({
        measurement: `${name} ${label}`,
        unit: "ms",
        better: "lower",
        contender: contender.name,
        summary: summarize(series.get(contender)!),
        baseline,
        ...(failure === undefined ? {} : { note: `(failed: ${failure})` })
      })
    }
  }
  log(`${name}: ${contenders.map((c) => `${c.name} p50 ${summarize(p50.get(c)!).median.toFixed(3)}`).join(", ")}`)
  return rows
}

export const measureLatency = async (
  url: string,
  contenders: ReadonlyArray<Contender>,
  settings: LatencySettings
): Promise<Array<Omit<Row, "ratio">>> => {
  const payload = makePayload(64, "text")
  // The throughput runs happen in forks, so this process has not run the contenders yet: the
  // same pipelined warm-up as a fork's, then the short warm-up of each measurement.
  await warmUp(url, contenders)
  const roundTrip = await measurePercentiles(
    "round trip 64 B",
    contenders,
    settings.runs,
    settings.roundTrips,
    (contender, count) =>
      withTimeout(
        contender.latency(url, payload, count, settings.spacing),
        60_000,
        `${contender.name} latency`
      ),
    settings.collectBeforeRuns,
    settings.log
  )
  const connect = await measurePercentiles(
    "connect",
    contenders,
    settings.runs,
    settings.connects,
    (contender, count) => withTimeout(contender.connect(url, count), 60_000, `${contender.name} connect`),
    settings.collectBeforeRuns,
    settings.log
  )
  return [...roundTrip, ...connect]
}
