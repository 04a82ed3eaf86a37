// @effect/platform's Socket over `ws`: `Socket.makeWebSocket`, `runRaw` for inbound frames (the
// handler counts them and, when a refill is due, returns the refill effect for the socket to run),
// `writer` for outbound ones.
import * as Socket from "@effect/platform/Socket"
import { Deferred, Effect, Exit, Fiber, Layer, Queue, Scope } from "effect"
import WS from "ws"
import type { Payload } from "../util.js"
import { sizeOf } from "../util.js"
import type { Contender } from "./types.js"

// The one cast of the benchmarks: `ws` implements the WebSocket API that @effect/platform expects.
const WebSocketLive = Layer.succeed(
  Socket.WebSocketConstructor,
  (url: string, protocols?: string | Array<string>) => new WS(url, protocols) as unknown as globalThis.WebSocket
)

const run = <A, E>(program: Effect.Effect<A, E, Socket.WebSocketConstructor | Scope.Scope>): Promise<A> =>
  Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(WebSocketLive)))

let _received = 0

/** Opens a socket; its `runRaw` fiber lives in the current scope. */
const open = (url: string, handler: (data: string | Uint8Array) => Effect.Effect<void> | void) =>
  Effect.gen(function*() {
    const socket = yield* Socket.makeWebSocket(url)
    const opened = yield* Deferred.make<void>()
    const runner = yield* Effect.forkScoped(socket.runRaw(handler, { onOpen: Deferred.succeed(opened, undefined) }))
    yield* Deferred.await(opened).pipe(Effect.raceFirst(Effect.flatMap(Fiber.join(runner), () => Effect.never)))
    const write = yield* socket.writer
    const close = Effect.zipRight(Effect.orDie(write(new Socket.CloseEvent(1000))), Effect.ignore(Fiber.join(runner)))
    return { write, close }
  })

const throughput = (url: string, payload: Payload, count: number, window: number): Promise<number> =>
  run(Effect.gen(function*() {
    let sent = 0
    let echoed = 0
    let refilling = false
    const finished = yield* Deferred.make<number>()
    let started = 0
    const { close, write } = yield* open(url, (data) => {
      _received += sizeOf(data)
      echoed++
      if (echoed === count) Deferred.unsafeDone(finished, Exit.succeed(performance.now() - started))
      else if (!refilling && sent - echoed <= window / 2) {
        refilling = true
        return refill
      }
    })
    const refill: Effect.Effect<void> = Effect.whileLoop({
      while: () => sent < count && sent - echoed < window,
      body: () => write(payload),
      step: () => {
        sent++
      }
    }).pipe(
      Effect.orDie,
      Effect.ensuring(Effect.sync(() => {
        refilling = false
      }))
    )
    started = performance.now()
    yield* refill
    const elapsed = yield* Deferred.await(finished)
    yield* close
    return elapsed
  }))

const latency = (url: string, payload: Payload, count: number, spacing: number): Promise<Array<number>> =>
  run(Effect.gen(function*() {
    const echoes = yield* Queue.unbounded<string | Uint8Array>()
    const { close, write } = yield* open(url, (data) => {
      echoes.unsafeOffer(data)
    })
    const rtts: Array<number> = []
    for (let index = 0; index < count; index++) {
      const started = performance.now()
      yield* Effect.orDie(write(payload))
      _received += sizeOf(yield* Queue.take(echoes))
      rtts.push(performance.now() - started)
      yield* Effect.sleep(spacing)
    }
    yield* close
    return rtts
  }))

const connect = (url: string, count: number): Promise<Array<number>> =>
  run(Effect.gen(function*() {
    const times: Array<number> = []
    for (let index = 0; index < count; index++) {
      yield* Effect.scoped(Effect.gen(function*() {
        const started = performance.now()
        const { close } = yield* open(url, () => {})
        times.push(performance.now() - started)
        yield* close
      }))
    }
    return times
  }))

export const platform: Contender = {
  name: "platform",
  label: "@effect/platform Socket",
  throughput,
  latency,
  connect,
  pool: (url) => {
    // The sockets outlive each `open` call: they live in this pool's own scope.
    const scope = Effect.runSync(Scope.make())
    const closes: Array<Effect.Effect<void>> = []
    return {
      open: (count) =>
        Effect.runPromise(
          Effect.forEach(
            Array.from({ length: count }),
            () => Effect.map(open(url, () => {}), (opened) => closes.push(opened.close)),
            { concurrency: 100, discard: true }
          ).pipe(Scope.extend(scope), Effect.provide(WebSocketLive))
        ),
      close: () =>
        Effect.runPromise(
          Effect.forEach(closes, (close) => close, { concurrency: "unbounded", discard: true }).pipe(
            Effect.zipRight(Scope.close(scope, Exit.void))
          )
        )
    }
  }
}
