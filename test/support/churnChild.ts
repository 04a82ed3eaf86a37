// A process that lives for weeks, compressed: makes and closes `count` Clients, each to a new
// endpoint, in a fresh process started with --expose-gc:
//   node --expose-gc --import tsx test/support/churnChild.ts <count> <query|path> [breakers]
// `query`: every endpoint differs only by `?session=N` (one label, one breaker key per server);
// `path`: each also has a path of its own (`/room/N`), a new label and breaker key every time.
// Three echo servers and one refused port share the Clients (a quarter refused); every fifth
// Client has options beyond `{ url }`. With `breakers`, all of them run under one
// `CircuitBreaker.layer`, as in a process that provides it once. Prints one JSON line: at each
// checkpoint the heap after GC, the size of Effect's metric registry (lifeline's keys) and of
// lifeline's tag tables, the outcomes so far.
import { Effect, Layer, Logger, Metric, Option, Stream } from "effect"
import { CircuitBreaker, Client, NodeTransport } from "../../src/index.js"
import * as Metrics from "../../src/internal/metrics.js"
import { TestServer } from "../../src/testing/index.js"
import { closedPort } from "./ports.js"

const [countText, mode, withBreakers] = process.argv.slice(2)
const count = Number(countText)
if (!Number.isInteger(count) || count <= 0 || (mode !== "query" && mode !== "path")) {
  process.stderr.write("usage: <count> <query|path> [breakers]\n")
  process.exit(2)
}

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  process.stderr.write("run with --expose-gc\n")
  process.exit(2)
}

const settle = Effect.promise(async () => {
  await new Promise((resolve) => setTimeout(resolve, 200))
  let previous = Number.POSITIVE_INFINITY
  for (let round = 0; round < 6; round++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
    const heap = process.memoryUsage().heapUsed
    if (heap >= previous * 0.998) break
    previous = heap
  }
  return process.memoryUsage().heapUsed
})

const BATCH = 50
const SETTLED = new Set(["Open", "Backoff", "Suspended", "Closed"])

interface Checkpoint {
  readonly clients: number
  readonly heap: number
  readonly registryKeys: number
  readonly endpointTagValues: number
  readonly tagTables: { readonly endpoints: number; readonly failures: number }
}

const lifelineKeys = () => Metric.unsafeSnapshot().filter((pair) => pair.metricKey.name.startsWith("lifeline_"))

const checkpoint = (clients: number): Effect.Effect<Checkpoint> =>
  Effect.map(settle, (heap) => {
    const keys = lifelineKeys()
    const values = new Set<string>()
    for (const pair of keys) {
      for (const tag of pair.metricKey.tags) if (tag.key === "endpoint") values.add(tag.value)
    }
    return {
      clients,
      heap,
      registryKeys: keys.length,
      endpointTagValues: values.size,
      tagTables: Metrics.tagTableSizes()
    }
  })

const program = Effect.gen(function*() {
  const servers = [
    yield* TestServer.make({ record: false }),
    yield* TestServer.make({ record: false }),
    yield* TestServer.make({ record: false })
  ]
  const refused = `ws://127.0.0.1:${yield* closedPort}`
  const bases = [...servers.map((server) => server.url), refused]
  const outcomes: Record<string, number> = {}
  const one = (n: number) => {
    const base = bases[n % bases.length]!
    const url = mode === "query" ? `${base}/feed?session=${n}` : `${base}/room/${n}?session=${n}`
    return Effect.scoped(Effect.gen(function*() {
      const client = yield* (n % 5 === 0 ? Client.make({ url, heartbeat: false }) : Client.make({ url }))
      const state = yield* client.state.changes.pipe(
        Stream.filter((s) => SETTLED.has(s._tag)),
        Stream.runHead,
        Effect.timeout("10 seconds"),
        Effect.orDie
      )
      const tag = Option.match(state, { onNone: () => "ended", onSome: (s) => s._tag })
      outcomes[tag] = (outcomes[tag] ?? 0) + 1
    }))
  }
  // Warm-up: the code paths loaded and run once before the first measure.
  yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => count + i), one, { concurrency: BATCH, discard: true })
  const checkpoints: Array<Checkpoint> = [yield* checkpoint(0)]
  const marks = new Set([Math.floor(count / 4), Math.floor(count / 2), count])
  let made = 0
  const started = Date.now()
  while (made < count) {
    let upTo = Math.min(count, made + 500)
    for (const mark of marks) if (mark > made && mark < upTo) upTo = mark
    yield* Effect.forEach(Array.from({ length: upTo - made }, (_, i) => made + i), one, {
      concurrency: BATCH,
      discard: true
    })
    made = upTo
    if (marks.has(made)) checkpoints.push(yield* checkpoint(made))
  }
  return {
    count,
    mode,
    breakers: withBreakers === "breakers",
    seconds: (Date.now() - started) / 1000,
    outcomes,
    checkpoints
  }
})

const layer = Layer.mergeAll(
  NodeTransport.layer,
  Logger.remove(Logger.defaultLogger),
  withBreakers === "breakers" ? CircuitBreaker.layer() : Layer.empty
)

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(layer))).then(
  (report) => {
    process.stdout.write(`${JSON.stringify(report)}\n`)
    process.exit(0)
  },
  (error: unknown) => {
    process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`)
    process.exit(1)
  }
)
