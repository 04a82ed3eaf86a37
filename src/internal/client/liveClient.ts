/**
 * The Client: its phase (the one truth of its lifecycle, changed only by `enter`), its outbound
 * and inbound sides, and the public surface. Connecting and backing off run on a supervisor fiber
 * (`supervisor.ts`) that ends once a session is open, or, where they run no user code and the
 * Node transport installed them, on callbacks with no fiber (`callbacks.ts`); an open session runs on
 * callbacks, so an open Client keeps no fiber alive (idle memory per client is a benchmark target).
 */
import type { MetricLabel } from "effect"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Sink from "effect/Sink"
import type * as Stream from "effect/Stream"
import type { CircuitBreaker, Registry } from "../../CircuitBreaker.js"
import type { Client } from "../../Client.js"
import type { CircuitOpenError, ConnectError, SendError } from "../../Errors.js"
import type { ClientError } from "../../Reconnect.js"
import type { Message, Transport } from "../../Transport.js"
import type { ClientSettings } from "../client.js"
import { brokenOption, closedByUser } from "../clientCommon.js"
import type { ClientState as ClientStateType } from "../clientState.js"
import * as Metrics from "../metrics.js"
import { streamOfPulls } from "../primitives/inboundBuffer.js"
import { SuccessiveInbound } from "../primitives/successiveInbound.js"
import type { Timers } from "../primitives/timers.js"
import { timersOn } from "../primitives/timers.js"
import { approximateBytes } from "../protocol.js"
import { redactInput, redactUrl } from "../redactUrl.js"
import { closeClient } from "./close.js"
import { Observer } from "./observe.js"
import { inOwnOnOpen, Outbound } from "./outbound.js"
import type { Phase, SessionEnd } from "./phase.js"
import { canMove, IDLE, isStopped, viewOf } from "./phase.js"
import type { Session } from "./session.js"
import { callbacks, supervise } from "./supervisor.js"

const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

export const labelOf = (endpoint: string | URL | Effect.Effect<string>): string => {
  if (endpoint instanceof URL) return redactUrl(endpoint)
  if (typeof endpoint !== "string") return "(url from an Effect)"
  let label = textLabels.get(endpoint)
  if (label === undefined) {
    // Bounded: a process that makes Clients to ever new URLs keeps no more than this.
    if (textLabels.size >= MAX_TEXT_LABELS) textLabels.clear()
    label = redactInput(endpoint)
    textLabels.set(endpoint, label)
  }
  return label
}

/** The endpoints' labels, made on each one's first attempt: one array for the Clients that share their settings. */
const labelsFor = (settings: ClientSettings): Array<string> => {
  let labels = sharedLabels.get(settings)
  if (labels === undefined) sharedLabels.set(settings, labels = new Array<string>(settings.endpoints.length))
  return labels
}
const sharedLabels = new WeakMap<ClientSettings, Array<string>>()

// Each endpoint given as text, redacted once for all the Clients that dial it (a redaction
// parses the URL twice): many Clients to one URL is the common case.
const MAX_TEXT_LABELS = 256
const textLabels = new Map<string, string>()

/**
 * A class so that one client costs fields, not a closure per method: methods that are used
 * point-free (`send`, `enqueue`, `close`) are bound on first use and kept.
 */
export class LiveClient extends Observer implements Client {
  /** The lifecycle: read anywhere, changed only by `enter`. */
  phase: Phase = IDLE
  /** The fiber running `onOpen`, while it runs (`inOwnOnOpen`). */
  onOpenFiber: object | undefined = undefined
  readonly outbound: Outbound
  readonly inbound = new SuccessiveInbound()
  readonly timers: Timers
  /** The fiber that connects and backs off, while there is one (none while Open or Closed). */
  supervisor: Fiber.RuntimeFiber<void> | undefined = undefined
  // The schedule's state and the attempt count of the current series of failures.
  scheduleState: unknown
  attempt = 0
  /** Attempts since the backoff was last reset: `ordered` dials endpoint `series % count`. */
  series = 0
  /** Attempts made in all (the endpoint rotation), and sessions opened in all. */
  total = 0
  opens = 0
  /** Each endpoint's redacted label, made on its first attempt, and the latest attempt's. */
  readonly labels: Array<string>
  currentLabel = ""
  /** Made by the first `close`, with what it returns: a second one waits for it. */
  closeDone: Deferred.Deferred<ReadonlyArray<Message>> | undefined = undefined
  /** Each static endpoint's circuit breaker, from the registry, made on first use. */
  breakers: Array<CircuitBreaker | undefined> | undefined = undefined
  /**
   * The primary probes' fibers still running, of any session: one that moved the Client home
   * outlives its session while it closes its answered connection, and `close` awaits it too.
   */
  probes: Set<Fiber.RuntimeFiber<void>> | undefined = undefined

  constructor(
    readonly settings: ClientSettings,
    readonly runtime: Runtime.Runtime<Transport>,
    readonly clock: Clock.Clock,
    /** The circuit breakers of the Client's context (`CircuitBreaker.layer`), if any. */
    readonly registry: Registry["Type"] | undefined
  ) {
    super()
    this.outbound = new Outbound(
      this,
      settings.outboxCapacity,
      settings.outboxBytes,
      settings.overflow,
      settings.connection.maxMessageSize
    )
    this.timers = timersOn(clock, runtime)
    this.scheduleState = settings.schedule.initial
    this.labels = labelsFor(settings)
  }

  /** What a log or `JSON.stringify` shows: the state and the settings, redacted (no URL secret, no header value). */
  toJSON(): unknown {
    const { connection, headers, endpoints } = this.settings
    const headerNames = (record: Readonly<Record<string, unknown>> | undefined) =>
      record === undefined ? undefined : Object.fromEntries(Object.keys(record).map((name) => [name, "<redacted>"]))
    return {
      _id: "lifeline/Client",
      state: viewOf(this.phase),
      endpoints: endpoints.map(labelOf),
      headers: headers === undefined ? headerNames(connection.headers) : "(headers from an Effect)",
      protocols: connection.protocols,
      outboxSize: this.outbound.pending
    }
  }

  [Symbol.for("nodejs.util.inspect.custom")](): unknown {
    return this.toJSON()
  }

  // --- the transition function ------------------------------------------------------------

  /**
   * Moves to `next` if `phase.ts`'s table allows it (else stays, and says so: false). Observers
   * hear of it at once when the public state changes; the returned Effect logs it.
   */
  enter(next: Phase): Effect.Effect<void> {
    const from = this.phase
    if (!canMove(from._tag, next._tag)) return Effect.void
    // Closed by `close` is for good: only an error's Closed may connect again (`reconnect`).
    if (from._tag === "Closed" && from.byClose && next._tag !== "Closing") return Effect.void
    this.phase = next
    // Closed by an error, `messages` ends once it is read out (a reader is not left waiting for a
    // connection that may never come); `reconnect` opens it again for a new read.
    if (next._tag === "Closed") {
      this.inbound.end()
      // Closed by `close`, for good: the state and event streams end too.
      if (next.byClose) this.endStreams()
    } else if (from._tag === "Closed" && next._tag === "Connecting") this.inbound.reopen()
    const before = viewOf(from)
    const after = viewOf(next)
    if (before === after) return Effect.void
    return this.moved(before, after, this.clock.unsafeCurrentTimeMillis(), this.opens > 0)
  }

  // --- what the other parts read ----------------------------------------------------------

  get currentState(): ClientStateType {
    return viewOf(this.phase)
  }

  get openSession(): Session | undefined {
    return this.phase._tag === "Open" ? this.phase.session : undefined
  }

  get stopped(): boolean {
    return isStopped(this.phase)
  }

  get finished(): boolean {
    return this.phase._tag === "Closed" && this.phase.byClose
  }

  /** With `whenSuspended: "failFast"`, while Suspended: what sends fail with at once. */
  get failFast(): CircuitOpenError | undefined {
    const phase = this.phase
    return phase._tag === "Suspended" && this.settings.whenSuspended === "failFast" ? phase.error : undefined
  }

  get outbox() {
    return this.outbound
  }

  reportFailure(error: SendError): void {
    this.outbound.reportFailure(error)
  }

  logLater(log: Effect.Effect<void>): void {
    this.fork(log, false)
  }

  /** A user function given as an option failed: the client closes with this (fatal by default). */
  brokenOption(detail: string, cause: unknown): ConnectError {
    return brokenOption(this.currentLabel, detail, cause)
  }

  // --- public surface ---------------------------------------------------------------------

  get awaitOpen(): Effect.Effect<void, ClientError> {
    const wait = Effect.async<void, ClientError>((resume) => {
      const outcome = (): Effect.Effect<void, ClientError> | undefined => {
        const phase = this.phase
        if (phase._tag === "Open") return Effect.void
        if (phase._tag === "Closing") return Effect.fail(closedByUser)
        if (phase._tag === "Closed") return Effect.fail(Option.getOrElse(phase.error, () => closedByUser))
        // Graceful degradation: while the endpoint's breaker is open, callers learn it at once.
        if (phase._tag === "Suspended" && this.settings.whenSuspended === "failFast") return Effect.fail(phase.error)
        return undefined
      }
      const now = outcome()
      if (now !== undefined) return resume(now)
      const remove = this.onState(() => {
        const done = outcome()
        if (done === undefined) return
        remove()
        resume(done)
      })
      return Effect.sync(remove)
    })
    // Checked when it runs, not when the getter is read: an app may keep `awaitOpen` in a service
    // made before `onOpen` runs.
    return Effect.zipRight(inOwnOnOpen(this, "awaitOpen"), wait)
  }

  private boundSend: ((data: Message) => Effect.Effect<void, SendError | CircuitOpenError>) | undefined = undefined
  private boundEnqueue: ((data: Message) => Effect.Effect<void, SendError | CircuitOpenError>) | undefined = undefined
  private boundClose: ((code?: number, reason?: string) => Effect.Effect<ReadonlyArray<Message>>) | undefined =
    undefined

  get send(): (data: Message) => Effect.Effect<void, SendError | CircuitOpenError> {
    return this.boundSend ??= (data) => this.outbound.send(data)
  }

  get enqueue(): (data: Message) => Effect.Effect<void, SendError | CircuitOpenError> {
    return this.boundEnqueue ??= (data) => this.outbound.enqueue(data)
  }

  get sink(): Sink.Sink<void, Message, never, SendError | CircuitOpenError> {
    return Sink.forEach((data: Message) => this.outbound.enqueueWaiting(data))
  }

  get outboxSize(): Effect.Effect<number> {
    return Effect.sync(() => this.outbound.pending)
  }

  get failed(): Effect.Effect<number> {
    return Effect.sync(() => this.outbound.failedTotal)
  }

  get messages(): Stream.Stream<Message> {
    return streamOfPulls(this.inboundChunks, this.inboundOne)
  }

  /** The next inbound frames, counted and without pongs: what `messages` (and a codec's decoder) pulls. */
  get inboundChunks(): Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>> {
    return this.counted(this.inbound.pull)
  }

  /** The next inbound frame alone, counted (none when it is a pong): what each run pulls first. */
  get inboundOne(): Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>> {
    return this.counted(this.inbound.pullOne)
  }

  private counted(
    pull: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>
  ): Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>> {
    const isPong = this.settings.isPong
    // Counted and filtered in the pull itself: a Stream.mapChunks stage would add a channel step
    // to every wake of the reader.
    return Effect.map(pull, (chunk) => {
      Metrics.messagesIn.unsafeUpdate(chunk.length, NO_TAGS)
      let bytes = 0
      for (const message of chunk) bytes += approximateBytes(message)
      Metrics.bytesIn.unsafeUpdate(bytes, NO_TAGS)
      return isPong === undefined ? chunk : this.withoutPongs(chunk, isPong)
    })
  }

  /**
   * The chunk without the frames `isPong` recognises. User code: an `isPong` that throws drops
   * the connection with ConnectError InvalidOptions (fatal by default) and keeps the frame.
   */
  private withoutPongs(chunk: Chunk.Chunk<Message>, isPong: (message: Message) => boolean): Chunk.Chunk<Message> {
    try {
      return Chunk.filter(chunk, (message) => !isPong(message))
    } catch (defect) {
      const session = this.openSession
      if (session !== undefined) this.endSession(session, this.brokenOption("heartbeat.isPong threw", defect))
      return chunk
    }
  }

  // --- lifecycle --------------------------------------------------------------------------

  /** Starts (or restarts) the supervisor with a fresh backoff. */
  start(): void {
    this.resetBackoff()
    // Called from the user's fiber (`make`, `reconnect`): start now, so the state has left Idle or
    // Closed by the time it returns and an `awaitOpen` that follows waits for this attempt.
    if (!callbacks.attempt?.(this)) this.fork(supervise(this, undefined), true, true)
  }

  resetBackoff(): void {
    this.scheduleState = this.settings.schedule.initial
    this.attempt = 0
    this.series = 0
  }

  /**
   * Runs `effect` on a new fiber with the context and FiberRefs (logger, level, annotations,
   * span) of the fiber that made the client; `supervisor` marks the fiber that `close` interrupts.
   */
  fork(
    effect: Effect.Effect<void, never, Transport>,
    supervisor: boolean,
    immediate = false
  ): Fiber.RuntimeFiber<void> {
    // A supervisor that dies (a defect in user code not caught nearer) must not leave the client
    // Connecting for ever: it closes, typed.
    const run = supervisor
      ? Effect.catchAllCause(effect, (cause) =>
        this.stopped || Cause.isInterruptedOnly(cause)
          ? Effect.void
          : this.stop(Option.some(this.brokenOption("the client failed", Cause.squash(cause)))))
      : effect
    // Not immediate by default: this runs inside socket and timer callbacks, where no user code
    // (shouldRetry, the Schedule, loggers, URL Effects) may run (invariant 1).
    const fiber = Runtime.runFork(this.runtime)(run, { immediate })
    if (supervisor) {
      this.supervisor = fiber
      fiber.addObserver(() => {
        if (this.supervisor === fiber) this.supervisor = undefined
      })
    }
    return fiber
  }

  /** An error ends the client: Closed with it, what is queued fails with `Closed`. */
  stop(error: Option.Option<ClientError>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const log = this.enter({ _tag: "Closed", error, byClose: false })
      this.outbound.failQueued()
      return log
    })
  }

  /** Called back by the connection, the heartbeat, `reconnect` or `isPong`: the supervisor takes over. */
  endSession(session: Session, reason: SessionEnd): void {
    const phase = this.phase
    if (phase._tag !== "Open" || phase.session !== session) return
    // Called in the socket's close event or a timer's callback: a throw here (forking, with a
    // runtime's Supervisor or Scheduler that throws; a defect) must not go on into it (invariant 1).
    try {
      session.detach()
      // Ending shows as the Open it ends: nothing to log.
      this.enter({ _tag: "Ending", open: phase, reason, skipWait: false })
      this.fork(supervise(this, phase.session), true)
    } catch (defect) {
      failClient(this, defect, session)
    }
  }

  /** The primary endpoint answered a probe: reconnect, if `session` is still the open one. */
  reconnectFrom(session: Session): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.openSession === session) this.endSession(session, "reconnect")
    })
  }

  get reconnect(): Effect.Effect<void> {
    return Effect.sync(() => {
      const phase = this.phase
      switch (phase._tag) {
        case "Closed":
          if (!phase.byClose) this.start()
          return
        case "Open":
          return this.endSession(phase.session, "reconnect")
        case "Connecting":
        case "Ending":
          // Skip the wait that follows this attempt or this session's end.
          phase.skipWait = true
          return
        case "Backoff":
        case "Suspended":
          return phase.wait.wake()
      }
    })
  }

  get close(): (code?: number, reason?: string) => Effect.Effect<ReadonlyArray<Message>> {
    return this.boundClose ??= (code, reason) => closeClient(this, code, reason)
  }
}

/**
 * What a throw in lifeline's own code on a socket's or timer's callback does (a defect; a Clock or
 * a runtime's Supervisor that throws): no fiber takes over, so the client closes with it at once,
 * as a defect of the supervisor does (InvalidOptions "the client failed: ..."), and what was
 * queued fails. With `session` (the open one, or the one Ending; detached already), its socket is
 * terminated and what it had in flight failed first, and Open goes to Closed through Ending
 * (Closed is no move from Open; Ending to Ending is refused, a no-op). The log line is tried on a
 * fiber. Nothing here throws on into the callback (invariant 1).
 */
export const failClient = (client: LiveClient, defect: unknown, session?: Session): void => {
  try {
    const error = client.brokenOption("the client failed", defect)
    if (session !== undefined) {
      session.opened.socket.terminate()
      session.abandonInFlight()
      client.enter({ _tag: "Ending", open: session, reason: error, skipWait: false })
    }
    client.fork(client.enter({ _tag: "Closed", error: Option.some(error), byClose: false }), false)
  } catch {
    // Its observers, or the fork of its log line, threw: nothing is left to report it with.
  }
  client.outbound.failQueued()
}
