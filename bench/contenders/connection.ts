// lifeline `Connection`: `connect` in a scope, `write` (fire-and-forget) for pipelining, `send`
// (completes on the write callback) for request/response, `messages` read a chunk at a time.
import { Effect, Exit, Layer, Logger, LogLevel, Scope, Stream } from "effect"
import type { Transport } from "../../src/index.js"
import { Connection, NodeTransport } from "../lifeline.js"
import type { Payload } from "../util.js"
import { sizeOf } from "../util.js"
import type { Contender } from "./types.js"

/** The Node transport, with lifeline's log lines (Client state changes) switched off. */
export const LifelineLive: Layer.Layer<Transport.Transport> = Layer.merge(
  NodeTransport.layer,
  Logger.minimumLogLevel(LogLevel.None)
)

export const runLifeline = <A, E>(program: Effect.Effect<A, E, Transport.Transport | Scope.Scope>): Promise<A> =>
  Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(LifelineLive)))

let _received = 0

/**
 * The pipelined echo loop shared by Connection and Client: `write` up to `window` unanswered
 * frames, then on every chunk of echoes refill once half the window came back; `count` echoes.
 */
export const pipelined = <E>(
  write: (data: Payload) => Effect.Effect<void, E>,
  messages: Stream.Stream<string | Uint8Array>,
  payload: Payload,
  count: number,
  window: number
): Effect.Effect<number, E> =>
  Effect.suspend(() => {
    let sent = 0
    let echoed = 0
    const refill = Effect.whileLoop({
      while: () => sent < count && sent - echoed < window,
      body: () => write(payload),
      step: () => {
        sent++
      }
    })
    const started = performance.now()
    // A pull loop, not Stream.take or Stream.runForEachWhile: in effect 3.22 both keep the
    // elements they have seen (take: a full GC every few hundred 64 KiB echoes; runForEachWhile:
    // over 300 MiB for 5,000 of them).
    return Effect.scoped(Effect.gen(function*() {
      const pull = yield* Stream.toPull(messages)
      yield* refill
      while (echoed < count) {
        const chunk = yield* Effect.orDie(pull)
        for (const message of chunk) _received += sizeOf(message)
        echoed += chunk.length
        if (sent - echoed <= window / 2) yield* refill
      }
      return performance.now() - started
    }))
  })

/** One frame in flight: `send` (awaits the write), then pull the echo; `spacing` ms apart. */
export const roundTrips = <E>(
  send: (data: Payload) => Effect.Effect<void, E>,
  messages: Stream.Stream<string | Uint8Array>,
  payload: Payload,
  count: number,
  spacing: number
): Effect.Effect<Array<number>, E | string, Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(messages)
    const rtts: Array<number> = []
    let buffered = 0
    for (let index = 0; index < count; index++) {
      const started = performance.now()
      yield* send(payload)
      // One frame is in flight, so each pull returns exactly its echo.
      if (buffered === 0) {
        const chunk = yield* Effect.mapError(pull, () => "the stream ended early")
        for (const message of chunk) _received += sizeOf(message)
        buffered = chunk.length
      }
      buffered--
      rtts.push(performance.now() - started)
      yield* Effect.sleep(spacing)
    }
    return rtts
  })

/** Times `count` sequential opens, each released (close handshake awaited) before the next. */
export const connectTimes = <A, E>(open: Effect.Effect<A, E, Transport.Transport | Scope.Scope>, count: number) =>
  runLifeline(Effect.gen(function*() {
    const times: Array<number> = []
    for (let index = 0; index < count; index++) {
      yield* Effect.scoped(Effect.gen(function*() {
        const started = performance.now()
        yield* open
        times.push(performance.now() - started)
      }))
    }
    return times
  }))

/** Idle connections opened 100 at a time into one scope, for the memory benchmark. */
export const pool = <A, E>(open: Effect.Effect<A, E, Transport.Transport | Scope.Scope>) => {
  const scope = Effect.runSync(Scope.make())
  return {
    open: (count: number) =>
      Effect.runPromise(
        Effect.forEach(Array.from({ length: count }), () => open, {
          concurrency: 100,
          discard: true
        }).pipe(Scope.extend(scope), Effect.provide(LifelineLive))
      ),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export const connection: Contender = {
  name: "connection",
  label: "lifeline Connection",
  throughput: (url, payload, count, window) =>
    runLifeline(Effect.gen(function*() {
      const connection = yield* Connection.connect(url)
      return yield* pipelined(connection.write, connection.messages, payload, count, window)
    })),
  latency: (url, payload, count, spacing) =>
    runLifeline(Effect.gen(function*() {
      const connection = yield* Connection.connect(url)
      return yield* roundTrips(connection.send, connection.messages, payload, count, spacing)
    })),
  connect: (url, count) => connectTimes(Connection.connect(url), count),
  pool: (url) => pool(Connection.connect(url))
}
