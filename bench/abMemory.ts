// `tsx bench/abMemory.ts <distA> <distB> [runs] [counts] [contender]`: heap per idle Connection
// (or, with `client` as contender, per idle Client) of two builds and raw ws, each run a fresh
// `memoryChild.ts` process per contender (as `npm run bench`'s memory section), the three taking
// turns; prints per contender and count the median heap per connection [min..max] and its ratio
// to raw ws's median. For same-run A/B comparisons of a change to a connection's idle memory.
import { fileURLToPath } from "node:url"
import type { MemoryReport } from "./memoryChild.js"
import { JsonLines, killChild, spawnTs, startEchoServer } from "./server.js"

const CHILD = fileURLToPath(new URL("./memoryChild.ts", import.meta.url))
const [distA, distB] = [process.argv[2]!, process.argv[3]!]
const runs = Number(process.argv[4] ?? 3)
const counts = (process.argv[5] ?? "1000,5000").split(",").map(Number)
const contender = process.argv[6] ?? "connection"

const runChild = async (contender: string, dist: string | undefined, url: string): Promise<MemoryReport> => {
  const previous = process.env["LIFELINE_DIST"]
  if (dist === undefined) delete process.env["LIFELINE_DIST"]
  else process.env["LIFELINE_DIST"] = dist
  const child = spawnTs(CHILD, [contender, url, counts.join(",")], ["--expose-gc"])
  if (previous === undefined) delete process.env["LIFELINE_DIST"]
  else process.env["LIFELINE_DIST"] = previous
  try {
    return await new JsonLines(child).next<MemoryReport>(120_000, `${contender} memory`)
  } finally {
    await killChild(child)
  }
}

const variants: ReadonlyArray<readonly [string, string, string | undefined]> = [
  ["ws", "ws", undefined],
  ["A", contender, distA],
  ["B", contender, distB]
]
const server = await startEchoServer()
const heap = new Map<string, Array<number>>()
try {
  for (let run = 0; run < runs; run++) {
    for (let turn = 0; turn < variants.length; turn++) {
      const [name, contender, dist] = variants[(run + turn) % variants.length]!
      const report = await runChild(contender, dist, server.url)
      if (report.error !== undefined) console.log(`${name}: ${report.error}`)
      for (const point of report.points) {
        const key = `${name}/${point.connections}`
        ;(heap.get(key) ?? heap.set(key, []).get(key)!).push(point.heapPerConnection)
      }
    }
  }
} finally {
  await server.stop()
}
const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
for (const count of counts) {
  const raw = median(heap.get(`ws/${count}`) ?? [Number.NaN])
  for (const [name] of variants) {
    const values = heap.get(`${name}/${count}`) ?? []
    console.log(
      `${String(count).padStart(5)} ${name.padEnd(2)} ${median(values).toFixed(0)} B [${
        Math.min(...values).toFixed(0)
      }..${Math.max(...values).toFixed(0)}] ${(median(values) / raw).toFixed(3)}x raw ws`
    )
  }
}
process.exit(0)
