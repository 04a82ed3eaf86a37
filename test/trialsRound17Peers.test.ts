/**
 * Round 17: two more real peers users' backends often are, Debian's Python aiohttp 3.8.4 and
 * Tornado 6.2 (servers in `test/support/aiohttpPeer.py` and `tornadoPeer.py`), against the Client
 * and Connection over the Node transport: their heartbeats, limits, closes, rejections,
 * subprotocols, compression, a slow reader, a kill and restart, a graceful shutdown. What each
 * does is in docs/trials.md ("round 17"). Loopback only; every wait bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Option, Schedule, Stream } from "effect"
import { Client, Connection, Reconnect } from "../src/index.js"
import { awaitState, echoOf, firstBackoffAfter, isTag } from "./support/clientKit.js"
import { provideNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { awaitLine, hasAiohttp, hasTornado, type PeerKind, pythonPeer } from "./support/pythonPeers.js"
import { sendsThroughARestart } from "./support/restartTrial.js"
import { SLOW_FRAME_BYTES, SLOW_FRAMES, throughClientSink, throughConnectionSink } from "./support/slowSinks.js"

const peers: ReadonlyArray<readonly [PeerKind, boolean]> = [["aiohttp", hasAiohttp], ["tornado", hasTornado]]

/** Retries every 200 ms: the default schedule's first delays (about 1.1 s, then 2.2 s) would make the file slow. */
const quickRetry = Schedule.spaced("200 millis")

describe.each(peers)("round 17: %s as a peer, the server killed and restarted", (kind, present) => {
  it.scopedLive.skipIf(!present)(
    "SIGKILL, a send each 100 ms meanwhile, the server restarted on the same port: the Client reconnects; every send issued while it was not Open arrives once, after the restart; each send arrives once or is reported failed; none twice, none out of order",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer(kind)
        const client = yield* Client.make({ url: peer.url("/echo"), retry: quickRetry })
        yield* sendsThroughARestart(client, {
          kill: peer.kill,
          restart: peer.restart,
          received: () => peer.linesOf("GOT echo ").map((line) => Number(line.split(" ")[0]!.slice(1)))
        })
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!present)(
    "graceful shutdown (SIGTERM: on_shutdown / each handler closes with 1001): Backoff with the server's close (Tornado: 1001; aiohttp: 1000, its own race), retried as transient, then Open again on the restarted server",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer(kind)
        const client = yield* Client.make({ url: peer.url("/echo"), retry: quickRetry })
        yield* client.awaitOpen
        const firstBackoff = yield* Effect.fork(awaitState(client, isTag("Backoff")))
        yield* peer.terminate
        expect(yield* firstBackoff).toMatchObject({
          _tag: "Backoff",
          attempt: 1,
          // aiohttp's own on_shutdown idiom (ws.close(code=1001) from on_shutdown) sends 1000: the
          // close wakes the handler's `async for`, the handler returns, and aiohttp closes the
          // returned socket with its default 1000 before on_shutdown's close gets to write.
          error: kind === "aiohttp"
            ? { _tag: "Disconnected", code: 1000, reason: "", wasClean: true, initiator: "server" }
            : { _tag: "Disconnected", code: 1001, reason: "server shutting down", wasClean: true, initiator: "server" }
        })
        yield* peer.restart
        const open = yield* awaitState(client, isTag("Open"))
        expect(open._tag).toBe("Open")
        yield* client.send("after")
        yield* awaitLine(peer, (line) => line.startsWith("GOT echo after "), "the restarted server got 'after'")
      }).pipe(provideNode),
    30_000
  )
})

describe("round 17: aiohttp's manners", () => {
  it.scopedLive.skipIf(!hasAiohttp)(
    "WebSocketResponse(heartbeat=0.4): aiohttp pings and drops a client whose pong is not back within 0.2 s; the Node transport answers each ping: the same connection (attempt 1) is Open through four heartbeats, then closed by the server's own 4002",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const client = yield* Client.make({ url: peer.url("/heartbeat") })
        yield* client.awaitOpen
        yield* awaitLine(peer, (line) => line.startsWith("ALIVE heartbeat "), "four heartbeats passed")
        const backoff = yield* firstBackoffAfter(client, client.send("that was four"))
        expect(backoff).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 4002, reason: "four heartbeats", wasClean: true, initiator: "server" }
        })
        expect(peer.linesOf("ALIVE heartbeat ")).toEqual(["False"])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasAiohttp)(
    "autoping=False: aiohttp hands the Client's ping to the handler and sends no pong; the Client's heartbeat ends that connection with TimeoutError heartbeat and retries",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const client = yield* Client.make({
          url: peer.url("/noautoping"),
          heartbeat: { interval: "200 millis", timeout: "200 millis" }
        })
        const backoff = yield* firstBackoffAfter(client, Effect.void)
        expect(backoff).toMatchObject({ attempt: 1, error: { _tag: "TimeoutError", operation: "heartbeat" } })
        yield* awaitLine(peer, (line) => line === "PING noautoping", "the handler got the ping")
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasAiohttp)(
    "autoclose=False: the handler gets the close frame (1000 'bye'); when it never answers, close ends after closeTimeout with 1006 (not clean); when it answers 4100 by hand, close returns the server's 4100",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const closeWith = (path: string) =>
          Effect.scoped(Effect.flatMap(
            Connection.connect(peer.url(path), { closeTimeout: "300 millis" }),
            (connection) => connection.close(1000, "bye")
          ))
        expect(yield* closeWith("/noautoclose")).toMatchObject({
          _tag: "Disconnected",
          code: 1006,
          reason: "",
          wasClean: false,
          initiator: "client"
        })
        expect(yield* closeWith("/noautoclose?answer=1")).toMatchObject({
          _tag: "Disconnected",
          code: 4100,
          reason: "answered by hand",
          wasClean: true,
          initiator: "client"
        })
        expect(peer.linesOf("CLOSEFRAME noautoclose ")).toEqual(["1000 bye", "1000 bye"])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasAiohttp)(
    "a handler that raises after prepare: aiohttp drops TCP without a close frame: Disconnected 1006 from the transport, retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const client = yield* Client.make({ url: peer.url("/raises"), retry: quickRetry })
        yield* client.awaitOpen
        expect(yield* firstBackoffAfter(client, client.send("boom"))).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, wasClean: false, initiator: "transport" }
        })
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasAiohttp)(
    "ws.close(code=4001, message=...): Disconnected 4001 with the reason, from the server, clean; retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const client = yield* Client.make({ url: peer.url("/close4001"), retry: quickRetry })
        expect(yield* firstBackoffAfter(client, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 4001, reason: "go away, 4001", wasClean: true, initiator: "server" }
        })
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasAiohttp)(
    "web.Response(status=503, headers={'Retry-After': '7'}): HandshakeRejected, status 503, retryAfter 7 s; the Client's next delay is at least 7 s",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const refused = yield* Effect.flip(Effect.scoped(Connection.connect(peer.url("/busy"))))
        expect(refused).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 503 })
        expect(refused._tag === "ConnectError" && refused.retryAfter).toEqual(Duration.seconds(7))
        const client = yield* Client.make({ url: peer.url("/busy"), retry: quickRetry })
        const backoff = yield* firstBackoffAfter(client, Effect.void)
        expect(backoff).toMatchObject({
          attempt: 1,
          error: { _tag: "ConnectError", reason: "HandshakeRejected", status: 503 }
        })
        expect(backoff._tag === "Backoff" && Duration.greaterThanOrEqualTo(backoff.delay, Duration.seconds(7))).toBe(
          true
        )
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasAiohttp)(
    "a message sent as three frames (text, continuation, final continuation): one message, 'fragmented'",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const connection = yield* Connection.connect(peer.url("/fragments"))
        const first = yield* Stream.runHead(connection.messages)
        expect(first).toEqual(Option.some("fragmented"))
      }).pipe(provideNode),
    30_000
  )
})

describe("round 17: Tornado's manners", () => {
  it.scopedLive.skipIf(!hasTornado)(
    "ping_interval 0.1 s, ping_timeout 1 s: Tornado pings and would close a client whose pong is late; the Node transport answers each: the connection stays Open until the server's own 4002, with pongs counted",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("tornado")
        const client = yield* Client.make({ url: peer.url("/ping") })
        const backoff = yield* firstBackoffAfter(client, Effect.asVoid(client.awaitOpen))
        expect(backoff).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 4002, reason: "ten pings", wasClean: true, initiator: "server" }
        })
        yield* awaitLine(peer, (line) => line.startsWith("PONGS "), "the server counted the pongs")
        const [pongs, code] = peer.linesOf("PONGS ")[0]!.split(" ")
        expect(Number(pongs)).toBeGreaterThan(0)
        expect(code).toBe("4002")
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasTornado)(
    "check_origin refusing: a Node client sends no Origin, so Tornado never asks check_origin and accepts it; with an Origin header it refuses: HandshakeRejected 403, not retried; the allowed Origin opens",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("tornado")
        yield* Effect.scoped(Connection.connect(peer.url("/origin")))
        expect(peer.linesOf("ORIGIN ")).toEqual([])
        const client = yield* Client.make({
          url: peer.url("/origin"),
          headers: { Origin: "https://evil.example" }
        })
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: { _tag: "Some", value: { _tag: "ConnectError", reason: "HandshakeRejected", status: 403 } }
        })
        yield* Effect.scoped(Connection.connect(peer.url("/origin"), { headers: { Origin: "https://app.example" } }))
        expect(peer.linesOf("ORIGIN ")).toEqual(["https://evil.example", "https://app.example"])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasTornado)(
    "self.close(4000, reason): Disconnected 4000 with the reason, from the server, clean; retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("tornado")
        const client = yield* Client.make({ url: peer.url("/close4000"), retry: quickRetry })
        expect(yield* firstBackoffAfter(client, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 4000, reason: "tornado says bye", wasClean: true, initiator: "server" }
        })
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasTornado)(
    "on_message that raises: Tornado aborts the connection (1006 from the transport, retried); an async on_message that raises leaves it open and unread, answering nothing, not even pings: the Client's heartbeat ends it (TimeoutError heartbeat)",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("tornado")
        const aborts = yield* Client.make({ url: peer.url("/raises"), retry: quickRetry })
        yield* aborts.awaitOpen
        expect(yield* firstBackoffAfter(aborts, aborts.send("boom"))).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, wasClean: false, initiator: "transport" }
        })
        const stalls = yield* Client.make({
          url: peer.url("/raisesasync"),
          retry: quickRetry,
          heartbeat: { interval: "200 millis", timeout: "200 millis" },
          connection: { closeTimeout: "300 millis" }
        })
        expect(Option.getOrThrow(yield* echoOf(stalls, "before"))).toBe("before")
        expect(yield* firstBackoffAfter(stalls, stalls.send("raise"))).toMatchObject({
          attempt: 1,
          error: { _tag: "TimeoutError", operation: "heartbeat" }
        })
      }).pipe(provideNode),
    30_000
  )
})

describe.each(peers)("round 17: %s, limits, subprotocols and compression", (kind, present) => {
  it.scopedLive.skipIf(!present)(
    "a frame over the server's limit (1024 bytes): the server closes with 1009, final by default (the frame was written: only the close tells); with maxMessageSize 1024 the same send fails TooLarge before any write and the link stays up",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer(kind)
        const client = yield* Client.make({ url: peer.url("/maxsize"), retry: quickRetry })
        yield* client.awaitOpen
        expect(Option.getOrThrow(yield* echoOf(client, "small"))).toBe("small")
        yield* client.send("x".repeat(2000))
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: {
            _tag: "Some",
            value: {
              _tag: "Disconnected",
              code: 1009,
              reason: kind === "aiohttp" ? "" : "message too big",
              wasClean: true,
              initiator: "server"
            }
          }
        })
        expect(yield* client.failed).toBe(0)

        const bounded = yield* Client.make({ url: peer.url("/maxsize"), connection: { maxMessageSize: 1024 } })
        yield* bounded.awaitOpen
        const tooLarge = yield* Effect.flip(bounded.send("x".repeat(2000)))
        expect(tooLarge).toMatchObject({ _tag: "SendError", reason: "TooLarge" })
        expect(Option.getOrThrow(yield* echoOf(bounded, "after"))).toBe("after")
        expect((yield* bounded.state.get)._tag).toBe("Open")
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!present)(
    "subprotocols: the server's choice is the connection's protocol; none in common: the server answers 101 without one, and the Client ends Closed with ProtocolViolation (not retried)",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer(kind)
        const connection = yield* Connection.connect(peer.url("/proto"), { protocols: ["chat.v1", "chat.v2"] })
        // aiohttp takes the client's first that it knows; Tornado's select_subprotocol here prefers v2.
        expect(connection.protocol).toBe(kind === "aiohttp" ? "chat.v1" : "chat.v2")
        const client = yield* Client.make({ url: peer.url("/proto"), connection: { protocols: ["chat.v9"] } })
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: { _tag: "Some", value: { _tag: "ConnectError", reason: "ProtocolViolation" } }
        })
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!present)(
    "permessage-deflate: negotiated when both sides offer it, not when either refuses; the echo is the same either way",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer(kind)
        const [compressing, plain] = kind === "aiohttp" ? ["/echo", "/nocompress"] : ["/deflate", "/echo"]
        const text = "a".repeat(1000)
        for (
          const [path, perMessageDeflate] of [[compressing, true], [compressing, false], [plain, true]] as const
        ) {
          const echoed = yield* Effect.scoped(Effect.flatMap(
            Client.make({ url: peer.url(path), connection: { perMessageDeflate } }),
            (client) => echoOf(client, text)
          ))
          expect(Option.getOrThrow(echoed)).toBe(text)
        }
        // What each server negotiated: aiohttp's window bits (0: none), Tornado's compressor.
        expect(peer.linesOf("OPEN ").map((line) => line.split(" ").pop())).toEqual(
          kind === "aiohttp" ? ["15", "0", "0"] : ["True", "False", "False"]
        )
      }).pipe(provideNode),
    30_000
  )
})

describe("round 17: aiohttp's heartbeat on a handler that never reads", () => {
  it.scopedLive.skipIf(!hasAiohttp)(
    "heartbeat=0.1 on a push-only handler (it never calls receive(), where aiohttp reads pongs): aiohttp drops the client although it answered every ping: Disconnected 1006 from the transport, retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const client = yield* Client.make({ url: peer.url("/pushonly"), retry: quickRetry })
        const ticks = yield* Effect.fork(Stream.runCollect(Stream.take(client.messages, 1)))
        expect(yield* firstBackoffAfter(client, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, wasClean: false, initiator: "transport" }
        })
        expect(Chunk.toReadonlyArray(yield* ticks)).toEqual(["tick 0"])
        yield* awaitLine(peer, (line) => line === "DROPPED pushonly 1006 True", "aiohttp dropped it")
      }).pipe(provideNode),
    30_000
  )
})

describe("round 17: Tornado reading slowly (an async on_message: the next message is read once it returns)", () => {
  const CAPACITY = 8

  it.scopedLive.skipIf(!hasTornado)(
    "Client: Stream.run(frames, client.sink) of 300 frames of 16 KiB of 'é' with an outbox of 8: the outbox, read before each frame, never above 8; close writes what is queued; Tornado gets all 300, in order, whole, then 1000; failed 0",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("tornado")
        const { highest, ...outcome } = yield* throughClientSink(peer.url("/slow"), CAPACITY)
        expect(outcome).toEqual({ unsent: 0, failed: 0 })
        expect(highest).toBeLessThanOrEqual(CAPACITY)
        yield* awaitTrue(Effect.sync(() => peer.linesOf("SLOW ").length === 1), "Tornado's count", 4000)
        expect(peer.linesOf("SLOW ")).toEqual([`${SLOW_FRAMES} True 1000`])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasTornado)(
    "Connection: Stream.run(frames, connection.sink) with writeHighWaterMark 256 KiB: bufferedAmount, read before each frame, never above the mark plus one frame; Tornado gets all 300, in order, whole, then 1000",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("tornado")
        const MARK = 256 * 1024
        expect(yield* throughConnectionSink(peer.url("/slow"), MARK)).toBeLessThanOrEqual(MARK + SLOW_FRAME_BYTES)
        yield* awaitTrue(
          Effect.sync(() => peer.linesOf("SLOW ").length === 1),
          "Tornado's count",
          4000
        )
        expect(peer.linesOf("SLOW ")).toEqual([`${SLOW_FRAMES} True 1000`])
      }).pipe(provideNode),
    30_000
  )
})

describe("round 17: close frames the peers write", () => {
  it.scopedLive.skipIf(!hasAiohttp)(
    "aiohttp ws.close(code=4001, message=<200 bytes>): aiohttp writes a close frame over 125 bytes; ws refuses it: Disconnected 1002 'invalid payload length 126' from this side, final by the default policy (the server's 4001 is lost); a shouldRetry that lets this side's 1002 through retries it",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("aiohttp")
        const client = yield* Client.make({ url: peer.url("/longreason"), retry: quickRetry })
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: {
            _tag: "Some",
            value: {
              _tag: "Disconnected",
              code: 1002,
              reason: "Invalid WebSocket frame: invalid payload length 126",
              wasClean: false,
              initiator: "client"
            }
          }
        })
        // The guide's way to retry it: a shouldRetry that lets this side's 1002 through.
        const retrying = yield* Client.make({
          url: peer.url("/longreason"),
          retry: quickRetry,
          shouldRetry: (error) =>
            Reconnect.isRetryable(error) ||
            (error._tag === "Disconnected" && error.code === 1002 && error.initiator === "client")
        })
        expect(yield* firstBackoffAfter(retrying, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1002, initiator: "client" }
        })
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasTornado)(
    "Tornado self.close(4000, <200 bytes>) raises ValueError in the handler and aborts (1006 from the transport, retried); self.close() with no code: Disconnected 1005, clean, from the server, retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer("tornado")
        const long = yield* Client.make({ url: peer.url("/longreason"), retry: quickRetry })
        expect(yield* firstBackoffAfter(long, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, wasClean: false, initiator: "transport" }
        })
        const noCode = yield* Client.make({ url: peer.url("/nocode"), retry: quickRetry })
        expect(yield* firstBackoffAfter(noCode, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1005, reason: "", wasClean: true, initiator: "server" }
        })
      }).pipe(provideNode),
    30_000
  )
})
