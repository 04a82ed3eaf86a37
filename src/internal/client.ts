/**
 * The Client's machinery. A supervisor fiber connects, backs off by the Schedule and tries again;
 * once a connection is open the fiber ends, and the open session runs on callbacks: the
 * connection's close, the heartbeat's timer and `reconnect` end it and start the supervisor again.
 * An open client therefore keeps no fiber, no hub and no Ref alive: idle memory per client is a
 * benchmark target. The outbox and the inbound stream outlive each connection.
 */
import type { MetricLabel, Redacted, Schedule } from "effect"
import {
  Cause,
  Chunk,
  Clock,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberRef,
  LogLevel,
  Option,
  Runtime,
  ScheduleDecision,
  ScheduleIntervals,
  Scope,
  Stream,
  Subscribable
} from "effect"
import type { Client } from "../Client.js"
import type { Connection } from "../Connection.js"
import type { TimeoutError } from "../Errors.js"
import { ConnectError, Disconnected, OnOpenError, SendError } from "../Errors.js"
import type { ClientError } from "../Reconnect.js"
import type { Message, Transport } from "../Transport.js"
import type { ClientEvent as ClientEventType, ClientState as ClientStateType } from "./clientState.js"
import { ClientEvent, ClientState } from "./clientState.js"
import { acquireConnection, closeCodeOf, releaseOpened, trySend, writeFailed } from "./connection.js"
import type { OpenedConnection } from "./connection.js"
import type { HeartbeatOptions, HeartbeatOwner } from "./heartbeat.js"
import { Heartbeat } from "./heartbeat.js"
import { streamOfPulls } from "./inboundBuffer.js"
import { Listeners } from "./listeners.js"
import { SuccessiveInbound } from "./successiveInbound.js"
import * as Metrics from "./metrics.js"
import type { Entry, Overflow } from "./outbox.js"
import { Outbox } from "./outbox.js"
import type { ConnectOptions } from "./parseEndpoint.js"
import { approximateBytes, OPEN } from "./protocol.js"
import { redactUnparsedUrl, redactUrl } from "./redactUrl.js"
import type { Timers } from "./timers.js"
import { TimedWait, timersOn } from "./timers.js"

/** The Client's options after defaults; built by `Client.make`. */
export interface ClientSettings {
  readonly endpoints: ReadonlyArray<string | URL | Effect.Effect<string>>
  readonly connection: ConnectOptions
  readonly headers: Effect.Effect<Readonly<Record<string, string | Redacted.Redacted<string>>>> | undefined
  readonly schedule: Schedule.Schedule<unknown, ClientError>
  readonly shouldRetry: (error: ClientError) => boolean
  readonly minUptime: Duration.Duration
  readonly outboxCapacity: number
  readonly overflow: Overflow
  readonly onOpen: ((connection: Connection) => Effect.Effect<void, unknown>) | undefined
  readonly heartbeat: HeartbeatOptions | undefined
  readonly isPong: ((message: Message) => boolean) | undefined
  readonly eventsCapacity: number
  /** Why the options cannot work; the client then starts Closed with ConnectError InvalidOptions. */
  readonly invalid: string | undefined
}

const labelOf = (endpoint: string | URL | Effect.Effect<string>): string => {
  if (endpoint instanceof URL) return redactUrl(endpoint)
  if (typeof endpoint !== "string") return "(url from an Effect)"
  try {
    return redactUrl(new URL(endpoint))
  } catch {
    return redactUnparsedUrl(endpoint)
  }
}

const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

/** How many recent events a new `events` subscriber receives first. */
const EVENTS_REPLAY = 16

const IDLE = ClientState.Idle()

const closedByUser = new Disconnected({ code: 1000, reason: "client closed", wasClean: true, initiator: "client" }, true)

const closedError = (payload: Message): SendError => new SendError({ reason: "Closed", payload }, true)

/**
 * One open connection of the client, from `onOpen` done until it ends. It is what the connection
 * and the heartbeat call back when the session ends, so an open session costs no closures.
 */
class Session implements HeartbeatOwner {
  heartbeat: Heartbeat | undefined = undefined
  constructor(
    private readonly client: LiveClient,
    readonly opened: OpenedConnection,
    readonly openedAt: number
  ) {}

  // Frames written by `enqueue` whose write has not completed, oldest first. They all share one
  // write callback: a closure per frame makes Node keep large frames alive past a scavenge
  // (64 KiB frames: a full GC every few hundred), and write callbacks come back in order.
  private inFlight: Array<Message | undefined> | undefined = undefined
  private inFlightHead = 0
  private writtenCallback: ((error?: Error | null) => void) | undefined = undefined

  /** Records a frame about to be written; returns the callback to write it with. */
  track(data: Message): (error?: Error | null) => void {
    const inFlight = this.inFlight ??= []
    inFlight.push(data)
    return this.writtenCallback ??= (error) => this.written(error)
  }

  /** Forgets the frame just tracked: its send threw, so no completion will come. */
  untrackLast(): void {
    this.inFlight?.pop()
  }

  /** The oldest tracked frame's write completed: a failure becomes a MessageFailed event. */
  private written(error: Error | null | undefined): void {
    const inFlight = this.inFlight
    if (inFlight === undefined || this.inFlightHead >= inFlight.length) return
    const data = inFlight[this.inFlightHead]!
    inFlight[this.inFlightHead++] = undefined
    if (this.inFlightHead === inFlight.length) {
      inFlight.length = 0
      this.inFlightHead = 0
    } else if (this.inFlightHead > 1024 && this.inFlightHead * 2 > inFlight.length) {
      // Never quite empty under a steady stream: drop the completed head now and then.
      inFlight.splice(0, this.inFlightHead)
      this.inFlightHead = 0
    }
    if (error !== undefined && error !== null) this.client.reportFailure(writeFailed(data, error))
  }

  connectionEnded(disconnected: Disconnected): void {
    this.client.endSession(this, disconnected)
  }

  onDead(timeout: TimeoutError): void {
    this.client.endSession(this, timeout)
  }

  onCannotProbe(): void {
    // No protocol ping here (a browser) and no app-level message configured: say so once.
    this.client.fork(Effect.logWarning("lifeline: heartbeat cannot probe on this platform; set heartbeat.message (and isPong)"), false)
  }
}

/** The client's wait between attempts: its timer fires (false), or `reconnect` wakes it (true). */
class BackoffWait extends TimedWait {
  constructor(
    private readonly client: LiveClient,
    private readonly resume: (effect: Effect.Effect<boolean>) => void,
    timers: Timers
  ) {
    super(timers)
  }

  wake(): void {
    if (this.finish()) this.resume(Effect.succeed(true))
  }

  protected timedOut(): void {
    this.resume(Effect.succeed(false))
  }

  protected ended(): void {
    this.client.backoffEnded(this)
  }
}

/** Why a session ended: the connection's or heartbeat's error, or `reconnect`. */
type SessionEnd = ClientError | "reconnect"

/**
 * The client. A class so that one client costs fields, not a closure per method: methods that are
 * used point-free (`send`, `enqueue`, `close`) are bound on first use and kept.
 */
class LiveClient implements Client {
  private readonly outbox: Outbox
  private readonly inbound = new SuccessiveInbound()
  private readonly timers: Timers

  private currentState: ClientStateType = IDLE
  private readonly stateListeners = new Listeners<ClientStateType>()
  private readonly eventListeners = new Listeners<ClientEventType>()
  private recentEvents: ReadonlyArray<ClientEventType> = []

  /** The supervisor, while it connects or backs off; none while a session is open. */
  private fiber: Fiber.RuntimeFiber<void> | undefined = undefined
  /** The open session: set and cleared in one step with the Open state, so it is also "ready". */
  private session: Session | undefined = undefined
  private flushing = false
  private stopped = false
  private closedForGood = false
  private everOpened = false
  private scheduleState: unknown
  private attempt = 0
  private total = 0
  private reconnectRequested = false
  private backoffWait: BackoffWait | undefined = undefined
  /** An ended session's connection until the supervisor has released it; `close` finishes the job. */
  private releasing: OpenedConnection | undefined = undefined
  /** Each endpoint's redacted label, made on its first attempt. */
  private readonly labels: Array<string>

  constructor(
    private readonly settings: ClientSettings,
    private readonly runtime: Runtime.Runtime<Transport>,
    private readonly clock: Clock.Clock
  ) {
    this.outbox = new Outbox(settings.outboxCapacity, settings.overflow)
    this.outbox.owner = this
    this.timers = timersOn(clock, runtime)
    this.scheduleState = settings.schedule.initial
    this.labels = new Array<string>(settings.endpoints.length)
  }

  /** An entry that lands in the outbox while connected (admitted from `suspend`) goes out at once. */
  outboxAdmitted(): void {
    if (this.session !== undefined) this.flush(this.session)
  }

  // --- state and events -------------------------------------------------------------------

  get state(): Subscribable.Subscribable<ClientStateType> {
    return Subscribable.make({
      get: Effect.sync(() => this.currentState),
      changes: this.stateListeners.stream(() => [this.currentState], { bufferSize: "unbounded" })
    })
  }

  get events(): Stream.Stream<ClientEventType> {
    return this.eventListeners.stream(() => this.recentEvents, { bufferSize: this.settings.eventsCapacity, strategy: "sliding" })
  }

  get awaitOpen(): Effect.Effect<void, ClientError> {
    return Effect.async<void, ClientError>((resume) => {
      const outcome = (state: ClientStateType): Effect.Effect<void, ClientError> | undefined => {
        if (state._tag === "Open") return Effect.void
        if (state._tag === "Closed") return Effect.fail(Option.getOrElse(state.error, () => closedByUser))
        return undefined
      }
      const now = outcome(this.currentState)
      if (now !== undefined) return resume(now)
      const remove = this.stateListeners.add((state) => {
        const done = outcome(state)
        if (done === undefined) return
        remove()
        resume(done)
      })
      return Effect.sync(remove)
    })
  }

  private publish(event: ClientEventType): void {
    // Copied, not pushed: events are rare, and an exact-size array is smaller to keep.
    const recent = this.recentEvents
    this.recentEvents = recent.length < EVENTS_REPLAY ? [...recent, event] : [...recent.slice(1), event]
    this.eventListeners.emit(event)
  }

  /** Changes the state at once (listeners, events); the returned Effect logs it. */
  private transition(next: ClientStateType): Effect.Effect<void> {
    const from = this.currentState
    this.currentState = next
    this.stateListeners.emit(next)
    this.publish(ClientEvent.Transition({ from, to: next }))
    return logTransition(next)
  }

  private setState(next: ClientStateType): Effect.Effect<void> {
    return Effect.suspend(() => this.transition(next))
  }

  reportFailure(error: SendError): void {
    this.publish(ClientEvent.MessageFailed({ error }))
  }

  // --- outbound ---------------------------------------------------------------------------

  /**
   * Writes everything queued, synchronously, oldest first, until the outbox is empty (taking
   * entries admits suspended ones, which the next round writes). Only for the open session, while OPEN.
   */
  private flush(session: Session): void {
    const socket = session.opened.socket
    if (this.flushing || this.session !== session || socket.readyState() !== OPEN) return
    this.flushing = true
    let count = 0
    let bytes = 0
    while (this.outbox.size > 0) {
      for (const entry of this.outbox.takeAll()) {
        // A send that throws (a detached buffer) fails its own entry, never the rest.
        const thrown = trySend(socket, entry.payload, completion(entry))
        if (thrown !== undefined) {
          entry.done(writeFailed(entry.payload, thrown))
          continue
        }
        bytes += approximateBytes(entry.payload)
        count++
      }
    }
    this.flushing = false
    Metrics.messagesOut.unsafeUpdate(count, NO_TAGS)
    Metrics.bytesOut.unsafeUpdate(bytes, NO_TAGS)
    Metrics.outboxDepth.unsafeUpdate(0, NO_TAGS)
  }

  /** The fast path: a session open and nothing queued ahead, so the frame goes straight out. */
  private writable(): Session | undefined {
    const session = this.session
    if (session === undefined || this.outbox.size > 0 || session.opened.socket.readyState() !== OPEN) return undefined
    return session
  }

  /** Writes at once; returns what the transport threw, if it did (then nothing was written). */
  private writeNow(session: Session, data: Message, done: (error?: Error | null) => void): Error | undefined {
    const thrown = trySend(session.opened.socket, data, done)
    if (thrown !== undefined) return thrown
    Metrics.messagesOut.unsafeUpdate(1, NO_TAGS)
    Metrics.bytesOut.unsafeUpdate(approximateBytes(data), NO_TAGS)
    return undefined
  }

  /** Queues a frame and completes when it is written or fails. */
  private sendQueued(data: Message): Effect.Effect<void, SendError> {
    return Effect.async<void, SendError>((resume) => {
      if (this.stopped) return resume(Effect.fail(closedError(data)))
      const entry: Entry = {
        payload: data,
        done: (error) => resume(error === undefined ? Effect.void : Effect.fail(error))
      }
      this.outbox.offer(entry, () => Metrics.outboxDepth.unsafeUpdate(this.outbox.size, NO_TAGS))
      return Effect.sync(() => {
        this.outbox.remove(entry)
      })
    })
  }

  // The `lifeline.send` span covers sends that wait in the outbox, where the time is worth
  // seeing; a span on the direct path would cost more than the write it traces.
  private sendQueuedTraced(data: Message): Effect.Effect<void, SendError> {
    return this.sendQueued(data).pipe(Effect.withSpan("lifeline.send", {
      captureStackTrace: false,
      attributes: { "lifeline.outbox.depth": this.outbox.size }
    }))
  }

  private boundSend: ((data: Message) => Effect.Effect<void, SendError>) | undefined = undefined
  private boundEnqueue: ((data: Message) => Effect.Effect<void, SendError>) | undefined = undefined
  private boundClose: ((code?: number, reason?: string) => Effect.Effect<ReadonlyArray<Message>>) | undefined = undefined

  get send(): (data: Message) => Effect.Effect<void, SendError> {
    return this.boundSend ??= (data) =>
      Effect.suspend(() => {
        if (this.stopped) return Effect.fail(closedError(data))
        if (this.writable() === undefined) return this.sendQueuedTraced(data)
        return Effect.async<void, SendError>((resume) => {
          // The fiber may have yielded since the check: check again where the write happens.
          const session = this.writable()
          if (session === undefined) return resume(this.sendQueued(data))
          const thrown = this.writeNow(session, data, (error) => {
            resume(error === undefined || error === null ? Effect.void : Effect.fail(writeFailed(data, error)))
          })
          if (thrown !== undefined) resume(Effect.fail(writeFailed(data, thrown)))
        })
      })
  }

  // Synchronous unless the outbox is full under `suspend`: the pipelining path allocates no
  // Effect.async, no fiber and, when connected with nothing queued, only the write callback.
  get enqueue(): (data: Message) => Effect.Effect<void, SendError> {
    return this.boundEnqueue ??= (data) =>
      Effect.suspend(() => {
        if (this.stopped) return Effect.fail(closedError(data))
        const session = this.writable()
        if (session !== undefined) {
          const thrown = this.writeNow(session, data, session.track(data))
          if (thrown === undefined) return Effect.void
          // Nothing was written, so no completion will come for it.
          session.untrackLast()
          return Effect.fail(writeFailed(data, thrown))
        }
        return this.enqueueQueued(data)
      })
  }

  private enqueueQueued(data: Message): Effect.Effect<void, SendError> {
    let buffered = false
    let rejected: SendError | undefined
    let wake: ((effect: Effect.Effect<void, SendError>) => void) | undefined
    const entry: Entry = {
      payload: data,
      // Before it is buffered a failure fails `enqueue`; after, it is reported as an event.
      done: (error) => {
        if (error === undefined) return
        if (buffered) return this.reportFailure(error)
        rejected = error
        if (wake !== undefined) wake(Effect.fail(error))
      }
    }
    this.outbox.offer(entry, () => {
      buffered = true
      if (wake !== undefined) wake(Effect.void)
    })
    if (buffered) {
      Metrics.outboxDepth.unsafeUpdate(this.outbox.size, NO_TAGS)
      return Effect.void
    }
    if (rejected !== undefined) return Effect.fail(rejected)
    // Full under `suspend`: wait for room.
    return Effect.async<void, SendError>((resume) => {
      wake = resume
      return Effect.sync(() => {
        if (!buffered) this.outbox.remove(entry)
      })
    })
  }

  get outboxSize(): Effect.Effect<number> {
    return Effect.sync(() => this.outbox.size)
  }

  // --- inbound ----------------------------------------------------------------------------

  get messages(): Stream.Stream<Message> {
    const isPong = this.settings.isPong
    // Counted and filtered in the pull itself: a Stream.mapChunks stage would add a channel step
    // to every wake of the reader.
    return streamOfPulls(Effect.map(this.inbound.pull, (chunk) => {
      Metrics.messagesIn.unsafeUpdate(chunk.length, NO_TAGS)
      let bytes = 0
      for (const message of chunk) bytes += approximateBytes(message)
      Metrics.bytesIn.unsafeUpdate(bytes, NO_TAGS)
      return isPong === undefined ? chunk : Chunk.filter(chunk, (message) => !isPong(message))
    }))
  }

  // --- lifecycle --------------------------------------------------------------------------

  /** Starts (or restarts) the supervisor with a fresh backoff. */
  start(): void {
    this.stopped = false
    this.resetBackoff()
    // Called from the user's fiber (`make`, `reconnect`): start now, so the state has left Idle or
    // Closed by the time it returns and an `awaitOpen` that follows waits for this attempt.
    this.fork(this.supervise(undefined), true, true)
  }

  /**
   * Runs `effect` on a new fiber with the context and FiberRefs (logger, level, annotations,
   * span) of the fiber that made the client; `supervisor` marks the fiber that `close` interrupts.
   */
  fork(effect: Effect.Effect<void, never, Transport>, supervisor: boolean, immediate = false): Fiber.RuntimeFiber<void> {
    // Not immediate by default: this runs inside socket and timer callbacks, where no user code
    // (shouldRetry, the Schedule, loggers, URL Effects) may run (invariant 1).
    const fiber = Runtime.runFork(this.runtime)(effect, { immediate })
    if (supervisor) {
      this.fiber = fiber
      fiber.addObserver(() => {
        if (this.fiber === fiber) this.fiber = undefined
      })
    }
    return fiber
  }

  private resetBackoff(): void {
    this.scheduleState = this.settings.schedule.initial
    this.attempt = 0
  }

  private retryable(error: ClientError): boolean {
    try {
      return this.settings.shouldRetry(error)
    } catch {
      // A throwing predicate cannot say yes: stop rather than loop on a broken policy.
      return false
    }
  }

  private stop(error: Option.Option<ClientError>): Effect.Effect<ReadonlyArray<Message>> {
    return Effect.suspend(() => {
      this.stopped = true
      const unsent = this.outbox.failAll("Closed")
      Metrics.outboxDepth.unsafeUpdate(0, NO_TAGS)
      return Effect.as(this.transition(ClientState.Closed({ error })), unsent)
    })
  }

  /**
   * The supervisor: after a session ended (if one did), attempts until one opens or the schedule
   * gives up. It ends when a session is open; the session's end starts it again.
   */
  private supervise(ended: { readonly session: Session; readonly reason: SessionEnd } | undefined): Effect.Effect<void, never, Transport> {
    const self = this
    return Effect.gen(function*() {
      if (self.settings.invalid !== undefined) {
        yield* self.stop(Option.some(new ConnectError({ reason: "InvalidOptions", url: labelOf(self.settings.endpoints[0] ?? ""), detail: self.settings.invalid }, true)))
        return
      }
      if (ended !== undefined && !(yield* self.afterSession(ended.session, ended.reason))) return
      while (true) {
        const failure = yield* self.connectOnce()
        // Open: the session runs on callbacks from here. Or `close` stopped the client.
        if (failure === undefined || self.stopped) return
        if (!(yield* self.backoff(failure, 0))) return
      }
    })
  }

  /** Releases an ended session's connection; then whether to go on connecting. */
  private afterSession(session: Session, reason: SessionEnd): Effect.Effect<boolean> {
    return Effect.gen(this, function*() {
      // A dead peer will not answer a close frame: skip the close handshake.
      if (reason !== "reconnect" && reason._tag === "TimeoutError") session.opened.socket.terminate()
      const uptime = this.clock.unsafeCurrentTimeMillis() - session.openedAt
      yield* releaseOpened(session.opened, Exit.void)
      if (this.releasing === session.opened) this.releasing = undefined
      if (this.stopped) return false
      if (reason === "reconnect") {
        this.resetBackoff()
        return true
      }
      return yield* this.backoff(reason, uptime)
    })
  }

  /** Decides what follows `error`: false when the client stops, true after the backoff. */
  private backoff(error: ClientError, uptime: number): Effect.Effect<boolean> {
    return Effect.gen(this, function*() {
      if (!this.retryable(error)) {
        yield* this.stop(Option.some(error))
        return false
      }
      if (uptime >= Duration.toMillis(this.settings.minUptime)) {
        // Stable long enough: this failure counts as the first of a new series.
        this.resetBackoff()
        this.attempt = 1
      }
      const now = this.clock.unsafeCurrentTimeMillis()
      const [nextState, , decision] = yield* this.settings.schedule.step(now, error, this.scheduleState)
      this.scheduleState = nextState
      if (ScheduleDecision.isDone(decision)) {
        yield* this.stop(Option.some(error))
        return false
      }
      let delay = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
      if (error._tag === "ConnectError" && error.retryAfter !== undefined) {
        delay = Math.max(delay, Duration.toMillis(error.retryAfter))
      }
      yield* this.setState(ClientState.Backoff({ attempt: this.attempt, delay: Duration.millis(delay), error }))
      const woken = yield* this.sleepOrWake(delay)
      if (woken) {
        this.reconnectRequested = false
        this.resetBackoff()
      }
      return true
    })
  }

  /**
   * Waits `delay` on one timer, or less if `reconnect` wakes it (true). No racing fibers: the
   * cost of a retry matters when many clients reconnect at once.
   */
  private sleepOrWake(delay: number): Effect.Effect<boolean> {
    return Effect.async<boolean>((resume) => {
      if (this.reconnectRequested) return resume(Effect.succeed(true))
      const wait = new BackoffWait(this, resume, this.timers)
      this.backoffWait = wait
      wait.start(delay)
      return Effect.sync(() => wait.finish())
    })
  }

  /** A backoff wait is over. */
  backoffEnded(wait: BackoffWait): void {
    if (this.backoffWait === wait) this.backoffWait = undefined
  }

  /**
   * One attempt: connect, run `onOpen`, open the session. Returns undefined once the session is
   * open, or the error that ended the attempt (its connection released).
   */
  private connectOnce(): Effect.Effect<ClientError | undefined, never, Transport> {
    return Effect.gen(this, function*() {
      const settings = this.settings
      this.attempt++
      const attempt = this.attempt
      // Safe: `make` leaves a client with no endpoint Closed (InvalidOptions) before this.
      const index = this.total % settings.endpoints.length
      const endpoint = settings.endpoints[index]!
      this.total++
      const label = this.labels[index] ??= labelOf(endpoint)
      yield* this.setState(ClientState.Connecting({ attempt, endpoint: label }))
      const startedAt = this.clock.unsafeCurrentTimeMillis()
      // The connection, once open, is this attempt's to release, until a session takes it over.
      const acquired: { opened?: OpenedConnection } = {}
      return yield* this.openSession(endpoint, label, attempt, startedAt, acquired).pipe(
        Effect.onExit((exit) => {
          const opened = acquired.opened
          if (opened === undefined || (Exit.isSuccess(exit) && exit.value === undefined)) return Effect.void
          return releaseOpened(opened, exit)
        })
      )
    })
  }

  private openSession(
    endpoint: string | URL | Effect.Effect<string>,
    label: string,
    attempt: number,
    startedAt: number,
    acquired: { opened?: OpenedConnection }
  ): Effect.Effect<ClientError | undefined, never, Transport> {
    return Effect.gen(this, function*() {
      const settings = this.settings
      const headers = settings.headers === undefined ? settings.connection.headers : yield* settings.headers
      const attemptResult = yield* Effect.either(acquireConnection(
        endpoint,
        headers === undefined ? settings.connection : { ...settings.connection, headers },
        (opened) => Effect.sync(() => {
          acquired.opened = opened
        }),
        this.inbound
      )).pipe(
        // A URL or headers Effect that dies is the user's bug: report it as an invalid URL, fatal.
        Effect.catchAllDefect((defect) =>
          Effect.succeed(Either.left(new ConnectError({ reason: "InvalidUrl", url: label, detail: "the URL or headers Effect died", cause: defect }, true)))
        )
      )
      if (attemptResult._tag === "Left") {
        const error = attemptResult.left
        Metrics.connectFailed(error._tag === "ConnectError" ? error.reason : error._tag)
        return error
      }
      const opened = attemptResult.right
      const openedAt = this.clock.unsafeCurrentTimeMillis()
      Metrics.connects.unsafeUpdate(1, NO_TAGS)
      Metrics.connectLatency.unsafeUpdate(openedAt - startedAt, NO_TAGS)
      if (this.everOpened) Metrics.reconnects.unsafeUpdate(1, NO_TAGS)
      this.everOpened = true
      if (settings.onOpen !== undefined) {
        const onOpen = settings.onOpen
        // User code: a failure or a throw drops this connection, never the supervisor.
        const hook = yield* Effect.exit(Effect.suspend(() => onOpen(opened.connection)))
        if (Exit.isFailure(hook) && !Cause.isInterruptedOnly(hook.cause)) {
          return new OnOpenError({ cause: Cause.squash(hook.cause) }, true)
        }
      }
      this.inbound.offer(opened.listener.inbound)
      // It may have ended already, while onOpen ran: it never became ready.
      const alreadyEnded = opened.listener.endedWith
      if (alreadyEnded !== undefined) return alreadyEnded
      yield* this.openedSession(new Session(this, opened, openedAt), attempt, label)
      return undefined
    })
  }

  /** The session is open: from here it runs on callbacks, and this fiber ends. */
  private openedSession(session: Session, attempt: number, label: string): Effect.Effect<void> {
    const opened = session.opened
    this.session = session
    this.reconnectRequested = false
    opened.listener.watcher = session
    // The same text as the Connecting label, usually: keep one string of it, not two.
    const endpoint = opened.connection.url === label ? label : opened.connection.url
    const log = this.transition(ClientState.Open({ attempt, endpoint, since: session.openedAt }))
    this.flush(session)
    const heartbeat = this.settings.heartbeat
    if (heartbeat !== undefined) {
      session.heartbeat = new Heartbeat(opened.socket, opened.listener, opened.connection.url, heartbeat, this.clock, this.timers, session)
      session.heartbeat.start()
    }
    return log
  }

  /** Detaches the open session; it is over for sending. */
  private detach(session: Session): void {
    this.session = undefined
    session.opened.listener.watcher = undefined
    session.heartbeat?.stop()
  }

  /** Called back by the connection, the heartbeat or `reconnect`: the supervisor takes over. */
  endSession(session: Session, reason: SessionEnd): void {
    if (this.session !== session || this.stopped) return
    this.detach(session)
    this.releasing = session.opened
    this.fork(this.supervise({ session, reason }), true)
  }

  get reconnect(): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.closedForGood) return
      if (this.stopped) return this.start()
      const session = this.session
      if (session !== undefined) return this.endSession(session, "reconnect")
      // Connecting or backing off: skip the wait that follows, or the one under way.
      this.reconnectRequested = true
      this.backoffWait?.wake()
    })
  }

  get close(): (code?: number, reason?: string) => Effect.Effect<ReadonlyArray<Message>> {
    return this.boundClose ??= (code, reason) =>
      Effect.uninterruptible(Effect.gen(this, function*() {
        if (this.closedForGood) return []
        this.closedForGood = true
        this.stopped = true
        const session = this.session
        if (session !== undefined) {
          // Queued while open: write it before the close frame rather than fail it.
          this.flush(session)
          this.detach(session)
          // The release table of invariant 2, with the caller's code and reason.
          yield* session.opened.connection.close(code, reason)
        }
        const fiber = this.fiber
        if (fiber !== undefined) yield* Fiber.interrupt(fiber)
        // The supervisor may have been stopped while releasing an ended session's connection (or
        // before it began): release it here, terminate included, so no socket outlives `close`.
        const releasing = this.releasing
        this.releasing = undefined
        if (releasing !== undefined) yield* releaseOpened(releasing, Exit.void)
        const unsent = yield* this.stop(Option.none())
        this.inbound.end()
        return unsent
      }))
  }
}

const levelOf = (state: ClientStateType): LogLevel.LogLevel =>
  state._tag === "Backoff"
    ? LogLevel.Warning
    : state._tag === "Closed"
    ? Option.isSome(state.error) ? LogLevel.Error : LogLevel.Info
    : LogLevel.Debug

/**
 * Logs a transition, annotated with its endpoint. Below the fiber's minimum level nothing is
 * built: a retry storm of many clients would otherwise spend a good part of each attempt on
 * messages and annotations that are filtered out (the default level hides Connecting and Open).
 */
const logTransition = (state: ClientStateType): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    const level = levelOf(state)
    if (LogLevel.lessThan(level, fiber.getFiberRef(FiberRef.currentMinimumLogLevel))) return Effect.void
    const message = state._tag === "Backoff"
      ? `lifeline: Backoff ${Duration.format(state.delay)} after ${state.error.message}`
      : state._tag === "Closed"
      ? Option.match(state.error, { onNone: () => "lifeline: Closed", onSome: (error) => `lifeline: Closed by ${error.message}` })
      : `lifeline: ${state._tag}`
    const log = Effect.logWithLevel(level, message)
    return "endpoint" in state ? Effect.annotateLogs(log, "lifeline.url", state.endpoint) : log
  })

const completion = (entry: Entry) => (error?: Error | null): void => {
  entry.done(error === undefined || error === null ? undefined : writeFailed(entry.payload, error))
}

export const makeClient = (settings: ClientSettings): Effect.Effect<Client, never, Scope.Scope | Transport> =>
  Effect.gen(function*() {
    // The supervisor runs with this fiber's context and FiberRefs (logger, level, annotations,
    // span), as a forked child would.
    const runtime = yield* Effect.runtime<Transport>()
    const client = new LiveClient(settings, runtime, yield* Effect.clock)
    client.start()
    yield* Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizerExit(scope, closeOnExit(client)))
    return client
  })

// The close logs, so it runs with the FiberRefs the client was made with, on a fiber of the
// client's runtime: Effect.addFinalizer would keep a second copy of them alive per client.
const closeOnExit = (client: LiveClient) => (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  Effect.suspend(() => Fiber.join(client.fork(Effect.asVoid(client.close(closeCodeOf(exit))), false)))
