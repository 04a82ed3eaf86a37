/**
 * What trials against a real peer (Python `websockets` 10.4, see docs/trials.md) showed, kept here
 * without Python, over real sockets on 127.0.0.1:
 * - a typed Client fed by `Stream.run(client.sink)`, 10 000 values with one over the peer's
 *   message limit in the middle: the peer closes with 1009 and the Client stops (Closed, no retry);
 *   the peer got exactly the values before the big one, the sink fails with `SendError Closed`,
 *   every value after it was either written or reported once (`MessageFailed`), none twice;
 * - a peer that sends a close frame and then never closes TCP: the Client goes to Backoff with
 *   `Disconnected 1000 server` at once, connects again, and ends the old TCP connection itself
 *   (it does not wait for ws's 30 s close timeout).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema, Stream } from "effect"
import type * as Net from "node:net"
import { WebSocketServer } from "ws"
import { Client, Codec, type SendError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"

const fast = {
  reconnect: { initialDelay: "5 millis", maxDelay: "20 millis" }
} as const

/** A peer as the burst below sees it: where to connect, what it received (values' `i`), upgrades. */
interface Peer {
  readonly url: string
  readonly received: Effect.Effect<ReadonlyArray<number>>
  readonly accepted: Effect.Effect<number>
}

const Item = Schema.Struct({ i: Schema.Number, pad: Schema.String })
const N = 10_000
const BIG = 5_000
const BEHIND = 2_000

/**
 * `Stream.run(client.sink)` of 1..BIG+BEHIND, value BIG `bigBytes` long (over the peer's 1 MiB
 * limit), then, once the client is Closed, BIG+BEHIND+1..N. Checks the exact outcome; returns how
 * many values behind the big one were reported failed (the others before the refused one were
 * written, and lost with the link).
 */
const tooBigBurst = (peer: Peer, bigBytes: number) =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url: peer.url, ...fast, eventsCapacity: 100_000, codec: Codec.json(Item) })
    const failedIs: Array<number> = []
    const failedReasons = new Set<string>()
    yield* Effect.forkScoped(Stream.runForEach(client.events, (event) =>
      Effect.sync(() => {
        if (event._tag !== "MessageFailed") return
        failedReasons.add((event.error as SendError).reason)
        failedIs.push(JSON.parse(event.error.payload as string).i)
      })))
    yield* client.awaitOpen
    const values = (from: number, to: number) =>
      Stream.range(from, to).pipe(Stream.map((i) => ({ i, pad: i === BIG ? "x".repeat(bigBytes) : "" })))
    const outcome = yield* values(1, BIG + BEHIND).pipe(
      Stream.concat(Stream.drain(Stream.fromEffect(awaitState(client as unknown as Client.Client, isTag("Closed"))))),
      Stream.concat(values(BIG + BEHIND + 1, N)),
      Stream.run(client.sink),
      Effect.either
    )
    // Closed by the peer's 1009, which is fatal: no retry
    const closed = yield* client.state.get
    expect(closed._tag === "Closed" && closed.error._tag === "Some" ? closed.error.value : undefined)
      .toMatchObject({ _tag: "Disconnected", code: 1009, initiator: "server" })
    // the sink fails with the first value it offered once the client was Closed: one behind the big
    // one still waiting for room, or the first after the wait
    expect(Either.isLeft(outcome)).toBe(true)
    const error = (outcome as Either.Left<SendError, void>).left
    expect(error).toMatchObject({ _tag: "SendError", reason: "Closed" })
    const refused: number = JSON.parse(error.payload as string).i
    expect(refused).toBeGreaterThan(BIG)
    expect(refused).toBeLessThanOrEqual(BIG + BEHIND + 1)
    // the peer got exactly 1..BIG-1, in order
    expect(yield* peer.received).toEqual(Array.from({ length: BIG - 1 }, (_, k) => k + 1))
    // from the big one on: a run that was written (and lost with the link), then the failed tail,
    // each reported once (the big one fails too when the link dropped before its last byte went)
    // `failed` counts them, and the refused one too when it had waited for room (accepted, then told)
    const counted = (yield* client.failed) - failedIs.length
    expect(refused === BIG + BEHIND + 1 ? [0] : [0, 1]).toContain(counted)
    const sorted = [...failedIs].sort((a, b) => a - b)
    const first = sorted[0] ?? refused
    expect(first).toBeGreaterThanOrEqual(BIG)
    expect(sorted).toEqual(Array.from({ length: refused - first }, (_, k) => first + k))
    expect([...failedReasons].every((r) => r === "WriteFailed" || r === "Closed")).toBe(true)
    expect(yield* client.outboxSize).toBe(0)
    expect(yield* peer.accepted).toBe(1)
    expect(yield* client.close()).toEqual([])
    return failedIs.length
  })

/** A `ws` server on 127.0.0.1, port 0, closed with the scope (its connections terminated). */
const wsServer = (options: { readonly maxPayload?: number } = {}) =>
  Effect.acquireRelease(
    Effect.async<WebSocketServer>((resume) => {
      const s: WebSocketServer = new WebSocketServer(
        { host: "127.0.0.1", port: 0, ...options },
        () => resume(Effect.succeed(s))
      )
    }),
    (s) =>
      Effect.async<void>((resume) => {
        for (const c of s.clients) c.terminate()
        s.close(() => resume(Effect.void))
      })
  )

describe("trials against peers", () => {
  it.scopedLive(
    "a sink burst with one value over a TestServer's maxPayload: Closed by Disconnected 1009, no retry, the values before it arrive, the rest written or failed once",
    () =>
      Effect.gen(function*() {
        // ws's server discards what follows the big frame (it reads on), so what is behind it is written
        const server = yield* TestServer.make({ maxPayload: 1024 * 1024, handler: "ignore" })
        yield* tooBigBurst({
          url: server.url,
          accepted: server.accepted,
          received: Effect.map(server.received, (all) => all.map((m) => JSON.parse(m as string).i))
        }, 2 * 1024 * 1024)
      }).pipe(Effect.provide(quietNode)),
    15_000
  )

  it.scopedLive(
    "the same against a peer that, as Python websockets, sends 1009 and drops the TCP connection: the values behind the big one are failed (WriteFailed, then Closed), once each",
    () =>
      Effect.gen(function*() {
        const wss = yield* wsServer({ maxPayload: 1024 * 1024 })
        const received: Array<number> = []
        let accepted = 0
        wss.on("connection", (ws, request) => {
          accepted++
          const tcp = request.socket as Net.Socket
          ws.on("message", (data) => {
            received.push(JSON.parse(String(data)).i)
          })
          // ws has written its close frame (1009) by now: drop the link without reading on
          ws.on("error", () => {
            tcp.destroy()
          })
        })
        const failed = yield* tooBigBurst({
          url: `ws://127.0.0.1:${(wss.address() as Net.AddressInfo).port}`,
          accepted: Effect.sync(() => accepted),
          received: Effect.sync(() => [...received])
        }, 16 * 1024 * 1024)
        expect(failed).toBeGreaterThan(0)
      }).pipe(Effect.provide(quietNode)),
    20_000
  )

  it.scopedLive(
    "a peer that sends a close frame and never closes TCP: Backoff with Disconnected 1000 server at once, a new link, and the old TCP connection ended by the client",
    () =>
      Effect.gen(function*() {
        const tcpEnded: Array<boolean> = []
        let upgrades = 0
        const wss = yield* wsServer()
        wss.on("connection", (ws, request) => {
          const k = upgrades++
          tcpEnded[k] = false
          const tcp = request.socket as Net.Socket
          tcp.on("close", () => {
            tcpEnded[k] = true
          })
          // the first connection only: a raw close frame (1000, no reason), then nothing, ever
          if (k === 0) {
            tcp.write(Buffer.from([0x88, 0x02, 0x03, 0xe8]))
            ws.removeAllListeners("message")
            tcp.removeAllListeners("data")
          }
        })
        const port = (wss.address() as Net.AddressInfo).port
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, ...fast })
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff._tag === "Backoff" ? backoff.error : undefined)
          .toMatchObject({ _tag: "Disconnected", code: 1000, initiator: "server" })
        yield* awaitState(client, (s) => s._tag === "Open" && s.attempt === 2)
        for (let turn = 0; turn < 400 && !tcpEnded[0]; turn++) yield* Effect.sleep("5 millis")
        expect(tcpEnded[0]).toBe(true)
        expect(upgrades).toBe(2)
        yield* client.send("after")
      }).pipe(Effect.provide(quietNode)),
    15_000
  )
})
