/**
 * The platform seam: a service that opens one WebSocket and reports its events to a listener.
 * `NodeTransport` implements it on `ws`, `BrowserTransport` on the global `WebSocket`.
 *
 * A transport never throws and never runs user code: it completes the listener's callbacks and
 * nothing else. It attaches its error sink when it creates the socket and never removes it.
 *
 * @since 0.1.0
 */
import type { Effect, Either, Redacted } from "effect"
import * as Context from "effect/Context"
import type { HandshakeFailure } from "./internal/classifyHandshakeError.js"
import type { ReadyState } from "./internal/protocol.js"

export type { HandshakeFailure } from "./internal/classifyHandshakeError.js"
export type { ReadyState } from "./internal/protocol.js"

/**
 * A WebSocket frame's payload: text as a string, binary as bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type Message = string | Uint8Array

/**
 * What to open. `url` is already validated (ws: or wss:, no fragment).
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenRequest {
  readonly url: URL
  readonly protocols: ReadonlyArray<string>
  /** Extra handshake headers; ignored by transports that cannot set them (browsers). */
  readonly headers: Readonly<Record<string, string>>
  /** Largest inbound message accepted, in bytes. */
  readonly maxPayload: number
  /** Whether to offer permessage-deflate (absent: as the platform does); ignored by browsers. */
  readonly perMessageDeflate?: boolean | undefined
  /**
   * TLS options for wss:// (Node: handed to `tls.connect` through ws); ignored by transports that
   * cannot set them (browsers). Redacted: a private key must not reach a log or an inspection.
   */
  readonly tls?: Redacted.Redacted<TlsOptions> | undefined
  /**
   * The Connection's `writeHighWaterMark` (default 1 MiB). A transport whose writes have no
   * completion of their own (browsers) calls a frame's `send` callback once no more than this is
   * buffered up to its end.
   */
  readonly writeHighWaterMark?: number | undefined
}

/**
 * TLS options for `wss://` on Node, as Node's `tls.connect` takes them. PEM text or bytes
 * (a `Buffer` is a `Uint8Array`), or an array of them where Node accepts several.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsOptions {
  /** Certificate authorities to trust instead of Node's default list (e.g. a private CA). */
  readonly ca?: string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined
  /** Client certificate chain, for servers that ask for one (with `key`). */
  readonly cert?: string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined
  /** Private key of the client certificate (with `cert`). */
  readonly key?: string | Uint8Array | ReadonlyArray<string | Uint8Array> | undefined
  /** The passphrase of an encrypted `key`. */
  readonly passphrase?: string | undefined
  /** Server name for SNI and for the certificate check; default the URL's host ("" for an IP). */
  readonly servername?: string | undefined
  /**
   * `false` turns certificate verification off: anyone on the path can then read and change the
   * traffic. Logged once as a warning. Default `true`.
   */
  readonly rejectUnauthorized?: boolean | undefined
}

/**
 * The callbacks a transport calls. They must be cheap and must not throw.
 *
 * Order: `onHandshakeFailure` at most once and only before `onOpen`; `onOpen` at most once;
 * `onMessage` and `onPong` only after `onOpen`; `onClose` exactly once, last.
 *
 * @since 0.1.0
 * @category models
 */
export interface SocketListener {
  readonly onOpen: () => void
  readonly onMessage: (data: Message) => void
  /** A pong (or ping) frame arrived: the peer is alive. */
  readonly onPong: () => void
  readonly onHandshakeFailure: (failure: HandshakeFailure) => void
  /**
   * After OPEN: this side is closing because the peer broke the protocol (e.g. 1009 for a message
   * over `maxPayload`). The `onClose` that follows may report 1006; this code is the real one.
   */
  readonly onProtocolError: (code: number, reason: string) => void
  readonly onClose: (code: number, reason: string, wasClean: boolean) => void
}

/**
 * One platform socket, as the transport exposes it. Every method is safe in every readyState.
 *
 * @since 0.1.0
 * @category models
 */
export interface TransportSocket {
  readonly readyState: () => ReadyState
  /** The subprotocol the server selected, or "". */
  readonly protocol: () => string
  /**
   * Optional: the extensions the server accepted (`permessage-deflate`), as the platform reports
   * them, or "". Absent: unknown, reported as "".
   */
  readonly extensions?: (() => string) | undefined
  /** Bytes handed to the socket and not yet written to the network. */
  readonly bufferedAmount: () => number
  /**
   * Optional: a running total of the bytes the network has taken from this socket, for the
   * heartbeat to tell a slow link whose backlog moves from a dead one
   * (`src/internal/heartbeat.ts`). Node: what the kernel accepted (under TLS, of the TLS records:
   * a little more than the frames' bytes); browsers: bytes handed to `send` less
   * `bufferedAmount`; Bun's `ws` (no byte counts on its socket): the falls of `bufferedAmount`.
   * Unlike Node's `bufferedAmount`, which stays put until a whole write completes, it grows as a
   * long backlog drains. Only its growth between two reads, and its
   * reaching an earlier `sentBytes() + bufferedAmount()`, are used: it may lag the truth, not run
   * ahead of it. Without it, a probe's answer is awaited from when the probe was queued.
   */
  readonly sentBytes?: (() => number) | undefined
  /**
   * Writes one frame. OPEN only (the caller checks). `callback` runs exactly once, once the frame
   * was written (Node: flushed to the kernel; browsers: handed to the browser, with at most the
   * request's `writeHighWaterMark` buffered up to its end) or with the error,
   * and callbacks run in the order of the sends: the Client matches them to frames in that order.
   * A frame after whose `send` `bufferedAmount()` is 0 was written: its callback reports no error,
   * even if the socket ends before it runs (the Client's `send` keeps no canceler for it).
   * An error with `notWritten: true` says that no byte of the frame reached the network, nor of
   * any frame sent after it (Node: ws still held them, compressing, when the socket closed): a
   * Client sends them all again on its next connection, at the front of its outbox. Only once the
   * socket is no longer OPEN: before that, the Client fails such a frame `WriteFailed`.
   * May throw for a payload it cannot send (then nothing was written and no callback runs).
   */
  readonly send: (data: Message, callback?: (error?: Error) => void) => void
  /** Starts the close handshake. OPEN or CLOSING only; `code` must be sendable. */
  readonly close: (code: number, reason: string) => void
  /** Ends the socket at once, in any state: aborts a handshake, skips the close handshake. */
  readonly terminate: () => void
  /** Stops reading from the network. Returns false when the platform cannot (browsers). */
  readonly pause: () => boolean
  readonly resume: () => void
  /** Sends a protocol ping. Returns false when the platform has none (browsers) or not OPEN. */
  readonly ping: () => boolean
}

/**
 * What the platform knows of the network (browsers: `navigator.onLine` and the `online` event).
 * While it says offline, a Client makes no attempt: it stays in Backoff past its delay until the
 * network is back, then attempts at once.
 *
 * @since 0.1.0
 * @category models
 */
export interface Network {
  /** False only when the platform is sure there is no network (`navigator.onLine === false`). */
  readonly isOnline: () => boolean
  /**
   * Calls `callback` at each `online` event until the returned function is called. Must not throw.
   * A call made before it returns (while subscribing) is no event: the Client ignores it.
   */
  readonly onOnline: (callback: () => void) => () => void
}

/**
 * What is wrong with an option, and where: `path` leads from the option to the bad field
 * (`["ca"]` for `tls.ca`, `[]` for the option itself). Never the value: it may be a secret.
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionProblem {
  readonly path: ReadonlyArray<string>
  readonly message: string
}

/**
 * A transport's checks of the options only it reads (see `Transport.checkOptions`). They are
 * here, not with the other options' checks, so that a bundle without that transport (a browser's)
 * does not carry them.
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionChecks {
  /** `headers` as given (values perhaps Redacted): a copy with the values read, or what is wrong. */
  readonly headers: (input: unknown) => Either.Either<Readonly<Record<string, string>>, OptionProblem>
  /** `tls` as given (perhaps Redacted): its known keys, copied and Redacted, or what is wrong. */
  readonly tls: (input: unknown) => Either.Either<Redacted.Redacted<TlsOptions>, OptionProblem>
  /**
   * Run at each connect with a `tls` (the decoded one; `given`: the object the user gave, or the
   * decoded one): Node logs a warning once per `given` object when it turns verification off.
   */
  readonly onTls: (url: string, tls: Redacted.Redacted<TlsOptions>, given: object) => Effect.Effect<void>
}

/**
 * The Transport service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport {
  readonly platform: "node" | "browser"
  /** The network's state, where the platform tells it (browsers); absent: always online (Node). */
  readonly network?: Network | undefined
  /**
   * The checks of the options only this transport reads (Node: `headers` and `tls`), run by
   * `Client.make` and `Connection.connect` in their place among every other option's, before any
   * attempt: a problem is `ConnectError InvalidOptions` naming the option, as any other's.
   * Absent (browsers): the transport does not read them, and they are not checked: the request's
   * `headers` are empty and its `tls` undefined. A transport that wraps another passes its
   * `checkOptions` on (`{ ...inner, open }`), as its `network`. A `platform: "node"` transport
   * without it would send neither, silently: any header and any `tls` given to it are
   * `InvalidOptions` instead (`not sent: this Node transport has no checkOptions ...`).
   */
  readonly checkOptions?: OptionChecks | undefined
  /**
   * Creates the socket and starts the handshake, synchronously. Fails (without throwing) when the
   * platform refuses the request up front, e.g. a URL or subprotocol it rejects.
   */
  readonly open: (request: OpenRequest, listener: SocketListener) => Either.Either<TransportSocket, HandshakeFailure>
}

/**
 * @since 0.1.0
 * @category tags
 */
export const Transport: Context.Tag<Transport, Transport> = Context.GenericTag<Transport>("lifeline/Transport")
