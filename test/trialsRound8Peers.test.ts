/**
 * Round 8 trials: peers that break the protocol in ways earlier rounds did not try, against a
 * default Node Client (`Client.make({ url })`, attempts on callbacks) and `Connection.connect`.
 * Hand-written peers on 127.0.0.1 (test/support/tcpServer.ts) where ws would refuse to misbehave:
 * - frames RFC 6455 forbids: text that is not UTF-8, a close reason that is not UTF-8, close codes
 *   that may not be sent (1005, 1006, 1015, 999, 5000), a close payload of one byte, RSV bits
 *   without an extension, a masked frame from the server, a control frame over 125 bytes, a
 *   fragmented control frame, a continuation with no first fragment, a data frame inside a
 *   fragmented message, a length over 2^53 - 1; each once from a peer that ends TCP when told, and
 *   once from a peer that never does;
 * - 10 000 one-byte fragments of one message (with and without a maxPayload it overruns);
 * - a flood of 50 000 pings;
 * - permessage-deflate (ws offers it by default, and so does the Node transport): a small
 *   compressed frame that inflates past maxPayload, an extension that was not offered;
 * - HTTP answers that are not 101: redirects whose Location holds credentials and a token, 426,
 *   429 with an HTTP-date Retry-After, a 101 with a broken Sec-WebSocket-Extensions, a 200 whose
 *   body never ends, an answer that trickles one byte every 50 ms.
 * Loopback only; every loop bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, HashMap, Layer, Logger, LogLevel, Option, Schedule, Stream } from "effect"
import type * as Net from "node:net"
import * as Util from "node:util"
import * as Zlib from "node:zlib"
import { WebSocketServer } from "ws"
import { Client, Connection } from "../src/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode, quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { acceptFor, onRequestHead, tcpServer, upgradingServer } from "./support/tcpServer.js"
import { catchingStrays } from "./support/throwing.js"

type State = Client.ClientState

/** Tag and attempt of a state, for comparing sequences. */
const brief = (s: State): string => `${s._tag}${"attempt" in s ? ` ${s.attempt}` : ""}`

/** An unmasked frame: first byte as given (FIN, RSV, opcode), then the length and the payload. */
const rawFrame = (first: number, payload: Buffer): Buffer => {
  const length = payload.length
  const head = length < 126
    ? Buffer.from([first, length])
    : Buffer.from([first, 126, length >> 8, length & 0xff])
  return Buffer.concat([head, payload])
}

const closePayload = (code: number, reason: Buffer = Buffer.alloc(0)): Buffer => {
  const head = Buffer.alloc(2)
  head.writeUInt16BE(code)
  return Buffer.concat([head, reason])
}

/** Not UTF-8: 0xc3 starts a two-byte sequence that 0x28 does not continue. */
const NOT_UTF8 = Buffer.from([0xc3, 0x28])

/** The close code of the first frame the client sent (masked: 0x88, 0x80 | length, mask, code). */
const clientCloseCode = (bytes: Buffer): number | undefined => {
  if (bytes.length < 8 || bytes[0] !== 0x88) return undefined
  const mask = bytes.subarray(2, 6)
  return ((bytes[6]! ^ mask[0]!) << 8) | (bytes[7]! ^ mask[1]!)
}

/** A peer's answer to the client's close frame (a close 1000), so that a `close` is not held to closeTimeout. */
const answerCloseFrame = (socket: Net.Socket, data: Buffer): void => {
  if (data[0] === 0x88) socket.write(rawFrame(0x88, closePayload(1000)))
}

/**
 * A peer that answers the upgrade with a correct 101 and `after` in the same write, and records
 * what the client sends next. `holdTcp`: it never ends its side of TCP (half-open allowed, so the
 * client's FIN is not answered); otherwise Node answers a FIN with its own, as most servers do.
 */
const misbehaving = (after: Buffer, holdTcp: boolean, answerClose = false) =>
  Effect.gen(function*() {
    const requests = { count: 0 }
    const got: Array<Buffer> = []
    const server = yield* upgradingServer(requests, (socket, head) => {
      socket.allowHalfOpen = holdTcp
      socket.on("data", (data: Buffer) => {
        got.push(data)
        if (answerClose) answerCloseFrame(socket, data)
      })
      socket.resume()
      socket.write(Buffer.concat([head, after]))
    })
    return { url: server.url, requests, got: () => Buffer.concat(got) }
  })

/** Every Transition's target, as `brief`, recorded from the client's events. */
const recordTransitions = (client: Client.Client) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    yield* Effect.forkScoped(Stream.runForEach(client.events, (e) =>
      Effect.sync(() => {
        if (e._tag === "Transition") seen.push(brief(e.to))
      })))
    return seen
  })

interface BadFrame {
  readonly name: string
  readonly bytes: Buffer
  /** The code the Disconnected reports and (unless `sent`) the client sends in its close frame. */
  readonly code: number
  /** The code of the client's close frame, when not `code`. */
  readonly sent?: number
  /** What ws says, as the Disconnected's reason. */
  readonly reason: string
  /** The Client reconnects (a close frame that was one all the same: the peer was closing). */
  readonly retried?: true
  /** Tried too with a peer that never ends TCP. */
  readonly holdTcpToo?: boolean
}

const badFrames: ReadonlyArray<BadFrame> = [
  {
    name: "a text frame that is not UTF-8",
    bytes: rawFrame(0x81, NOT_UTF8),
    code: 1007,
    reason: "Invalid WebSocket frame: invalid UTF-8 sequence",
    holdTcpToo: true
  },
  {
    name: "a close frame whose reason is not UTF-8",
    bytes: rawFrame(0x88, closePayload(1000, NOT_UTF8)),
    code: 1007,
    reason: "Invalid WebSocket frame: invalid UTF-8 sequence"
  },
  // Deno's server stopped by its AbortSignal sends 1005; lighttpd's backend reset, "1001" in ASCII.
  // No valid close frame: 1006, as a browser reports it, retried; ws answers 1002.
  ...[1005, 1006, 1015, 999, 5000].map((code) => ({
    name: `a close frame with code ${code} (may not be sent on the wire)`,
    bytes: rawFrame(0x88, closePayload(code)),
    code: 1006,
    sent: 1002,
    reason: `Invalid WebSocket frame: invalid status code ${code}`,
    retried: true as const,
    holdTcpToo: code === 1005
  })),
  {
    name: "a close frame with a one-byte payload",
    bytes: rawFrame(0x88, Buffer.from([0x03])),
    code: 1002,
    reason: "Invalid WebSocket frame: invalid payload length 1"
  },
  {
    name: "a text frame with RSV1 set, no extension negotiated",
    bytes: rawFrame(0xc1, Buffer.from("hi")),
    code: 1002,
    reason: "Invalid WebSocket frame: RSV1 must be clear"
  },
  {
    name: "a text frame with RSV2 and RSV3 set",
    bytes: rawFrame(0xb1, Buffer.from("hi")),
    code: 1002,
    reason: "Invalid WebSocket frame: RSV2 and RSV3 must be clear"
  },
  {
    name: "a masked frame from the server",
    bytes: Buffer.concat([Buffer.from([0x81, 0x82, 1, 2, 3, 4]), Buffer.from([0x68 ^ 1, 0x69 ^ 2])]),
    code: 1002,
    reason: "Invalid WebSocket frame: MASK must be clear"
  },
  {
    name: "a ping of 126 bytes (control frames hold 125 at most)",
    bytes: rawFrame(0x89, Buffer.alloc(126, 0x61)),
    code: 1002,
    reason: "Invalid WebSocket frame: invalid payload length 126"
  },
  {
    name: "a fragmented ping (FIN clear)",
    bytes: Buffer.concat([rawFrame(0x09, Buffer.from("a")), rawFrame(0x80, Buffer.from("b"))]),
    code: 1002,
    reason: "Invalid WebSocket frame: FIN must be set"
  },
  {
    name: "a continuation frame with no first fragment",
    bytes: rawFrame(0x80, Buffer.from("a")),
    code: 1002,
    reason: "Invalid WebSocket frame: invalid opcode 0"
  },
  {
    name: "a new text frame inside a fragmented message",
    bytes: Buffer.concat([rawFrame(0x01, Buffer.from("a")), rawFrame(0x81, Buffer.from("b"))]),
    code: 1002,
    reason: "Invalid WebSocket frame: invalid opcode 1"
  },
  {
    name: "a reserved opcode (3)",
    bytes: rawFrame(0x83, Buffer.from("a")),
    code: 1002,
    reason: "Invalid WebSocket frame: invalid opcode 3"
  },
  {
    name: "a binary frame whose 64-bit length is over 2^53 - 1",
    bytes: Buffer.from([0x82, 127, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
    code: 1009,
    reason: "Unsupported WebSocket frame: payload length > 2^53 - 1",
    holdTcpToo: true
  }
]

describe("round 8: frames RFC 6455 forbids, right after the 101", () => {
  for (const frame of badFrames) {
    // A peer that never ends TCP costs the 1 s grace (PEER_CLOSE_GRACE_MS) per test: one per code.
    for (const holdTcp of frame.holdTcpToo === true ? [false, true] : [false]) {
      it.live(
        `${frame.name}${holdTcp ? ", the peer never ending TCP" : ""}: Open, then ${
          frame.retried ? "Backoff" : "Closed"
        } by Disconnected ${frame.code} client (${frame.retried ? "" : "not "}retried); the peer gets a close ${
          frame.sent ?? frame.code
        }`,
        () =>
          withNoHandlesLeft(Effect.gen(function*() {
            const [, strays] = yield* catchingStrays(Effect.gen(function*() {
              const peer = yield* misbehaving(frame.bytes, holdTcp)
              if (frame.retried) {
                const client = yield* Client.make({ url: peer.url, retry: Schedule.spaced("100 millis") })
                const seen = yield* recordTransitions(client)
                // Backoff or Closed, whichever comes: Closed (1002, final, until round 36) fails at once.
                const backoff = yield* awaitState(client, (s) =>
                  s._tag === "Backoff" || s._tag === "Closed", "20 seconds")
                expect(backoff).toMatchObject({
                  _tag: "Backoff",
                  error: {
                    _tag: "Disconnected",
                    code: frame.code,
                    reason: frame.reason,
                    wasClean: false,
                    initiator: "client"
                  }
                })
                yield* awaitTrue(
                  Effect.sync(() =>
                    seen.includes("Connecting 2")
                  ),
                  "a second attempt"
                )
                expect(seen.slice(0, 2)).toEqual(["Connecting 1", "Open 1"])
                expect(seen).not.toContain("Closed")
                yield* awaitTrue(Effect.sync(() => peer.got().length >= 8), "the close frame reached the peer")
                expect(clientCloseCode(peer.got())).toBe(frame.sent)
                yield* client.close()
                return
              }
              const client = yield* Client.make({ url: peer.url })
              const seen = yield* recordTransitions(client)
              const closed = yield* awaitState(client, isTag("Closed"), "20 seconds")
              expect(closed).toMatchObject({
                error: Option.some({
                  _tag: "Disconnected",
                  code: frame.code,
                  reason: frame.reason,
                  wasClean: false,
                  initiator: "client"
                })
              })
              yield* awaitTrue(Effect.sync(() => seen.at(-1) === "Closed"), "Closed seen on events")
              expect(seen).toEqual(["Connecting 1", "Open 1", "Closed"])
              expect(peer.requests.count).toBe(1)
              yield* awaitTrue(Effect.sync(() => peer.got().length >= 8), "the close frame reached the peer")
              expect(clientCloseCode(peer.got())).toBe(frame.code)
            }))
            expect(strays).toEqual([])
          })).pipe(provideNode)
      )
    }
  }

  it.live("Connection.connect, the peer never ending TCP after a text frame that is not UTF-8: `closed` is Disconnected 1007 client, `messages` ends empty", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const peer = yield* misbehaving(badFrames[0]!.bytes, true)
      const connection = yield* Connection.connect(peer.url)
      const messages = yield* Stream.runCollect(connection.messages).pipe(Effect.timeout("3 seconds"))
      expect(Array.from(messages)).toEqual([])
      const closed = yield* connection.closed.pipe(Effect.timeout("3 seconds"))
      expect(closed).toMatchObject({ _tag: "Disconnected", code: 1007, wasClean: false, initiator: "client" })
    })).pipe(provideNode))
})

/** The 10 000 one-byte fragments of one text message of "a"s: a first frame, continuations, a last. */
const oneByteFragments = (count: number): Buffer =>
  Buffer.concat(
    Array.from({ length: count }, (_, i) => Buffer.from([i === 0 ? 0x01 : i === count - 1 ? 0x80 : 0x00, 1, 0x61]))
  )

describe("round 8: one message in 10 000 one-byte fragments", () => {
  it.live("delivered as one message of 10 000 bytes; the Client stays Open", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const peer = yield* misbehaving(
        Buffer.concat([oneByteFragments(10_000), rawFrame(0x81, Buffer.from("after"))]),
        false,
        true
      )
      const client = yield* Client.make({ url: peer.url })
      const received = yield* client.messages.pipe(Stream.take(2), Stream.runCollect, Effect.timeout("3 seconds"))
      expect(Array.from(received)).toEqual(["a".repeat(10_000), "after"])
      expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
      expect(yield* client.close()).toEqual([])
    })).pipe(provideNode))

  it.live("a ping between two fragments (RFC 6455 allows it): the message arrives whole, the ping is answered with its payload", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const peer = yield* misbehaving(
        Buffer.concat([
          rawFrame(0x01, Buffer.from("first half, ")),
          rawFrame(0x89, Buffer.from("are you there")),
          rawFrame(0x80, Buffer.from("second half"))
        ]),
        false,
        true
      )
      const client = yield* Client.make({ url: peer.url })
      const received = yield* client.messages.pipe(Stream.take(1), Stream.runCollect, Effect.timeout("3 seconds"))
      expect(Array.from(received)).toEqual(["first half, second half"])
      yield* awaitTrue(Effect.sync(() => clientFrames(peer.got()).length >= 1), "the pong reached the peer")
      expect(clientFrames(peer.got())[0]).toEqual({ opcode: 0x0a, payload: Buffer.from("are you there") })
      expect(yield* client.close()).toEqual([])
    })).pipe(provideNode))

  it.live("with maxPayload 5000: Closed by Disconnected 1009 client once the fragments pass it (not retried)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const peer = yield* misbehaving(oneByteFragments(10_000), false)
      const client = yield* Client.make({ url: peer.url, connection: { maxPayload: 5000 } })
      const closed = yield* awaitState(client, isTag("Closed"), "20 seconds")
      expect(closed).toMatchObject({
        error: Option.some({
          _tag: "Disconnected",
          code: 1009,
          reason: "Max payload size exceeded",
          initiator: "client"
        })
      })
      expect(peer.requests.count).toBe(1)
      yield* awaitTrue(Effect.sync(() => peer.got().length >= 8), "the close frame reached the peer")
      expect(clientCloseCode(peer.got())).toBe(1009)
    })).pipe(provideNode))
})

/** A raw DEFLATE body as permessage-deflate sends it: sync-flushed, the 00 00 ff ff tail cut. */
const deflated = (data: Buffer): Buffer => {
  const out = Zlib.deflateRawSync(data, { finishFlush: Zlib.constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4)
}

/**
 * A peer whose 101 carries `extensions` as Sec-WebSocket-Extensions, then `after`; it records the
 * request's own Sec-WebSocket-Extensions (what the client offered) and what the client sends next.
 */
const withExtensions = (extensions: string, after: Buffer) =>
  Effect.gen(function*() {
    const requests = { count: 0 }
    const got: Array<Buffer> = []
    const offered: Array<string> = []
    const server = yield* tcpServer((socket) =>
      onRequestHead(socket, (request) => {
        requests.count++
        offered.push(/sec-websocket-extensions: *(.*)\r\n/i.exec(request)?.[1]?.trim() ?? "")
        socket.on("data", (more: Buffer) => {
          got.push(more)
          answerCloseFrame(socket, more)
        })
        socket.write(Buffer.concat([
          Buffer.from(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
              `Sec-WebSocket-Accept: ${acceptFor(request)}\r\nSec-WebSocket-Extensions: ${extensions}\r\n\r\n`,
            "latin1"
          ),
          after
        ]))
      })
    )
    return { url: server.url, requests, offered, got: () => Buffer.concat(got) }
  })

describe("round 8: permessage-deflate (the Node transport offers it: ws's default)", () => {
  it.live("offered as ws offers it; a peer that accepts sends a compressed frame: delivered inflated", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const peer = yield* withExtensions(
        "permessage-deflate",
        rawFrame(0xc1, deflated(Buffer.from("hello, compressed")))
      )
      const client = yield* Client.make({ url: peer.url })
      const received = yield* client.messages.pipe(Stream.take(1), Stream.runCollect, Effect.timeout("3 seconds"))
      expect(Array.from(received)).toEqual(["hello, compressed"])
      expect(peer.offered).toEqual(["permessage-deflate; client_max_window_bits"])
      expect(yield* client.close()).toEqual([])
    })).pipe(provideNode))

  it.live("a 1 KiB compressed frame that inflates to 1 MiB, maxPayload 64 KiB: Closed by Disconnected 1009 client; the peer gets a close 1009", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const bomb = deflated(Buffer.alloc(1024 * 1024))
      expect(bomb.length).toBeLessThan(1100)
      const peer = yield* withExtensions("permessage-deflate", rawFrame(0xc2, bomb))
      const client = yield* Client.make({ url: peer.url, connection: { maxPayload: 64 * 1024 } })
      const closed = yield* awaitState(client, isTag("Closed"), "20 seconds")
      expect(closed).toMatchObject({
        error: Option.some({
          _tag: "Disconnected",
          code: 1009,
          reason: "Max payload size exceeded",
          initiator: "client"
        })
      })
      expect(peer.requests.count).toBe(1)
      yield* awaitTrue(Effect.sync(() => peer.got().length >= 8), "the close frame reached the peer")
      expect(clientCloseCode(peer.got())).toBe(1009)
    })).pipe(provideNode))

  it.live("a compressed frame zlib cannot inflate: Closed by Disconnected 1007 client (ws sends 1007; was reported 1006 and retried)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const peer = yield* withExtensions("permessage-deflate", rawFrame(0xc1, Buffer.from([0xff, 0xff, 0xff, 0xff])))
      const client = yield* Client.make({ url: peer.url })
      const closed = yield* awaitState(client, isTag("Closed"), "20 seconds")
      expect(closed).toMatchObject({
        error: Option.some({ _tag: "Disconnected", code: 1007, wasClean: false, initiator: "client" })
      })
      expect(peer.requests.count).toBe(1)
      yield* awaitTrue(Effect.sync(() => peer.got().length >= 8), "the close frame reached the peer")
      expect(clientCloseCode(peer.got())).toBe(1007)
    })).pipe(provideNode))

  for (
    const [name, extensions, detail] of [
      [
        "an extension the client did not offer",
        "x-webkit-deflate-frame",
        "Server indicated an extension that was not requested"
      ],
      [
        "permessage-deflate with a parameter the client did not offer (server_max_window_bits=99, secret in the value)",
        "permessage-deflate; server_max_window_bits=99; x=hunter2",
        "Invalid Sec-WebSocket-Extensions header"
      ],
      [
        "a Sec-WebSocket-Extensions that does not parse",
        "permessage-deflate;;=hunter2",
        "Invalid Sec-WebSocket-Extensions header"
      ]
    ] as const
  ) {
    it.live(`a 101 with ${name}: Closed by ConnectError ProtocolViolation, one request, the header value not shown`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const [, strays] = yield* catchingStrays(Effect.gen(function*() {
          const peer = yield* withExtensions(extensions, Buffer.alloc(0))
          const client = yield* Client.make({ url: peer.url })
          const error = yield* Effect.flip(client.awaitOpen)
          expect(error).toMatchObject({ _tag: "ConnectError", reason: "ProtocolViolation" })
          expect((error as { detail: string }).detail).toContain(detail)
          expect(peer.requests.count).toBe(1)
          const state = yield* client.state.get
          expect(state).toMatchObject({ _tag: "Closed", error: Option.some({ reason: "ProtocolViolation" }) })
          expect(rendered(state)).not.toContain("hunter2")
        }))
        expect(strays).toEqual([])
      })).pipe(provideNode))
  }
})

/** Every way a state or an error renders: JSON, util.inspect, String, message. */
const rendered = (value: unknown): string =>
  [
    JSON.stringify(value),
    Util.inspect(value, { depth: 10 }),
    String(value),
    value instanceof Error ? value.message : ""
  ].join("\n")

/**
 * A hand-written HTTP peer: once it has a request's head, `answer` gets the socket (what it
 * writes, and when, is its own). Counts the requests; `sockets` are those still open.
 */
const httpPeer = (answer: (socket: Net.Socket) => void) =>
  Effect.gen(function*() {
    const requests = { count: 0 }
    const server = yield* tcpServer((socket) =>
      onRequestHead(socket, () => {
        requests.count++
        answer(socket)
      })
    )
    return { url: server.url, requests, sockets: server.sockets }
  })

/** Every log line, whatever its level: message, annotations and cause, as text. */
const allLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ annotations, cause, message }) => {
    lines.push(
      [
        Util.inspect(message, { depth: 10 }),
        Util.inspect(HashMap.toEntries(annotations), { depth: 10 }),
        Cause.pretty(cause)
      ].join(" | ")
    )
  })
  const layer = Layer.mergeAll(
    quietNode,
    Logger.replace(Logger.defaultLogger, logger),
    Logger.minimumLogLevel(LogLevel.All)
  )
  return { lines, layer }
}

const SECRETS = ["hunter2", "s3cr3t-t0ken", "c00kie-s3cret"]
const showsNoSecret = (text: string): void => {
  for (const secret of SECRETS) expect(text).not.toContain(secret)
}

/** Everything a Client shows: its states as they were seen on `events`, their errors, awaitOpen's error. */
const transitionsRendered = (client: Client.Client) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    yield* Effect.forkScoped(Stream.runForEach(client.events, (e) => Effect.sync(() => seen.push(rendered(e)))))
    return seen
  })

/** Runs `self`, then checks that no uncaught exception or unhandled rejection happened meanwhile. */
const noStrays = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.map(catchingStrays(self), ([a, strays]) => {
    expect(strays).toEqual([])
    return a
  })

describe("round 8: HTTP answers to the upgrade that are not 101", () => {
  for (const status of [301, 302, 307]) {
    it.live(
      `${status} with a Location that holds credentials and a token, and a Set-Cookie: Closed by HandshakeRejected ${status}, one request; no secret in any state, error, event or log line`,
      () => {
        const logs = allLogs()
        return withNoHandlesLeft(noStrays(Effect.gen(function*() {
          const peer = yield* httpPeer((socket) =>
            socket.end(
              `HTTP/1.1 ${status} Moved\r\nLocation: ws://admin:hunter2@127.0.0.1:9/next?token=s3cr3t-t0ken\r\n` +
                `Set-Cookie: sid=c00kie-s3cret; HttpOnly\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`
            )
          )
          const client = yield* Client.make({ url: peer.url })
          const seen = yield* transitionsRendered(client)
          const error = yield* Effect.flip(client.awaitOpen)
          expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status })
          const state = yield* client.state.get
          expect(state).toMatchObject({ _tag: "Closed", error: Option.some({ status }) })
          expect(peer.requests.count).toBe(1)
          // A Connection's error, too.
          const single = yield* Effect.flip(Effect.scoped(Connection.connect(peer.url)))
          expect(single).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status })
          yield* awaitTrue(Effect.sync(() => seen.some((line) => line.includes("Closed"))), "Closed seen on events")
          yield* client.close()
          showsNoSecret([rendered(error), rendered(state), rendered(single), ...seen, ...logs.lines].join("\n"))
          expect(logs.lines.length).toBeGreaterThan(0)
        }))).pipe(Effect.provide(logs.layer))
      }
    )
  }

  it.live("a 302 whose Location holds a control character (Node's HTTP parser refuses it): Closed by ProtocolViolation (was ClosedBeforeOpen, retried), one request; no secret shown", () => {
    const logs = allLogs()
    return withNoHandlesLeft(noStrays(Effect.gen(function*() {
      const peer = yield* httpPeer((socket) =>
        socket.end(
          `HTTP/1.1 302 Found\r\nLocation: ws://admin:hunter2@127.0.0.1:9/?token=s3cr3t-t0ken\x01\r\nContent-Length: 0\r\n\r\n`
        )
      )
      const client = yield* Client.make({ url: peer.url })
      const seen = yield* transitionsRendered(client)
      const state = yield* awaitState(client, (s) => s._tag === "Backoff" || s._tag === "Closed", "20 seconds")
      expect(state).toMatchObject({
        _tag: "Closed",
        error: Option.some({ _tag: "ConnectError", reason: "ProtocolViolation" })
      })
      const error = (state as { error: Option.Some<{ detail: string }> }).error.value
      expect(error.detail).toBe(
        "Parse Error: Invalid header value char (HPE_INVALID_HEADER_TOKEN); the server is not a compliant WebSocket endpoint"
      )
      expect(peer.requests.count).toBe(1)
      yield* client.close()
      showsNoSecret([rendered(state), ...seen, ...logs.lines].join("\n"))
    }))).pipe(Effect.provide(logs.layer))
  })

  for (
    const [name, answer, detail] of [
      [
        "another protocol's banner (SSH)",
        "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        "Expected HTTP/, RTSP/ or ICE/ (HPE_INVALID_CONSTANT)"
      ],
      [
        "a TLS alert (a wss:// port dialled with ws://)",
        "\x15\x03\x01\x00\x02\x02\x46",
        "Expected HTTP/, RTSP/ or ICE/ (HPE_INVALID_CONSTANT)"
      ],
      ["a status line without a number", "HTTP/1.1 abc Nope\r\n\r\n", "Invalid status code (HPE_INVALID_STATUS)"],
      [
        "a 101 whose head is over Node's 16 KiB",
        `HTTP/1.1 101 Switching Protocols\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
        "Header overflow (HPE_HEADER_OVERFLOW)"
      ]
    ] as const
  ) {
    it.live(`${name}: Closed by ProtocolViolation (was ClosedBeforeOpen, retried forever), one request`, () =>
      withNoHandlesLeft(noStrays(Effect.gen(function*() {
        const peer = yield* httpPeer((socket) => socket.end(Buffer.from(answer, "latin1")))
        const client = yield* Client.make({ url: peer.url })
        const error = yield* Effect.flip(client.awaitOpen)
        expect(error).toMatchObject({
          _tag: "ConnectError",
          reason: "ProtocolViolation",
          detail: `Parse Error: ${detail}; the server is not a compliant WebSocket endpoint`
        })
        expect(peer.requests.count).toBe(1)
      }))).pipe(provideNode))
  }

  it.live("426 Upgrade Required: Closed by HandshakeRejected 426 (a 4xx: not retried), one request", () =>
    withNoHandlesLeft(noStrays(Effect.gen(function*() {
      const peer = yield* httpPeer((socket) =>
        socket.end(
          "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
            "Content-Length: 5\r\nConnection: close\r\n\r\nnope\n"
        )
      )
      const client = yield* Client.make({ url: peer.url })
      const seen = yield* recordTransitions(client)
      expect(yield* Effect.flip(client.awaitOpen)).toMatchObject({
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        status: 426
      })
      yield* awaitTrue(Effect.sync(() => seen.at(-1) === "Closed"), "Closed seen on events")
      expect(seen).toEqual(["Connecting 1", "Closed"])
      expect(peer.requests.count).toBe(1)
    }))).pipe(provideNode))

  it.live("429 with Retry-After as an HTTP date 3 s ahead: Backoff with status 429, retryAfter 2-3 s, the delay at least that", () =>
    withNoHandlesLeft(noStrays(Effect.gen(function*() {
      const peer = yield* httpPeer((socket) =>
        socket.end(
          `HTTP/1.1 429 Too Many Requests\r\nRetry-After: ${new Date(Date.now() + 3000).toUTCString()}\r\n` +
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
      )
      const client = yield* Client.make({ url: peer.url })
      const seen = yield* recordTransitions(client)
      const backoff = yield* awaitState(client, isTag("Backoff"), "20 seconds")
      yield* awaitTrue(Effect.sync(() => seen.at(-1) === "Backoff 1"), "Backoff seen on events")
      expect(seen).toEqual(["Connecting 1", "Backoff 1"])
      expect(backoff).toMatchObject({
        attempt: 1,
        error: { _tag: "ConnectError", reason: "HandshakeRejected", status: 429 }
      })
      const error = (backoff as { error: { retryAfter?: Duration.Duration } }).error
      const retryAfter = Duration.toMillis(error.retryAfter!)
      // An HTTP date counts whole seconds: 3 s ahead, read a moment later, is 2-3 s.
      expect(retryAfter).toBeGreaterThan(1000)
      expect(retryAfter).toBeLessThanOrEqual(3000)
      expect(Duration.toMillis((backoff as { delay: Duration.Duration }).delay)).toBeGreaterThanOrEqual(retryAfter)
      expect(peer.requests.count).toBe(1)
      yield* client.close()
    }))).pipe(provideNode))

  it.live("a 200 whose body never ends: Closed by HandshakeRejected 200 (not retried), the socket closed, one request", () =>
    withNoHandlesLeft(noStrays(Effect.gen(function*() {
      const written = { chunks: 0 }
      const peer = yield* httpPeer((socket) => {
        socket.write("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>")
        // Bounded: 2000 chunks at most, stopped when the client goes.
        const timer = setInterval(() => {
          if (socket.destroyed || written.chunks >= 2000) return clearInterval(timer)
          written.chunks++
          socket.write("<p>more</p>\n")
        }, 5)
        socket.on("close", () => clearInterval(timer))
      })
      const client = yield* Client.make({ url: peer.url })
      const seen = yield* recordTransitions(client)
      expect(yield* Effect.flip(client.awaitOpen)).toMatchObject({
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        status: 200
      })
      yield* awaitTrue(Effect.sync(() => seen.at(-1) === "Closed"), "Closed seen on events")
      expect(seen).toEqual(["Connecting 1", "Closed"])
      yield* awaitTrue(Effect.sync(() => peer.sockets.size === 0), "the peer's socket closed")
      expect(written.chunks).toBeLessThan(2000)
      expect(peer.requests.count).toBe(1)
    }))).pipe(provideNode))

  it.live("a 101 that trickles one byte every 50 ms: TimeoutError open after openTimeout (retried: Backoff 1), the socket closed", () =>
    withNoHandlesLeft(noStrays(Effect.gen(function*() {
      const peer = yield* httpPeer((socket) => {
        const head = Buffer.from("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        let sent = 0
        const timer = setInterval(() => {
          if (socket.destroyed || sent >= head.length) return clearInterval(timer)
          socket.write(head.subarray(sent, ++sent))
        }, 50)
        socket.on("close", () => clearInterval(timer))
      })
      const client = yield* Client.make({ url: peer.url, connection: { openTimeout: "300 millis" } })
      const seen = yield* recordTransitions(client)
      const backoff = yield* awaitState(client, isTag("Backoff"), "20 seconds")
      yield* awaitTrue(Effect.sync(() => seen.at(-1) === "Backoff 1"), "Backoff seen on events")
      expect(seen).toEqual(["Connecting 1", "Backoff 1"])
      expect(backoff).toMatchObject({ attempt: 1, error: { _tag: "TimeoutError", operation: "open" } })
      yield* awaitTrue(Effect.sync(() => peer.sockets.size === 0), "the peer's socket closed")
      yield* client.close()
      // A Connection alike.
      const single = yield* Effect.flip(Effect.scoped(Connection.connect(peer.url, { openTimeout: "300 millis" })))
      expect(single).toMatchObject({ _tag: "TimeoutError", operation: "open" })
      yield* awaitTrue(Effect.sync(() => peer.sockets.size === 0), "the peer's socket closed")
    }))).pipe(provideNode))
})

/** The client's frames (masked, payloads under 126 bytes) in `bytes`: opcode and unmasked payload. */
const clientFrames = (bytes: Buffer): Array<{ readonly opcode: number; readonly payload: Buffer }> => {
  const frames: Array<{ opcode: number; payload: Buffer }> = []
  let at = 0
  while (at + 6 <= bytes.length) {
    const length = bytes[at + 1]! & 0x7f
    if (length > 125 || at + 6 + length > bytes.length) break
    const mask = bytes.subarray(at + 2, at + 6)
    const payload = Buffer.from(bytes.subarray(at + 6, at + 6 + length).map((b, i) => b ^ mask[i % 4]!))
    frames.push({ opcode: bytes[at]! & 0x0f, payload })
    at += 6 + length
  }
  return frames
}

/** Ping `i`'s payload: 125 bytes, its number first. */
const pingPayload = (i: number): Buffer => {
  const payload = Buffer.alloc(125, 0x70)
  payload.writeUInt32BE(i)
  return payload
}

/**
 * A peer that floods `count` pings of 125 bytes (numbered), then a text frame "after"; written with
 * backpressure, so that the flood is bounded by what the client reads. `reading`: it reads what
 * the client sends meanwhile; otherwise it reads nothing until `startReading`.
 */
const pingFlood = (count: number, reading: boolean) =>
  Effect.gen(function*() {
    const got: Array<Buffer> = []
    const sockets: Array<Net.Socket> = []
    const server = yield* upgradingServer({ count: 0 }, (socket, head) => {
      sockets.push(socket)
      socket.on("data", (data: Buffer) => got.push(data))
      if (reading) socket.resume()
      socket.write(head)
      let sent = 0
      const pump = (): void => {
        while (sent < count) {
          const batch = Array.from({ length: Math.min(1000, count - sent) }, () => rawFrame(0x89, pingPayload(sent++)))
          if (!socket.write(Buffer.concat(batch))) return void socket.once("drain", pump)
        }
        socket.write(rawFrame(0x81, Buffer.from("after")))
      }
      pump()
    })
    return {
      url: server.url,
      startReading: Effect.sync(() => sockets.forEach((socket) => socket.resume())),
      pongs: () => clientFrames(Buffer.concat(got)).filter((frame) => frame.opcode === 0x0a)
    }
  })

describe("round 8: a flood of pings", () => {
  it.live(
    "100 000 pings of 125 bytes from a peer that does not read: the text after them arrives; at most one pong waits in the client (was one per ping: MBs); once the peer reads, the latest ping is answered",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const COUNT = 100_000
        const peer = yield* pingFlood(COUNT, false)
        // This peer never answers a close frame: the release is not held to the default 5 s.
        const connection = yield* Connection.connect(peer.url, { closeTimeout: "100 millis" })
        const first = yield* Stream.runHead(connection.messages).pipe(Effect.timeout("10 seconds"))
        expect(first).toEqual(Option.some("after"))
        expect(yield* connection.activity).toBe(COUNT + 1)
        // One pong of 131 bytes (2 + 4 mask + 125) at most is with Node; the kernel holds the rest.
        expect(yield* connection.bufferedAmount).toBeLessThanOrEqual(131)
        yield* peer.startReading
        const last = pingPayload(COUNT - 1)
        yield* awaitTrue(
          Effect.sync(() => peer.pongs().at(-1)?.payload.equals(last) === true),
          "the latest ping answered"
        )
        const pongs = peer.pongs()
        expect(pongs.length).toBeLessThan(COUNT)
        // Each pong answers a ping, in order.
        const numbers = pongs.map((pong) => pong.payload.readUInt32BE(0))
        expect(numbers).toEqual([...numbers].sort((a, b) => a - b))
        expect(new Set(numbers).size).toBe(numbers.length)
      })).pipe(provideNode)
  )

  it.live("50 000 pings from a peer that reads, to a default Client: it stays Open, the text after them arrives, no uncaught error", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const [, strays] = yield* catchingStrays(Effect.gen(function*() {
        const peer = yield* pingFlood(50_000, true)
        const client = yield* Client.make({ url: peer.url, connection: { closeTimeout: "100 millis" } })
        const seen = yield* recordTransitions(client)
        const first = yield* Stream.runHead(client.messages).pipe(Effect.timeout("10 seconds"))
        expect(first).toEqual(Option.some("after"))
        expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
        const last = pingPayload(49_999)
        yield* awaitTrue(
          Effect.sync(() => peer.pongs().at(-1)?.payload.equals(last) === true),
          "the latest ping answered"
        )
        expect(seen).toEqual(["Connecting 1", "Open 1"])
      }))
      expect(strays).toEqual([])
    })).pipe(provideNode))
})

/** A `ws` server that accepts permessage-deflate and echoes, for the scope. */
const deflatingServer = Effect.acquireRelease(
  Effect.async<WebSocketServer>((resume) => {
    const wss: WebSocketServer = new WebSocketServer(
      { host: "127.0.0.1", port: 0, perMessageDeflate: true },
      () => resume(Effect.succeed(wss))
    )
    wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })))
  }),
  (wss) =>
    Effect.async<void>((resume) => {
      for (const ws of wss.clients) ws.terminate()
      wss.close(() => resume(Effect.void))
    })
)

const urlOf = (server: WebSocketServer) => `ws://127.0.0.1:${(server.address() as Net.AddressInfo).port}`

describe("round 8: what a user gets from a server that enables permessage-deflate", () => {
  it.live("a ws server with perMessageDeflate: negotiated; 200 KiB of text each way crosses the wire compressed and arrives whole", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* deflatingServer
      const client = yield* Client.make({ url: urlOf(server) })
      yield* client.awaitOpen
      const [peer] = [...server.clients]
      expect(peer!.extensions).toBe("permessage-deflate")
      const text = "lifeline ".repeat(200 * 1024 / 9)
      yield* client.send(text)
      const echoed = yield* Stream.runHead(client.messages).pipe(Effect.timeout("5 seconds"))
      expect(echoed).toEqual(Option.some(text))
      // What the server's TCP socket read: the handshake and the compressed frame, far under 200 KiB.
      const read = (peer as unknown as { _socket: Net.Socket })._socket.bytesRead
      expect(read).toBeLessThan(20 * 1024)
      expect(yield* client.close()).toEqual([])
    })).pipe(provideNode))

  it.live("perMessageDeflate: false (a Connection's option, a Client's connection option): not offered, so not negotiated; text crosses as it is", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* deflatingServer
        const text = "lifeline ".repeat(1000)
        const connection = yield* Connection.connect(urlOf(server), { perMessageDeflate: false })
        expect([...server.clients].map((peer) => peer.extensions)).toEqual([""])
        yield* connection.send(text)
        expect(yield* Stream.runHead(connection.messages).pipe(Effect.timeout("5 seconds"))).toEqual(Option.some(text))
        yield* connection.close()
        const client = yield* Client.make({ url: urlOf(server), connection: { perMessageDeflate: false } })
        yield* client.awaitOpen
        const open = [...server.clients].filter((peer) => peer.readyState === peer.OPEN)
        expect(open.map((peer) => peer.extensions)).toEqual([""])
        expect(yield* client.close()).toEqual([])
        // A value that is not a boolean is refused, named.
        const refused = yield* Effect.flip(
          Effect.scoped(Connection.connect(urlOf(server), { perMessageDeflate: "no" as never }))
        )
        expect(refused).toMatchObject({ _tag: "ConnectError", reason: "InvalidOptions" })
        expect(refused._tag === "ConnectError" && refused.detail).toMatch(/^perMessageDeflate: must be true or false;/)
      }).pipe(Effect.scoped)
    ).pipe(provideNode))
})
