// One memory run, in a fresh process started with --expose-gc:
//   node --expose-gc --import tsx bench/memoryChild.ts <contender> <url> <count,count,...>
// Opens the counts cumulatively (e.g. 1000, then 4000 more for 5000) and prints one JSON line:
// per idle connection, the growth of heapUsed and RSS since before the first one was opened.
import { loadContender } from "./contenders/index.js"
import { forceGc, sleep } from "./util.js"

export interface MemoryPoint {
  readonly connections: number
  readonly heapPerConnection: number
  readonly rssPerConnection: number
}

export interface MemoryReport {
  readonly points: ReadonlyArray<MemoryPoint>
  readonly error?: string
}

const settle = async (): Promise<NodeJS.MemoryUsage> => {
  // Let closing and timers finish, then collect until the heap stops shrinking.
  await sleep(300)
  let previous = Number.POSITIVE_INFINITY
  for (let round = 0; round < 5; round++) {
    forceGc()
    await sleep(20)
    const heap = process.memoryUsage().heapUsed
    if (heap >= previous * 0.995) break
    previous = heap
  }
  return process.memoryUsage()
}

const main = async (): Promise<MemoryReport> => {
  const [name, url, counts] = process.argv.slice(2)
  if (name === undefined || url === undefined || counts === undefined) {
    throw new Error("usage: <contender> <url> <counts>")
  }
  const contender = await loadContender(name)
  const targets = counts.split(",").map(Number)
  // Warm up: load and run the code paths once, so that the baseline includes them.
  // MEMORY_WARM_UP: how many connections the warm-up opens (default 20).
  const warm = contender.pool(url)
  await warm.open(Number(process.env["MEMORY_WARM_UP"] ?? 20))
  await warm.close()
  const before = await settle()
  const pool = contender.pool(url)
  const points: Array<MemoryPoint> = []
  let open = 0
  try {
    for (const target of targets) {
      await pool.open(target - open)
      open = target
      const after = await settle()
      points.push({
        connections: target,
        heapPerConnection: (after.heapUsed - before.heapUsed) / target,
        rssPerConnection: (after.rss - before.rss) / target
      })
    }
  } catch (error) {
    return { points, error: `at ${open} connections: ${error instanceof Error ? error.message : String(error)}` }
  }
  return { points }
}

const report = await main().catch((error: unknown): MemoryReport => ({
  points: [],
  error: error instanceof Error ? error.message : String(error)
}))
process.stdout.write(`${JSON.stringify(report)}\n`)
process.exit(0)
