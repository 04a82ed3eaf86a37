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
import { ConnectError, Disconnected, OnOpenError, SendError, TimeoutError } from "../Errors.js"
import { hintFor } from "./classifyHandshakeError.js"
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
import type { ClientSettings } from "./options.js"
import { Outbox } from "./outbox.js"
import type { ConnectOptions } from "./parseEndpoint.js"
import { approximateBytes, OPEN } from "./protocol.js"
import { redactInput, redactUrl } from "./redactUrl.js"
import type { Timers } from "./timers.js"
import { TimedWait, timersOn } from "./timers.js"

/** The Client's options after defaults; decoded once by `Client.make` (options.ts). */
export type { ClientSettings } from "./options.js"

const labelOf = (endpoint: string | URL | Effect.Effect<string>): string => {
  if (endpoint instanceof URL) return redactUrl(endpoint)
  if (typeof endpoint !== "string") return "(url from an Effect)"
  return redactInput(endpoint)
}

const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

/** How many recent events a new `events` subscriber receives first. */
const EVENTS_REPLAY = 16

const IDLE = ClientState.Idle()

const closedByUser = new Disconnected({ code: 1000, reason: "client closed", wasClean: true, initiator: "client" }, true)

const closedError = (payload: Message): SendError => new SendError({ reason: "Closed", payload }, true)

const connectionEnded = new Error("the connection ended before the frame was written")

/** A thrown value's message, for an error's detail. */
const causeMessage = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const payloadOf = (item: Message | Entry): Message => typeof item === "object" && "done" in item ? item.payload : item

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

  // Frames handed to the transport whose write has not completed, oldest first: a bare payload
  // for `enqueue` (a failure is reported as an event), an Entry for `send` and the outbox (the
  // entry is told). They all share one write callback: a closure per frame makes Node keep large
  // frames alive past a scavenge (64 KiB frames: a full GC every few hundred), and write
  // callbacks come back in order. Each counts against the outbox until it settles.
  private inFlight: Array<Message | Entry | undefined> | undefined = undefined
  private inFlightHead = 0
  private writtenCallback: ((error?: Error | null) => void) | undefined = undefined
  /** Set by `close`: frames that fail from here are returned by it rather than reported. */
  unsent: Array<Message> | undefined = undefined

  /**
   * Writes one frame; `item` is what its completion reports to. `counted`: the outbox already
   * counts it in flight (taken from the queue). Returns what the transport threw, if it did: then
   * nothing was written, nothing is tracked and the frame's room is free again.
   */
  write(item: Message | Entry, data: Message, bytes: number, counted: boolean): Error | undefined {
    const inFlight = this.inFlight ??= []
    // Tracked before the send: a transport may call back at once (browsers).
    inFlight.push(item)
    const outbox = this.client.outbox
    if (!counted) outbox.handedOff(bytes)
    const thrown = trySend(this.opened.socket, data, this.writtenCallback ??= (error) => this.written(error))
    if (thrown === undefined) return undefined
    inFlight.pop()
    outbox.settled(bytes)
    return thrown
  }

  /** The oldest tracked frame's write completed. */
  private written(error: Error | null | undefined): void {
    const inFlight = this.inFlight
    if (inFlight === undefined || this.inFlightHead >= inFlight.length) return
    const item = inFlight[this.inFlightHead]!
    inFlight[this.inFlightHead++] = undefined
    if (this.inFlightHead === inFlight.length) {
      inFlight.length = 0
      this.inFlightHead = 0
    } else if (this.inFlightHead > 1024 && this.inFlightHead * 2 > inFlight.length) {
      // Never quite empty under a steady stream: drop the completed head now and then.
      inFlight.splice(0, this.inFlightHead)
      this.inFlightHead = 0
    }
    const data = payloadOf(item)
    this.client.outbox.settled(approximateBytes(data))
    if (error === undefined || error === null) {
      if (typeof item === "object" && "done" in item) item.done(undefined)
      return
    }
    this.fail(item, this.unsent === undefined ? writeFailed(data, error) : closedError(data))
  }

  /**
   * The connection is released: frames whose write never completed were not written. They fail
   * (`Closed`, and into `unsent`, while the client closes; else `WriteFailed`).
   */
  abandonInFlight(): void {
    const inFlight = this.inFlight
    this.inFlight = undefined
    if (inFlight === undefined) return
    for (let index = this.inFlightHead; index < inFlight.length; index++) {
      const item = inFlight[index]!
      const data = payloadOf(item)
      this.client.outbox.settled(approximateBytes(data))
      this.fail(item, this.unsent === undefined ? writeFailed(data, connectionEnded) : closedError(data))
    }
    this.inFlightHead = 0
  }

  private fail(item: Message | Entry, error: SendError): void {
    if (this.unsent !== undefined) this.unsent.push(error.payload as Message)
    if (typeof item === "object" && "done" in item) item.done(error)
    else this.client.reportFailure(error)
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
  /** What a log or `JSON.stringify` shows: the state and the settings, redacted (no URL secret, no header value). */
  toJSON(): unknown {
    const { connection, headers, endpoints } = this.settings
    const headerNames = (record: Readonly<Record<string, unknown>> | undefined) =>
      record === undefined ? undefined : Object.fromEntries(Object.keys(record).map((name) => [name, "<redacted>"]))
    return {
      _id: "lifeline/Client",
      state: this.currentState,
      endpoints: endpoints.map(labelOf),
      headers: headers === undefined ? headerNames(connection.headers) : "(headers from an Effect)",
      protocols: connection.protocols,
      outboxSize: this.outbox.pending
    }
  }

  [Symbol.for("nodejs.util.inspect.custom")](): unknown {
    return this.toJSON()
  }

  readonly outbox: Outbox
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
  /** When the link went down (the first Backoff since it was last Open): the outage under way. */
  private downSince: number | undefined = undefined
  /** Accepted messages that were not written: exact, whatever the events buffer kept. */
  private failedTotal = 0
  private stopped = false
  private closedForGood = false
  private everOpened = false
  private scheduleState: unknown
  private attempt = 0
  private total = 0
  private reconnectRequested = false
  private backoffWait: BackoffWait | undefined = undefined
  /** An ended session's connection until the supervisor has released it; `close` finishes the job. */
  private releasing: Session | undefined = undefined
  /** Each endpoint's redacted label, made on its first attempt. */
  private readonly labels: Array<string>
  /** The label of the endpoint of the latest attempt. */
  private currentLabel = ""

  constructor(
    private readonly settings: ClientSettings,
    private readonly runtime: Runtime.Runtime<Transport>,
    private readonly clock: Clock.Clock
  ) {
    this.outbox = new Outbox(settings.outboxCapacity, settings.outboxBytes, settings.overflow)
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
    return this.logTransition(next)
  }

  /**
   * What a transition logs. Quiet by default: one WARN when the link goes down (the first Backoff
   * after Open, or the first failed attempt), one INFO when it is back, one WARN when an error
   * closes the client; every other transition at DEBUG.
   */
  private logTransition(state: ClientStateType): Effect.Effect<void> {
    let level = LogLevel.Debug
    switch (state._tag) {
      case "Backoff":
        if (this.downSince === undefined) {
          this.downSince = this.clock.unsafeCurrentTimeMillis()
          level = LogLevel.Warning
        }
        break
      case "Open":
        if (this.downSince !== undefined) level = LogLevel.Info
        break
      case "Closed":
        if (Option.isSome(state.error)) level = LogLevel.Warning
        break
    }
    const downSince = this.downSince
    if (state._tag === "Open" || state._tag === "Closed") this.downSince = undefined
    return logLine(level, state, downSince, this.everOpened)
  }

  private setState(next: ClientStateType): Effect.Effect<void> {
    return Effect.suspend(() => this.transition(next))
  }

  /** An accepted message failed after its `enqueue` returned: counted, and published. */
  reportFailure(error: SendError): void {
    this.countFailure()
    this.publish(ClientEvent.MessageFailed({ error }))
  }

  /** An accepted message failed (its sender is told, or `reportFailure` publishes it). */
  countFailure(): void {
    this.failedTotal++
    Metrics.messagesFailed.unsafeUpdate(1, NO_TAGS)
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
      for (const entry of this.outbox.handOffAll()) {
        const size = approximateBytes(entry.payload)
        // A send that throws (a detached buffer) fails its own entry, never the rest.
        const thrown = session.write(entry, entry.payload, size, true)
        if (thrown !== undefined) {
          entry.done(writeFailed(entry.payload, thrown))
          continue
        }
        bytes += size
        count++
      }
    }
    this.flushing = false
    Metrics.messagesOut.unsafeUpdate(count, NO_TAGS)
    Metrics.bytesOut.unsafeUpdate(bytes, NO_TAGS)
    Metrics.outboxDepth.unsafeUpdate(0, NO_TAGS)
  }

  /**
   * The fast path: a session open, nothing queued ahead, and room for `bytes` among the messages
   * not yet written, so the frame goes straight out.
   */
  private writable(bytes: number): Session | undefined {
    const session = this.session
    if (session === undefined || this.outbox.size > 0 || !this.outbox.hasRoom(bytes) || session.opened.socket.readyState() !== OPEN) {
      return undefined
    }
    return session
  }

  /** Writes at once; returns what the transport threw, if it did (then nothing was written). */
  private writeNow(session: Session, item: Message | Entry, data: Message, bytes: number): Error | undefined {
    const thrown = session.write(item, data, bytes, false)
    if (thrown !== undefined) return thrown
    Metrics.messagesOut.unsafeUpdate(1, NO_TAGS)
    Metrics.bytesOut.unsafeUpdate(bytes, NO_TAGS)
    return undefined
  }

  /** Queues a frame and completes when it is written or fails. */
  private sendQueued(data: Message): Effect.Effect<void, SendError> {
    return Effect.async<void, SendError>((resume) => {
      if (this.stopped) return resume(Effect.fail(closedError(data)))
      let admitted = false
      const entry: Entry = {
        payload: data,
        done: (error) => {
          if (error !== undefined && admitted) this.countFailure()
          resume(error === undefined ? Effect.void : Effect.fail(error))
        }
      }
      this.outbox.offer(entry, () => {
        admitted = true
        Metrics.outboxDepth.unsafeUpdate(this.outbox.size, NO_TAGS)
      })
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
        const bytes = approximateBytes(data)
        if (this.writable(bytes) === undefined) return this.sendQueuedTraced(data)
        return Effect.async<void, SendError>((resume) => {
          // The fiber may have yielded since the check: check again where the write happens.
          const session = this.writable(bytes)
          if (session === undefined) return resume(this.sendQueued(data))
          const entry: Entry = {
            payload: data,
            done: (error) => {
              if (error !== undefined) this.countFailure()
              resume(error === undefined ? Effect.void : Effect.fail(error))
            }
          }
          const thrown = this.writeNow(session, entry, data, bytes)
          if (thrown !== undefined) resume(Effect.fail(writeFailed(data, thrown)))
        })
      })
  }

  // Synchronous unless the outbox is full under `suspend`: the pipelining path allocates no
  // Effect.async, no fiber and, when connected with nothing queued, nothing per frame but its
  // place in the session's in-flight list.
  get enqueue(): (data: Message) => Effect.Effect<void, SendError> {
    return this.boundEnqueue ??= (data) =>
      Effect.suspend(() => {
        if (this.stopped) return Effect.fail(closedError(data))
        const bytes = approximateBytes(data)
        const session = this.writable(bytes)
        if (session !== undefined) {
          const thrown = this.writeNow(session, data, data, bytes)
          // Nothing was written, so no completion will come for it.
          return thrown === undefined ? Effect.void : Effect.fail(writeFailed(data, thrown))
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

  get failed(): Effect.Effect<number> {
    return Effect.sync(() => this.failedTotal)
  }

  get outboxSize(): Effect.Effect<number> {
    return Effect.sync(() => this.outbox.pending)
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
      return isPong === undefined ? chunk : this.withoutPongs(chunk, isPong)
    }))
  }

  /**
   * The chunk without the frames `isPong` recognises. User code: an `isPong` that throws drops
   * the connection with ConnectError InvalidOptions (fatal by default) and keeps the frame.
   */
  private withoutPongs(chunk: Chunk.Chunk<Message>, isPong: (message: Message) => boolean): Chunk.Chunk<Message> {
    try {
      return Chunk.filter(chunk, (message) => !isPong(message))
    } catch (defect) {
      const session = this.session
      if (session !== undefined) this.endSession(session, this.brokenOption("heartbeat.isPong threw", defect))
      return chunk
    }
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
    // A supervisor that dies (a defect in user code not caught nearer) must not leave the client
    // Connecting for ever: it closes, typed.
    const run = supervisor
      ? Effect.catchAllCause(effect, (cause) =>
        Cause.isInterruptedOnly(cause) || this.stopped
          ? Effect.void
          : Effect.asVoid(this.stop(Option.some(this.brokenOption("the client failed", Cause.squash(cause))))))
      : effect
    const fiber = Runtime.runFork(this.runtime)(run, { immediate })
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

  /** Whether to retry after `error`; a `shouldRetry` that throws closes the client with InvalidOptions. */
  private retryable(error: ClientError): boolean | ConnectError {
    try {
      return this.settings.shouldRetry(error)
    } catch (defect) {
      return this.brokenOption("shouldRetry threw", defect)
    }
  }

  /** A user function given as an option failed: the client closes with this (fatal by default). */
  private brokenOption(detail: string, cause: unknown): ConnectError {
    return new ConnectError({
      reason: "InvalidOptions",
      url: this.currentLabel,
      detail: `${detail}: ${causeMessage(cause)}; fix the option named above`,
      cause
    }, true)
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
      session.abandonInFlight()
      if (this.releasing === session) this.releasing = undefined
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
      const retry = this.retryable(error)
      if (retry !== true) {
        yield* this.stop(Option.some(retry === false ? error : retry))
        return false
      }
      if (uptime >= Duration.toMillis(this.settings.minUptime)) {
        // Stable long enough: this failure counts as the first of a new series.
        this.resetBackoff()
        this.attempt = 1
      }
      const now = this.clock.unsafeCurrentTimeMillis()
      const schedule = this.settings.schedule
      // User code: a Schedule that throws or dies in its step closes the client, typed.
      const stepped = yield* Effect.exit(Effect.suspend(() => schedule.step(now, error, this.scheduleState)))
      if (Exit.isFailure(stepped)) {
        yield* this.stop(Option.some(this.brokenOption("the retry Schedule failed in its step", Cause.squash(stepped.cause))))
        return false
      }
      const [nextState, , decision] = stepped.value
      this.scheduleState = nextState
      if (ScheduleDecision.isDone(decision)) {
        yield* this.stop(Option.some(error))
        return false
      }
      // Never sooner than the floor: a schedule of zero delays would be a hot loop.
      let delay = Math.max(this.settings.minRetryDelay, ScheduleIntervals.start(decision.intervals) - now)
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
      this.currentLabel = label
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
      // User code: a URL or headers Effect that fails or dies is the user's bug, typed and fatal.
      let target: string | URL
      if (typeof endpoint === "string" || endpoint instanceof URL) target = endpoint
      else {
        const url: Exit.Exit<string> = yield* Effect.exit(endpoint)
        if (Exit.isFailure(url)) {
          const cause = Cause.squash(url.cause)
          return new ConnectError({ reason: "InvalidUrl", url: label, detail: `the URL Effect failed: ${causeMessage(cause)}; ${hintFor("InvalidUrl")}`, cause }, true)
        }
        target = url.value
      }
      // Fixed headers are in the decoded settings.connection already, used as they are.
      let headers: ConnectOptions["headers"] = undefined
      if (settings.headers !== undefined) {
        const read: Exit.Exit<NonNullable<ConnectOptions["headers"]>> = yield* Effect.exit(settings.headers)
        if (Exit.isFailure(read)) {
          return this.brokenOption("the headers Effect failed", Cause.squash(read.cause))
        }
        headers = read.value
      }
      const attemptResult: Either.Either<OpenedConnection, ConnectError | TimeoutError> = yield* Effect.either(acquireConnection<never, never, never>(
        target,
        headers === undefined ? settings.connection : { ...settings.connection, headers },
        (opened) => Effect.sync(() => {
          acquired.opened = opened
        }),
        this.inbound
      ))
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
        const timeout = settings.onOpenTimeout
        const hook = yield* Effect.exit(Effect.suspend(() => onOpen(opened.connection)).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new TimeoutError({ operation: "onOpen", timeout, url: opened.connection.url }, true)
          })
        ))
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
    this.releasing = session
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
        // Frames with the transport that are not written by the end of the release (a peer that
        // stopped reading) are returned too, oldest first, ahead of what was still queued.
        const unwritten: Array<Message> = []
        const session = this.session
        if (session !== undefined) {
          session.unsent = unwritten
          // Queued while open: write it before the close frame rather than fail it.
          this.flush(session)
          this.detach(session)
          // The release table of invariant 2, with the caller's code and reason.
          yield* session.opened.connection.close(code, reason)
          session.abandonInFlight()
        }
        const fiber = this.fiber
        if (fiber !== undefined) yield* Fiber.interrupt(fiber)
        // The supervisor may have been stopped while releasing an ended session's connection (or
        // before it began): release it here, terminate included, so no socket outlives `close`.
        const releasing = this.releasing
        this.releasing = undefined
        if (releasing !== undefined) {
          releasing.unsent = unwritten
          yield* releaseOpened(releasing.opened, Exit.void)
          releasing.abandonInFlight()
        }
        const unsent = yield* this.stop(Option.none())
        this.inbound.end()
        return unwritten.length === 0 ? unsent : [...unwritten, ...unsent]
      }))
  }
}

/**
 * Logs a transition, annotated with its endpoint. Below the fiber's minimum level nothing is
 * built: a retry storm of many clients would otherwise spend a good part of each attempt on
 * messages and annotations that are filtered out.
 */
const logLine = (
  level: LogLevel.LogLevel,
  state: ClientStateType,
  downSince: number | undefined,
  everOpened: boolean
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    if (LogLevel.lessThan(level, fiber.getFiberRef(FiberRef.currentMinimumLogLevel))) return Effect.void
    let message: string
    switch (state._tag) {
      case "Backoff":
        message = level === LogLevel.Warning
          ? `lifeline: ${everOpened ? "link down" : "cannot connect"}: ${state.error.message}; retrying in ${Duration.format(state.delay)}`
          : `lifeline: Backoff ${Duration.format(state.delay)} after ${state.error.message}`
        break
      case "Open":
        message = level === LogLevel.Info && downSince !== undefined
          ? `lifeline: link back after ${state.attempt} attempt${state.attempt === 1 ? "" : "s"}, down for ${
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
    return "endpoint" in state ? Effect.annotateLogs(log, "lifeline.url", state.endpoint) : log
  })

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
