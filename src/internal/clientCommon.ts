/**
 * What both Clients (the full one's `client/`, the small one's `liteClient.ts`) say alike: the
 * error `close` leaves `awaitOpen` with, the error of an option that failed, log lines beside the
 * transitions' (`client/observe.ts` and the small Client's own, which
 * test/support/clientContract.ts holds to the same words).
 */
import * as Effect from "effect/Effect"
import { ConnectError, Disconnected } from "../Errors.js"
import { INVALID_OPTIONS_HINT } from "./classifyHandshakeError.js"

/** What `close` (or the scope's end) leaves `awaitOpen` with. */
export const closedByUser = new Disconnected({
  code: 1000,
  reason: "client closed",
  wasClean: true,
  initiator: "client"
})

/** A thrown value's message, for an error's detail. */
export const causeMessage = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/** A user function given as an option failed (or a Schedule's step): the Client closes with this (fatal by default). */
export const brokenOption = (url: string, detail: string, cause: unknown): ConnectError =>
  new ConnectError({
    reason: "InvalidOptions",
    url,
    detail: `${detail}: ${causeMessage(cause)}; ${INVALID_OPTIONS_HINT}`,
    cause
  })

/** Said once per link where the heartbeat has no way to probe. */
export const cannotProbeLog = (): Effect.Effect<void> =>
  Effect.logWarning("lifeline: heartbeat cannot probe on this platform; set heartbeat.message (and isPong)")

/** What `close` did not send, returned to no one (the scope's end): one WARN says how much. */
export const unsentLog = (count: number): Effect.Effect<void> =>
  Effect.logWarning(`lifeline: closed with ${count} messages never sent`)
