// `node --expose-gc --import tsx bench/heapCount.ts [contender] [count] [--shapes]`: what `count`
// idle connections of a contender keep, by constructor: a heap snapshot before and after they open
// (v8.writeHeapSnapshot), grouped by node type and name, per connection, largest first. With
// `--shapes`, plain objects, arrays and closures are grouped by their property names (arrays by
// their length too), which tells apart the small objects that all show as `Object` or `Array`.
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

const args = process.argv.slice(2).filter((arg) => arg !== "--shapes")
const byShape = process.argv.includes("--shapes")

const groups = (file: string): Map<string, Group> => {
  const snapshot = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: {
      meta: {
        node_fields: Array<string>
        node_types: [Array<string>]
        edge_fields: Array<string>
        edge_types: [Array<string>]
      }
    }
    nodes: Array<number>
    edges: Array<number>
    strings: Array<string>
  }
  const meta = snapshot.snapshot.meta
  const fields = meta.node_fields
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const edgeCountAt = fields.indexOf("edge_count")
  const types = meta.node_types[0]
  const edgeWidth = meta.edge_fields.length
  const edgeTypeAt = meta.edge_fields.indexOf("type")
  const edgeNameAt = meta.edge_fields.indexOf("name_or_index")
  const edgeTypes = meta.edge_types[0]
  const result = new Map<string, Group>()
  let edge = 0
  for (let index = 0; index < snapshot.nodes.length; index += width) {
    const type = types[snapshot.nodes[index + typeAt]!]!
    let name = snapshot.strings[snapshot.nodes[index + nameAt]!]!
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = ""
    if (type === "number" || type === "hidden" || type === "code") name = ""
    let shape = ""
    const edges = snapshot.nodes[index + edgeCountAt]!
    if (byShape && (type === "closure" || (type === "object" && (name === "Object" || name === "Array")))) {
      const properties: Array<string> = []
      let elements = 0
      for (let at = edge; at < edge + edges * edgeWidth; at += edgeWidth) {
        const edgeType = edgeTypes[snapshot.edges[at + edgeTypeAt]!]
        if (edgeType === "element") elements++
        else if (edgeType === "property") {
          const property = snapshot.strings[snapshot.edges[at + edgeNameAt]!]!
          if (property !== "map" && property !== "__proto__") properties.push(property)
        }
      }
      shape = ` {${properties.slice(0, 12).join(",")}}${name === "Array" ? ` n=${elements}` : ""}`
    }
    edge += edges * edgeWidth
    const key = `${type}:${name.slice(0, 60)}${shape}`
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

const name = args[0] ?? "client"
const count = Number(args[1] ?? 1000)
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
  process.stdout.write(`${bytes.toFixed(1).padStart(8)} B ${objects.toFixed(2).padStart(6)}  ${key.slice(0, 200)}\n`)
}
process.stdout.write(`total ${total.toFixed(0)} B per connection (${name}, ${count})\n`)
await pool.close()
await server.stop()
process.exit(0)
