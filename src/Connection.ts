/**
 * One WebSocket as a scoped resource: a typed open, send with write completion, a bounded
 * inbound stream, and a release that knows the socket's readyState. A Connection never
 * reconnects; retry it with `Effect.retry(schedule)` around its scope, or use `Client`.
 *
 * @since 0.1.0
 */
import type { Context, Duration, Redacted, Scope, Sink, Stream } from "effect"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Codec } from "./Codec.js"
import type { DecodeError, Disconnected, SendError, TimeoutError } from "./Errors.js"
import { ConnectError } from "./Errors.js"
import { hintFor } from "./internal/classifyHandshakeError.js"
import { CodecEdge, invalidCodec } from "./internal/codecErrors.js"
import { openConnection } from "./internal/connection.js"
import { UNREADABLE } from "./internal/options.js"
import { isUrlEffect, parseEndpoint } from "./internal/parseEndpoint.js"
import type { ReadyState } from "./internal/protocol.js"
import type { Message, TlsOptions, Transport } from "./Transport.js"

export type { Message, ReadyState, TlsOptions } from "./Transport.js"

/**
 * An open WebSocket. Valid until its scope closes.
 *
 * `In`: what `messages` yields, `Out`: what `send`, `write` and `sink` take, `E`: the error of
 * `messages`. All three are the raw ones (frames, no error) unless the connection was opened with
 * a `codec` (then `messages` fails with `DecodeError`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection<In = Message, Out = Message, E = never> {
  /** The URL, redacted (no userinfo, no query values): safe to log. */
  readonly url: string
  /** The subprotocol the server selected, or "". */
  readonly protocol: string
  /**
   * The extensions the server accepted, or "": with the Node transport their names
   * (`"permessage-deflate"`: the server compresses), in a browser the header's value with its
   * parameters.
   */
  readonly extensions: string
  /** CONNECTING 0, OPEN 1, CLOSING 2, CLOSED 3. OPEN until the close begins. */
  readonly readyState: Effect.Effect<ReadyState>
  /** Bytes handed to the socket and not yet written to the network. */
  readonly bufferedAmount: Effect.Effect<number>
  /**
   * Writes one frame and completes when the transport reports it written. OPEN: writes.
   * CONNECTING never happens (a Connection is open when you get it). CLOSING / CLOSED: fails with
   * `SendError NotOpen`. A transport write error fails with `SendError WriteFailed`.
   * Either way the error carries the payload back. With a codec, the value is encoded first: one
   * it refuses fails with `SendError EncodeFailed` (the value as payload) and nothing is written;
   * the other errors carry the encoded frame.
   */
  readonly send: (data: Out) => Effect.Effect<void, SendError>
  /**
   * Hands one frame to the transport and returns at once, for pipelining. OPEN: queued for
   * writing; CLOSING / CLOSED: fails with `SendError NotOpen`. A later write error ends the
   * connection and shows in `closed`. With a codec, encoded first, as `send`. Nothing bounds what
   * a loop of writes leaves buffered in the process when the peer reads slower (`bufferedAmount`
   * shows it): write a burst with `sink`, or `send` now and then.
   */
  readonly write: (data: Out) => Effect.Effect<void, SendError>
  /**
   * Writes a stream of frames with backpressure: a frame that would take `bufferedAmount` over
   * the high-water mark (`writeHighWaterMark`, default 1 MiB) is written, then the sink waits
   * for its write (Node: flushed; browsers: the mark or less buffered up to it); at most the mark
   * plus one frame is buffered.
   * With a codec, a value that does not encode fails the sink with `SendError EncodeFailed`
   * after the values before it were written.
   */
  readonly sink: Sink.Sink<void, Out, never, SendError>
  /**
   * Inbound frames, text as strings and binary as bytes. Bounded: when `inboundCapacity` frames
   * or `inboundBytes` bytes wait unread, the Node transport stops reading the socket until the
   * consumer catches up.
   * Ends when the connection closes, after the frames received before the close.
   *
   * One reader at a time: two concurrent runs split the frames between them. Each run is handed
   * its first 64 messages one at a time, so a run that stops within them (`Stream.runHead`,
   * `Stream.take(n)`, a `takeUntil` the answer to a request) leaves the frames after it for the
   * next run. After those, each pull takes every frame waiting as one chunk, and a run that stops
   * inside a chunk drops the rest of it: to read more and go on later, keep one reader
   * (`Stream.toPull`).
   *
   * With a codec, each frame is decoded. At a frame that does not decode, the stream fails with
   * `DecodeError { frame, cause }` (after the values before it); the connection stays open, and
   * the next run of `messages` goes on from the frame after it.
   */
  readonly messages: Stream.Stream<In, E>
  /** Completes with how the connection ended; waits until it does. */
  readonly closed: Effect.Effect<Disconnected>
  /**
   * Closes from this side and waits for the close handshake (up to `closeTimeout`, then the
   * socket is terminated). OPEN: sends `code` (default 1000) and `reason`; CLOSING: waits;
   * CLOSED: returns at once. Invalid codes become 1000, reasons over 123 bytes are cut. Once this
   * side closes, reading no longer pauses, so the peer's close frame is read even when nobody
   * reads `messages`: frames that arrive meanwhile are kept up to the inbound bounds, the rest
   * dropped (a browser's WebSocket delivers none once `close` was called).
   */
  readonly close: (code?: number, reason?: string) => Effect.Effect<Disconnected>
  /** Sends a protocol ping; false when the platform has none (browsers) or not OPEN. */
  readonly ping: Effect.Effect<boolean>
  /** Counts every inbound frame and pong: unchanged over an interval means no sign of life. */
  readonly activity: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Subprotocols to offer (Sec-WebSocket-Protocol). */
  readonly protocols?: string | ReadonlyArray<string> | undefined
  /** Extra handshake headers (Node only). Values may be `Redacted`: they never reach an error or log. */
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
  /**
   * TLS for `wss://` (Node only; browsers ignore it): `ca` to trust a private CA, `cert` + `key`
   * (+ `passphrase` for an encrypted key) for a client certificate, `servername`, and
   * `rejectUnauthorized: false` to turn certificate verification off (logged once per `tls` object
   * as a warning; never do it in production). PEM text or bytes. A wrong type fails with
   * `ConnectError InvalidOptions`; the values never appear in an error or a log. May be given
   * `Redacted` (e.g. from `Config.redacted`).
   */
  readonly tls?: TlsOptions | Redacted.Redacted<TlsOptions> | undefined
  /** How long the handshake may take. Default 10 seconds. */
  readonly openTimeout?: Duration.DurationInput | undefined
  /** How long the close handshake may take before the socket is terminated. Default 5 seconds. */
  readonly closeTimeout?: Duration.DurationInput | undefined
  /** Largest inbound message in bytes; a larger one closes the connection with 1009. Default 100 MiB. */
  readonly maxPayload?: number | undefined
  /**
   * Offer permessage-deflate (Node only; browsers always offer it). Default true, as ws and
   * browsers do. A server that accepts it compresses what it sends, and each connection then
   * holds zlib state (tens of KB): `false` for many connections to such a server, or when CPU
   * counts more than bandwidth. `maxPayload` counts the inflated size.
   */
  readonly perMessageDeflate?: boolean | undefined
  /**
   * Inbound frames buffered before reading pauses. Default 1024. In a Client, the bound is on the
   * frames unread across all its connections, however many times it reconnects. While reading is
   * paused the peer holds what it sends; a server that drops it instead (`Bun.serve` past its
   * `backpressureLimit`, unless `closeOnBackpressureLimit`) loses it unseen (docs/guide.md, "Deno
   * and Bun").
   */
  readonly inboundCapacity?: number | undefined
  /**
   * Inbound bytes buffered before reading pauses (Node; browsers close with 1008, as for
   * `inboundCapacity`), whichever of the two bounds is reached first. A single larger frame is
   * still delivered, then reading pauses. Counted as binary frames' byte lengths and text frames'
   * string lengths (UTF-16 code units, at most the UTF-8 size). Default 16 MiB. In a Client, the
   * bound is on the bytes unread across all its connections.
   */
  readonly inboundBytes?: number | undefined
  /** `sink` waits while more than this many bytes are buffered. Default 1 MiB. */
  readonly writeHighWaterMark?: number | undefined
  /**
   * Largest outgoing message, in bytes (strings by their UTF-8 size, as sent): `send`, `write`,
   * `sink` and a Client's `send` / `enqueue` fail with `SendError TooLarge` before writing
   * anything. Set it to the peer's known limit. Default: no limit.
   */
  readonly maxMessageSize?: number | undefined
}

/**
 * A typed connection: `Connection.connect(url, { codec: Codec.json(schema) })`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CodecOptions<In, Out> extends Options {
  /**
   * Decodes `messages` and encodes what `send`, `write` and `sink` take (see `Codec`). A frame
   * that does not decode fails `messages` with `DecodeError`: a Connection has no events to report
   * it on, and a frame the app cannot read is its to decide (log it and read on by running
   * `messages` again, or let the failure end the scope).
   */
  readonly codec: Codec<In, Out>
}

/**
 * Opens a WebSocket. Succeeds when it is OPEN; fails with a `ConnectError` (see its `reason`) or
 * `TimeoutError open`. The socket is released with the scope, whatever its readyState: the close
 * code is 1000 when the scope succeeds and 1001 when it fails or is interrupted. A failed or
 * interrupted open releases the socket before it returns, so retrying inside one scope leaks nothing.
 *
 * `url` may be an Effect, evaluated once per call (e.g. to sign a fresh token).
 *
 * With `codec`, the connection is typed: `messages` yields decoded values (and fails with
 * `DecodeError` at a frame that does not decode), `send` / `write` / `sink` take values and encode
 * them (`SendError EncodeFailed` for one the codec refuses). `close`, `closed`, `ping` and
 * `activity` are the same as without. A codec not made by `Codec.json`, `Codec.fromSchema` or
 * `Codec.make` (untyped code) fails with `ConnectError InvalidOptions` before any socket is opened.
 *
 * @since 0.1.0
 * @category constructors
 */
export function connect<In, Out, E = never, R = never>(
  url: string | URL | Effect.Effect<string, E, R>,
  options: CodecOptions<In, Out>
): Effect.Effect<Connection<In, Out, DecodeError>, ConnectError | TimeoutError | E, Scope.Scope | Transport | R>
export function connect<E = never, R = never>(
  url: string | URL | Effect.Effect<string, E, R>,
  options?: Options
): Effect.Effect<Connection, ConnectError | TimeoutError | E, Scope.Scope | Transport | R>
export function connect<E = never, R = never>(
  url: string | URL | Effect.Effect<string, E, R>,
  options: Options | CodecOptions<unknown, unknown> = {}
): Effect.Effect<Connection<unknown, never, unknown>, ConnectError | TimeoutError | E, Scope.Scope | Transport | R> {
  // The codec is a function object, not a connection option (those go through the options checks).
  // Options that are not an object (untyped code) go to the options check, which names them.
  let codec: Codec<unknown, unknown> | undefined
  let rest: Options = {}
  try {
    if (typeof options === "object" && options !== null && "codec" in options && options.codec !== undefined) {
      ;({ codec, ...rest } = options)
    }
  } catch {
    // Untyped code: a getter or Proxy trap that throws is a bad option, never a throw from here.
    return refuseCodec(url, `codec: ${UNREADABLE}`)
  }
  if (codec === undefined) return Effect.map(openConnection(url, options), (opened) => opened.connection)
  const bad = invalidCodec(codec)
  // Refused before any socket exists, as a bad option is (after the URL, which is checked first).
  if (bad !== undefined) return refuseCodec(url, bad)
  return Effect.map(
    openConnection(url, rest),
    (opened) => codec[CodecEdge].connection(opened.connection, opened.listener.inbound, codec)
  )
}

/** `ConnectError InvalidOptions` for a codec that cannot work, on the redacted URL (a bad URL is reported first). */
const refuseCodec = <E, R>(
  url: string | URL | Effect.Effect<string, E, R>,
  detail: string
): Effect.Effect<never, ConnectError | E, R> =>
  Effect.flatMap(
    isUrlEffect(url) ? Effect.flatMap(url as Effect.Effect<string, E, R>, parseEndpoint) : parseEndpoint(url as string),
    (endpoint) =>
      Effect.fail(
        new ConnectError({
          reason: "InvalidOptions",
          url: endpoint.redacted,
          detail: `${detail}; ${hintFor("InvalidOptions")}`
        })
      )
  )

/**
 * Provides one Connection under your own tag, for the life of the layer. Compose it with
 * `Layer.retry(schedule)` to retry the open.
 *
 * @example
 * ```ts
 * import { Context, Layer, Schedule } from "effect"
 * import { Connection } from "effect-lifeline"
 *
 * class Feed extends Context.Tag("Feed")<Feed, Connection.Connection>() {}
 * const FeedLive = Connection.layer(Feed, "wss://example.com/feed").pipe(Layer.retry(Schedule.spaced("1 second")))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export function layer<I, In, Out, E = never, R = never>(
  tag: Context.Tag<I, Connection<In, Out, DecodeError>>,
  url: string | URL | Effect.Effect<string, E, R>,
  options: CodecOptions<In, Out>
): Layer.Layer<I, ConnectError | TimeoutError | E, Transport | R>
export function layer<I, E = never, R = never>(
  tag: Context.Tag<I, Connection>,
  url: string | URL | Effect.Effect<string, E, R>,
  options?: Options
): Layer.Layer<I, ConnectError | TimeoutError | E, Transport | R>
export function layer<I, E = never, R = never>(
  // The implementation's: each overload above is checked; a Tag's service type is invariant.

  tag: Context.Tag<I, any>,
  url: string | URL | Effect.Effect<string, E, R>,
  options?: Options | CodecOptions<unknown, unknown>
): Layer.Layer<I, ConnectError | TimeoutError | E, Transport | R> {
  return Layer.scoped(tag, connect(url, (options ?? {}) as CodecOptions<unknown, never>))
}
