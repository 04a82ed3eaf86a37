/**
 * What the CLI prints: the human format (state lines on stderr, messages as they are on stdout)
 * and the JSON lines of `--json` (one object per event on stdout). Every line is one line: an
 * error's text has its line breaks folded.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { SendError } from "../Errors.js"
import type { ClientState } from "../internal/clientState.js"
import type { ClientError } from "../Reconnect.js"
import type { Message } from "../Transport.js"
import type { BinaryFormat } from "./args.js"

/** `text` with its line breaks (and the blanks around them) folded into one space. */
export const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, " ")

/** An error in one line: its tag and its (redacted) message. */
export const describeError = (error: ClientError): string => oneLine(`${error._tag}: ${error.message}`)

/** The fields of an error as JSON; lifeline's messages are redacted already. */
const errorJson = (error: ClientError): Record<string, unknown> => {
  switch (error._tag) {
    case "ConnectError":
      return {
        _tag: error._tag,
        reason: error.reason,
        ...(error.status === undefined ? {} : { status: error.status }),
        ...(error.retryAfter === undefined ? {} : { retryAfterMs: Duration.toMillis(error.retryAfter) }),
        message: oneLine(error.message)
      }
    case "TimeoutError":
      return {
        _tag: error._tag,
        operation: error.operation,
        timeoutMs: Duration.toMillis(error.timeout),
        message: oneLine(error.message)
      }
    case "Disconnected":
      return {
        _tag: error._tag,
        code: error.code,
        reason: error.reason,
        initiator: error.initiator,
        wasClean: error.wasClean,
        message: oneLine(error.message)
      }
    case "OnOpenError":
      return { _tag: error._tag, message: oneLine(error.message) }
    case "CircuitOpenError":
      return {
        _tag: error._tag,
        endpoint: error.endpoint,
        retryAt: error.retryAt.toISOString(),
        message: oneLine(error.message)
      }
  }
}

/** The state line of a transition to `state` (human format, stderr), or undefined for Idle. */
export const stateLine = (state: ClientState, protocol: string): string | undefined => {
  switch (state._tag) {
    case "Idle":
      return undefined
    case "Connecting":
      return `* connecting to ${state.endpoint} (attempt ${state.attempt})`
    case "Open":
      return `* open ${state.endpoint} (attempt ${state.attempt}${protocol === "" ? "" : `, subprotocol ${protocol}`})`
    case "Backoff":
      return `* backoff: attempt ${state.attempt + 1} in ${Duration.format(state.delay)}, after ${
        describeError(state.error)
      }`
    case "Suspended":
      return `* suspended until ${new Date(state.retryAt).toISOString()}: ${describeError(state.error)}`
    case "Closed":
      // The error, if any, is the program's last line.
      return "* closed"
  }
}

/** The JSON event of a transition to `state`, or undefined for Idle. */
export const stateJson = (state: ClientState, protocol: string): Record<string, unknown> | undefined => {
  switch (state._tag) {
    case "Idle":
      return undefined
    case "Connecting":
      return { type: "connecting", attempt: state.attempt, url: state.endpoint }
    case "Open":
      return { type: "open", attempt: state.attempt, url: state.endpoint, protocol }
    case "Backoff":
      return {
        type: "backoff",
        attempt: state.attempt,
        delayMs: Duration.toMillis(state.delay),
        error: errorJson(state.error)
      }
    case "Suspended":
      return {
        type: "suspended",
        url: state.endpoint,
        retryAt: new Date(state.retryAt).toISOString(),
        error: errorJson(state.error)
      }
    case "Closed":
      return { type: "closed", error: Option.match(state.error, { onNone: () => null, onSome: errorJson }) }
  }
}

const base64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

/** An inbound message as printed on stdout (human format), without the line break. */
export const messageText = (message: Message, binary: BinaryFormat): string => {
  if (typeof message === "string") return message
  return binary === "base64" ? base64(message) : `<binary ${message.byteLength} bytes>`
}

/** An inbound message as a JSON event: text as it is, binary in base64. */
export const messageJson = (message: Message): Record<string, unknown> =>
  typeof message === "string"
    ? { type: "message", text: message }
    : { type: "message", bytes: message.byteLength, base64: base64(message) }

const payloadText = (payload: unknown): string =>
  typeof payload === "string"
    ? payload
    : payload instanceof Uint8Array
    ? `<binary ${payload.byteLength} bytes>`
    : String(payload)

/** A line that was not sent (human format, stderr). */
export const failedLine = (error: SendError): string =>
  `* not sent (SendError ${error.reason}): ${oneLine(payloadText(error.payload))}`

/** A line that was not sent, as a JSON event. */
export const failedJson = (error: SendError): Record<string, unknown> => ({
  type: "failed",
  reason: error.reason,
  payload: payloadText(error.payload)
})
