/**
 * The Client's lifecycle as one tagged union, `Phase`, and the only table of the moves between
 * its members. `LiveClient.enter` is the one place that changes it; the public `ClientState` is
 * derived from it (`viewOf`), never kept beside it.
 *
 * ```
 *              start                 open + onOpen done
 *   Idle ──────────────▶ Connecting ─────────────────────▶ Open
 *                         ▲   │  ▲                          │ the connection, the heartbeat
 *              wait over  │   │  │ reconnect                │ or `reconnect` ends the session
 *              or woken   │   │  │                          ▼
 *                       Backoff ◀┴──────────────────────── Ending ── (release, then decide)
 *                         ▲   │ attempt failed,                │
 *                         └───┘ retryable, schedule goes on    │ not retryable, schedule done,
 *   Connecting / Ending ── the endpoint's breaker is open ──▶ Suspended ── retryAt ──▶ Connecting
 *                                                              │ or a user function failed
 *   any phase but Closed ──── close() ───▶ Closing ──▶ Closed ◀┘
 *   Closed (not by close) ─── reconnect ──▶ Connecting
 * ```
 *
 * Ending is an open session whose end the supervisor has not decided yet (one turn, while the
 * socket is released): nothing is sent on it, and the public state is still the Open it ends.
 */
import type { Duration, Effect } from "effect"
import * as Option from "effect/Option"
import type { CircuitOpenError } from "../../Errors.js"
import type { ClientError } from "../../Reconnect.js"
import { ClientState } from "../clientState.js"
import type { ClientState as ClientStateType } from "../clientState.js"
import type { TimedWait } from "../primitives/timers.js"
import type { Session } from "./session.js"

export type Phase =
  | { readonly _tag: "Idle" }
  | {
    readonly _tag: "Connecting"
    readonly attempt: number
    readonly endpoint: string
    /** `reconnect` was asked while connecting: skip the wait that follows a failure. */
    skipWait: boolean
    /** An attempt on callbacks (no fiber): what `close` abandons, its socket released. */
    pending?: { readonly abandon: () => Effect.Effect<void> }
  }
  // The session itself (`_tag` "Open", `session` itself), its public view made with it (attempt,
  // endpoint, since live there only): an idle Client keeps its Open phase for as long as it is
  // open, one object with the session.
  | Session
  | {
    readonly _tag: "Ending"
    readonly open: Session
    readonly reason: SessionEnd
    /** `reconnect` was asked while it ended: connect again at once, the backoff reset. */
    skipWait: boolean
  }
  | {
    readonly _tag: "Backoff"
    readonly attempt: number
    readonly delay: Duration.Duration
    readonly error: ClientError
    readonly wait: TimedWait & { readonly wake: () => void }
  }
  | {
    readonly _tag: "Suspended"
    readonly endpoint: string
    readonly retryAt: number
    readonly error: CircuitOpenError
    readonly wait: TimedWait & { readonly wake: () => void }
  }
  | { readonly _tag: "Closing" }
  | { readonly _tag: "Closed"; readonly error: Option.Option<ClientError>; readonly byClose: boolean }

/** Why a session ended: the connection's or heartbeat's error, or `reconnect`. */
export type SessionEnd = ClientError | "reconnect"

export type Tag = Phase["_tag"]

/** Every move `enter` allows; anything else is a bug in the Client, and `enter` refuses it. */
const moves: Readonly<Record<Tag, ReadonlyArray<Tag>>> = {
  Idle: ["Connecting", "Closing", "Closed"],
  Connecting: ["Connecting", "Open", "Backoff", "Suspended", "Closing", "Closed"],
  Open: ["Ending", "Closing"],
  Ending: ["Connecting", "Backoff", "Suspended", "Closing", "Closed"],
  Backoff: ["Connecting", "Closing", "Closed"],
  Suspended: ["Connecting", "Closing", "Closed"],
  Closing: ["Closed"],
  Closed: ["Connecting", "Closing"]
}

export const canMove = (from: Tag, to: Tag): boolean => moves[from].includes(to)

/** True while the client takes no more sends: closing or closed. */
export const isStopped = (phase: Phase): boolean => phase._tag === "Closing" || phase._tag === "Closed"

export const IDLE: Phase = { _tag: "Idle" }

const IDLE_VIEW = ClientState.Idle()

/** The public state of a phase. Ending shows as the Open it ends; Closing as the Closed it ends in. */
export const viewOf = (phase: Phase): ClientStateType => {
  if (phase._tag === "Idle") return IDLE_VIEW
  if (phase._tag === "Ending") return viewOf(phase.open)
  // One view per phase object, made on first use and kept on it: `state.get` returns the same
  // object until the phase changes (a field, not a WeakMap: an idle client's Open is kept).
  const viewed = phase as { view?: ClientStateType }
  return viewed.view ??= makeView(phase)
}

const makeView = (phase: Exclude<Phase, { _tag: "Idle" | "Ending" }>): ClientStateType => {
  switch (phase._tag) {
    case "Connecting":
      return ClientState.Connecting({ attempt: phase.attempt, endpoint: phase.endpoint })
    case "Open":
      return phase.view
    case "Backoff":
      return ClientState.Backoff({ attempt: phase.attempt, delay: phase.delay, error: phase.error })
    case "Suspended":
      return ClientState.Suspended({ endpoint: phase.endpoint, retryAt: phase.retryAt, error: phase.error })
    case "Closing":
      return CLOSED_ON_PURPOSE
    case "Closed":
      return Option.isNone(phase.error) ? CLOSED_ON_PURPOSE : ClientState.Closed({ error: phase.error })
  }
}

// Closing and the Closed it ends in show as one state: observers see the close once, at its start.
const CLOSED_ON_PURPOSE = ClientState.Closed({ error: Option.none() })
