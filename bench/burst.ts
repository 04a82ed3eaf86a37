// Burst writes with a concurrent reader (issue #15): `count` frames written back to back with no
// window, while a reader takes the echoes. raw ws: `send` in a loop, counting 'message' events.
// lifeline Connection: a `for` loop of `yield* connection.write(payload)`, or
// `Effect.forEach(..., { discard: true })`, while a forked fiber reads `messages` with a
// `Stream.toPull` loop (a chunk at a time), or, as most apps write it, with
// `Stream.runForEach(messages, handler)` and an Effect per frame (the `write` loop only). Each run
// opens its own connection before the clock starts; the time is from the first write to the last
// echo. The contenders alternate within one process.
//
//   node --import tsx bench/burst.ts [runs] [count] [bytes] [text|binary]
import { Effect, Fiber, Stream } from "effect"
import WebSocket from "ws"
import { LifelineLive } from "./contenders/connection.js"
import { Connection } from "./lifeline.js"
import type { Row } from "./results.js"
import type { Payload } from "./util.js"
import { makePayload, median, sizeOf, summarize, turnOrder, withTimeout } from "./util.js"

let _received = 0 // a byte sink: the frames are read, as a user would, and their size kept

/** raw ws: every frame sent in one loop, the echoes counted in 'message'. */
export const wsBurst = (url: string, payload: Payload, count: number): Promise<number> =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once("error", reject)
    socket.once("open", () => resolve(socket))
  }).then((socket) =>
    new Promise<number>((resolve, reject) => {
      let echoed = 0
      socket.on("close", () => reject(new Error("ws: closed during the run")))
      socket.on("message", (data, isBinary) => {
        _received += sizeOf(isBinary ? (data as Buffer) : data.toString())
        if (++echoed === count) {
          const elapsed = performance.now() - started
          socket.removeAllListeners("close")
          socket.once("close", () => resolve(elapsed))
          socket.close()
        }
      })
      const started = performance.now()
      for (let index = 0; index < count; index++) socket.send(payload)
    })
  )

export type BurstStyle = "write" | "forEach"

/** How the reader takes the echoes: a chunk at a time (`Stream.toPull`), or an Effect per frame (`Stream.runForEach`). */
export type BurstReader = "pull" | "runForEach"

/** lifeline Connection: the write loop in this fiber, the reader in a forked one. */
export const connectionBurst = (
  url: string,
  payload: Payload,
  count: number,
  style: BurstStyle,
  read: BurstReader = "pull"
): Promise<number> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const connection = yield* Connection.connect(url)
      const started = performance.now()
      const reader = yield* Effect.fork(
        read === "runForEach"
          ? Stream.runForEach(
            Stream.take(connection.messages, count),
            (message) => Effect.sync(() => void (_received += sizeOf(message)))
          )
          : Effect.scoped(Effect.gen(function*() {
            const pull = yield* Stream.toPull(connection.messages)
            let echoed = 0
            while (echoed < count) {
              const chunk = yield* Effect.orDie(pull)
              for (const message of chunk) _received += sizeOf(message)
              echoed += chunk.length
            }
          }))
      )
      if (style === "write") {
        for (let index = 0; index < count; index++) yield* connection.write(payload)
      } else {
        yield* Effect.forEach(Array.from({ length: count }, () => payload), connection.write, { discard: true })
      }
      yield* Fiber.join(reader)
      return performance.now() - started
    }).pipe(Effect.scoped, Effect.provide(LifelineLive))
  )

const BURST_LIMIT_MS = 60_000

export interface BurstSettings {
  readonly runs: number
  readonly count: number
  readonly sizes: ReadonlyArray<number>
  readonly log: (line: string) => void
}

const sizeLabel = (size: number): string => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`)

/**
 * One row pair (raw ws, Connection) per size and style: messages per second, the median of
 * `runs`, the two alternated in one process (another order each run), after a warm-up run each.
 */
export const measureBurst = async (url: string, settings: BurstSettings): Promise<Array<Omit<Row, "ratio">>> => {
  const rows: Array<Omit<Row, "ratio">> = []
  for (const size of settings.sizes) {
    const payload = makePayload(size, "text")
    const shapes = [
      { style: "write", read: "pull", label: "write + reader" },
      { style: "forEach", read: "pull", label: "forEach + reader" },
      { style: "write", read: "runForEach", label: "write + runForEach reader" }
    ] as const
    for (const { label, read, style } of shapes) {
      const contenders = [
        { name: "ws" as const, run: () => wsBurst(url, payload, settings.count) },
        { name: "connection" as const, run: () => connectionBurst(url, payload, settings.count, style, read) }
      ]
      for (const contender of contenders) {
        await withTimeout(contender.run(), BURST_LIMIT_MS, "burst warm-up").catch(() => undefined)
      }
      const rates = new Map<string, Array<number>>(contenders.map((c) => [c.name, []]))
      // This process's CPU time (user + system) per 1,000 messages: the machine is shared, and
      // CPU per message moves less with the others' load than the rate does.
      const cpu = new Map<string, Array<number>>(contenders.map((c) => [c.name, []]))
      const failures = new Map<string, string>()
      for (let run = 0; run < settings.runs; run++) {
        for (const index of turnOrder(run, contenders.length)) {
          const contender = contenders[index]!
          try {
            const cpuBefore = process.cpuUsage()
            const elapsed = await withTimeout(contender.run(), BURST_LIMIT_MS, `${contender.name} burst`)
            const used = process.cpuUsage(cpuBefore)
            rates.get(contender.name)!.push((settings.count / elapsed) * 1000)
            cpu.get(contender.name)!.push((used.user + used.system) / settings.count)
          } catch (error) {
            failures.set(contender.name, error instanceof Error ? error.message : String(error))
          }
        }
      }
      const measurement = `burst ${sizeLabel(size)} text, ${label}`
      for (const contender of contenders) {
        const failure = failures.get(contender.name)
        rows.push({
          measurement,
          unit: "msg/s",
          better: "higher",
          contender: contender.name,
          summary: summarize(rates.get(contender.name)!),
          baseline: "ws",
          perRun: { cpuMsPer1k: cpu.get(contender.name)!, gcMsPer1k: [] },
          ...(failure === undefined ? {} : { note: `(failed: ${failure})` })
        })
      }
      settings.log(
        `${measurement}: ${contenders.map((c) => `${c.name} ${Math.round(median(rates.get(c.name)!))}`).join(", ")}; ` +
          `CPU ms per 1,000: ${contenders.map((c) => `${c.name} ${median(cpu.get(c.name)!).toFixed(1)}`).join(", ")}`
      )
    }
  }
  return rows
}

if (process.argv[1]?.endsWith("burst.ts")) {
  const { startEchoServer } = await import("./server.js")
  const { withRatios } = await import("./results.js")
  const { renderTable } = await import("./table.js")
  const [runs = "5", count = "50000", bytes = "64,1024"] = process.argv.slice(2)
  const server = await startEchoServer()
  try {
    const rows = await measureBurst(server.url, {
      runs: Number(runs),
      count: Number(count),
      sizes: bytes.split(",").map(Number),
      log: (line) => process.stderr.write(`${line}\n`)
    })
    process.stdout.write(`${renderTable(withRatios(rows))}\n`)
  } finally {
    await server.stop()
  }
  process.exit(0)
}
