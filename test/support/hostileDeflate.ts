/**
 * Round 23: compressed frames and wss:// at random. A generated `DeflateScript` says what a raw
 * peer on 127.0.0.1 (TCP, or TLS with a certificate for 127.0.0.1) answers in
 * Sec-WebSocket-Extensions (permessage-deflate with random parameters, unknown extensions, garbled
 * syntax), which frames follow (compressed with RSV1: valid deflate with or without reference to
 * earlier messages, fragmented, a small deflate bomb, invalid UTF-8 once inflated, garbage; RSV1 on
 * control and continuation frames) and how it ends (over TLS also without close_notify, and reset in
 * the middle of a TLS record). Before a TLS handshake the peer may answer garbage, an alert or
 * plain HTTP instead. `expectedDeflate` is the oracle, from ws 8.18's extension.js,
 * permessage-deflate.js and receiver.js; what a compressed message inflates to is computed with
 * node:zlib, the history a context-takeover inflater holds given as the dictionary.
 * Scripts are plain data, so fast-check prints a shrunk case readably.
 */
import { Effect, FastCheck as fc } from "effect"
import * as Net from "node:net"
import { Duplex } from "node:stream"
import * as Tls from "node:tls"
import * as Zlib from "node:zlib"
import type { Ending, Expected, Outcome } from "./hostileWire.js"
import {
  bytesHex,
  closedByServer,
  describeMessage,
  end,
  frame,
  pieces,
  play,
  text,
  token,
  validCloseCode
} from "./hostileWire.js"
import { acceptFor, onRequestHead } from "./tcpServer.js"

// ---------------------------------------------------------------------------------------------
// The script

/** One extension parameter: `key`, or `key=value`, or `key="value"`. */
export interface Param {
  readonly key: string
  readonly value?: string | undefined
  readonly quoted?: boolean | undefined
}

/** What the peer answers in Sec-WebSocket-Extensions. */
export type ExtensionAnswer =
  | { readonly kind: "none" }
  | {
    readonly kind: "list"
    readonly extensions: ReadonlyArray<{ readonly name: string; readonly params: ReadonlyArray<Param> }>
  }
  /** A header value as it is (those generated all throw in ws's extension.js `parse`). */
  | { readonly kind: "raw"; readonly value: string }

/** One thing the peer sends after a 101. `text` is sent as its UTF-8 bytes (binary: the same bytes). */
export type DeflateItem =
  /** An uncompressed data frame (RSV1 clear: allowed with permessage-deflate). */
  | { readonly kind: "plain"; readonly binary: boolean; readonly text: string }
  /**
   * A compressed message: deflated at `windowBits` with the server's history as dictionary when
   * `refer` (context takeover on the server's side), ended with a sync flush (trailer stripped) or
   * a final block (`final`), cut into fragments at `cuts`, a ping after the first when `ping`.
   */
  | {
    readonly kind: "compressed"
    readonly binary: boolean
    readonly text: string
    readonly refer: boolean
    readonly windowBits: number
    readonly final: boolean
    readonly cuts: ReadonlyArray<number>
    readonly ping: boolean
  }
  /** `size` zero bytes, compressed (a small deflate bomb: ~1 KiB per MiB). */
  | { readonly kind: "bomb"; readonly size: number }
  /** Compressed text that inflates to invalid UTF-8 (hex). */
  | { readonly kind: "badUtf8"; readonly hex: string }
  /** RSV1 on bytes that may or may not be a deflate stream (hex). */
  | { readonly kind: "garbage"; readonly hex: string; readonly binary: boolean }
  /** A control frame with RSV1 (a protocol error, compressed or not). */
  | { readonly kind: "rsv1Control"; readonly opcode: number }
  /** A compressed first fragment, then a continuation with RSV1 set (a protocol error). */
  | { readonly kind: "rsv1Continuation"; readonly text: string }
  | { readonly kind: "close"; readonly code?: number | undefined; readonly reason: string }

/** Before the TLS handshake: nothing odd, or instead of a ServerHello garbage, an alert, plain HTTP. */
export type TlsStart = "handshake" | "alert" | "plainHttp" | { readonly garbage: string }

export type Transport =
  | { readonly kind: "tcp" }
  | { readonly kind: "tls"; readonly trusted: boolean; readonly start: TlsStart }

/** Over TLS, besides round 22's: `destroy` (no close_notify, then FIN), `cutRecord` (a record cut, then a reset). */
export type DeflateEnding = Ending | "destroy" | "cutRecord"

export interface DeflateScript {
  readonly transport: Transport
  /** The client's `perMessageDeflate` option. */
  readonly offer: boolean
  /** The client's `maxPayload` (undefined: the default, 100 MiB). */
  readonly maxPayload?: number | undefined
  readonly answer: ExtensionAnswer
  readonly items: ReadonlyArray<DeflateItem>
  readonly chunks: ReadonlyArray<number>
  readonly pace: "burst" | "turns" | "timer"
  readonly ending: DeflateEnding
}

// ---------------------------------------------------------------------------------------------
// Generators

const PMD = "permessage-deflate"
const BITS_VALUES = ["8", "9", "10", "11", "12", "13", "14", "15", "7", "16", "0", "abc", "", "010", "0x9", "1e1", "+9"]

const param: fc.Arbitrary<Param> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      key: fc.constantFrom("server_no_context_takeover", "client_no_context_takeover"),
      value: fc.option(fc.constantFrom("true", "1"), { nil: undefined, freq: 2 }),
      quoted: fc.boolean()
    })
  },
  {
    weight: 4,
    arbitrary: fc.record({
      key: fc.constantFrom("server_max_window_bits", "client_max_window_bits"),
      value: fc.option(fc.constantFrom(...BITS_VALUES), { nil: undefined, freq: 6 }),
      quoted: fc.boolean()
    })
  },
  fc.record({
    key: fc.constantFrom("x_unknown", "max_window_bits", "Server_No_Context_Takeover"),
    value: fc.constant(undefined)
  })
)

/** Parameters ws accepts: each key once, a flag without a value, window bits 8..15 (as ws reads them). */
const validParams: fc.Arbitrary<ReadonlyArray<Param>> = fc.record({
  serverNoContext: fc.boolean(),
  clientNoContext: fc.boolean(),
  serverBits: fc.option(fc.constantFrom("8", "9", "10", "12", "15", "010", "0x9", "1e1", "+9"), { nil: undefined }),
  clientBits: fc.option(fc.constantFrom("8", "9", "11", "15"), { nil: undefined }),
  quoted: fc.boolean(),
  order: fc.nat()
}).map(({ clientBits, clientNoContext, order, quoted, serverBits, serverNoContext }) => {
  const params: Array<Param> = [
    ...(serverNoContext ? [{ key: "server_no_context_takeover" }] : []),
    ...(clientNoContext ? [{ key: "client_no_context_takeover" }] : []),
    ...(serverBits === undefined ? [] : [{ key: "server_max_window_bits", value: serverBits, quoted }]),
    ...(clientBits === undefined ? [] : [{ key: "client_max_window_bits", value: clientBits }])
  ]
  return params.map((_, index) => params[(index + order) % params.length]!)
})

const answer: fc.Arbitrary<ExtensionAnswer> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: "none" as const }) },
  {
    weight: 7,
    arbitrary: fc.record({
      kind: fc.constant("list" as const),
      extensions: validParams.map((params) => [{ name: PMD, params }])
    })
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("list" as const),
      extensions: fc.array(
        fc.record({
          name: fc.oneof(
            { weight: 8, arbitrary: fc.constant(PMD) },
            fc.constantFrom("x-webkit-deflate-frame", "Permessage-Deflate", "permessage-bzip2"),
            token
          ),
          params: fc.oneof(fc.array(param, { maxLength: 3 }), validParams)
        }),
        { minLength: 1, maxLength: 2 }
      )
    })
  },
  fc.record({
    kind: fc.constant("raw" as const),
    value: fc.constantFrom(
      "permessage-deflate;",
      "permessage-deflate; server_max_window_bits=",
      "permessage-deflate; server_max_window_bits=\"10",
      "permessage-deflate; client_max_window_bits=\"1 0\"",
      ";permessage-deflate",
      ", permessage-deflate",
      "permessage-deflate,",
      "permessage deflate",
      "permessage-deflate; a b",
      "permessage-deflate; =10",
      "permessage-deflate;; server_no_context_takeover",
      "permessage-deflate; server_max_window_bits==10",
      "permessage-deflate; server_max_window_bits = 10",
      "\"permessage-deflate\""
    )
  })
)

/** Text that repeats words across messages, so that a later one can refer back to an earlier. */
const wordy = fc.array(
  fc.oneof(
    fc.constantFrom("alpha ", "beta ", "gamma ", "lifeline ", "deflate ", "\u00e9t\u00e9 ", "\u{1F600} "),
    text(4)
  ),
  { maxLength: 24 }
).chain((words) => fc.integer({ min: 1, max: 30 }).map((times) => words.join("").repeat(words.length < 4 ? times : 1)))

const item: fc.Arbitrary<DeflateItem> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("plain" as const), binary: fc.boolean(), text: wordy }) },
  {
    weight: 14,
    arbitrary: fc.record({
      kind: fc.constant("compressed" as const),
      binary: fc.boolean(),
      text: wordy,
      refer: fc.boolean(),
      windowBits: fc.oneof({ weight: 3, arbitrary: fc.constant(15) }, fc.integer({ min: 9, max: 15 })),
      final: fc.boolean(),
      cuts: fc.array(fc.nat({ max: 60 }), { maxLength: 3 }),
      ping: fc.boolean()
    })
  },
  fc.record({ kind: fc.constant("bomb" as const), size: fc.constantFrom(70_000, 1024 * 1024) }),
  fc.record({
    kind: fc.constant("badUtf8" as const),
    hex: fc.tuple(text(6), fc.constantFrom("ff", "c0af", "e282", "eda080", "f8888080", "80"), text(6))
      .map(([before, bad, after]) => Buffer.from(before).toString("hex") + bad + Buffer.from(after).toString("hex"))
  }),
  fc.record({ kind: fc.constant("garbage" as const), hex: bytesHex(24, 1), binary: fc.boolean() }),
  fc.record({ kind: fc.constant("rsv1Control" as const), opcode: fc.constantFrom(0x8, 0x9, 0xa) }),
  fc.record({ kind: fc.constant("rsv1Continuation" as const), text: text(12) }),
  fc.record({
    kind: fc.constant("close" as const),
    code: fc.option(fc.integer({ min: 1000, max: 4999 }).filter(validCloseCode), { nil: undefined }),
    reason: text(20).filter((reason) => Buffer.byteLength(reason) <= 123)
  }, { requiredKeys: ["kind", "reason"] })
)

const tlsStart: fc.Arbitrary<TlsStart> = fc.oneof(
  { weight: 8, arbitrary: fc.constant("handshake" as const) },
  fc.constantFrom("alert" as const, "plainHttp" as const),
  fc.record({ garbage: bytesHex(40, 1) })
)

const transport: fc.Arbitrary<Transport> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: "tcp" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("tls" as const),
      trusted: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, fc.constant(false)),
      start: tlsStart
    })
  }
)

const tcpEndings = ["halfClose", "fin", "reset", "silent"] as const
const tlsEndings = [...tcpEndings, "destroy", "cutRecord"] as const

export const deflateScript: fc.Arbitrary<DeflateScript> = transport.chain((transport) =>
  fc.record({
    transport: fc.constant(transport),
    offer: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, fc.constant(false)),
    maxPayload: fc.constantFrom(undefined, 65_536, 1024),
    answer,
    items: fc.array(item, { maxLength: 6 }),
    chunks: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 4 }),
    pace: fc.constantFrom("burst" as const, "turns" as const, "timer" as const),
    ending: fc.constantFrom<DeflateEnding>(...(transport.kind === "tls" ? tlsEndings : tcpEndings))
  }, { requiredKeys: ["transport", "offer", "answer", "items", "chunks", "pace", "ending"] })
)

// ---------------------------------------------------------------------------------------------
// Bytes

const formatParam = (param: Param): string =>
  param.value === undefined
    ? param.key
    : param.quoted === true
    ? `${param.key}="${param.value}"`
    : `${param.key}=${param.value}`

/** The Sec-WebSocket-Extensions value of an answer (undefined: no header). */
export const extensionHeader = (answer: ExtensionAnswer): string | undefined =>
  answer.kind === "none"
    ? undefined
    : answer.kind === "raw"
    ? answer.value
    : answer.extensions.map(({ name, params }) => [name, ...params.map(formatParam)].join("; ")).join(", ")

const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff])
const SYNC = { finishFlush: Zlib.constants.Z_SYNC_FLUSH }

/** Raw deflate as a permessage-deflate sender makes it: a sync flush, its trailer stripped (or a final block). */
export const deflate = (
  payload: Buffer,
  options: { windowBits?: number; dictionary?: Buffer; final?: boolean } = {}
) => {
  const zlibOptions = {
    windowBits: options.windowBits ?? 15,
    ...(options.dictionary === undefined || options.dictionary.length === 0 ? {} : { dictionary: options.dictionary })
  }
  if (options.final === true) return Zlib.deflateRawSync(payload, zlibOptions)
  const out = Zlib.deflateRawSync(payload, { ...zlibOptions, ...SYNC })
  return out.subarray(0, out.length - 4)
}

/** A bomb's bytes, made once per size (the peer and the oracle both need them). */
const bombs = new Map<number, Buffer>()
export const bomb = (size: number): Buffer => {
  let bytes = bombs.get(size)
  if (bytes === undefined) bombs.set(size, bytes = deflate(Buffer.alloc(size)))
  return bytes
}

const RSV1 = 0x40
const PING = frame(0x89, Buffer.from("p"))

/** A compressed message's frames: RSV1 on the first only (RFC 7692 §6.1). */
const compressedFrames = (opcode: number, data: Buffer, cuts: ReadonlyArray<number>, ping: boolean): Buffer => {
  const parts = pieces(data, cuts)
  return Buffer.concat(parts.flatMap((part, index) => {
    const last = index === parts.length - 1
    const first = (last ? 0x80 : 0) | (index === 0 ? opcode | RSV1 : 0)
    return [frame(first, part), ...(ping && index === 0 && !last ? [PING] : [])]
  }))
}

/** The payload bytes of a compressed item, as the server compresses them given its own history. */
const serverPayload = (item: Extract<DeflateItem, { kind: "compressed" }>, history: Buffer): Buffer =>
  deflate(Buffer.from(item.text), {
    windowBits: item.windowBits,
    ...(item.refer ? { dictionary: history } : {}),
    final: item.final
  })

const MAX_HISTORY = 32 * 1024
const keep = (history: Buffer, more: Buffer): Buffer => {
  const all = Buffer.concat([history, more])
  return all.length > MAX_HISTORY ? all.subarray(all.length - MAX_HISTORY) : all
}

/** The frames after a 101, each item's bytes (the server's history threads through the compressed ones). */
const itemsBytes = (items: ReadonlyArray<DeflateItem>): Array<Buffer> => {
  let history: Buffer = Buffer.alloc(0)
  return items.map((item) => {
    switch (item.kind) {
      case "plain":
        return frame(item.binary ? 0x82 : 0x81, Buffer.from(item.text))
      case "compressed": {
        const data = serverPayload(item, history)
        history = keep(history, Buffer.from(item.text))
        return compressedFrames(item.binary ? 0x2 : 0x1, data, item.cuts, item.ping)
      }
      case "bomb":
        // The client's window holds the zeros too: the server's history does (a consistent compressor).
        history = keep(history, Buffer.alloc(Math.min(item.size, MAX_HISTORY)))
        return frame(0x82 | RSV1, bomb(item.size))
      case "badUtf8":
        return frame(0x81 | RSV1, deflate(Buffer.from(item.hex, "hex")))
      case "garbage":
        return frame((item.binary ? 0x82 : 0x81) | RSV1, Buffer.from(item.hex, "hex"))
      case "rsv1Control":
        return frame(0x80 | RSV1 | item.opcode, item.opcode === 0x8 ? Buffer.from([0x03, 0xe8]) : Buffer.alloc(0))
      case "rsv1Continuation": {
        const data = deflate(Buffer.from(item.text))
        return Buffer.concat([frame(0x01 | RSV1, data), frame(0x80 | RSV1, deflate(Buffer.from("more")))])
      }
      case "close": {
        if (item.code === undefined) return frame(0x88, Buffer.alloc(0))
        const code = Buffer.alloc(2)
        code.writeUInt16BE(item.code, 0)
        return frame(0x88, Buffer.concat([code, Buffer.from(item.reason)]))
      }
    }
  })
}

/** The peer's bytes for the upgrade request it read. */
export const deflateScriptBytes = (script: DeflateScript, request: string): Buffer => {
  const header = extensionHeader(script.answer)
  const head = Buffer.from(
    [
      "HTTP/1.1 101 Switching Protocols",
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Accept: ${acceptFor(request)}`,
      ...(header === undefined ? [] : [`Sec-WebSocket-Extensions: ${header}`]),
      "",
      ""
    ].join("\r\n"),
    "latin1"
  )
  return Buffer.concat([head, ...itemsBytes(script.items)])
}

// ---------------------------------------------------------------------------------------------
// The peer

export interface Peer {
  readonly url: string
  readonly sockets: Set<Net.Socket>
}

// A TLS alert record: fatal (2), handshake_failure (40).
const ALERT = Buffer.from("150303000202" + "28", "hex")
const PLAIN_HTTP = Buffer.from("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "latin1")

const endTls = (tls: Tls.TLSSocket, raw: Net.Socket, ending: DeflateEnding, cut: { armed: boolean }): void => {
  if (tls.destroyed) return
  switch (ending) {
    case "destroy":
      // No close_notify: the TLS layer goes, then the TCP connection ends with a FIN.
      tls.destroy()
      return void raw.end()
    case "cutRecord":
      // A record of ~300 bytes: half of it goes out, then a reset.
      cut.armed = true
      return void tls.write(frame(0x82, Buffer.alloc(300, 0x63)))
    case "reset":
      return void raw.resetAndDestroy()
    default:
      return end(tls, ending)
  }
}

const serveTls = (raw: Net.Socket, script: DeflateScript, context: Tls.SecureContext): void => {
  raw.on("error", () => {})
  const cut = { armed: false }
  // The TLS socket writes through this pipe, so that a record can be cut.
  const pipe = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      if (raw.destroyed) return callback()
      if (!cut.armed) return void raw.write(chunk, () => callback())
      cut.armed = false
      raw.write(chunk.subarray(0, Math.max(1, chunk.length >> 1)), () => raw.resetAndDestroy())
      callback()
    },
    final(callback) {
      raw.end()
      callback()
    }
  })
  raw.on("data", (data: Buffer) => pipe.push(data))
  raw.on("end", () => pipe.push(null))
  raw.on("close", () => pipe.destroy())
  pipe.on("error", () => {})
  const tls = new Tls.TLSSocket(pipe as unknown as Net.Socket, { isServer: true, secureContext: context })
  tls.on("error", () => {})
  tls.on("close", () => {
    if (!raw.destroyed) raw.end()
  })
  onRequestHead(tls, (request) => {
    tls.resume()
    play(tls, paced(script), deflateScriptBytes(script, request), () => endTls(tls, raw, script.ending, cut))
  })
}

/** The peer, raw TCP or TLS (then `tls` is the server's certificate and key); every connection plays the script. */
export const deflatePeer = (script: DeflateScript, tls: { readonly cert: string; readonly key: string }) =>
  Effect.acquireRelease(
    Effect.async<Peer & { readonly server: Net.Server }>((resume) => {
      const sockets = new Set<Net.Socket>()
      const context = Tls.createSecureContext({ cert: tls.cert, key: tls.key })
      const server = Net.createServer((raw) => {
        sockets.add(raw)
        raw.on("close", () => sockets.delete(raw))
        raw.on("error", () => {})
        const transport = script.transport
        if (transport.kind === "tcp") {
          return onRequestHead(raw, (request) => {
            raw.resume()
            play(raw, paced(script), deflateScriptBytes(script, request))
          })
        }
        if (transport.start === "handshake") return serveTls(raw, script, context)
        // Not TLS: once the ClientHello is in, something else answers it.
        raw.once("data", () => {
          raw.resume()
          const start = transport.start
          const bytes = start === "alert"
            ? ALERT
            : start === "plainHttp"
            ? PLAIN_HTTP
            : Buffer.from((start as { readonly garbage: string }).garbage, "hex")
          play(raw, paced(script), bytes)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as Net.AddressInfo
        const scheme = script.transport.kind === "tls" ? "wss" : "ws"
        resume(Effect.succeed({ url: `${scheme}://127.0.0.1:${port}`, sockets, server }))
      })
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )

/** The script's pace for `play`, its TLS endings as TCP ones (for a connection that never got to TLS). */
const paced = (script: DeflateScript) => ({
  chunks: script.chunks,
  pace: script.pace,
  ending: tcpEnding(script.ending)
})

/** The TLS endings on a connection that never got to TLS. */
const tcpEnding = (ending: DeflateEnding): Ending =>
  ending === "destroy" ? "fin" : ending === "cutRecord" ? "reset" : ending

export const withDeflatePeer = <A, E, R>(
  script: DeflateScript,
  tls: { readonly cert: string; readonly key: string },
  use: (url: string, sockets: Set<Net.Socket>) => Effect.Effect<A, E, R>
) => Effect.scoped(Effect.flatMap(deflatePeer(script, tls), (peer) => use(peer.url, peer.sockets)))

// ---------------------------------------------------------------------------------------------
// The oracle

/** What ws 8.18 makes of the answer: the parameters it accepted, or why the handshake fails. */
export type Negotiated =
  | { readonly accepted: false }
  | { readonly accepted: true; readonly deflate: false }
  | { readonly accepted: true; readonly deflate: true; readonly serverNoContext: boolean; readonly serverBits: number }

const FLAGS = new Set(["server_no_context_takeover", "client_no_context_takeover"])
const BITS = new Set(["server_max_window_bits", "client_max_window_bits"])

/** A window-bits value as ws reads it (`+value`, an integer 8..15: "010", "0x9", "1e1" and "+9" pass). */
const bitsOf = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const number = +value
  return Number.isInteger(number) && number >= 8 && number <= 15 ? number : undefined
}

export const negotiate = (script: DeflateScript): Negotiated => {
  const answer = script.answer
  if (answer.kind === "none") return { accepted: true, deflate: false }
  // Any extension header when none was offered; a header extension.js cannot parse.
  if (!script.offer || answer.kind === "raw") return { accepted: false }
  // An empty value (`key=`) does not parse either.
  if (answer.extensions.some(({ params }) => params.some((param) => param.value === ""))) return { accepted: false }
  const names = new Set(answer.extensions.map(({ name }) => name))
  if (names.size !== 1 || !names.has(PMD)) return { accepted: false }
  for (const { params } of answer.extensions) {
    const keys = params.map(({ key }) => key)
    if (new Set(keys).size !== keys.length) return { accepted: false }
    for (const { key, value } of params) {
      if (FLAGS.has(key) && value !== undefined) return { accepted: false }
      if (BITS.has(key) && bitsOf(value) === undefined) return { accepted: false }
      if (!FLAGS.has(key) && !BITS.has(key)) return { accepted: false }
    }
  }
  // The client offered `client_max_window_bits` and set no option: it takes the first answer as it is.
  const first = answer.extensions[0]!.params
  return {
    accepted: true,
    deflate: true,
    serverNoContext: first.some(({ key }) => key === "server_no_context_takeover"),
    serverBits: bitsOf(first.find(({ key }) => key === "server_max_window_bits")?.value) ?? 15
  }
}

/** What a message does to the client: arrives (as `describeMessage` shows it), or closes with one of these codes. */
type Effect1 = { readonly message: string } | { readonly codes: ReadonlyArray<number> }

/**
 * ws's inflater as one raw stream: what it has been written since it was made or reset (each
 * message's data and the 00 00 ff ff trailer), and what that inflated to. Not a window of output
 * alone: a message may end in the middle of a block (garbage does), and the next goes on from there.
 */
interface Inflater {
  readonly input: Buffer
  readonly output: number
}

const FRESH: Inflater = { input: Buffer.alloc(0), output: 0 }

/**
 * One message through the inflater: its output, whether the stream ended (a final block: ws then
 * makes a new inflater), or undefined when zlib fails (a Z_* error).
 */
const inflate = (
  inflater: Inflater,
  data: Buffer,
  windowBits: number
): { readonly out: Buffer; readonly next: Inflater; readonly ended: boolean } | undefined => {
  const input = Buffer.concat([inflater.input, data, TRAILER])
  try {
    const { buffer, engine } = Zlib.inflateRawSync(input, { ...SYNC, windowBits, info: true }) as unknown as {
      buffer: Buffer
      engine: { bytesWritten: number }
    }
    return {
      out: buffer.subarray(inflater.output),
      next: { input, output: buffer.length },
      ended: engine.bytesWritten < input.length
    }
  } catch {
    return undefined
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true })
const validUtf8 = (bytes: Buffer): boolean => {
  try {
    utf8.decode(bytes)
    return true
  } catch {
    return false
  }
}

export const expectedDeflate = (script: DeflateScript): Expected => {
  const t = script.transport
  const refused = (outcomes: ReadonlyArray<Outcome>): Expected => ({ outcomes, messages: [], mode: "exact" })
  if (t.kind === "tls") {
    const reset = script.ending === "reset" || script.ending === "cutRecord"
    if (t.start !== "handshake") {
      // An alert or plain HTTP is a TLS failure; garbage too, or, cut short, a connection that
      // ends before TLS (TlsFailed), is reset (ConnectionReset) or says nothing more (a timeout).
      return refused([
        { kind: "ConnectError", reason: "TlsFailed" },
        ...(reset ? [{ kind: "ConnectError" as const, reason: "ConnectionReset" }] : []),
        ...(script.ending === "silent" && typeof t.start === "object" ? [{ kind: "TimeoutError" as const }] : [])
      ])
    }
    if (!t.trusted) return refused([{ kind: "ConnectError", reason: "TlsFailed" }])
  }
  const negotiated = negotiate(script)
  const reset = script.ending === "reset" || script.ending === "cutRecord"
  if (!negotiated.accepted) {
    return refused([
      { kind: "ConnectError", reason: "ProtocolViolation" },
      ...(reset ? [{ kind: "ConnectError" as const, reason: "ConnectionReset" }] : [])
    ])
  }
  const maxPayload = script.maxPayload ?? 100 * 1024 * 1024
  const deflating = negotiated.deflate
  const windowBits = negotiated.deflate ? negotiated.serverBits : 15
  const resetEach = negotiated.deflate && negotiated.serverNoContext
  const messages: Array<string> = []
  let serverHistory: Buffer = Buffer.alloc(0)
  let inflater = FRESH
  let end: Outcome | undefined
  const fault = (code: number): Outcome => ({ kind: "Disconnected", code, initiator: "client", wasClean: false })
  let faults: ReadonlyArray<Outcome> = []
  /** A compressed message's effect; the client's window moves on (or starts over). */
  const compressed = (data: Buffer, binary: boolean, garbage = false): Effect1 => {
    if (!deflating) return { codes: [1002] }
    // The compressed length is checked first (the frame's), then the inflated one.
    if (data.length > maxPayload) return { codes: [1009] }
    const result = inflate(inflater, data, windowBits)
    // Garbage may inflate past maxPayload before zlib finds it broken: 1009 then.
    if (result === undefined) return { codes: garbage ? [1007, 1009] : [1007] }
    if (result.out.length > maxPayload) return { codes: [1009] }
    if (!binary && !validUtf8(result.out)) return { codes: [1007] }
    inflater = resetEach || result.ended ? FRESH : result.next
    return { message: describeMessage(binary ? result.out : result.out.toString("utf8")) }
  }
  for (const item of script.items) {
    let effect: Effect1
    switch (item.kind) {
      case "plain": {
        const bytes = Buffer.from(item.text)
        effect = bytes.length > maxPayload
          ? { codes: [1009] }
          : { message: describeMessage(item.binary ? bytes : item.text) }
        break
      }
      case "compressed": {
        const data = serverPayload(item, serverHistory)
        serverHistory = keep(serverHistory, Buffer.from(item.text))
        effect = compressed(data, item.binary)
        // What inflates is what was compressed: the oracle's own check (a wrong window fails in zlib).
        const sent = describeMessage(item.binary ? Buffer.from(item.text) : item.text)
        if ("message" in effect && effect.message !== sent) {
          throw new Error(`oracle: ${JSON.stringify(item)} inflated to ${effect.message}`)
        }
        break
      }
      case "bomb":
        serverHistory = keep(serverHistory, Buffer.alloc(Math.min(item.size, MAX_HISTORY)))
        effect = compressed(bomb(item.size), true)
        break
      case "badUtf8":
        effect = compressed(deflate(Buffer.from(item.hex, "hex")), false)
        break
      case "garbage": {
        effect = compressed(Buffer.from(item.hex, "hex"), item.binary, true)
        if ("codes" in effect) break
        // It inflated: to what, and where it leaves the inflater, is not predicted. A final block
        // that ends exactly at the trailer (e.g. 39 then 00 00 ff ff: an empty stored block)
        // is not seen as the end until the next message is written into the ended stream
        // (Node's zlib), so ws does not start a new inflater: the next message is lost or 1007.
        const anyEnd: Outcome = { kind: "Disconnected" }
        return {
          outcomes: [
            anyEnd,
            ...(reset ? [{ kind: "ConnectError" as const, reason: "ConnectionReset" }] : []),
            // A silent peer: open until the test closes it
            ...(script.ending === "silent" ? [{ kind: "Disconnected" as const, code: 1006, initiator: "client" }] : [])
          ],
          messages,
          mode: "prefixThenAny"
        }
      }
      case "rsv1Control":
      case "rsv1Continuation":
        effect = { codes: [1002] }
        break
      case "close":
        end = closedByServer(item)
        // A stalled process may close at its read bound as the server's close comes in: the two
        // cross, and the server's code and reason are reported with the client as initiator
        // (seen once in 6,000 cases, with eslint running beside the test).
        faults = [{ ...end, initiator: "client" }]
        effect = { message: "" }
        break
    }
    if (end !== undefined) break
    if ("codes" in effect) {
      ;[end, ...faults] = effect.codes.map(fault)
      break
    }
    messages.push(effect.message)
  }
  if (end === undefined && script.ending === "silent") {
    return { outcomes: [{ kind: "Disconnected", code: 1006, initiator: "client" }], messages, mode: "prefix" }
  }
  end ??= { kind: "Disconnected", code: 1006, initiator: "transport" }
  if (!reset) return { outcomes: [end, ...faults], messages, mode: "exact" }
  // A reset may overtake what was sent last: any prefix, then a reset (before or after the 101).
  return {
    outcomes: [
      end,
      ...faults,
      { kind: "Disconnected", code: 1006, initiator: "transport" },
      { kind: "ConnectError", reason: "ConnectionReset" }
    ],
    messages,
    mode: "prefix"
  }
}

export const describeDeflateScript = (script: DeflateScript): string => JSON.stringify(script)

/**
 * A script (seed 777's case 272, shortened by hand) after which ws 8.18 throws an uncaught
 * `TypeError: Cannot read properties of null (reading 'Symbol(error)')` from
 * permessage-deflate.js:366 in about one replay of three: the receiver fails (RSV1 on a pong),
 * but until its `error` event ws writes the next read to it, which starts inflating a compressed
 * fragment; then `emitClose` runs `cleanup()`, which nulls the inflater, and the pending flush's
 * callback reads it. docs/trials.md, round 23.
 */
export const WS_INFLATE_CRASH: DeflateScript = JSON.parse(
  "{\"transport\": {\"kind\": \"tcp\"}, \"offer\": true, \"answer\": {\"kind\": \"list\", \"extensions\": [{\"name\": \"permessage-deflate\", \"params\": [{\"key\": \"server_max_window_bits\", \"value\": \"0x9\", \"quoted\": false}, {\"key\": \"client_max_window_bits\", \"value\": \"9\"}, {\"key\": \"client_no_context_takeover\"}]}]}, \"items\": [{\"kind\": \"compressed\", \"binary\": true, \"text\": \"\\u00e9t\\u00e9 \\ud83e\\udf86\\ud81a\\udd27S\\u0323\\u0307alpha \\ud808\\udc07\\ud806\\ude25\\u3228\\u1c61\\u00e9t\\u00e9 beta deflate \\u00e9t\\u00e9 \", \"refer\": false, \"windowBits\": 15, \"final\": true, \"cuts\": [], \"ping\": true}, {\"kind\": \"compressed\", \"binary\": true, \"text\": \"\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\\ua067\\uab3c\\ud80c\\udd66\", \"refer\": false, \"windowBits\": 11, \"final\": true, \"cuts\": [10, 12], \"ping\": true}, {\"kind\": \"compressed\", \"binary\": false, \"text\": \"\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\\ud800\\udd93\\ud822\\uddd5\\ud834\\uddd9\\ud822\\udf5b\\ud800\\udc97\", \"refer\": true, \"windowBits\": 15, \"final\": false, \"cuts\": [47, 41], \"ping\": true}, {\"kind\": \"rsv1Control\", \"opcode\": 10}, {\"kind\": \"compressed\", \"binary\": true, \"text\": \"\\u00e9t\\u00e9 \\ud803\\udc14\\u00f6\\ud808\\udc5fdeflate \\ud804\\udd5a\\ud83e\\ude66alpha \\ud83d\\ude00 \\ud83e\\udd7e\\u055b\\u1a2e\", \"refer\": false, \"windowBits\": 15, \"final\": true, \"cuts\": [38], \"ping\": false}, {\"kind\": \"compressed\", \"binary\": true, \"text\": \"lifeline \\u3340\\u00d2\\uab35\\ud836\\udc19\\ud809\\udd2clifeline beta deflate \\ud83d\\udeeb\\ud822\\ude6f\", \"refer\": true, \"windowBits\": 13, \"final\": false, \"cuts\": [], \"ping\": false}], \"chunks\": [87, 6, 54], \"pace\": \"timer\", \"ending\": \"halfClose\"}"
) as DeflateScript
