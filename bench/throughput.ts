// 1. Pipelined echo throughput, messages per second, for each payload size and kind.
import type { Contender } from "./contenders/types.js"
import type { Row } from "./results.js"
import type { Payload } from "./util.js"
import { forceGc, makePayload, median, summarize, turnOrder, watchGcPauses, withTimeout } from "./util.js"

export interface ThroughputSettings {
  readonly runs: number
  /**
   * Runs for frames of 16 KiB and more. A 64 KiB run is short (1,280 frames, about 0.6 s) and
   * swings by a fifth from one run to the next on 2 cores (both processes and the loopback share
   * them), so the median needs more runs there to settle.
   */
  readonly largeFrameRuns: number
  /** How long one run of raw ws should take; the message count is calibrated for it. */
  readonly targetMs: number
  /**
   * A full garbage collection before each timed run (`--gc-before-runs`). Off by default: a
   * forced collection is no part of a real workload, and it slowed every contender (raw ws about
   * 10 % at 64 KiB) and Effect-based code most (lifeline Connection 0.79x raw ws with it, 0.96x
   * without, at 64 KiB text; `bench/largeFrames.ts`). The contenders take their turns in another
   * order each run (`turnOrder`), so each meets the others' garbage alike.
   */
  readonly collectBeforeRuns: boolean
  readonly log: (line: string) => void
}

const SIZES = [64, 1024, 64 * 1024] as const
const KINDS = ["text", "binary"] as const

/** At most 1000 frames and 8 MiB unanswered. */
export const windowFor = (size: number): number => Math.max(8, Math.min(1000, Math.floor((8 * 1024 * 1024) / size)))

const sizeLabel = (size: number): string => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`)

const RUN_LIMIT_MS = 60_000

const once = (contender: Contender, url: string, payload: Payload, count: number, window: number): Promise<number> =>
  withTimeout(contender.throughput(url, payload, count, window), RUN_LIMIT_MS, `${contender.name} throughput`)

/** The message count that takes raw ws about `targetMs`, from a pilot run. */
const calibrate = async (baseline: Contender, url: string, payload: Payload, size: number, targetMs: number): Promise<number> => {
  const pilot = size >= 16 * 1024 ? 300 : 4_000
  const window = windowFor(size)
  await once(baseline, url, payload, pilot, window)
  const elapsed = await once(baseline, url, payload, pilot, window)
  const count = Math.round((pilot / elapsed) * targetMs)
  // At least ten windows: a run of one or two windows measures how a burst starts (every frame
  // written before the first echo), not the steady flow (64 KiB frames: 1,280 instead of ~600).
  return Math.max(200, 10 * window, Math.min(2_000_000, count))
}

export const measureThroughput = async (
  url: string,
  contenders: ReadonlyArray<Contender>,
  settings: ThroughputSettings
): Promise<Array<Omit<Row, "ratio">>> => {
  const rows: Array<Omit<Row, "ratio">> = []
  const baseline = contenders[0]!
  const gc = watchGcPauses()
  try {
    // Warm every contender's code up once before the first calibration.
    const warmup = makePayload(64, "binary")
    for (const contender of contenders) await once(contender, url, warmup, 5_000, windowFor(64)).catch(() => undefined)
    for (const size of SIZES) {
      for (const kind of KINDS) {
        const measurement = `throughput ${sizeLabel(size)} ${kind}`
        const payload = makePayload(size, kind)
        const window = windowFor(size)
        const count = await calibrate(baseline, url, payload, size, settings.targetMs)
        settings.log(`${measurement}: ${count} messages per run, window ${window}`)
        const rates = new Map<Contender, Array<number>>(contenders.map((contender) => [contender, []]))
        const cpu = new Map<Contender, Array<number>>(contenders.map((contender) => [contender, []]))
        const windows = new Map<Contender, Array<readonly [number, number]>>(contenders.map((contender) => [contender, []]))
        const failures = new Map<Contender, string>()
        // A shorter warm-up run for each contender, then the runs, each in another order.
        for (const contender of contenders) {
          await once(contender, url, payload, Math.max(100, Math.round(count / 4)), window).catch(() => undefined)
        }
        const runs = size >= 16 * 1024 ? settings.largeFrameRuns : settings.runs
        for (let run = 0; run < runs; run++) {
          for (const index of turnOrder(run, contenders.length)) {
            const contender = contenders[index]!
            if (settings.collectBeforeRuns) forceGc()
            try {
              const cpuBefore = process.cpuUsage()
              const started = performance.now()
              const elapsed = await once(contender, url, payload, count, window)
              const used = process.cpuUsage(cpuBefore)
              rates.get(contender)!.push((count / elapsed) * 1000)
              cpu.get(contender)!.push((used.user + used.system) / count)
              windows.get(contender)!.push([started, performance.now()])
            } catch (error) {
              failures.set(contender, error instanceof Error ? error.message : String(error))
            }
          }
        }
        // Let the last GC entries arrive before reading the windows.
        await new Promise<void>((resolve) => setTimeout(resolve, 10))
        const gcPer1k = new Map(contenders.map((contender) => [
          contender,
          windows.get(contender)!.map(([from, to]) => (gc.pausedBetween(from, to) * 1000) / count)
        ]))
        for (const contender of contenders) {
          const failure = failures.get(contender)
          rows.push({
            measurement,
            unit: "msg/s",
            better: "higher",
            contender: contender.name,
            summary: summarize(rates.get(contender)!),
            baseline: baseline.name,
            perRun: { cpuMsPer1k: cpu.get(contender)!, gcMsPer1k: gcPer1k.get(contender)! },
            ...(failure === undefined ? {} : { note: `(failed: ${failure})` })
          })
        }
        settings.log(
          `${measurement}: ${contenders.map((c) => `${c.name} ${Math.round(summarize(rates.get(c)!).median)}`).join(", ")}; ` +
            `CPU / GC ms per 1,000: ${
              contenders.map((c) => `${c.name} ${median(cpu.get(c)!).toFixed(0)} / ${median(gcPer1k.get(c)!).toFixed(1)}`).join(", ")
            }`
        )
      }
    }
  } finally {
    gc.stop()
  }
  return rows
}
