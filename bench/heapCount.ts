// `node --expose-gc --import tsx bench/heapCount.ts [contender] [count]`: what `count` idle
// connections of a contender keep, by constructor: a heap snapshot before and after they open
// (v8.writeHeapSnapshot), grouped by node type and name, per connection, largest first.
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { writeHeapSnapshot } from "node:v8"
import { loadContender } from "./contenders/index.js"
import { startEchoServer } from "./server.js"
import { forceGc, sleep } from "./util.js"

interface Group {
  count: number
  bytes: number
}

const groups = (file: string): Map<string, Group> => {
  const snapshot = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: Array<string>; node_types: [Array<string>] } }
    nodes: Array<number>
    strings: Array<string>
  }
  const fields = snapshot.snapshot.meta.node_fields
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const types = snapshot.snapshot.meta.node_types[0]
  const result = new Map<string, Group>()
  for (let index = 0; index < snapshot.nodes.length; index += width) {
    const type = types[snapshot.nodes[index + typeAt]!]!
    let name = snapshot.strings[snapshot.nodes[index + nameAt]!]!
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = ""
    if (type === "number" || type === "hidden" || type === "code") name = ""
    const key = `${type}:${name.slice(0, 60)}`
    const group = result.get(key) ?? { count: 0, bytes: 0 }
    group.count++
    group.bytes += snapshot.nodes[index + sizeAt]!
    result.set(key, group)
  }
  return result
}

const settle = async () => {
  await sleep(300)
  for (let round = 0; round < 4; round++) {
    forceGc()
    await sleep(20)
  }
}

const name = process.argv[2] ?? "client"
const count = Number(process.argv[3] ?? 1000)
const server = await startEchoServer()
const contender = await loadContender(name)
const warm = contender.pool(server.url)
await warm.open(20)
await warm.close()
await settle()
const beforeFile = join(tmpdir(), `heapCount-before-${process.pid}.heapsnapshot`)
const afterFile = join(tmpdir(), `heapCount-after-${process.pid}.heapsnapshot`)
writeHeapSnapshot(beforeFile)
const pool = contender.pool(server.url)
await pool.open(count)
await settle()
writeHeapSnapshot(afterFile)
const before = groups(beforeFile)
const after = groups(afterFile)
rmSync(beforeFile)
rmSync(afterFile)
const rows: Array<[string, number, number]> = []
let total = 0
for (const [key, group] of after) {
  const was = before.get(key) ?? { count: 0, bytes: 0 }
  const bytes = (group.bytes - was.bytes) / count
  const objects = (group.count - was.count) / count
  total += bytes
  if (Math.abs(bytes) >= 4) rows.push([key, objects, bytes])
}
rows.sort((a, b) => b[2] - a[2])
for (const [key, objects, bytes] of rows) {
  process.stdout.write(`${bytes.toFixed(1).padStart(8)} B ${objects.toFixed(2).padStart(6)}  ${key}\n`)
}
process.stdout.write(`total ${total.toFixed(0)} B per connection (${name}, ${count})\n`)
await pool.close()
await server.stop()
process.exit(0)
