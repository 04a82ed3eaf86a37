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
import { Cause, Effect, HashMap, Layer, Logger, LogLevel, Option, Stream } from "effect"
import type * as Net from "node:net"
import * as Util from "node:util"
import * as Zlib from "node:zlib"
import { Client, Connection } from "../src/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode, quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { tcpServer, upgradingServer } from "./support/tcpServer.js"
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

/**
 * A peer that answers the upgrade with a correct 101 and `after` in the same write, and records
 * what the client sends next. `holdTcp`: it never ends its side of TCP (half-open allowed, so the
 * client's FIN is not answered); otherwise Node answers a FIN with its own, as most servers do.
 */
const misbehaving = (after: Buffer, holdTcp: boolean) =>
  Effect.gen(function*() {
    const requests = { count: 0 }
    const got: Array<Buffer> = []
    const server = yield* upgradingServer(requests, (socket, head) => {
      socket.allowHalfOpen = holdTcp
      socket.on("data", (data: Buffer) => got.push(data))
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
  /** The code the Disconnected reports and the client sends in its close frame. */
  readonly code: number
  /** What ws says, as the Disconnected's reason. */
  readonly reason: string
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
  ...[1005, 1006, 1015, 999, 5000].map((code) => ({
    name: `a close frame with code ${code} (may not be sent on the wire)`,
    bytes: rawFrame(0x88, closePayload(code)),
    code: 1002,
    reason: `Invalid WebSocket frame: invalid status code ${code}`,
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
        `${frame.name}${holdTcp ? ", the peer never ending TCP" : ""}: Open, then Closed by Disconnected ${frame.code} client (not retried); the peer gets a close ${frame.code}`,
        () =>
          withNoHandlesLeft(Effect.gen(function*() {
            const [, strays] = yield* catchingStrays(Effect.gen(function*() {
              const peer = yield* misbehaving(frame.bytes, holdTcp)
              const client = yield* Client.make({ url: peer.url })
              const seen = yield* recordTransitions(client)
              const closed = yield* awaitState(client, isTag("Closed"), "3 seconds")
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
