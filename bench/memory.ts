// 4. Heap and RSS per idle connection: each run is a fresh child process per contender.
import { fileURLToPath } from "node:url"
import type { Contender } from "./contenders/types.js"
import type { MemoryReport } from "./memoryChild.js"
import type { Row } from "./results.js"
import { JsonLines, killChild, spawnTs } from "./server.js"
import { summarize } from "./util.js"

const CHILD = fileURLToPath(new URL("./memoryChild.ts", import.meta.url))

export interface MemorySettings {
  readonly runs: number
  /** Connection counts, opened cumulatively in each run. */
  readonly counts: ReadonlyArray<number>
  /** How many of the runs go on past the first count (the largest counts take long). */
  readonly largeRuns: number
  readonly log: (line: string) => void
}

const runChild = async (contender: Contender, url: string, counts: ReadonlyArray<number>): Promise<MemoryReport> => {
  const child = spawnTs(CHILD, [contender.name, url, counts.join(",")], ["--expose-gc"])
  try {
    return await new JsonLines(child).next<MemoryReport>(120_000, `${contender.name} memory`)
  } catch (error) {
    return { points: [], error: error instanceof Error ? error.message : String(error) }
  } finally {
    await killChild(child)
  }
}

export const measureMemory = async (
  url: string,
  contenders: ReadonlyArray<Contender>,
  settings: MemorySettings
): Promise<Array<Omit<Row, "ratio">>> => {
  type Series = { heap: Array<number>; rss: Array<number>; errors: Set<string> }
  const series = new Map<string, Series>()
  const key = (contender: Contender, count: number) => `${contender.name}/${count}`
  for (const contender of contenders) {
    for (const count of settings.counts) series.set(key(contender, count), { heap: [], rss: [], errors: new Set() })
  }
  for (let run = 0; run < settings.runs; run++) {
    for (let turn = 0; turn < contenders.length; turn++) {
      const contender = contenders[(run + turn) % contenders.length]!
      const counts = run < settings.largeRuns ? settings.counts : settings.counts.slice(0, 1)
      const report = await runChild(contender, url, counts)
      for (const count of counts) {
        const entry = series.get(key(contender, count))!
        const point = report.points.find((candidate) => candidate.connections === count)
        if (point !== undefined) {
          entry.heap.push(point.heapPerConnection)
          entry.rss.push(point.rssPerConnection)
        } else if (report.error !== undefined) entry.errors.add(report.error)
      }
      if (report.error !== undefined) settings.log(`memory ${contender.name}: ${report.error}`)
    }
    settings.log(`memory: run ${run + 1} of ${settings.runs} done`)
  }
  const baseline = contenders[0]!.name
  const rows: Array<Omit<Row, "ratio">> = []
  for (const count of settings.counts) {
    for (const [label, pick] of [["heap", (s: Series) => s.heap], ["RSS", (s: Series) => s.rss]] as const) {
      for (const contender of contenders) {
        const entry = series.get(key(contender, count))!
        const errors = [...entry.errors]
        rows.push({
          measurement: `${label} per idle connection at ${count}`,
          unit: "KiB",
          better: "lower",
          contender: contender.name,
          summary: summarize(pick(entry).map((bytes) => bytes / 1024)),
          baseline,
          ...(errors.length === 0 ? {} : { note: `(failed: ${errors.join("; ")})` })
        })
      }
    }
  }
  return rows
}
