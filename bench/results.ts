// The shape of one measured row, shared by the measurement modules, the table and the JSON file.
import type { ContenderName } from "./contenders/types.js"
import type { Summary } from "./util.js"
import { ratioInterval } from "./util.js"

/** Who a row measures: a contender, or the herd's partysocket with a delay drawn per socket (`herd.ts`). */
export type RowContender = ContenderName | "partysocketJittered"

export interface Row {
  /** What was measured, e.g. "throughput 64 B text"; rows with the same measurement sit together. */
  readonly measurement: string
  readonly unit: string
  readonly better: "higher" | "lower"
  readonly contender: RowContender
  readonly summary: Summary
  /** median / the baseline's median; NaN when the baseline has no value. */
  readonly ratio: number
  readonly baseline: RowContender
  /** A 90 % bootstrap interval of `ratio` (`ratioInterval`); absent for the baseline and for fewer than 3 runs. */
  readonly ratioInterval?: readonly [number, number]
  /** Why a value is missing or what limited it. */
  readonly note?: string
  /**
   * Per run, in the order of `summary.runs` (throughput only): the measuring process's CPU time
   * (user + system) and its garbage-collection pauses, in ms per 1,000 messages. They tell a run
   * that cost the client more work from one that waited on the server or the machine.
   */
  readonly perRun?: { readonly cpuMsPer1k: ReadonlyArray<number>; readonly gcMsPer1k: ReadonlyArray<number> }
}

/** Adds each row's ratio to the baseline contender's median of the same measurement. */
export const withRatios = (
  rows: ReadonlyArray<Omit<Row, "ratio">>
): Array<Row> =>
  rows.map((row) => {
    const baseline = rows.find((other) => other.measurement === row.measurement && other.contender === row.baseline)
    const ratio = baseline === undefined ? Number.NaN : row.summary.median / baseline.summary.median
    const interval = baseline === undefined || baseline === row
      ? undefined
      : ratioInterval(row.summary.runs, baseline.summary.runs)
    return { ...row, ratio, ...(interval === undefined ? {} : { ratioInterval: interval }) }
  })
