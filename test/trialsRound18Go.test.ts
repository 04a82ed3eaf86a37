/**
 * Round 18: Go's gorilla/websocket (Debian's 1.5.0, Go 1.19) as a real peer, the server many
 * backends are: `test/support/gorillaPeer.go` (gorilla's chat example as people copy it, and one
 * path per manner), built once per source by `test/support/goPeer.ts`, against the Client and
 * Connection over the Node transport:
 * - the chat example: its batched frames, its pings (pongWait scaled down), a send over its 512
 *   bytes alone and with sends behind it, its hub dropping a Client that does not read;
 * - a write deadline hit while the Client does not read;
 * - the Upgrader: the default CheckOrigin, Subprotocols, EnableCompression, a ResponseWriter
 *   without Hijack, a 503 with Retry-After;
 * - closes: WriteControl 4000 (closed at once or after the answer), a reason over 125 bytes, a
 *   handler returning with and without conn.Close();
 * - the server SIGKILLed and restarted while sending; a Client's and a Connection's sink to a
 *   handler that reads slowly.
 * What each does is in docs/trials.md ("round 18"). Loopback only; every wait bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Either, Option, Schedule, Stream } from "effect"
import { Client, Connection } from "../src/index.js"
import { awaitState, echoOf, firstBackoffAfter, isTag } from "./support/clientKit.js"
import { awaitGoLine, goPeer, hasGorilla } from "./support/goPeer.js"
import { provideNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { sendsThroughARestart } from "./support/restartTrial.js"
import { SLOW_FRAME_BYTES, SLOW_FRAMES, throughClientSink, throughConnectionSink } from "./support/slowSinks.js"

/** Retries every 200 ms: the default schedule's first delays would make the file slow. */
const quickRetry = Schedule.spaced("200 millis")

describe("round 18: gorilla's chat example (maxMessageSize 512, pongWait / pingPeriod, a writePump that batches)", () => {
  it.scopedLive.skipIf(!hasGorilla)(
    "the writePump joins what is queued into ONE frame with '\\n': the Client gets one message with newlines; the readPump replaces the Client's newlines with spaces before the broadcast",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const client = yield* Client.make({ url: peer.url("/chat?history=one,two,three") })
        const received = yield* Effect.fork(Stream.runCollect(Stream.take(client.messages, 2)))
        yield* client.awaitOpen
        yield* client.send("hi\nthere")
        expect(Chunk.toReadonlyArray(yield* received)).toEqual(["one\ntwo\nthree", "hi there"])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "pongWait 2 s, pingPeriod 1.8 s: gorilla's pings are answered; the one connection stays Open through four ping periods (four pongs read by gorilla, one OPEN)",
    () =>
      Effect.gen(function*() {
        // Each pong must come within pongWait - pingPeriod of the ping (gorilla's read deadline is
        // pongWait from the last pong): 30 ms at 300 ms, which a loaded run of the suite missed
        // (the process held up, gorilla closed, the Client reconnected); 200 ms here.
        const peer = yield* goPeer(["-pongWait=2s"])
        const client = yield* Client.make({ url: peer.url("/chat") })
        yield* client.awaitOpen
        yield* awaitGoLine(peer, (line) => line === "PONG chat 1 4", "four pongs", 3000)
        expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
        expect(peer.linesOf("OPEN chat ")).toEqual(["1"])
        expect(peer.linesOf("READERR ")).toEqual([])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "a send over 512 bytes alone: gorilla writes 1009 and closes; the send succeeded (written), the Client is Closed by Disconnected 1009 from the server (final by default), failed 0",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const client = yield* Client.make({ url: peer.url("/chat"), retry: quickRetry })
        yield* client.awaitOpen
        yield* client.send("x".repeat(600))
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: {
            _tag: "Some",
            value: { _tag: "Disconnected", code: 1009, reason: "", wasClean: true, initiator: "server" }
          }
        })
        expect(yield* client.failed).toBe(0)
        yield* awaitGoLine(peer, (line) =>
          line === "READERR chat 1 websocket: read limit exceeded", "gorilla's read error")
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "a send over 512 bytes with two sends right behind it: gorilla closes with them unread, so its kernel answers RST, which may discard the 1009 before it is read: Closed by 1009, or Backoff by 1006 from the transport (retried; the oversized send is not resent); each send behind it written (and never read by gorilla) or failed WriteFailed with its payload, counted",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const client = yield* Client.make({ url: peer.url("/chat"), retry: quickRetry })
        yield* client.awaitOpen
        yield* client.send("x".repeat(600))
        const behind = yield* Effect.forEach(
          ["after1", "after2"],
          (text) => Effect.fork(Effect.either(client.send(text)))
        )
        const ended = yield* awaitState(client, (state) => state._tag === "Closed" || state._tag === "Backoff")
        const error = ended._tag === "Closed"
          ? Option.getOrUndefined(ended.error)
          : ended._tag === "Backoff"
          ? ended.error
          : undefined
        expect([
          { _tag: "Disconnected", code: 1009, reason: "", wasClean: true, initiator: "server" },
          { _tag: "Disconnected", code: 1006, reason: "", wasClean: false, initiator: "transport" }
        ]).toContainEqual({ ...error })
        expect(ended._tag).toBe(error?._tag === "Disconnected" && error.code === 1009 ? "Closed" : "Backoff")
        const outcomes = yield* Effect.forEach(behind, (fiber) => fiber.await.pipe(Effect.flatMap((exit) => exit)))
        const failed = outcomes.flatMap((outcome, i) => Either.isLeft(outcome) ? [i] : [])
        for (const i of failed) {
          expect(Either.flip(outcomes[i]!)).toMatchObject({
            right: { _tag: "SendError", reason: "WriteFailed", payload: `after${i + 1}` }
          })
        }
        expect(yield* client.failed).toBe(failed.length)
        // gorilla read none of them: its read loop ended at the oversized one.
        expect(peer.linesOf("GOT chat ")).toEqual([])
      }).pipe(provideNode),
    30_000
  )
})

describe("round 18: gorilla's chat hub drops a client that reads slowly", () => {
  it.scopedLive.skipIf(!hasGorilla)(
    "a Client not read (inboundCapacity 4) while a Connection sends chat lines of 500 bytes, 50 at a time, each 50 broadcast back before the next: its send channel (256) fills, the hub closes it; once read, the Client gets a prefix of the lines, in order, none twice (batched into frames with '\\n'), then the writePump's close frame without a code: Backoff by Disconnected 1005, clean, from the server; retried: Open again",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const slow = yield* Client.make({
          url: peer.url("/chat"),
          retry: quickRetry,
          connection: { inboundCapacity: 4 }
        })
        yield* slow.awaitOpen
        const talker = yield* Connection.connect(peer.url("/chat"))
        // The talker sends 50 lines at a time and waits for their broadcast back: its own send
        // channel stays under 50 (a burst of hundreds can outrun its writePump and drop it too).
        let echoed = 0
        yield* Effect.forkScoped(Stream.runForEach(
          talker.messages,
          (message) => Effect.sync(() => void (echoed += String(message).split("\n").length))
        ))
        const dropped = () => peer.lines.includes("DROPPED chat 1")
        let sent = 0
        // 500 bytes a line (the limit is 512): the slow one's socket buffers fill after a few MB.
        const pad = ".".repeat(480)
        while (!dropped() && sent < 20_000) {
          for (let i = 0; i < 50; i++) yield* talker.write(`line ${sent++} ${pad}`)
          yield* awaitTrue(Effect.sync(() => echoed === sent), "the talker's lines came back")
        }
        expect(dropped()).toBe(true)
        const lines: Array<string> = []
        const backoff = yield* Effect.fork(awaitState(slow, isTag("Backoff")))
        yield* Effect.forkScoped(
          Stream.runForEach(slow.messages, (message) =>
            Effect.sync(() => void lines.push(...String(message).split("\n"))))
        )
        expect(yield* backoff).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1005, reason: "", wasClean: true, initiator: "server" }
        })
        expect(lines.length).toBeGreaterThanOrEqual(256)
        expect(lines.length).toBeLessThan(sent)
        expect(lines).toEqual(Array.from({ length: lines.length }, (_, i) =>
          `line ${i} ${pad}`))
        expect(yield* awaitState(slow, isTag("Open"))).toMatchObject({ attempt: 2 })
        expect(peer.linesOf("DROPPED chat ")).toEqual(["1"])
      }).pipe(provideNode),
    30_000
  )
})

describe("round 18: gorilla's write deadline against a Client that reads slowly", () => {
  it.scopedLive.skipIf(!hasGorilla)(
    "gorilla pushes 16 KiB frames with writeWait 200 ms; the Client, not read (inboundCapacity 4), pauses its socket: gorilla's write times out mid-frame and it closes. The Client stays Open meanwhile (a paused socket is a sign of life); once read, it delivers every whole frame gorilla wrote, then Backoff by 1006 from the transport",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer(["-writeWait=200ms"])
        const client = yield* Client.make({
          url: peer.url("/push"),
          retry: quickRetry,
          connection: { inboundCapacity: 4 }
        })
        yield* client.awaitOpen
        yield* awaitGoLine(peer, (line) => line.startsWith("WRITEERR push "), "gorilla's write deadline")
        const [index, ...rest] = peer.linesOf("WRITEERR push ")[0]!.split(" ")
        expect(rest.join(" ")).toMatch(/^write tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: i\/o timeout$/)
        expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
        const lengths: Array<number> = []
        const backoff = yield* Effect.fork(awaitState(client, isTag("Backoff")))
        yield* Effect.forkScoped(
          Stream.runForEach(client.messages, (message) => Effect.sync(() => void lengths.push(message.length)))
        )
        expect(yield* backoff).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, reason: "", wasClean: false, initiator: "transport" }
        })
        // Frames 0 .. index-1 were written whole; frame `index` was cut by the deadline and is not delivered.
        expect(lengths.length).toBe(Number(index))
        expect(lengths.every((length) => length === 16 * 1024)).toBe(true)
      }).pipe(provideNode),
    30_000
  )
})

describe("round 18: gorilla's Upgrader", () => {
  it.scopedLive.skipIf(!hasGorilla)(
    "CheckOrigin nil (the default): no Origin is accepted, the Origin of the Host too; headers: { origin: 'http://evil.example' } gets 403 (gorilla's 'request origin not allowed'): HandshakeRejected 403, the Client Closed, not retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        yield* Effect.scoped(Connection.connect(peer.url("/origin")))
        yield* Effect.scoped(
          Connection.connect(peer.url("/origin"), { headers: { origin: `http://127.0.0.1:${peer.port}` } })
        )
        const client = yield* Client.make({ url: peer.url("/origin"), headers: { origin: "http://evil.example" } })
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: { _tag: "Some", value: { _tag: "ConnectError", reason: "HandshakeRejected", status: 403 } }
        })
        yield* awaitGoLine(peer, (line) => line.startsWith("UPGRADEERR origin "), "gorilla's refusal")
        expect(peer.linesOf("ORIGIN ")).toEqual(["", `http://127.0.0.1:${peer.port}`, "http://evil.example"])
        expect(peer.linesOf("UPGRADEERR origin ")).toEqual([
          "websocket: request origin not allowed by Upgrader.CheckOrigin"
        ])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "Subprotocols ['chat.v2', 'chat.v1']: gorilla takes its own first that the client offers (chat.v2 for ['chat.v1', 'chat.v2']); none in common: 101 without one: ProtocolViolation, Closed",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const connection = yield* Connection.connect(peer.url("/proto"), { protocols: ["chat.v1", "chat.v2"] })
        expect(connection.protocol).toBe("chat.v2")
        const client = yield* Client.make({ url: peer.url("/proto"), connection: { protocols: ["chat.v9"] } })
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: { _tag: "Some", value: { _tag: "ConnectError", reason: "ProtocolViolation" } }
        })
        yield* awaitTrue(Effect.sync(() => peer.linesOf("PROTO ").length === 2), "both upgrades printed")
        // Gorilla prints in each upgrade's goroutine after its 101 is written: under load the
        // second upgrade's line can come first (a fresh-clone run, round 35).
        expect([...peer.linesOf("PROTO ")].sort()).toEqual(["\"\"", "\"chat.v2\""])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "EnableCompression (no context takeover) with perMessageDeflate on: 2,000 'a' take 24 bytes on the wire (1,000 would not be compressed: ws's threshold is 1 KiB); off, or gorilla without it: 2,008; every echo exact",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const text = "a".repeat(2000)
        for (
          const [query, perMessageDeflate] of [["?compress=1", true], ["?compress=1", false], ["", true]] as const
        ) {
          const echoed = yield* Effect.scoped(Effect.flatMap(
            Client.make({ url: peer.url(`/deflate${query}`), connection: { perMessageDeflate } }),
            (client) => echoOf(client, text)
          ))
          expect(Option.getOrThrow(echoed)).toBe(text)
        }
        const short = yield* Effect.scoped(Effect.flatMap(
          Client.make({ url: peer.url("/deflate?compress=1") }),
          (client) => echoOf(client, "a".repeat(1000))
        ))
        expect(Option.getOrThrow(short)).toBe("a".repeat(1000))
        expect(peer.linesOf("WIRE deflate ")).toEqual(["2000 24", "2000 2008", "2000 2008", "1000 1008"])
        expect(peer.linesOf("OFFERED ")).toEqual([
          "\"permessage-deflate; client_max_window_bits\"",
          "\"\"",
          "\"permessage-deflate; client_max_window_bits\"",
          "\"permessage-deflate; client_max_window_bits\""
        ])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "a middleware's ResponseWriter without Hijack: gorilla answers 500 'Internal Server Error' ('response does not implement http.Hijacker'): HandshakeRejected 500, retried; http.Error 503 with Retry-After 7: HandshakeRejected 503, retryAfter 7 s, the next delay at least 7 s",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const client = yield* Client.make({ url: peer.url("/wrapped"), retry: quickRetry })
        expect(yield* firstBackoffAfter(client, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "ConnectError", reason: "HandshakeRejected", status: 500 }
        })
        yield* awaitGoLine(peer, (line) => line.startsWith("UPGRADEERR wrapped "), "gorilla's error")
        expect(peer.linesOf("UPGRADEERR wrapped ")[0]).toBe("500 websocket: response does not implement http.Hijacker")
        const busy = yield* Effect.flip(Effect.scoped(Connection.connect(peer.url("/busy"))))
        expect(busy).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 503 })
        expect(busy._tag === "ConnectError" && busy.retryAfter).toEqual(Duration.seconds(7))
        const busyClient = yield* Client.make({ url: peer.url("/busy"), retry: quickRetry })
        const backoff = yield* firstBackoffAfter(busyClient, Effect.void)
        expect(backoff._tag === "Backoff" && Duration.greaterThanOrEqualTo(backoff.delay, Duration.seconds(7))).toBe(
          true
        )
      }).pipe(provideNode),
    30_000
  )
})

describe("round 18: gorilla's closes", () => {
  it.scopedLive.skipIf(!hasGorilla)(
    "WriteControl(CloseMessage, FormatCloseMessage(4000, reason)) then Close at once, or after reading the answer: Disconnected 4000 with the reason, clean, from the server, retried; the Client answers 4000",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        for (const path of ["/close4000", "/close4000?wait=1"]) {
          yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* Client.make({ url: peer.url(path), retry: quickRetry })
            expect(yield* firstBackoffAfter(client, Effect.void)).toMatchObject({
              attempt: 1,
              error: {
                _tag: "Disconnected",
                code: 4000,
                reason: "gorilla says bye",
                wasClean: true,
                initiator: "server"
              }
            })
          }))
        }
        yield* awaitGoLine(peer, (line) => line.startsWith("ANSWER close4000 "), "gorilla read the answer")
        expect(peer.linesOf("ANSWER close4000 ")[0]).toBe("websocket: close 4000: gorilla says bye")
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "a close reason of 200 bytes: gorilla's WriteControl refuses it ('invalid control frame'), nothing is written, the handler returns: 1006 from the transport, retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const client = yield* Client.make({ url: peer.url("/close4000?long=200"), retry: quickRetry })
        expect(yield* firstBackoffAfter(client, Effect.void)).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, reason: "", wasClean: false, initiator: "transport" }
        })
        yield* awaitGoLine(peer, (line) => line.startsWith("WROTE close4000 "), "gorilla's WriteControl")
        expect(peer.linesOf("WROTE close4000 ")[0]).toBe("websocket: invalid control frame")
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "a handler that returns with conn.Close() and no close frame: 1006 from the transport, retried; one that returns WITHOUT conn.Close() (the hijacked socket stays open, unread): nothing ends it but the Client's heartbeat: TimeoutError heartbeat, retried",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const closes = yield* Client.make({ url: peer.url("/returns"), retry: quickRetry })
        yield* closes.awaitOpen
        expect(yield* firstBackoffAfter(closes, closes.send("bye"))).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, reason: "", wasClean: false, initiator: "transport" }
        })
        const leaks = yield* Client.make({
          url: peer.url("/returns?leak=1"),
          retry: quickRetry,
          heartbeat: { interval: "200 millis", timeout: "200 millis" }
        })
        yield* leaks.awaitOpen
        expect(yield* firstBackoffAfter(leaks, leaks.send("bye"))).toMatchObject({
          attempt: 1,
          error: { _tag: "TimeoutError", operation: "heartbeat" }
        })
        yield* awaitGoLine(peer, (line) => line === "LEAKED returns", "the handler returned")
      }).pipe(provideNode),
    30_000
  )
})

describe("round 18: the gorilla server killed and restarted", () => {
  it.scopedLive.skipIf(!hasGorilla)(
    "SIGKILL, a send each 100 ms meanwhile, the server restarted on the same port: every send issued while it was not Open arrives once, after the restart; each send arrives once or is reported failed; none twice, none out of order",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const client = yield* Client.make({ url: peer.url("/echo"), retry: quickRetry })
        yield* sendsThroughARestart(client, {
          kill: peer.kill,
          restart: peer.restart,
          received: () => peer.linesOf("GOT echo ").map((line) => Number(line.split(" ")[0]!.slice(1)))
        })
      }).pipe(provideNode),
    30_000
  )
})

describe("round 18: a gorilla server that reads slowly (1 ms after each message)", () => {
  const CAPACITY = 8

  it.scopedLive.skipIf(!hasGorilla)(
    "Client: Stream.run(frames, client.sink) of 300 frames with an outbox of 8 (suspend): the outbox never above 8; close writes what is queued; gorilla reads all 300, in order, whole, then 1000; failed 0",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const { highest, ...outcome } = yield* throughClientSink(peer.url("/slow"), CAPACITY)
        expect(outcome).toEqual({ unsent: 0, failed: 0 })
        expect(highest).toBeLessThanOrEqual(CAPACITY)
        yield* awaitGoLine(peer, (line) => line.startsWith("SLOW "), "gorilla's count", 2000)
        expect(peer.linesOf("SLOW ")).toEqual([`${SLOW_FRAMES} true 1000`])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasGorilla)(
    "Connection: Stream.run(frames, connection.sink) with writeHighWaterMark 256 KiB: bufferedAmount never above the mark plus one frame; gorilla reads all 300, in order, whole, then 1000",
    () =>
      Effect.gen(function*() {
        const peer = yield* goPeer()
        const MARK = 256 * 1024
        expect(yield* throughConnectionSink(peer.url("/slow"), MARK)).toBeLessThanOrEqual(MARK + SLOW_FRAME_BYTES)
        yield* awaitGoLine(
          peer,
          (line) => line.startsWith("SLOW "),
          "gorilla's count",
          2000
        )
        expect(peer.linesOf("SLOW ")).toEqual([`${SLOW_FRAMES} true 1000`])
      }).pipe(provideNode),
    30_000
  )
})
