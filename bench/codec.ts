// What a codec costs: pipelined echo through one lifeline Connection, messages per second, for a
// small struct ({ symbol, price, size, side }: about 60 bytes of JSON), three ways in the same run:
//
//   raw      frames as they are: the same JSON text written and read as strings
//   by hand  JSON.stringify on the way out, JSON.parse (Stream.map) on the way in, no checks
//   codec    `Codec.json(schema)`: Schema encode + JSON.stringify out, JSON.parse + Schema decode in
//
// Each message is encoded once and decoded once (its echo). The echo server runs in its own
// process. The contenders take turns in a different order each run (`turnOrder`); median of the
// runs, and each one's ratio to raw; and the CPU time this process spent per message (user +
// system, the connection's whole client side), which a busy machine sways less than the rate.
//
//   npm run bench:codec [-- --runs 5 --count 20000 --only raw|codec]
import { Effect, Schema, Stream } from "effect"
import type * as Lifeline from "../src/index.js"
import { LifelineLive } from "./contenders/connection.js"
import { startEchoServer } from "./server.js"
import { median, turnOrder } from "./util.js"

// The compiled package, as the other benchmarks run it (bench/lifeline.ts).
const lifeline = (await import(new URL("../dist/index.js", import.meta.url).href)) as typeof Lifeline
const { Codec, Connection } = lifeline

const argumentAfter = (flag: string, fallback: number): number => {
  const index = process.argv.indexOf(flag)
  const value = index === -1 ? Number.NaN : Number(process.argv[index + 1])
  return Number.isFinite(value) && value > 0 ? value : fallback
}

const RUNS = argumentAfter("--runs", 5)
const COUNT = argumentAfter("--count", 20_000)
const WINDOW = 500

const Order = Schema.Struct({
  symbol: Schema.String,
  price: Schema.Number,
  size: Schema.Number.pipe(Schema.int()),
  side: Schema.Literal("buy", "sell")
})
type Order = typeof Order.Type

const order: Order = { symbol: "ACME", price: 101.25, size: 300, side: "buy" }
const orderText = JSON.stringify(order)

/** `write` up to `window` unanswered messages, refill once half came back; resolves the elapsed ms. */
const pipelined = <A, E1, E2>(
  write: (value: A) => Effect.Effect<void, E1>,
  messages: Stream.Stream<unknown, E2>,
  value: A,
  count: number
): Effect.Effect<number, E1 | E2> =>
  Effect.scoped(Effect.gen(function*() {
    let sent = 0
    let echoed = 0
    let check = 0
    const refill = Effect.whileLoop({
      while: () => sent < count && sent - echoed < WINDOW,
      body: () => write(value),
      step: () => {
        sent++
      }
    })
    const started = performance.now()
    const pull = yield* Stream.toPull(messages)
    yield* refill
    while (echoed < count) {
      const chunk = yield* Effect.catchAll(pull, (end) =>
        end._tag === "None" ? Effect.die("ended early") : Effect.fail(end.value))
      // Touch each value so no contender skips its decoding.
      for (const message of chunk) {
        check += typeof message === "string" ? message.length : 1
      }
      echoed += chunk.length
      if (sent - echoed <= WINDOW / 2) {
        yield* refill
      }
    }
    if (check === 0) {
      yield* Effect.die("nothing read")
    }
    return performance.now() - started
  }))

type Way = "raw" | "by hand" | "codec"
const ALL: ReadonlyArray<Way> = ["raw", "by hand", "codec"]
// `--only codec`: one way alone (to profile it: node --cpu-prof --import tsx bench/codec.ts --only codec).
const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined
const WAYS: ReadonlyArray<Way> = only === undefined ? ALL : ALL.filter((way) => way === only)

/** One run: messages per second, and this process's CPU time per message (less swayed by a busy machine). */
const once = async (url: string, way: Way): Promise<{ readonly rate: number; readonly cpuMicros: number }> => {
  const cpu = process.cpuUsage()
  const elapsed = await timed(url, way)
  const used = process.cpuUsage(cpu)
  return { rate: (COUNT / elapsed) * 1000, cpuMicros: (used.user + used.system) / COUNT }
}

const timed = (url: string, way: Way): Promise<number> =>
  Effect.runPromise(
    Effect.gen(function*() {
      switch (way) {
        case "raw": {
          const connection = yield* Connection.connect(url)
          return yield* pipelined(connection.write, connection.messages, orderText, COUNT)
        }
        case "by hand": {
          const connection = yield* Connection.connect(url)
          const write = (value: Order) => connection.write(JSON.stringify(value))
          const messages = Stream.map(connection.messages, (frame) => JSON.parse(frame as string) as Order)
          return yield* pipelined(write, messages, order, COUNT)
        }
        case "codec": {
          const connection = yield* Connection.connect(url, { codec: Codec.json(Order) })
          return yield* pipelined(connection.write, connection.messages, order, COUNT)
        }
      }
    }).pipe(Effect.scoped, Effect.provide(LifelineLive))
  )

const main = async (): Promise<void> => {
  const server = await startEchoServer()
  try {
    // Warm-up: one short run each, not counted.
    for (const way of WAYS) await timed(server.url, way)
    const rates: Record<Way, Array<number>> = { raw: [], "by hand": [], codec: [] }
    const cpu: Record<Way, Array<number>> = { raw: [], "by hand": [], codec: [] }
    for (let run = 0; run < RUNS; run++) {
      for (const index of turnOrder(run, WAYS.length)) {
        const way = WAYS[index]!
        const result = await once(server.url, way)
        rates[way].push(result.rate)
        cpu[way].push(result.cpuMicros)
      }
    }
    const raw = rates.raw.length === 0 ? Number.NaN : median(rates.raw)
    const rawCpu = cpu.raw.length === 0 ? Number.NaN : median(cpu.raw)
    console.log(
      `codec: lifeline Connection, pipelined echo of a ${orderText.length}-byte JSON struct, ${COUNT} messages, median of ${RUNS}`
    )
    console.log("| way | messages/s | ratio to raw | client CPU per message | over raw |")
    console.log("|---|---:|---:|---:|---:|")
    for (const way of WAYS) {
      const rate = median(rates[way])
      const micros = median(cpu[way])
      console.log(
        `| ${way} | ${Math.round(rate).toLocaleString("en-US")} | ${(rate / raw).toFixed(2)}x | ${
          micros.toFixed(1)
        } us | +${(micros - rawCpu).toFixed(1)} us |`
      )
    }
  } finally {
    await server.stop()
  }
}

await main()
