/**
 * Patterns users write that the other tests do not cover, over real sockets on 127.0.0.1:
 * - a burst of 500 concurrent @effect/rpc calls over `effect-lifeline/platform` (perConnection)
 *   while the server is killed and restarted: every call ends, once, with the right answer or a
 *   typed RpcClientError; a second burst after the restart all succeed;
 * - a typed Client fed by a Stream into `client.sink` (20 000 values) against an echoing
 *   TestServer, read back through `client.messages`: all in order, none twice, nothing failed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Queue, Schedule, Schema, Stream } from "effect"
import { Client, Codec } from "effect-lifeline"
import { FaultProxy, TestServer } from "effect-lifeline/testing"
import * as Example from "../examples/rpc.js"
import { awaitState } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"
import { fast, rpcClient, startRpcServer } from "./support/rpcKit.js"

/** What an rpc server saw: every Add that reached a handler, and a signal once `gate` have arrived. */
interface Seen {
  adds: number
  readonly arrived: Queue.Queue<void>
}

/**
 * Add answers at once, except for `a` in 201..500 (the second half of the first burst): those
 * take a minute, so they are in flight when the server is killed.
 */
const handlers = (seen: Seen, gate: number) =>
  Example.Rpcs.toLayer({
    Echo: ({ text }) => Effect.succeed(text),
    Add: ({ a, b }) =>
      Effect.gen(function*() {
        seen.adds++
        if (seen.adds === gate) yield* Queue.offer(seen.arrived, undefined)
        if (a > 200 && a <= 500) yield* Effect.sleep("60 seconds")
        return a + b
      }),
    Wait: ({ millis }) => Effect.as(Effect.sleep(millis), millis),
    Count: ({ to }) => Stream.range(1, to)
  })

/** An rpc server on `port` (0: any) in a scope of its own; a port just freed may take a moment to bind again. */
const startServer = (port: number, gate: number) =>
  Effect.gen(function*() {
    const seen: Seen = { adds: 0, arrived: yield* Queue.unbounded<void>() }
    return { ...(yield* startRpcServer(port, handlers(seen, gate))), seen }
  })

/** How one call of a burst ended. */
type Outcome =
  | { readonly _tag: "ok"; readonly i: number; readonly value: number }
  | { readonly _tag: "failed"; readonly i: number; readonly error: string }

const BURST = 500

describe("user patterns", () => {
  it.scopedLive(
    "@effect/rpc, perConnection: a burst of 500 concurrent calls with the server killed mid-burst and restarted: each call ends once, right answer or RpcClientError, none hangs; a second burst after the restart: 500 ok",
    () =>
      Effect.gen(function*() {
        const first = yield* startServer(0, BURST + 1)
        const proxy = yield* FaultProxy.make(first.port)
        const client = yield* Client.make({ url: proxy.url, ...fast })
        const rpc = yield* rpcClient(client, true)
        expect(yield* rpc.Add({ a: 0, b: 0 })).toBe(0)

        const endings = new Map<number, number>()
        const call = (i: number) =>
          rpc.Add({ a: i, b: 1_000 }).pipe(
            Effect.map((value): Outcome => ({ _tag: "ok", i, value })),
            Effect.catchTag(
              "RpcClientError",
              (error) => Effect.succeed<Outcome>({ _tag: "failed", i, error: error.reason })
            ),
            Effect.tap(() => Effect.sync(() => endings.set(i, (endings.get(i) ?? 0) + 1)))
          )
        const burst = (from: number) =>
          Effect.forEach(Array.from({ length: BURST }, (_, k) => from + k), call, { concurrency: "unbounded" }).pipe(
            Effect.timeoutFail({ duration: "8 seconds", onTimeout: () => "a call of the burst never ended" })
          )

        const inFlight = yield* Effect.fork(burst(1))
        // All 500 calls (and the first Add) reached the server, the 200 quick ones are answered: kill it now.
        yield* Queue.take(first.seen.arrived)
        for (let turn = 0; turn < 500 && endings.size < 200; turn++) yield* Effect.sleep("5 millis")
        expect(endings.size).toBe(200)
        yield* proxy.blackhole
        yield* first.stop
        yield* proxy.reset
        yield* proxy.restore
        const second = yield* startServer(first.port, BURST)
        const outcomes = yield* Fiber.join(inFlight)

        const ok = outcomes.filter((o) => o._tag === "ok")
        const failed = outcomes.filter((o) => o._tag === "failed")
        expect(ok.length + failed.length).toBe(BURST)
        expect([ok.length, failed.length]).toEqual([200, 300])
        expect(failed.every((o) => o.i > 200)).toBe(true)
        expect(outcomes.map((o) => o.i)).toEqual(Array.from({ length: BURST }, (_, k) => 1 + k))
        for (const o of ok) expect(o.value).toBe(o.i + 1_000)
        expect(new Set(failed.map((o) => o.error))).toEqual(new Set(["Protocol"]))
        // None ended twice.
        expect(endings.size).toBe(BURST)
        expect([...endings.values()].every((n) => n === 1)).toBe(true)

        yield* awaitState(client, (state) => state._tag === "Open")
        // Once the rpc client reads again (its own 20 ms pause), calls succeed.
        yield* Effect.retry(
          rpc.Echo({ text: "back" }),
          Schedule.spaced("10 millis").pipe(Schedule.intersect(Schedule.recurs(200)))
        )
        const again = yield* burst(10_001)
        expect(again.filter((o) => o._tag === "ok").length).toBe(BURST)
        for (const o of again) expect(o).toEqual({ _tag: "ok", i: o.i, value: o.i + 1_000 })
        expect(endings.size).toBe(2 * BURST)
        yield* second.stop
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "a typed Client fed by Stream.run(client.sink) with 20 000 values, echoed, read back through client.messages: all in order, none twice, failed 0",
    () =>
      Effect.gen(function*() {
        const N = 20_000
        const Item = Schema.Struct({ n: Schema.Number, label: Schema.String })
        const server = yield* TestServer.make({ record: false })
        const client = yield* Client.make({ url: server.url, ...fast, codec: Codec.json(Item) })
        yield* client.awaitOpen
        const reading = yield* Effect.fork(client.messages.pipe(Stream.take(N), Stream.runCollect))
        yield* Stream.range(0, N - 1).pipe(
          Stream.map((n) => ({ n, label: `item-${n}` })),
          Stream.run(client.sink)
        )
        const back = Chunk.toArray(
          yield* Fiber.join(reading).pipe(
            Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "the echoes never all came back" })
          )
        )
        expect(back.length).toBe(N)
        expect(back.every((item, k) => item.n === k && item.label === `item-${k}`)).toBe(true)
        expect(yield* client.failed).toBe(0)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )
})
