// Small helpers shared by the benchmark modules: bounded waits, payloads, statistics.
import { PerformanceObserver } from "node:perf_hooks"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

export type Payload = string | Uint8Array<ArrayBuffer>

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Rejects when `promise` has not settled within `ms`; every wait in the benchmarks is bounded. */
export const withTimeout = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      }
    )
  })

/** A text payload of `bytes` ASCII characters, or `bytes` binary bytes. */
export const makePayload = (bytes: number, kind: "text" | "binary"): Payload => {
  if (kind === "text") return "x".repeat(bytes)
  const data = new Uint8Array(new ArrayBuffer(bytes))
  for (let index = 0; index < bytes; index++) data[index] = index & 0xff
  return data
}

/** Touches a received message so that its decoding cannot be skipped; returns its size. */
export const sizeOf = (message: string | ArrayBuffer | ArrayBufferView): number =>
  typeof message === "string" ? message.length : message.byteLength

export const median = (values: ReadonlyArray<number>): number => percentile(values, 50)

/** Most values within any [t, t + width) window of a sorted list. */
export const densest = (sorted: ReadonlyArray<number>, width: number): number => {
  let best = 0
  let start = 0
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= width) start++
    best = Math.max(best, end - start + 1)
  }
  return best
}

/** Nearest-rank percentile of unsorted values; NaN for none. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: ReadonlyArray<number>
}

export const summarize = (runs: ReadonlyArray<number>): Summary => ({
  median: median(runs),
  min: runs.length === 0 ? Number.NaN : Math.min(...runs),
  max: runs.length === 0 ? Number.NaN : Math.max(...runs),
  runs
})

/**
 * A bootstrap interval for the ratio of two medians, median(`runs`) / median(`baselineRuns`):
 * each set of runs resampled with replacement, `resamples` times, and the central `level` share
 * of the ratios kept. A rough guide to how far the ratio of one bench run can be trusted: at
 * 64 KiB, 10 runs of 0.6 s give an interval 0.10-0.15 wide on 2 cores. It treats the runs as
 * independent, which they are not quite (two runs share each fork), so if anything it is too
 * narrow. Seeded, so a run's JSON is reproducible from its runs. Undefined for fewer than 3 runs
 * on either side.
 */
export const ratioInterval = (
  runs: ReadonlyArray<number>,
  baselineRuns: ReadonlyArray<number>,
  level = 0.9,
  resamples = 2000
): readonly [number, number] | undefined => {
  if (runs.length < 3 || baselineRuns.length < 3) return undefined
  let state = 0x2545f491
  // A 32-bit xorshift: enough to pick runs, and the same picks every time.
  const pick = (values: ReadonlyArray<number>): number => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return values[(state >>> 0) % values.length]!
  }
  const resampledMedian = (values: ReadonlyArray<number>): number => median(values.map(() => pick(values)))
  const ratios = Array.from({ length: resamples }, () => resampledMedian(runs) / resampledMedian(baselineRuns)).sort((
    a,
    b
  ) => a - b)
  // Rounded, not floored: (1 - 0.9) / 2 * 2000 is 99.99999999999999 in floating point.
  const tail = Math.round(((1 - level) / 2) * resamples)
  return [ratios[tail]!, ratios[resamples - 1 - tail]!]
}

/**
 * The order in which `count` contenders take their turns in run `run` (indexes): a Williams
 * design, the textbook answer to carry-over between treatments. Row 0 is 0, 1, n-1, 2, n-2, ...;
 * row k adds k to each; for an odd count the next `count` rows are the same reversed. Over
 * `count` runs (2 x `count` when odd) each contender takes each place equally often and runs right
 * after each of the others equally often. A plain rotation keeps who runs before whom, so
 * whoever always follows the contender that leaves the most garbage pays for it in every run.
 */
export const turnOrder = (run: number, count: number): Array<number> => {
  const shift = run % count
  const row = Array.from(
    { length: count },
    (_, place) => ((place % 2 === 1 ? (place + 1) / 2 : count - place / 2) + shift) % count
  )
  return count % 2 === 1 && Math.floor(run / count) % 2 === 1 ? row.reverse() : row
}

/** Runs `task` on batches of at most `size` items at a time, in order. */
export const inBatches = async <A>(count: number, size: number, task: () => Promise<A>): Promise<Array<A>> => {
  const results: Array<A> = []
  for (let done = 0; done < count; done += size) {
    const batch = Math.min(size, count - done)
    results.push(...await Promise.all(Array.from({ length: batch }, task)))
  }
  return results
}

let collect: (() => void) | undefined

/** Runs a full garbage collection (exposing `gc` at run time if Node was started without it). */
export const forceGc = (): void => {
  if (collect === undefined) {
    if (typeof globalThis.gc === "function") collect = globalThis.gc
    else {
      setFlagsFromString("--expose-gc")
      collect = runInNewContext("gc") as () => void
    }
  }
  collect()
}

/**
 * Records every garbage-collection pause of this process from now on; `pausedBetween` sums the
 * pauses that started in a window of `performance.now()` time. Entries arrive a little after the
 * pause, so read a window once the process has turned the event loop since it ended.
 */
export const watchGcPauses = (): {
  readonly pausedBetween: (from: number, to: number) => number
  readonly stop: () => void
} => {
  const pauses: Array<readonly [start: number, duration: number]> = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push([entry.startTime, entry.duration])
  })
  observer.observe({ entryTypes: ["gc"] })
  return {
    pausedBetween: (from, to) =>
      pauses.reduce((sum, [start, duration]) => (start >= from && start < to ? sum + duration : sum), 0),
    stop: () => observer.disconnect()
  }
}
