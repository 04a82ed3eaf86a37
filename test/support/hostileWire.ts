/**
 * Round 22: a hostile WebSocket server at random. A generated `Script` says what a raw TCP peer on
 * 127.0.0.1 answers to the upgrade request (a correct 101, a 101 that breaks RFC 6455, another
 * status, a cut answer, garbage, nothing), which frames it sends after a 101 (valid and invalid),
 * in which pieces, and how it ends (half-close, FIN, reset, silence). `expect` is the oracle: what
 * lifeline must report for a script, from ws 8.18's receiver rules (node_modules/ws/lib/receiver.js).
 * Scripts are plain data (payloads as text or hex), so fast-check prints a shrunk case readably.
 */
import { Effect, FastCheck as fc } from "effect"
import * as Crypto from "node:crypto"
import type * as Net from "node:net"
import { acceptFor, onRequestHead, tcpServer } from "./tcpServer.js"

// ---------------------------------------------------------------------------------------------
// The script

/** What the peer answers to the upgrade request. */
export type Handshake =
  /** A correct 101, with extra headers and optionally a permessage-deflate the client accepts. */
  | {
    readonly kind: "accept"
    readonly headers: ReadonlyArray<readonly [string, string]>
    readonly deflate?: string | undefined
  }
  /** A 101 whose Sec-WebSocket-Accept is missing, wrong or sent twice. */
  | { readonly kind: "badAccept"; readonly accept: "missing" | "wrong" | "twice" }
  /** A 101 choosing a subprotocol nobody offered. */
  | { readonly kind: "unaskedProtocol"; readonly protocol: string }
  /** A 101 with an extension header the client cannot accept (unknown, bad parameters, garbled). */
  | { readonly kind: "badExtension"; readonly value: string }
  /** Another status, with or without Location and Retry-After (any printable text). */
  | {
    readonly kind: "status"
    readonly status: number
    readonly location?: string | undefined
    readonly retryAfter?: string | undefined
    readonly body: string
  }
  /** A correct 101 with one odd header line: obs-text, a control character, no colon, a folded line. */
  | { readonly kind: "oddHeader"; readonly line: string }
  /** The correct 101 cut after `at` bytes (then the ending). */
  | { readonly kind: "cut"; readonly at: number }
  /** Random bytes instead of HTTP (hex). */
  | { readonly kind: "garbage"; readonly hex: string }
  /** Nothing at all (then the ending). */
  | { readonly kind: "nothing" }

/** A frame fault and the close code ws reports for it. */
export type Fault =
  | { readonly kind: "reservedOpcode"; readonly opcode: number }
  | { readonly kind: "rsv"; readonly bits: number }
  | { readonly kind: "masked" }
  | { readonly kind: "controlTooLong"; readonly opcode: number; readonly length: number }
  | { readonly kind: "controlNotFin"; readonly opcode: number }
  /** A 64-bit length over 2^53 - 1 (high word over 2^21 - 1), or over maxPayload (100 MiB). */
  | { readonly kind: "hugeLength"; readonly high: number; readonly low: number }
  | { readonly kind: "orphanContinuation" }
  /** A first fragment, then a new data frame instead of a continuation. */
  | { readonly kind: "interruptedFragment"; readonly text: string }
  /** A text message with invalid UTF-8 (hex), whole or in fragments. */
  | { readonly kind: "invalidUtf8"; readonly hex: string; readonly fragmentAt?: number | undefined }
  | { readonly kind: "closeBadCode"; readonly code: number }
  | { readonly kind: "closeOneByte" }
  | { readonly kind: "closeBadReason"; readonly code: number; readonly hex: string }

/** One thing the peer sends after a 101. `length`: 0 minimal, 1 16-bit, 2 64-bit length field. */
export type Item =
  | { readonly kind: "text"; readonly text: string; readonly length: number }
  | { readonly kind: "binary"; readonly hex: string; readonly length: number }
  /** A message in fragments cut at `cuts` (bytes), with a ping or pong after some. */
  | {
    readonly kind: "fragmented"
    readonly binary: boolean
    readonly text: string
    readonly cuts: ReadonlyArray<number>
    readonly controls: ReadonlyArray<"ping" | "pong" | "none">
  }
  | { readonly kind: "ping" | "pong"; readonly hex: string }
  /** A valid close: no code (1005), or a valid code and reason (at most 123 bytes). */
  | { readonly kind: "close"; readonly code?: number | undefined; readonly reason: string }
  | { readonly kind: "fault"; readonly fault: Fault }
  /** Random bytes: what they parse as is not predicted. */
  | { readonly kind: "garbage"; readonly hex: string }
  /** A data frame that announces `declared` bytes and sends fewer: the rest never comes (nor the items after it). */
  | { readonly kind: "truncated"; readonly declared: number; readonly sent: number }

export type Ending = "halfClose" | "fin" | "reset" | "silent"

export interface Script {
  readonly handshake: Handshake
  readonly items: ReadonlyArray<Item>
  /** The bytes go out in writes of these sizes, in turn. */
  readonly chunks: ReadonlyArray<number>
  /** Between writes: nothing, one event-loop turn, or a 1 ms timer. */
  readonly pace: "burst" | "turns" | "timer"
  readonly ending: Ending
}

// ---------------------------------------------------------------------------------------------
// Generators

export const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")
export const bytesHex = (max: number, min = 0) => fc.uint8Array({ minLength: min, maxLength: max }).map(hexOf)
export const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/)
const printable = (max: number) => fc.stringMatching(new RegExp(`^[\\x20-\\x7e]{0,${max}}$`))
/** Valid Unicode text (whole grapheme clusters: no lone surrogate). */
export const text = (max: number) => fc.string({ unit: "grapheme", maxLength: max })

const handshake: fc.Arbitrary<Handshake> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("accept" as const),
      headers: fc.array(
        fc.oneof(
          fc.tuple(token.map((name) => `X-${name}`), printable(30)),
          fc.constantFrom(
            ["Server", "hostile/0.1"] as const,
            ["Content-Length", "0"] as const,
            ["Set-Cookie", "a=b; Path=/"] as const,
            ["Sec-WebSocket-Version", "13"] as const,
            ["Date", "Mon, 30 Nov 2026 17:00:00 GMT"] as const
          )
        ),
        { maxLength: 4 }
      ),
      deflate: fc.option(
        fc.constantFrom(
          "permessage-deflate",
          "permessage-deflate; server_no_context_takeover",
          "permessage-deflate; client_no_context_takeover",
          "permessage-deflate; client_max_window_bits=10",
          "permessage-deflate; server_max_window_bits=9",
          // ws 8.18 takes the first of several (RFC 7692 does not forbid listing it twice)
          "permessage-deflate, permessage-deflate; server_no_context_takeover"
        ),
        { nil: undefined }
      )
    }, { requiredKeys: ["kind", "headers"] })
  },
  fc.record({
    kind: fc.constant("badAccept" as const),
    accept: fc.constantFrom("missing" as const, "wrong" as const, "twice" as const)
  }),
  fc.record({ kind: fc.constant("unaskedProtocol" as const), protocol: token }),
  fc.record({
    kind: fc.constant("badExtension" as const),
    value: fc.oneof(
      fc.constantFrom(
        "x-unknown",
        "permessage-deflate; server_max_window_bits=99",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; nonsense",
        "permessage-deflate; server_no_context_takeover=yes",
        "=;;,"
      ),
      token.filter((name) => name.toLowerCase() !== "permessage-deflate")
    )
  }),
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("status" as const),
      status: fc.oneof(
        fc.constantFrom(100, 102, 103, 200, 204, 301, 302, 307, 400, 401, 403, 404, 426, 429, 500, 502, 503, 504),
        fc.integer({ min: 200, max: 599 })
      ),
      location: fc.option(
        fc.oneof(
          printable(40),
          fc.webUrl(),
          fc.constantFrom("ws://127.0.0.1:1/x?token=secret", "javascript:alert(1)", "//elsewhere/path")
        ),
        { nil: undefined }
      ),
      retryAfter: fc.option(
        fc.oneof(printable(30), fc.integer({ min: -5, max: 1e12 }).map(String), fc.date().map((d) => d.toUTCString())),
        { nil: undefined }
      ),
      body: printable(40)
    }, { requiredKeys: ["kind", "status", "body"] })
  },
  fc.record({
    kind: fc.constant("oddHeader" as const),
    line: fc.oneof(
      fc.constantFrom(
        "X-Latin: caf\xe9 \xff",
        "X-Control: a\x01b",
        "X-Nul: a\x00b",
        "No colon here",
        " folded continuation",
        ": empty name",
        "X-Space : before colon",
        "X-Tab:\tvalue",
        "X-Long: " + "a".repeat(9000)
      ),
      fc.tuple(token, fc.uint8Array({ minLength: 1, maxLength: 12 })).map(([name, bytes]) =>
        `X-${name}: ${Buffer.from(bytes.filter((byte) => byte !== 10 && byte !== 13)).toString("latin1")}`
      )
    )
  }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.integer({ min: 0, max: 128 }) }),
  fc.record({ kind: fc.constant("garbage" as const), hex: bytesHex(64, 1) }),
  fc.record({ kind: fc.constant("nothing" as const) })
)

const CONTROL = [0x8, 0x9, 0xa] as const

const fault: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({
    kind: fc.constant("reservedOpcode" as const),
    opcode: fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15)
  }),
  fc.record({ kind: fc.constant("rsv" as const), bits: fc.integer({ min: 1, max: 7 }) }),
  fc.record({ kind: fc.constant("masked" as const) }),
  fc.record({
    kind: fc.constant("controlTooLong" as const),
    opcode: fc.constantFrom(...CONTROL),
    length: fc.integer({ min: 126, max: 400 })
  }),
  fc.record({ kind: fc.constant("controlNotFin" as const), opcode: fc.constantFrom(...CONTROL) }),
  fc.record({
    kind: fc.constant("hugeLength" as const),
    high: fc.oneof(fc.integer({ min: 0x200000, max: 0xffffffff }), fc.integer({ min: 0, max: 0x1fffff })),
    low: fc.nat()
  }).filter(({ high, low }) => high * 2 ** 32 + low > 100 * 1024 * 1024),
  fc.record({ kind: fc.constant("orphanContinuation" as const) }),
  fc.record({ kind: fc.constant("interruptedFragment" as const), text: text(8) }),
  fc.record({
    kind: fc.constant("invalidUtf8" as const),
    hex: fc.tuple(
      text(6),
      fc.constantFrom("ff", "c0af", "e282", "eda080", "f8888080", "80", "f4908080", "fe"),
      text(6)
    ).map(([before, bad, after]) => Buffer.from(before).toString("hex") + bad + Buffer.from(after).toString("hex")),
    fragmentAt: fc.option(fc.nat({ max: 20 }), { nil: undefined })
  }, { requiredKeys: ["kind", "hex"] }),
  fc.record({
    kind: fc.constant("closeBadCode" as const),
    code: fc.oneof(
      fc.constantFrom(0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535),
      fc.integer({ min: 0, max: 65535 }).filter((code) => !validCloseCode(code))
    )
  }),
  fc.record({ kind: fc.constant("closeOneByte" as const) }),
  fc.record({
    kind: fc.constant("closeBadReason" as const),
    code: fc.constantFrom(1000, 1001, 1011, 4000),
    hex: fc.constantFrom("ff", "c0af", "e282", "eda080", "41ff42")
  })
)

const item: fc.Arbitrary<Item> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("text" as const), text: text(20), length: fc.nat({ max: 2 }) })
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("binary" as const), hex: bytesHex(24), length: fc.nat({ max: 2 }) })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("fragmented" as const),
      binary: fc.boolean(),
      text: text(16),
      cuts: fc.array(fc.nat({ max: 40 }), { minLength: 1, maxLength: 4 }),
      controls: fc.array(fc.constantFrom("ping" as const, "pong" as const, "none" as const), { maxLength: 4 })
    })
  },
  fc.record({ kind: fc.constantFrom("ping" as const, "pong" as const), hex: bytesHex(16) }),
  fc.record({
    kind: fc.constant("close" as const),
    code: fc.option(fc.integer({ min: 1000, max: 4999 }).filter(validCloseCode), { nil: undefined }),
    reason: text(30).filter((reason) => Buffer.byteLength(reason) <= 123)
  }, { requiredKeys: ["kind", "reason"] }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("fault" as const), fault }) },
  fc.record({ kind: fc.constant("garbage" as const), hex: bytesHex(24, 1) }),
  fc.record({
    kind: fc.constant("truncated" as const),
    declared: fc.integer({ min: 1, max: 70_000 }),
    sent: fc.nat({ max: 20 })
  }).filter(({ declared, sent }) => sent < declared)
)

export const script: fc.Arbitrary<Script> = fc.record({
  handshake,
  items: fc.array(item, { maxLength: 8 }),
  chunks: fc.array(fc.integer({ min: 1, max: 48 }), { minLength: 1, maxLength: 6 }),
  pace: fc.constantFrom("burst" as const, "turns" as const, "timer" as const),
  ending: fc.constantFrom("halfClose" as const, "fin" as const, "reset" as const, "silent" as const)
})

// ---------------------------------------------------------------------------------------------
// Bytes

/** ws 8.18's `isValidStatusCode`: what a close frame may carry. */
export function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
}

/** One unmasked server frame: first byte, payload, and the length field's form (0 minimal, 1 16-bit, 2 64-bit). */
export const frame = (first: number, payload: Buffer, form = 0, mask = false): Buffer => {
  const length = payload.length
  const use = length > 0xffff ? 2 : length > 125 ? Math.max(form, 1) : form
  const maskBit = mask ? 0x80 : 0
  const head = use === 0
    ? Buffer.from([first, maskBit | length])
    : use === 1
    ? Buffer.from([first, maskBit | 126, length >> 8, length & 0xff])
    : Buffer.concat([Buffer.from([first, maskBit | 127]), u64(0, length)])
  if (!mask) return Buffer.concat([head, payload])
  const key = Buffer.from([1, 2, 3, 4])
  return Buffer.concat([head, key, Buffer.from(payload.map((byte, index) => byte ^ key[index % 4]!))])
}

const u64 = (high: number, low: number): Buffer => {
  const bytes = Buffer.alloc(8)
  bytes.writeUInt32BE(high >>> 0, 0)
  bytes.writeUInt32BE(low >>> 0, 4)
  return bytes
}

const closePayload = (code: number, reason: Buffer): Buffer => {
  const bytes = Buffer.alloc(2)
  bytes.writeUInt16BE(code, 0)
  return Buffer.concat([bytes, reason])
}

/** Cuts a payload at the given byte offsets (sorted, clamped, deduplicated). */
export const pieces = (payload: Buffer, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const at = [...new Set(cuts.map((cut) => Math.min(cut, payload.length)))].sort((a, b) => a - b)
  const out: Array<Buffer> = []
  let from = 0
  for (const cut of [...at, payload.length]) {
    if (cut < from) continue
    out.push(payload.subarray(from, cut))
    from = cut
  }
  if (out.length === 0) out.push(payload)
  return out
}

const fragments = (opcode: number, parts: ReadonlyArray<Buffer>, controls: ReadonlyArray<string>): Buffer =>
  Buffer.concat(parts.flatMap((part, index) => {
    const last = index === parts.length - 1
    const first = (last ? 0x80 : 0) | (index === 0 ? opcode : 0)
    const control = controls[index]
    const extra = !last && control === "ping"
      ? [frame(0x89, Buffer.from("p"))]
      : !last && control === "pong"
      ? [frame(0x8a, Buffer.from("q"))]
      : []
    return [frame(first, part), ...extra]
  }))

const faultBytes = (fault: Fault, deflate: boolean): Buffer => {
  switch (fault.kind) {
    case "reservedOpcode":
      return frame(0x80 | fault.opcode, Buffer.from("x"))
    case "rsv":
      // With permessage-deflate, RSV1 alone means compressed: RSV2 is set too so that it is a fault.
      return frame(0x81 | ((deflate ? fault.bits | 2 : fault.bits) << 4), Buffer.from("x"))
    case "masked":
      return frame(0x81, Buffer.from("masked"), 0, true)
    case "controlTooLong":
      return frame(0x80 | fault.opcode, Buffer.alloc(fault.length, 0x61))
    case "controlNotFin":
      return frame(fault.opcode, Buffer.alloc(0))
    case "hugeLength":
      return Buffer.concat([Buffer.from([0x82, 127]), u64(fault.high, fault.low), Buffer.from("abc")])
    case "orphanContinuation":
      return frame(0x80, Buffer.from("x"))
    case "interruptedFragment":
      return Buffer.concat([frame(0x01, Buffer.from(fault.text)), frame(0x81, Buffer.from("new"))])
    case "invalidUtf8": {
      const payload = Buffer.from(fault.hex, "hex")
      return fault.fragmentAt === undefined
        ? frame(0x81, payload)
        : fragments(0x1, pieces(payload, [fault.fragmentAt]), [])
    }
    case "closeBadCode":
      return frame(0x88, closePayload(fault.code, Buffer.from("bad")))
    case "closeOneByte":
      return frame(0x88, Buffer.from([0x03]))
    case "closeBadReason":
      return frame(0x88, closePayload(fault.code, Buffer.from(fault.hex, "hex")))
  }
}

const itemBytes = (item: Item, deflate: boolean): Buffer => {
  switch (item.kind) {
    case "text":
      return frame(0x81, Buffer.from(item.text), item.length)
    case "binary":
      return frame(0x82, Buffer.from(item.hex, "hex"), item.length)
    case "fragmented": {
      const payload = item.binary ? Buffer.from(item.text, "utf8") : Buffer.from(item.text)
      return fragments(item.binary ? 0x2 : 0x1, pieces(payload, item.cuts), item.controls)
    }
    case "ping":
      return frame(0x89, Buffer.from(item.hex, "hex"))
    case "pong":
      return frame(0x8a, Buffer.from(item.hex, "hex"))
    case "close":
      return frame(0x88, item.code === undefined ? Buffer.alloc(0) : closePayload(item.code, Buffer.from(item.reason)))
    case "fault":
      return faultBytes(item.fault, deflate)
    case "garbage":
      return Buffer.from(item.hex, "hex")
    case "truncated": {
      const whole = frame(0x82, Buffer.alloc(item.declared, 0x62))
      return whole.subarray(0, whole.length - (item.declared - item.sent))
    }
  }
}

/** The items sent: up to the first truncated frame (what follows would be read as its payload). */
const sentItems = (items: ReadonlyArray<Item>): ReadonlyArray<Item> => {
  const cut = items.findIndex((item) => item.kind === "truncated")
  return cut === -1 ? items : items.slice(0, cut + 1)
}

const head101 = (lines: ReadonlyArray<string>): Buffer =>
  Buffer.from(["HTTP/1.1 101 Switching Protocols", ...lines, "", ""].join("\r\n"), "latin1")

const STANDARD = ["Upgrade: websocket", "Connection: Upgrade"]

/** The bytes the peer writes for a script, given the upgrade request it read. */
export const scriptBytes = (script: Script, request: string): Buffer => {
  const accept = acceptFor(request)
  const shake = script.handshake
  switch (shake.kind) {
    case "accept": {
      const extra = shake.headers.map(([name, value]) => `${name}: ${value}`)
      const deflate = shake.deflate === undefined ? [] : [`Sec-WebSocket-Extensions: ${shake.deflate}`]
      const head = head101([...STANDARD, `Sec-WebSocket-Accept: ${accept}`, ...deflate, ...extra])
      return Buffer.concat([
        head,
        ...sentItems(script.items).map((item) => itemBytes(item, shake.deflate !== undefined))
      ])
    }
    case "badAccept":
      return head101([
        ...STANDARD,
        ...(shake.accept === "missing"
          ? []
          : shake.accept === "wrong"
          ? [`Sec-WebSocket-Accept: ${Crypto.createHash("sha1").update(accept).digest("base64")}`]
          : [`Sec-WebSocket-Accept: ${accept}`, `Sec-WebSocket-Accept: ${accept}`])
      ])
    case "unaskedProtocol":
      return head101([...STANDARD, `Sec-WebSocket-Accept: ${accept}`, `Sec-WebSocket-Protocol: ${shake.protocol}`])
    case "badExtension":
      return head101([...STANDARD, `Sec-WebSocket-Accept: ${accept}`, `Sec-WebSocket-Extensions: ${shake.value}`])
    case "status": {
      const lines = [
        `HTTP/1.1 ${shake.status} Hostile`,
        ...(shake.location === undefined ? [] : [`Location: ${shake.location}`]),
        ...(shake.retryAfter === undefined ? [] : [`Retry-After: ${shake.retryAfter}`]),
        `Content-Length: ${shake.status === 204 ? 0 : Buffer.byteLength(shake.body)}`,
        "",
        shake.status === 204 ? "" : shake.body
      ]
      return Buffer.from(lines.join("\r\n"), "latin1")
    }
    case "oddHeader":
      return Buffer.concat([
        head101([...STANDARD, `Sec-WebSocket-Accept: ${accept}`, shake.line]),
        ...sentItems(script.items).map((item) => itemBytes(item, false))
      ])
    case "cut": {
      const head = head101([...STANDARD, `Sec-WebSocket-Accept: ${accept}`])
      return head.subarray(0, Math.min(shake.at, head.length - 1))
    }
    case "garbage":
      return Buffer.from(shake.hex, "hex")
    case "nothing":
      return Buffer.alloc(0)
  }
}

// ---------------------------------------------------------------------------------------------
// The peer

/** Plays `script` on every connection it accepts (a Client reconnects to the same script). */
export const hostilePeer = (script: Script) =>
  tcpServer((socket) =>
    onRequestHead(socket, (request) => {
      // Read on (the client's close frame), so that the kernel never holds unread bytes.
      socket.resume()
      play(socket, script, scriptBytes(script, request))
    })
  )

/** Writes `bytes` in the script's chunks and pace, then ends as it says (round 23 plays its own bytes so, over TLS too). */
export const play = (
  socket: Net.Socket,
  script: Pick<Script, "chunks" | "pace" | "ending">,
  bytes: Buffer,
  finish: (socket: Net.Socket) => void = (socket) => end(socket, script.ending)
): void => {
  const writes: Array<Buffer> = []
  for (let at = 0, turn = 0; at < bytes.length; turn++) {
    const size = script.chunks[turn % script.chunks.length]!
    writes.push(bytes.subarray(at, at + size))
    at += size
  }
  // At most 40 timer waits: the many-write cases go by event-loop turns instead.
  const pace = script.pace === "timer" && writes.length > 40 ? "turns" : script.pace
  let index = 0
  const next = (): void => {
    if (socket.destroyed) return
    while (index < writes.length) {
      socket.write(writes[index++]!)
      if (pace === "turns") return void setImmediate(next)
      if (pace === "timer") return void setTimeout(next, 1)
    }
    // The bytes written, the ending a moment later (a reset must not overtake them in this process).
    setTimeout(() => finish(socket), 2)
  }
  next()
}

export const end = (socket: Net.Socket, ending: Ending): void => {
  if (socket.destroyed) return
  switch (ending) {
    case "halfClose":
      return void socket.end()
    case "fin":
      socket.end()
      return void socket.destroySoon()
    case "reset":
      return void socket.resetAndDestroy()
    case "silent":
      return
  }
}

// ---------------------------------------------------------------------------------------------
// The oracle

/** How an attempt may end, as lifeline reports it. */
export type Outcome =
  | {
    readonly kind: "ConnectError"
    readonly reason: string
    readonly status?: number
    /** For a rejection: whether `retryAfter` is set (delay-seconds or an IMF-fixdate given). */
    readonly retryAfter?: boolean
  }
  | { readonly kind: "TimeoutError" }
  /** Opened, then ended with this close code and initiator (undefined: any). */
  | {
    readonly kind: "Disconnected"
    readonly code?: number
    readonly initiator?: string
    readonly reason?: string
    readonly wasClean?: boolean
  }

export interface Expected {
  readonly outcomes: ReadonlyArray<Outcome>
  /** The messages of one connection, as `describeMessage` shows them. */
  readonly messages: ReadonlyArray<string>
  /**
   * exact: these, in order; prefix: a prefix of them (bytes may be lost); prefixThenAny: these,
   * then anything; lossy: these in order as far as they go, then anything (garbage, then a reset).
   */
  readonly mode: "exact" | "prefix" | "prefixThenAny" | "lossy"
}

export const describeMessage = (message: unknown): string =>
  typeof message === "string"
    ? `text ${JSON.stringify(message)}`
    : message instanceof Uint8Array
    ? `binary ${Buffer.from(message).toString("hex")}`
    : `other ${String(message)}`

const faultCode = (fault: Fault): number => {
  switch (fault.kind) {
    case "hugeLength":
      return 1009
    case "invalidUtf8":
    case "closeBadReason":
      return 1007
    // No valid close frame (the peer was closing): 1006, as a browser reports it (round 36).
    case "closeBadCode":
      return 1006
    default:
      return 1002
  }
}

/** What the ending alone does to an attempt nothing answered (or answered in part). */
const unanswered = (ending: Ending): ReadonlyArray<Outcome> =>
  ending === "silent" ? [{ kind: "TimeoutError" }] : [{ kind: "ConnectError", reason: "ConnectionReset" }]

const violation: Outcome = { kind: "ConnectError", reason: "ProtocolViolation" }

/** A valid close frame from the server (no code: 1005), as lifeline reports it. */
export const closedByServer = (
  close: { readonly code?: number | undefined; readonly reason: string }
): Extract<Outcome, { kind: "Disconnected" }> => ({
  kind: "Disconnected",
  code: close.code ?? 1005,
  initiator: "server",
  reason: close.code === undefined ? "" : close.reason,
  wasClean: true
})

export const expected = (script: Script): Expected => {
  const shake = script.handshake
  const refused = (outcomes: ReadonlyArray<Outcome>): Expected => ({
    // A reset may overtake bytes still in flight: then it is a reset before any answer.
    outcomes: script.ending === "reset" ? [...outcomes, ...unanswered("reset")] : outcomes,
    messages: [],
    mode: "exact"
  })
  switch (shake.kind) {
    case "badAccept":
    case "unaskedProtocol":
    case "badExtension":
      return refused([violation])
    case "status":
      // A 1xx other than 101 is informational: Node waits on for the final answer, and reads
      // the body sent after it as the start of that answer.
      if (shake.status < 200) return refused([violation, ...unanswered(script.ending)])
      return refused([{
        kind: "ConnectError",
        reason: "HandshakeRejected",
        status: shake.status,
        retryAfter: shake.retryAfter !== undefined &&
          /^(\d+|[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT)$/.test(shake.retryAfter.trim())
      }])
    case "cut":
    case "nothing":
      return refused(unanswered(script.ending))
    case "garbage":
      // Not HTTP (Node's parser: HPE_*), or the start of something that never completes.
      return refused([violation, ...unanswered(script.ending)])
    case "oddHeader": {
      // Node's HTTP parser refuses some (HPE_*), takes others: then the frames, as after a 101.
      const opened = expected({ ...script, handshake: { kind: "accept", headers: [] } })
      return { ...opened, outcomes: [violation, ...opened.outcomes] }
    }
    case "accept":
      // Node's HTTP parser refuses a head with Content-Length twice (HPE_UNEXPECTED_CONTENT_LENGTH).
      if (shake.headers.filter(([name]) => name === "Content-Length").length > 1) return refused([violation])
      break
  }
  const messages: Array<string> = []
  let mode: Expected["mode"] = "exact"
  let end: Outcome | undefined
  for (const item of script.items) {
    if (item.kind === "text") messages.push(describeMessage(item.text))
    else if (item.kind === "binary") messages.push(describeMessage(Buffer.from(item.hex, "hex")))
    else if (item.kind === "fragmented") {
      messages.push(describeMessage(item.binary ? Buffer.from(item.text) : item.text))
    } else if (item.kind === "close") {
      end = closedByServer(item)
      break
    } else if (item.kind === "fault") {
      end = { kind: "Disconnected", code: faultCode(item.fault), initiator: "client", wasClean: false }
      break
    } else if (item.kind === "garbage") {
      mode = "prefixThenAny"
      end = { kind: "Disconnected" }
      // An incomplete frame, with a silent peer: open until the test closes it.
      if (script.ending === "silent") {
        return { outcomes: [end, { kind: "Disconnected", code: 1006, initiator: "client" }], messages, mode }
      }
      break
    } else if (item.kind === "truncated") break
  }
  // No close and no fault: the ending decides. Silent: the test closes after its read bound.
  if (end === undefined && script.ending === "silent") {
    // The test reads for a while, then closes: what came by then is a prefix (a stalled process
    // may not have read everything).
    return { outcomes: [{ kind: "Disconnected", code: 1006, initiator: "client" }], messages, mode: "prefix" }
  }
  end ??= { kind: "Disconnected", code: 1006, initiator: "transport" }
  if (script.ending !== "reset") return { outcomes: [end], messages, mode }
  // A reset may overtake what was sent last: any prefix, then a reset (before or after the 101).
  return {
    outcomes: [end, { kind: "Disconnected", code: 1006, initiator: "transport" }, ...unanswered("reset")],
    messages,
    mode: mode === "exact" ? "prefix" : "lossy"
  }
}

/** One line per script, for failure messages. */
export const describeScript = (script: Script): string => JSON.stringify(script)

/** A scoped hostile peer, for the tests. */
export const withPeer = <A, E, R>(
  script: Script,
  use: (url: string, sockets: Set<Net.Socket>) => Effect.Effect<A, E, R>
) => Effect.scoped(Effect.flatMap(hostilePeer(script), (peer) => use(peer.url, peer.sockets)))
