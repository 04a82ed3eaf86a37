/**
 * What the Client shows of itself: `state` and `events` (listener sets made on first use, not a
 * SubscriptionRef and a PubSub: an idle Client keeps neither), and its log lines. Quiet by
 * default: one WARN when the link goes down (or cannot connect), one INFO when it is back, one
 * WARN when an error closes the Client; every other transition at DEBUG.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import * as Subscribable from "effect/Subscribable"
import type { DecodeError, SendError } from "../../Errors.js"
import { ClientEvent } from "../clientState.js"
import type { ClientEvent as ClientEventType, ClientState as ClientStateType } from "../clientState.js"
import { Listeners } from "../primitives/listeners.js"

/** How many recent events a new `events` subscriber receives first. */
const EVENTS_REPLAY = 16

/**
 * An event as kept for replay: a state stands for the Transition to it from the state kept before
 * it (no Transition object is kept: the two an open Client has were a tenth of its idle heap);
 * failures are kept as they are.
 */
type Kept = ClientStateType | Exclude<ClientEventType, { _tag: "Transition" }>

const NO_EVENTS: ReadonlyArray<Kept> = []

const isState = (kept: Kept): kept is ClientStateType => !kept._tag.endsWith("Failed")

/**
 * The Client's state listeners are this object's own set; the events' are made on first use. The
 * Client's base class (`LiveClient`): its fields are the Client's own, not a second object's (idle
 * memory per client is a benchmark target).
 */
export abstract class Observer extends Listeners<ClientStateType> {
  // Made on first use: most clients are never watched, and an idle client's size is a target.
  private eventListeners: Listeners<ClientEventType> | undefined = undefined
  private recent: ReadonlyArray<Kept> = NO_EVENTS
  /** The `from` of the oldest Transition kept. */
  private replayFrom: ClientStateType | undefined = undefined
  /** When the link went down (the first Backoff since it was last Open): the outage under way. */
  downSince: number | undefined = undefined
  /** The attempts made since the link went down (or since the first attempt failed). */
  downAttempts = 0

  /** How many events a slow `events` reader may fall behind by (the Client's settings). */
  abstract readonly settings: { readonly eventsCapacity: number }
  abstract readonly currentState: ClientStateType
  /** The endpoint last dialled, redacted (`""` before the first attempt). */
  abstract readonly currentLabel: string

  /** Closed by `close`, for good: `state.changes` and `events` have ended. */
  abstract readonly finished: boolean

  /** `changes` ends once `close` has finished (an error's Closed may connect again: it goes on). */
  get state(): Subscribable.Subscribable<ClientStateType> {
    return Subscribable.make({
      get: Effect.sync(() => this.currentState),
      changes: this.stream(() => [this.currentState], { bufferSize: "unbounded" }, () => this.finished)
    })
  }

  /** Ends once `close` has finished, after the failures it reported. */
  get events(): Stream.Stream<ClientEventType> {
    return (this.eventListeners ??= new Listeners()).stream(() => this.replay(), {
      bufferSize: this.settings.eventsCapacity,
      strategy: "sliding"
    }, () => this.finished)
  }

  /** `close` has finished: every `state.changes` and `events` stream ends. */
  protected endStreams(): void {
    this.end()
    this.eventListeners?.end()
  }

  /** Calls `listener` with every state from now on; returns how to stop. */
  onState(listener: (state: ClientStateType) => void): () => void {
    return this.add(listener)
  }

  /** The recent events, as they were published. */
  private replay(): Array<ClientEventType> {
    let from = this.replayFrom!
    return this.recent.map((kept) => {
      if (!isState(kept)) return kept
      const event = ClientEvent.Transition({ from, to: kept })
      from = kept
      return event
    })
  }

  private keep(kept: Kept): void {
    // Copied, not pushed: events are rare, and an exact-size array is smaller to keep. `concat`
    // makes it at its size; a spread (`[...recent, event]`) left room to grow.
    const recent = this.recent
    if (recent.length < EVENTS_REPLAY) this.recent = recent.concat(kept)
    else {
      if (isState(recent[0]!)) this.replayFrom = recent[0]
      this.recent = recent.slice(1).concat(kept)
    }
    if (!isState(kept)) this.eventListeners?.emit(kept)
  }

  publishFailure(error: SendError): void {
    this.keep(ClientEvent.MessageFailed({ error }))
  }

  /** An inbound frame did not decode (`decodeErrors: "event"`): it was skipped. */
  publishDecodeFailure(error: DecodeError): void {
    this.keep(ClientEvent.DecodeFailed({ error }))
  }

  /**
   * The public state moved from `from` to `to`: listeners and events now, and the log line as an
   * Effect (`now` in Clock millis; `everOpened`: the wording of a first outage).
   */
  moved(from: ClientStateType, to: ClientStateType, now: number, everOpened: boolean): Effect.Effect<void> {
    this.emit(to)
    // Each transition's `from` is the `to` of the one before (`enter` publishes only changes of
    // the public state), so the states alone say every Transition kept.
    this.replayFrom ??= from
    this.keep(to)
    this.eventListeners?.emit(ClientEvent.Transition({ from, to }))
    // The outage under way before this transition: the one an Open ends (its line says how long).
    const downSince = this.downSince
    let level = LogLevel.Debug
    switch (to._tag) {
      case "Backoff":
        if (downSince === undefined) {
          this.downSince = now
          // The attempt that failed counts; a link that dropped was none.
          this.downAttempts = from._tag === "Connecting" ? 1 : 0
          level = LogLevel.Warning
        }
        break
      case "Connecting":
        // Each attempt is a Connecting of its own (its number changes), whatever the series does
        // meanwhile (it goes on across links shorter than minUptime; reconnect restarts it).
        if (downSince !== undefined) this.downAttempts++
        break
      case "Open":
        if (downSince !== undefined) level = LogLevel.Info
        this.downSince = undefined
        break
      case "Closed":
        if (Option.isSome(to.error)) level = LogLevel.Warning
        this.downSince = undefined
    }
    // A Backoff or a Closed says no endpoint: its line names the one the link was on (or tried),
    // else the one last dialled (a Closed after a Closed).
    const endpoint = "endpoint" in to ? to.endpoint : "endpoint" in from ? from.endpoint : this.currentLabel
    return logLine(level, to, downSince, this.downAttempts, everOpened, endpoint)
  }
}

/**
 * Logs a transition, annotated with `endpoint` (none when `""`). Below the fiber's minimum level nothing is
 * built: a retry storm of many clients would otherwise spend a good part of each attempt on
 * messages and annotations that are filtered out.
 */
const logLine = (
  level: LogLevel.LogLevel,
  state: ClientStateType,
  downSince: number | undefined,
  attempts: number,
  everOpened: boolean,
  endpoint: string
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    if (LogLevel.lessThan(level, fiber.getFiberRef(FiberRef.currentMinimumLogLevel))) return Effect.void
    let message: string
    switch (state._tag) {
      case "Backoff":
        message = level === LogLevel.Warning
          ? `lifeline: ${everOpened ? "link down" : "cannot connect"}: ${state.error.message}; retrying ${
            Duration.isZero(state.delay) ? "now" : `in ${Duration.format(state.delay)}`
          }`
          : `lifeline: Backoff ${Duration.format(state.delay)} after ${state.error.message}`
        break
      case "Open":
        message = level === LogLevel.Info && downSince !== undefined
          ? `lifeline: link back after ${attempts} attempt${attempts === 1 ? "" : "s"}, down for ${
            Duration.format(Duration.millis(Math.max(0, state.since - downSince)))
          }`
          : "lifeline: Open"
        break
      case "Closed":
        message = Option.match(state.error, {
          onNone: () => "lifeline: Closed",
          onSome: (error) => `lifeline: closed by ${error.message}; not retrying`
        })
        break
      default:
        message = `lifeline: ${state._tag}`
    }
    const log = Effect.logWithLevel(level, message)
    // A logger that fails must not take the Client down with it.
    return Effect.catchAllCause(
      endpoint === "" ? log : Effect.annotateLogs(log, "lifeline.url", endpoint),
      () => Effect.void
    )
  })
