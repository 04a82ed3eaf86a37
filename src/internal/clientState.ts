/** The Client's observable state and events, as tagged unions. */
import type { Duration, Option } from "effect"
import * as Data from "effect/Data"
import type { CircuitOpenError, DecodeError, SendError } from "../Errors.js"
import type { ClientError } from "../Reconnect.js"

/**
 * Idle: made, not started. Connecting: attempt n under way. Open: connected and ready (after
 * `onOpen`). Backoff: waiting `delay` before attempt n + 1 after `error`. Suspended: the circuit
 * breaker of `endpoint` is open: no attempt before `retryAt` (Clock millis). Closed: stopped, with
 * the error that stopped it (none when closed on purpose).
 */
export type ClientState = Data.TaggedEnum<{
  Idle: {}
  Connecting: { readonly attempt: number; readonly endpoint: string }
  Open: { readonly attempt: number; readonly endpoint: string; readonly since: number }
  Backoff: { readonly attempt: number; readonly delay: Duration.Duration; readonly error: ClientError }
  Suspended: { readonly endpoint: string; readonly retryAt: number; readonly error: CircuitOpenError }
  Closed: { readonly error: Option.Option<ClientError> }
}>

export const ClientState = Data.taggedEnum<ClientState>()

/**
 * Every state transition, every message that failed after it was accepted, and (with a codec)
 * every inbound frame that did not decode and was skipped.
 */
export type ClientEvent = Data.TaggedEnum<{
  Transition: { readonly from: ClientState; readonly to: ClientState }
  MessageFailed: { readonly error: SendError }
  DecodeFailed: { readonly error: DecodeError }
}>

export const ClientEvent = Data.taggedEnum<ClientEvent>()
