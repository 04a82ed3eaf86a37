// `tsx bench/abRoundTrip.ts <distA> <distB> [blocks] [perBlock]`: the Connection round trip (64 B,
// one in flight, send then pull the echo) of two builds and raw ws, alternated in blocks in one
// process against one echo server; per build the median of the blocks' p50 and its ratio to raw
// ws's. For same-run A/B comparisons of a change on the round-trip path. Also per build: this
// process's CPU time (user + system) per round trip, median of the blocks, and its ratio to raw
// ws's: what a change on the client's path saves, less moved than wall time by other work on the
// machine (the echo server runs in another process).
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Stream from "effect/Stream"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type * as Lifeline from "../src/index.js"
import { rawRoundTrips } from "./rawEcho.js"
import { startEchoServer } from "./server.js"

const [distA, distB] = [process.argv[2]!, process.argv[3]!]
const blocks = Number(process.argv[4] ?? 10)
const perBlock = Number(process.argv[5] ?? 500)
const payload = "x".repeat(64)
const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms))

const load = async (directory: string) =>
  (await import(pathToFileURL(`${resolve(directory)}/index.js`).href)) as typeof Lifeline

const lifelineBlock = (lib: typeof Lifeline, url: string) => (count: number) =>
  Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const connection = yield* lib.Connection.connect(url)
      const pull = yield* Stream.toPull(connection.messages)
      const rtts: Array<number> = []
      for (let index = 0; index < count; index++) {
        const started = performance.now()
        yield* connection.send(payload)
        yield* pull
        rtts.push(performance.now() - started)
        yield* Effect.sleep(1)
      }
      return rtts
    })).pipe(Effect.provide(Layer.merge(lib.NodeTransport.layer, Logger.remove(Logger.defaultLogger))))
  )

const rawBlock = (url: string) => async (count: number) => {
  const raw = await rawRoundTrips(url, payload)
  const rtts: Array<number> = []
  for (let index = 0; index < count; index++) {
    rtts.push(await raw.roundTrip())
    await sleep(1)
  }
  raw.close()
  return rtts
}

const server = await startEchoServer()
const runners: Record<string, (count: number) => Promise<Array<number>>> = {
  raw: rawBlock(server.url),
  A: lifelineBlock(await load(distA), server.url),
  B: lifelineBlock(await load(distB), server.url)
}
const p50s: Record<string, Array<number>> = { raw: [], A: [], B: [] }
const cpus: Record<string, Array<number>> = { raw: [], A: [], B: [] }
for (const run of Object.values(runners)) await run(100)
const orders = [["raw", "A", "B"], ["B", "raw", "A"], ["A", "B", "raw"], ["raw", "B", "A"], ["A", "raw", "B"], [
  "B",
  "A",
  "raw"
]]
for (let block = 0; block < blocks; block++) {
  for (const name of orders[block % orders.length]!) {
    const before = process.cpuUsage()
    p50s[name]!.push(median(await runners[name]!(perBlock)))
    const used = process.cpuUsage(before)
    cpus[name]!.push((used.user + used.system) / perBlock)
  }
}
await server.stop()
const raw = median(p50s["raw"]!)
const rawCpu = median(cpus["raw"]!)
for (const name of ["raw", "A", "B"]) {
  const value = median(p50s[name]!)
  const cpu = median(cpus[name]!)
  console.log(
    `${name}: p50 ${(value * 1000).toFixed(1)} us, ${(value / raw).toFixed(3)}x raw ws (blocks: ${
      p50s[name]!.map((v) => (v * 1000).toFixed(0)).join(" ")
    }); CPU ${cpu.toFixed(1)} us per round trip, ${(cpu / rawCpu).toFixed(3)}x raw ws`
  )
}
