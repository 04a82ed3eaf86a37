/**
 * Every way a lifeline connection can fail, as typed errors. Each error is a `Data.TaggedError`
 * (a yieldable `Error` with a `_tag`), so users match them with `Effect.catchTag(s)` or
 * `Match.tag`. They are not Schemas: `effect/Schema` is about 100 KiB gzip in a browser bundle.
 * `effect-lifeline/schema` has a Schema of each, for what sends errors over the wire (rpc).
 *
 * The constructor takes the fields and, as a `Schema.TaggedError`'s did, an optional second
 * argument (`true` or `{ disableValidation }`) that is ignored: the compiler checks the fields.
 *
 * @since 0.1.0
 */
import type { Cause } from "effect"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Inspectable from "effect/Inspectable"
import { redactCause, redactUrlsIn } from "./internal/redactUrl.js"

/**
 * The second argument of an error's constructor, kept from the Schema classes; ignored.
 *
 * @since 0.1.0
 * @category errors
 */
export type MakeOptions = boolean | { readonly disableValidation?: boolean | undefined }

/**
 * `Data.TaggedError` with the constructor of the Schema classes these errors were: `(fields, options?)`.
 * `A` lists the fields, `_tag` aside. Each class below marks its call pure (`@__PURE__`): a
 * bundler then drops an error class an app never references, its getters and methods included.
 */
const TaggedError: <Tag extends string>(tag: Tag) => new<A extends Record<string, unknown>>(
  fields: { readonly [K in keyof A]: A[K] },
  options?: MakeOptions
) => Cause.YieldableError & { readonly _tag: Tag } & Readonly<A> = Data.TaggedError as never

/**
 * Why opening a connection failed.
 *
 * - `InvalidUrl`: bad syntax, a scheme other than ws:/wss:, a fragment, an empty string.
 * - `InvalidOptions`: an option that cannot work (an invalid subprotocol name, a negative timeout).
 * - `DnsLookupFailed`: the host name does not resolve (ENOTFOUND, EAI_AGAIN).
 * - `ConnectionRefused`: nothing listens on that port (ECONNREFUSED).
 * - `NetworkUnreachable`: no route to the host (EHOSTUNREACH, ENETUNREACH).
 * - `ConnectionReset`: the TCP connection was reset or hung up during the handshake.
 * - `TlsFailed`: the TLS handshake failed (certificate, protocol, not a TLS server).
 * - `HandshakeRejected`: the server answered the upgrade with a non-101 HTTP status.
 * - `ProtocolViolation`: the server's 101 answer breaks RFC 6455 (accept key, upgrade header, subprotocol,
 *   extensions), or its answer is not HTTP that Node can parse (another protocol, a bad status line).
 * - `ClosedBeforeOpen`: the socket closed or was aborted while CONNECTING, for no reason the platform tells.
 *
 * @since 0.1.0
 * @category errors
 */
export const ConnectErrorReason = [
  "InvalidUrl",
  "InvalidOptions",
  "DnsLookupFailed",
  "ConnectionRefused",
  "NetworkUnreachable",
  "ConnectionReset",
  "TlsFailed",
  "HandshakeRejected",
  "ProtocolViolation",
  "ClosedBeforeOpen"
] as const

/**
 * @since 0.1.0
 * @category errors
 */
export type ConnectErrorReason = typeof ConnectErrorReason[number]

/** A cause as JSON: its name, redacted message and Node error code; never the error's other fields. */
const causeToJSON = (cause: unknown): unknown => {
  const safe = redactCause(cause)
  const code: unknown = Reflect.get(safe, "code")
  return { name: safe.name, message: safe.message, ...(code === undefined ? {} : { code }) }
}

/**
 * Opening a connection failed before it reached OPEN. `url` is redacted (no userinfo, no query
 * values), and so is every rendering: `message`, `String`, `toJSON` and `util.inspect` show no
 * userinfo, no query value and no fragment, and the `cause` (the platform's error) is kept
 * without the fields that may hold the URL.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectError extends /* @__PURE__ */ TaggedError("ConnectError")<{
  readonly reason: ConnectErrorReason
  readonly url: string
  readonly detail: string
  readonly status?: number | undefined
  readonly retryAfter?: Duration.Duration | undefined
  readonly cause?: unknown
}> {
  override get message(): string {
    const status = this.status === undefined ? "" : ` (HTTP ${this.status}`
      + (this.retryAfter === undefined ? ")" : `, retry after ${Duration.format(this.retryAfter)})`)
    return `${this.reason} connecting to ${redactUrlsIn(this.url)}${status}: ${redactUrlsIn(this.detail)}`
  }

  override toString(): string {
    return `${this.name}: ${this.message}`
  }

  override toJSON(): unknown {
    return {
      _tag: this._tag,
      reason: this.reason,
      url: redactUrlsIn(this.url),
      detail: redactUrlsIn(this.detail),
      ...(this.status === undefined ? {} : { status: this.status }),
      ...(this.retryAfter === undefined ? {} : { retryAfter: Inspectable.toJSON(this.retryAfter) }),
      message: this.message,
      ...(this.cause === undefined ? {} : { cause: causeToJSON(this.cause) })
    }
  }
  // Where the Node transport is loaded, `util.inspect` shows the redacted cause too
  // (`internal/nodeInspect.ts`); elsewhere Effect's: the message and the stack.
}

/**
 * An operation did not finish in the time it was given: the handshake (`open`), the heartbeat's
 * probe (`heartbeat`), or the Client's `onOpen` hook (`onOpen`, the cause of an `OnOpenError`).
 * A slow close handshake is not an error: it ends in `terminate()` (see `Connection.close`).
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends /* @__PURE__ */ TaggedError("TimeoutError")<{
  readonly operation: TimeoutOperation
  readonly timeout: Duration.Duration
  readonly url?: string | undefined
}> {
  override get message(): string {
    const where = this.url === undefined ? "" : ` on ${this.url}`
    return `${this.operation} timed out after ${Duration.format(this.timeout)}${where}`
  }
}

/**
 * Why a message was not written.
 *
 * - `NotOpen`: the connection is not OPEN (still connecting, closing or closed).
 * - `OutboxFull`: the client's outbox is at capacity and its overflow strategy is `fail`.
 * - `Dropped`: the message was pushed out of a full outbox by a newer one (`dropOldest`).
 * - `Closed`: the client closed while the message was still queued.
 * - `TooLarge`: the message is larger than the configured maximum.
 * - `WriteFailed`: the transport reported an error while writing the frame.
 * - `EncodeFailed`: the codec could not encode the value, or, without a codec, the value is not a string or
 *   bytes (a Blob, a number, null: untyped code) (`payload` is the value, `cause` why); nothing was written.
 *
 * @since 0.1.0
 * @category errors
 */
export const SendErrorReason = [
  "NotOpen",
  "OutboxFull",
  "Dropped",
  "Closed",
  "TooLarge",
  "WriteFailed",
  "EncodeFailed"
] as const

/**
 * @since 0.1.0
 * @category errors
 */
export type SendErrorReason = typeof SendErrorReason[number]

/**
 * A message was not written. `payload` is the message itself, so nothing is lost silently: the
 * sender can store it, retry it or report it.
 *
 * @since 0.1.0
 * @category errors
 */
export class SendError extends /* @__PURE__ */ TaggedError("SendError")<{
  readonly reason: SendErrorReason
  readonly payload: unknown
  readonly cause?: unknown
}> {
  override get message(): string {
    return `message not sent: ${this.reason}`
  }
}

/**
 * Who ended an open connection: this side (`client`), the peer with a close frame (`server`), or
 * the network without a close handshake (`transport`).
 *
 * @since 0.1.0
 * @category errors
 */
export const Initiator = ["client", "server", "transport"] as const

/**
 * @since 0.1.0
 * @category errors
 */
export type Initiator = typeof Initiator[number]

/**
 * What timed out (see `TimeoutError`).
 *
 * @since 0.1.0
 * @category errors
 */
export const TimeoutOperation = ["open", "heartbeat", "onOpen"] as const

/**
 * @since 0.1.0
 * @category errors
 */
export type TimeoutOperation = typeof TimeoutOperation[number]

/**
 * How an open connection ended. `code` is the close code (1006 when no close frame was received).
 *
 * @since 0.1.0
 * @category errors
 */
export class Disconnected extends /* @__PURE__ */ TaggedError("Disconnected")<{
  readonly code: number
  readonly reason: string
  readonly wasClean: boolean
  readonly initiator: Initiator
}> {
  override get message(): string {
    const reason = this.reason === "" ? "" : ` "${this.reason}"`
    return `disconnected by ${this.initiator} with code ${this.code}${reason}${this.wasClean ? "" : " (not clean)"}`
  }
}

/**
 * The circuit breaker in front of an endpoint refused a call (see `CircuitBreaker`): it is Open,
 * Isolated, or HalfOpen with every trial slot taken. `endpoint` is the breaker's endpoint
 * (redacted origin + path for a registry's breaker). `retryAt` is the earliest time a next
 * attempt can be admitted: the end of the open period when Open, now when HalfOpen (a slot may
 * free at any time), the largest Date when Isolated (until `reset`). `Reconnect.isRetryable`
 * treats it as transient; a retry should wait at least until `retryAt`.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpenError
  extends /* @__PURE__ */ TaggedError("CircuitOpenError")<{ readonly endpoint: string; readonly retryAt: Date }>
{
  override get message(): string {
    return `circuit open for ${this.endpoint} until ${this.retryAt.toISOString()}`
  }
}

/**
 * A codec could not read an inbound frame: `frame` is the frame as received, `cause` why (a
 * `ParseError` for the Schema codecs). A Client publishes it as a `DecodeFailed` event and skips
 * the frame (or, with `decodeErrors: "fail"`, fails `messages` with it); a Connection fails
 * `messages` with it. The link stays up either way.
 *
 * @since 0.1.0
 * @category errors
 */
export class DecodeError
  extends /* @__PURE__ */ TaggedError("DecodeError")<{ readonly frame: unknown; readonly cause: unknown }>
{
  override get message(): string {
    return "an inbound frame could not be decoded"
  }
}

/**
 * The Client's `onOpen` hook failed; the connection is dropped and, by default, retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class OnOpenError extends /* @__PURE__ */ TaggedError("OnOpenError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `onOpen failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}
