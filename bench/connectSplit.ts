// `tsx bench/connectSplit.ts [count]`: where a Client's connect goes, against a Connection's and
// raw ws's in the same process, turn about: `make` (which runs the first attempt up to the
// socket's creation), from `make`'s return to the Open state, and from Open to `awaitOpen`
// resuming. Three rounds of `count` connects each; medians in ms, one line a round. Alternate
// builds with LIFELINE_DIST (bench/lifeline.ts) to compare two.
import { Effect } from "effect"
import { WebSocket } from "ws"
import { LifelineLive } from "./contenders/connection.js"
import { Client, Connection } from "./lifeline.js"
import { startEchoServer } from "./server.js"

const server = await startEchoServer()
const url = server.url
const median = (values: ReadonlyArray<number>) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN
const count = Number(process.argv[2] ?? 400)

const rawConnect = () =>
  new Promise<number>((resolve) => {
    const started = performance.now()
    const ws = new WebSocket(url)
    ws.on("open", () => {
      const took = performance.now() - started
      ws.close()
      ws.on("close", () => resolve(took))
    })
  })

for (let round = 0; round < 3; round++) {
  const times: Record<"make" | "toOpen" | "resume" | "client" | "connection" | "raw", Array<number>> = {
    make: [],
    toOpen: [],
    resume: [],
    client: [],
    connection: [],
    raw: []
  }
  for (let index = 0; index < count; index++) {
    times.raw.push(await rawConnect())
    await Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const started = performance.now()
        yield* Connection.connect(url)
        times.connection.push(performance.now() - started)
      })).pipe(Effect.provide(LifelineLive))
    )
    await Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const started = performance.now()
        const client = yield* Client.make({ url })
        const made = performance.now()
        let open = Number.NaN
        // Internals: the Client's own state listeners (it is its own Observer), called as it enters Open.
        const observer = client as unknown as {
          onState: (listener: (state: { _tag: string }) => void) => () => void
        }
        const remove = observer.onState((state) => {
          if (state._tag === "Open" && Number.isNaN(open)) open = performance.now()
        })
        yield* client.awaitOpen
        const resumed = performance.now()
        remove()
        times.make.push(made - started)
        times.toOpen.push(open - made)
        times.resume.push(resumed - open)
        times.client.push(resumed - started)
      })).pipe(Effect.provide(LifelineLive))
    )
  }
  const line = Object.entries(times).map(([name, values]) => `${name} ${median(values).toFixed(3)}`).join("  ")
  process.stdout.write(
    `${line}  client/raw ${(median(times.client) / median(times.raw)).toFixed(2)}  connection/raw ${
      (median(times.connection) / median(times.raw)).toFixed(2)
    }\n`
  )
}
await server.stop()
process.exit(0)
