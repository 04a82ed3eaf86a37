// 1. Pipelined echo throughput, messages per second, for each payload size and kind.
//
// The runs of each case are spread over several fresh processes ("forks", as JMH calls them):
// what a process's JIT and heap settle into differs from one process to the next, and it holds for
// the rest of that process. In one process, a contender can run slow for a whole case (all 10 runs
// of lifeline Client at 64 KiB text below raw ws's median in one full run, normal in the next
// three). With forks, such a process is a few runs out of the median instead of all of them.
import { fileURLToPath } from "node:url"
import type { Contender, ContenderName } from "./contenders/types.js"
import type { Row } from "./results.js"
import { JsonLines, killChild, spawnTs } from "./server.js"
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
  /**
   * Fresh processes over which each case's runs are spread (run k in fork k mod `forks`); 0 runs
   * everything in this process.
   */
  readonly forks: number
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
const calibrate = async (
  baseline: Contender,
  url: string,
  payload: Payload,
  size: number,
  targetMs: number
): Promise<number> => {
  const pilot = size >= 16 * 1024 ? 300 : 4_000
  const window = windowFor(size)
  await once(baseline, url, payload, pilot, window)
  const elapsed = await once(baseline, url, payload, pilot, window)
  const count = Math.round((pilot / elapsed) * targetMs)
  // At least ten windows: a run of one or two windows measures how a burst starts (every frame
  // written before the first echo), not the steady flow (64 KiB frames: 1,280 instead of ~600).
  return Math.max(200, 10 * window, Math.min(2_000_000, count))
}

/** One payload size and kind, with its calibrated message count. */
export interface Case {
  readonly size: number
  readonly kind: "text" | "binary"
  readonly count: number
}

/** One timed run of one contender: messages per second, and CPU and GC pauses per 1,000 messages. */
export interface RunResult {
  readonly run: number
  readonly rate: number
  readonly cpuMsPer1k: number
  readonly gcMsPer1k: number
}

export interface CaseResult {
  readonly runs: Partial<Record<ContenderName, Array<RunResult>>>
  readonly failures: Partial<Record<ContenderName, string>>
}

/** Warms every contender's code up once, before its first case. */
export const warmUp = async (url: string, contenders: ReadonlyArray<Contender>): Promise<void> => {
  const warmup = makePayload(64, "binary")
  for (const contender of contenders) await once(contender, url, warmup, 5_000, windowFor(64)).catch(() => undefined)
}

/**
 * The given runs of one case in this process: a shorter warm-up run for each contender, then each
 * run with the contenders in `turnOrder(run)`.
 */
export const runCase = async (
  url: string,
  contenders: ReadonlyArray<Contender>,
  testCase: Case,
  runs: ReadonlyArray<number>,
  collectBeforeRuns: boolean
): Promise<CaseResult> => {
  const payload = makePayload(testCase.size, testCase.kind)
  const window = windowFor(testCase.size)
  const { count } = testCase
  const results: CaseResult = { runs: {}, failures: {} }
  if (runs.length === 0) return results
  const gc = watchGcPauses()
  try {
    for (const contender of contenders) {
      await once(contender, url, payload, Math.max(100, Math.round(count / 4)), window).catch(() => undefined)
    }
    const timed: Array<{ contender: Contender; run: number; rate: number; cpu: number; from: number; to: number }> = []
    for (const run of runs) {
      for (const index of turnOrder(run, contenders.length)) {
        const contender = contenders[index]!
        if (collectBeforeRuns) forceGc()
        try {
          const cpuBefore = process.cpuUsage()
          const from = performance.now()
          const elapsed = await once(contender, url, payload, count, window)
          const used = process.cpuUsage(cpuBefore)
          timed.push({
            contender,
            run,
            rate: (count / elapsed) * 1000,
            cpu: (used.user + used.system) / count,
            from,
            to: performance.now()
          })
        } catch (error) {
          results.failures[contender.name] = error instanceof Error ? error.message : String(error)
        }
      }
    }
    // Let the last GC entries arrive before reading the windows.
    await new Promise<void>((resolve) => setTimeout(resolve, 10))
    for (const { contender, run, rate, cpu, from, to } of timed) {
      ;(results.runs[contender.name] ??= []).push({
        run,
        rate,
        cpuMsPer1k: cpu,
        gcMsPer1k: (gc.pausedBetween(from, to) * 1000) / count
      })
    }
  } finally {
    gc.stop()
  }
  return results
}

const FORK = fileURLToPath(new URL("./throughputFork.ts", import.meta.url))

/** What a fork is asked to do: every case, with the runs that fall to it. */
export interface ForkPlan {
  readonly url: string
  readonly cases: ReadonlyArray<Case & { readonly runs: ReadonlyArray<number> }>
  readonly collectBeforeRuns: boolean
}

/** The runs (indexes) of `total` that fork `fork` of `forks` takes: run k goes to fork k mod `forks`. */
export const runsOfFork = (total: number, forks: number, fork: number): Array<number> =>
  Array.from({ length: total }, (_, run) => run).filter((run) => run % forks === fork)

/** One contender's runs of one case from every fork, in run order. */
export const mergeRuns = (results: ReadonlyArray<CaseResult>, name: ContenderName): Array<RunResult> =>
  results.flatMap((result) => result.runs[name] ?? []).sort((a, b) => a.run - b.run)

/** A case that a fork did not report: failed for every contender, with why. */
export const failedCase = (names: ReadonlyArray<ContenderName>, message: string): CaseResult => ({
  runs: {},
  failures: Object.fromEntries(names.map((name) => [name, message]))
})

/**
 * Runs `plan` in a fresh process; one CaseResult per case, in order (a failed fork fails its
 * remaining cases). Each wait is bounded by what the case may take: every run of every contender
 * is itself bounded by RUN_LIMIT_MS in the fork, plus a warm-up run each, and the fork's start.
 */
const runFork = async (
  plan: ForkPlan,
  names: ReadonlyArray<ContenderName>,
  log: (line: string) => void
): Promise<Array<CaseResult>> => {
  const child = spawnTs(FORK, [JSON.stringify(plan)])
  const lines = new JsonLines(child)
  const results: Array<CaseResult> = []
  try {
    for (const [index, testCase] of plan.cases.entries()) {
      const start = index === 0 ? (names.length + 1) * RUN_LIMIT_MS : 0
      const limit = start + (testCase.runs.length + 1) * names.length * RUN_LIMIT_MS
      results.push(await lines.next<CaseResult>(limit, `throughput fork, ${sizeLabel(testCase.size)} ${testCase.kind}`))
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    log(`throughput fork failed: ${message}`)
    while (results.length < plan.cases.length) results.push(failedCase(names, message))
  } finally {
    await killChild(child)
  }
  return results
}

export const measureThroughput = async (
  url: string,
  contenders: ReadonlyArray<Contender>,
  settings: ThroughputSettings
): Promise<Array<Omit<Row, "ratio">>> => {
  const baseline = contenders[0]!
  await warmUp(url, [baseline])
  const cases: Array<Case & { readonly runs: number }> = []
  for (const size of SIZES) {
    for (const kind of KINDS) {
      const count = await calibrate(baseline, url, makePayload(size, kind), size, settings.targetMs)
      cases.push({ size, kind, count, runs: size >= 16 * 1024 ? settings.largeFrameRuns : settings.runs })
      settings.log(`throughput ${sizeLabel(size)} ${kind}: ${count} messages per run, window ${windowFor(size)}`)
    }
  }
  const collected = cases.map((): Array<CaseResult> => [])
  if (settings.forks < 1) {
    await warmUp(url, contenders)
    for (const [index, testCase] of cases.entries()) {
      collected[index]!.push(
        await runCase(url, contenders, testCase, runsOfFork(testCase.runs, 1, 0), settings.collectBeforeRuns)
      )
    }
  } else {
    for (let fork = 0; fork < settings.forks; fork++) {
      const plan: ForkPlan = {
        url,
        collectBeforeRuns: settings.collectBeforeRuns,
        cases: cases.map((testCase) => ({
          ...testCase,
          runs: runsOfFork(testCase.runs, settings.forks, fork)
        }))
      }
      const results = await runFork(plan, contenders.map((contender) => contender.name), settings.log)
      results.forEach((result, index) => collected[index]!.push(result))
      settings.log(`throughput: fork ${fork + 1} of ${settings.forks} done`)
    }
  }
  const rows: Array<Omit<Row, "ratio">> = []
  for (const [index, testCase] of cases.entries()) {
    const measurement = `throughput ${sizeLabel(testCase.size)} ${testCase.kind}`
    const merged = new Map(contenders.map((contender) => [contender, mergeRuns(collected[index]!, contender.name)]))
    for (const [contender, runs] of merged) {
      const failure = collected[index]!.map((result) => result.failures[contender.name]).find((text) =>
        text !== undefined
      )
      rows.push({
        measurement,
        unit: "msg/s",
        better: "higher",
        contender: contender.name,
        summary: summarize(runs.map((run) => run.rate)),
        baseline: baseline.name,
        perRun: { cpuMsPer1k: runs.map((run) => run.cpuMsPer1k), gcMsPer1k: runs.map((run) => run.gcMsPer1k) },
        ...(failure === undefined ? {} : { note: `(failed: ${failure})` })
      })
    }
    const medianOf = (runs: ReadonlyArray<RunResult>, pick: (run: RunResult) => number): number =>
      median(runs.map(pick))
    settings.log(
      `${measurement}: ${
        [...merged].map(([c, runs]) => `${c.name} ${Math.round(medianOf(runs, (run) => run.rate))}`).join(", ")
      }; ` +
        `CPU / GC ms per 1,000: ${
          [...merged].map(([c, runs]) =>
            `${c.name} ${medianOf(runs, (run) => run.cpuMsPer1k).toFixed(0)} / ${
              medianOf(runs, (run) => run.gcMsPer1k).toFixed(1)
            }`
          ).join(", ")
        }`
    )
  }
  return rows
}
