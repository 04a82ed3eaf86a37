/**
 * What trials against a real peer (Python `websockets` 10.4, see docs/trials.md) showed, kept here
 * without Python, over real sockets on 127.0.0.1:
 * - a typed Client fed by `Stream.run(client.sink)`, 10 000 values with one over the peer's
 *   message limit in the middle: the peer closes with 1009 and the Client stops (Closed, no retry);
 *   the peer got exactly the values before the big one, the sink fails with `SendError Closed`,
 *   every value after it was either written or reported once (`MessageFailed`), none twice;
 * - a peer that sends a close frame and then never ends TCP (nor reads): the Client answers it,
 *   goes to Backoff with `Disconnected 1000 server` and connects again after a short grace
 *   (`PEER_CLOSE_GRACE_MS` in src/NodeTransport.ts), not after ws's 30 s close timeout.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema, Stream } from "effect"
import * as Net from "node:net"
import { WebSocketServer } from "ws"
import { Client, Codec, type SendError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"
import { acceptFor, onRequestHead } from "./support/tcpServer.js"

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

/**
 * A raw TCP peer that upgrades (RFC 6455 handshake), then, on its first connection only, sends a
 * close frame (1000) and does nothing else, ever: it keeps TCP open (allowHalfOpen) and ignores
 * what comes. Later connections upgrade and stay open. `firstGot`: the bytes the first one got after
 * its upgrade.
 */
const frozenAfterClose = Effect.acquireRelease(
  Effect.async<
    {
      readonly port: number
      readonly firstGot: Array<number>
      readonly upgrades: () => number
      readonly server: Net.Server
      readonly sockets: Set<Net.Socket>
    }
  >((resume) => {
    const firstGot: Array<number> = []
    const sockets = new Set<Net.Socket>()
    let upgrades = 0
    const server = Net.createServer({ allowHalfOpen: true }, (tcp) => {
      sockets.add(tcp)
      onRequestHead(tcp, (head) => {
        tcp.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${
            acceptFor(head)
          }\r\n\r\n`
        )
        if (upgrades++ > 0) return
        tcp.write(Buffer.from([0x88, 0x02, 0x03, 0xe8]))
        tcp.on("data", (more: Buffer) => {
          firstGot.push(...more)
        })
      })
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({
        port: (server.address() as Net.AddressInfo).port,
        firstGot,
        upgrades: () => upgrades,
        server,
        sockets
      })))
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const tcp of sockets) tcp.destroy()
      server.close(() => resume(Effect.void))
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
    30_000
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
    30_000
  )

  it.scopedLive(
    "a peer that sends a close frame, then never reads, writes nor ends TCP: the Client answers, leaves Open (Backoff, Disconnected 1000 server) and connects again without waiting for ws's 30 s",
    () =>
      Effect.gen(function*() {
        const server = yield* frozenAfterClose
        // closeTimeout: the second connection, which never answers a close either, is cut at the end
        const client = yield* Client.make({
          url: `ws://127.0.0.1:${server.port}`,
          ...fast,
          connection: { closeTimeout: "100 millis" }
        })
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff._tag === "Backoff" ? backoff.error : undefined)
          .toMatchObject({ _tag: "Disconnected", code: 1000, wasClean: true, initiator: "server" })
        yield* awaitState(client, (s) => s._tag === "Open" && s.attempt === 2)
        // the first connection got the client's answer (a masked close frame), then its FIN
        expect(server.firstGot[0]).toBe(0x88)
        expect(server.upgrades()).toBe(2)
        yield* client.send("after")
        expect(yield* client.failed).toBe(0)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )
})
