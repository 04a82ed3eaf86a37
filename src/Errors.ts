/**
 * Every way a lifeline connection can fail, as typed errors. Each error is a
 * `Schema.TaggedError`, so users match them with `Effect.catchTag(s)` or `Match.tag`.
 *
 * lifeline itself builds them with validation off (`new ConnectError(fields, true)`): the
 * compiler already checks the fields, and a schema check on every close or failed attempt showed
 * in connect profiles.
 *
 * @since 0.1.0
 */
import { Duration, Inspectable, Schema } from "effect"
import { redactCause, redactUrlsIn } from "./internal/redactUrl.js"

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
 * - `ProtocolViolation`: the server's 101 answer breaks RFC 6455 (accept key, upgrade header, subprotocol).
 * - `ClosedBeforeOpen`: the socket closed or was aborted while CONNECTING, for no reason the platform tells.
 *
 * @since 0.1.0
 * @category errors
 */
export const ConnectErrorReason = Schema.Literal(
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
)

/**
 * @since 0.1.0
 * @category errors
 */
export type ConnectErrorReason = typeof ConnectErrorReason.Type

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
export class ConnectError extends Schema.TaggedError<ConnectError>("lifeline/ConnectError")("ConnectError", {
  reason: ConnectErrorReason,
  url: Schema.String,
  detail: Schema.String,
  status: Schema.optional(Schema.Number),
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  cause: Schema.optional(Schema.Unknown)
}) {
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

  /** The message, the stack frames and the redacted cause; the raw fields are never printed. */
  override [Inspectable.NodeInspectSymbol](): string {
    const frames = this.stack === undefined ? [] : this.stack.split("\n").filter((line) => /^\s+at /.test(line))
    const lines = [this.toString(), ...frames]
    if (this.cause !== undefined) {
      const cause = redactCause(this.cause)
      const code: unknown = Reflect.get(cause, "code")
      lines.push(`  [cause]: ${cause.name}: ${cause.message}${code === undefined ? "" : ` (${String(code)})`}`)
    }
    return lines.join("\n")
  }
}

/**
 * An operation did not finish in the time it was given: the handshake (`open`), the heartbeat's
 * probe (`heartbeat`), or the Client's `onOpen` hook (`onOpen`, the cause of an `OnOpenError`).
 * A slow close handshake is not an error: it ends in `terminate()` (see `Connection.close`).
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>("lifeline/TimeoutError")("TimeoutError", {
  operation: Schema.Literal("open", "heartbeat", "onOpen"),
  timeout: Schema.DurationFromSelf,
  url: Schema.optional(Schema.String)
}) {
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
 * - `EncodeFailed`: the codec could not encode the value (`payload` is the value, `cause` why); nothing was written.
 *
 * @since 0.1.0
 * @category errors
 */
export const SendErrorReason = Schema.Literal("NotOpen", "OutboxFull", "Dropped", "Closed", "TooLarge", "WriteFailed", "EncodeFailed")

/**
 * @since 0.1.0
 * @category errors
 */
export type SendErrorReason = typeof SendErrorReason.Type

/**
 * A message was not written. `payload` is the message itself, so nothing is lost silently: the
 * sender can store it, retry it or report it.
 *
 * @since 0.1.0
 * @category errors
 */
export class SendError extends Schema.TaggedError<SendError>("lifeline/SendError")("SendError", {
  reason: SendErrorReason,
  payload: Schema.Unknown,
  cause: Schema.optional(Schema.Unknown)
}) {
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
export const Initiator = Schema.Literal("client", "server", "transport")

/**
 * How an open connection ended. `code` is the close code (1006 when no close frame was received).
 *
 * @since 0.1.0
 * @category errors
 */
export class Disconnected extends Schema.TaggedError<Disconnected>("lifeline/Disconnected")("Disconnected", {
  code: Schema.Number,
  reason: Schema.String,
  wasClean: Schema.Boolean,
  initiator: Initiator
}) {
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
export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>("lifeline/CircuitOpenError")(
  "CircuitOpenError",
  { endpoint: Schema.String, retryAt: Schema.DateFromSelf }
) {
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
export class DecodeError extends Schema.TaggedError<DecodeError>("lifeline/DecodeError")("DecodeError", {
  frame: Schema.Unknown,
  cause: Schema.Unknown
}) {
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
export class OnOpenError extends Schema.TaggedError<OnOpenError>("lifeline/OnOpenError")("OnOpenError", {
  cause: Schema.Unknown
}) {
  override get message(): string {
    return `onOpen failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}
