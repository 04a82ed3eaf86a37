// `tsx bench/abRoundTripInterleaved.ts <dist>[:write|:pull|:writepull] ... <rounds>`: the
// Connection round trip (64 B, one in flight, `send` then a `Stream.toPull` of `messages`; `:write`
// uses `write`; `:pull` reads the inbound buffer's own pull, internal, without the Stream and its
// channel executor; `:writepull` both) of one or more builds and raw ws, interleaved one round trip
// at a time (1 ms apart, the order rotating), so that every build meets the same load: on a
// machine shared with other work the load moves by more within a block of `abRoundTrip.ts` than
// the changes it compares. Prints per build the p50 over all its round trips and its ratio to raw
// ws's. Each build's round trips run in one long-lived fiber, started by a callback (no fiber made
// per round trip); its clock starts inside that fiber, so the wake is not counted.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type * as Lifeline from "../src/index.js"
import { rawRoundTrips } from "./rawEcho.js"
import { startEchoServer } from "./server.js"

const specs = process.argv.slice(2, -1)
const rounds = Number(process.argv[process.argv.length - 1])
const WARM_UP = 200
const payload = "x".repeat(64)
const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms))

type RoundTrip = () => Promise<number>

const lifeline = async (url: string, spec: string): Promise<RoundTrip> => {
  const [directory, mode] = spec.split(":") as [string, string | undefined]
  const lib = (await import(pathToFileURL(`${resolve(directory)}/index.js`).href)) as typeof Lifeline
  const layer = Layer.merge(lib.NodeTransport.layer, Logger.remove(Logger.defaultLogger))
  const scope = Effect.runSync(Scope.make())
  const [connection, pull] = await Effect.runPromise(
    Effect.gen(function*() {
      const connection = yield* lib.Connection.connect(url)
      if (mode?.endsWith("pull") === true) {
        const inbound = Reflect.get(Reflect.get(connection, "listener") as object, "inbound") as {
          readonly pull: Effect.Effect<unknown, unknown>
        }
        return [connection, inbound.pull] as const
      }
      return [connection, yield* Stream.toPull(connection.messages)] as const
    }).pipe(Scope.extend(scope), Effect.provide(layer))
  )
  let start: (() => void) | undefined
  let finished: ((elapsed: number) => void) | undefined
  Effect.runFork(Effect.forever(
    Effect.gen(function*() {
      yield* Effect.async<void>((resume) => {
        start = () => resume(Effect.void)
      })
      const started = performance.now()
      if (mode?.startsWith("write") === true) yield* connection.write(payload)
      else yield* connection.send(payload)
      yield* pull
      finished!(performance.now() - started)
    }).pipe(Effect.orDie)
  ))
  await sleep(10)
  return () =>
    new Promise<number>((done) => {
      finished = done
      const go = start!
      start = undefined
      go()
    })
}

const raw = async (url: string): Promise<RoundTrip> => (await rawRoundTrips(url, payload)).roundTrip

const server = await startEchoServer()
const names = ["raw", ...specs]
const roundTrips = [await raw(server.url), ...(await Promise.all(specs.map((spec) => lifeline(server.url, spec))))]
const times: Array<Array<number>> = names.map(() => [])
for (let round = 0; round < rounds + WARM_UP; round++) {
  for (let turn = 0; turn < roundTrips.length; turn++) {
    const index = (round + turn) % roundTrips.length
    const elapsed = await roundTrips[index]!()
    if (round >= WARM_UP) times[index]!.push(elapsed)
    await sleep(1)
  }
}
await server.stop()
const baseline = median(times[0]!)
names.forEach((name, index) => {
  const p50 = median(times[index]!)
  console.log(`${name}: p50 ${(p50 * 1000).toFixed(1)} us, ${(p50 / baseline).toFixed(3)}x raw ws`)
})
process.exit(0)
