/**
 * The Client's machinery: one supervisor fiber that connects, runs a session (flush the outbox,
 * heartbeat, wait for the one signal that ends it), backs off by the Schedule and tries again;
 * the outbox and the inbound stream that outlive each connection.
 */
import type { Redacted, Schedule, Scope } from "effect"
import {
  Cause,
  Chunk,
  Clock,
  Either,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberId,
  MetricLabel,
  Option,
  PubSub,
  ScheduleDecision,
  ScheduleIntervals,
  Stream,
  SubscriptionRef
} from "effect"
import type { Client } from "../Client.js"
import type { Connection } from "../Connection.js"
import { ConnectError, Disconnected, OnOpenError, SendError } from "../Errors.js"
import type { ClientError } from "../Reconnect.js"
import type { Message, Transport } from "../Transport.js"
import type { ClientEvent as ClientEventType, ClientState as ClientStateType } from "./clientState.js"
import { ClientEvent, ClientState } from "./clientState.js"
import { approximateBytes, closeCodeOf, openConnection, writeFailed } from "./connection.js"
import type { OpenedConnection } from "./connection.js"
import type { HeartbeatOptions } from "./heartbeat.js"
import { runHeartbeat } from "./heartbeat.js"
import { InboundBuffer } from "./inboundBuffer.js"
import * as Metrics from "./metrics.js"
import type { Entry, Overflow } from "./outbox.js"
import { Outbox } from "./outbox.js"
import type { ConnectOptions } from "./parseEndpoint.js"
import { OPEN } from "./protocol.js"
import { redactUnparsedUrl, redactUrl } from "./redactUrl.js"

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

type SessionEnd =
  | { readonly _tag: "Ended"; readonly error: ClientError; readonly uptime: number }
  | { readonly _tag: "ReconnectRequested" }

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

const closedByUser = new Disconnected({ code: 1000, reason: "client closed", wasClean: true, initiator: "client" }, true)

/**
 * The inbound buffers of successive connections, read in order. The read position lives here, not
 * in a stream, so `messages` can be consumed again after a consumer stops.
 */
class SuccessiveInbound {
  private buffers: Array<InboundBuffer<Message>> = []
  private ended = false
  private wakeup: (() => void) | undefined = undefined

  offer(buffer: InboundBuffer<Message>): void {
    this.buffers.push(buffer)
    this.wake()
  }

  end(): void {
    this.ended = true
    this.wake()
  }

  readonly pull: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>> = Effect.suspend(() => {
    const buffer = this.buffers[0]
    if (buffer === undefined) {
      if (this.ended) return Effect.fail(Option.none())
      return Effect.zipRight(
        Effect.async<void>((resume) => {
          this.wakeup = () => resume(Effect.void)
          return Effect.sync(() => {
            this.wakeup = undefined
          })
        }),
        this.pull
      )
    }
    return buffer.pull.pipe(Effect.catchAll(() => {
      // That connection ended and is drained: move on to the next one.
      if (this.buffers[0] === buffer) this.buffers.shift()
      return this.pull
    }))
  })

  private wake(): void {
    const wakeup = this.wakeup
    this.wakeup = undefined
    if (wakeup !== undefined) wakeup()
  }
}

export const makeClient = (
  settings: ClientSettings
): Effect.Effect<Client, never, Scope.Scope | Transport> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const context = yield* Effect.context<Transport>()
    const state = yield* SubscriptionRef.make<ClientStateType>(ClientState.Idle())
    // Replay: a subscriber that attaches after `make` returned still sees the first transitions.
    const events = yield* PubSub.sliding<ClientEventType>({ capacity: settings.eventsCapacity, replay: EVENTS_REPLAY })
    const outbox = new Outbox(settings.outboxCapacity, settings.overflow)
    const connections = new SuccessiveInbound()

    let current: OpenedConnection | undefined
    let ready = false
    let stopped = false
    let closedForGood = false
    let everOpened = false
    let reconnectRequest = Deferred.unsafeMake<void>(FiberId.none)
    let sessionEnd: Deferred.Deferred<ClientError | "reconnect"> | undefined
    let supervisor: Fiber.RuntimeFiber<void> | undefined

    const setState = (next: ClientStateType): Effect.Effect<void> =>
      Effect.gen(function*() {
        const from = yield* SubscriptionRef.get(state)
        yield* SubscriptionRef.set(state, next)
        yield* PubSub.publish(events, ClientEvent.Transition({ from, to: next }))
        const log = next._tag === "Backoff"
          ? Effect.logWarning(`lifeline: ${next._tag} ${Duration.format(next.delay)} after ${next.error.message}`)
          : next._tag === "Closed"
          ? Option.match(next.error, {
            onNone: () => Effect.logInfo("lifeline: Closed"),
            onSome: (error) => Effect.logError(`lifeline: Closed by ${error.message}`)
          })
          : Effect.logDebug(`lifeline: ${next._tag}`)
        const endpoint = "endpoint" in next ? next.endpoint : undefined
        yield* endpoint === undefined ? log : Effect.annotateLogs(log, "lifeline.url", endpoint)
      })

    const reportFailure = (error: SendError): void => {
      events.unsafeOffer(ClientEvent.MessageFailed({ error }))
    }

    const completion = (entry: Entry) => (error?: Error | null): void => {
      entry.done(error === undefined || error === null ? undefined : writeFailed(entry.payload, error))
    }

    let flushing = false
    /**
     * Writes everything queued, synchronously, oldest first, until the outbox is empty (taking
     * entries admits suspended ones, which the next round writes). Only while ready and OPEN.
     */
    const flush = (opened: OpenedConnection): void => {
      const socket = opened.socket
      if (flushing || !ready || socket.readyState() !== OPEN) return
      flushing = true
      let count = 0
      let bytes = 0
      while (outbox.size > 0) {
        for (const entry of outbox.takeAll()) {
          socket.send(entry.payload, completion(entry))
          bytes += approximateBytes(entry.payload)
          count++
        }
      }
      flushing = false
      Metrics.messagesOut.unsafeUpdate(count, NO_TAGS)
      Metrics.bytesOut.unsafeUpdate(bytes, NO_TAGS)
      Metrics.outboxDepth.unsafeUpdate(0, NO_TAGS)
    }

    // An entry that lands in the outbox while connected (admitted from `suspend`) goes out at once.
    outbox.onEntries = () => {
      if (current !== undefined) flush(current)
    }

    /** The fast path: open, ready and nothing queued ahead, so the frame goes straight out. */
    const canWriteDirectly = (): boolean =>
      current !== undefined && ready && outbox.size === 0 && current.socket.readyState() === OPEN

    const writeNow = (opened: OpenedConnection, data: Message, done: (error?: Error | null) => void): void => {
      opened.socket.send(data, done)
      Metrics.messagesOut.unsafeUpdate(1, NO_TAGS)
      Metrics.bytesOut.unsafeUpdate(approximateBytes(data), NO_TAGS)
    }

    /** Queues a frame and completes when it is written or fails. */
    const sendQueued = (data: Message): Effect.Effect<void, SendError> =>
      Effect.async<void, SendError>((resume) => {
        if (stopped) return resume(Effect.fail(new SendError({ reason: "Closed", payload: data }, true)))
        const entry: Entry = {
          payload: data,
          done: (error) => resume(error === undefined ? Effect.void : Effect.fail(error))
        }
        outbox.offer(entry, () => Metrics.outboxDepth.unsafeUpdate(outbox.size, NO_TAGS))
        return Effect.sync(() => {
          outbox.remove(entry)
        })
      })

    // The `lifeline.send` span covers sends that wait in the outbox, where the time is worth
    // seeing; a span on the direct path would cost more than the write it traces.
    const sendQueuedTraced = (data: Message): Effect.Effect<void, SendError> =>
      sendQueued(data).pipe(Effect.withSpan("lifeline.send", {
        captureStackTrace: false,
        attributes: { "lifeline.outbox.depth": outbox.size }
      }))

    const send = (data: Message): Effect.Effect<void, SendError> =>
      Effect.suspend(() => {
        if (stopped) return Effect.fail(new SendError({ reason: "Closed", payload: data }, true))
        if (!canWriteDirectly()) return sendQueuedTraced(data)
        return Effect.async<void, SendError>((resume) => {
          // The fiber may have yielded since the check: check again where the write happens.
          const opened = current
          if (opened === undefined || !canWriteDirectly()) return resume(sendQueued(data))
          writeNow(opened, data, (error) => {
            resume(error === undefined || error === null ? Effect.void : Effect.fail(writeFailed(data, error)))
          })
        })
      })

    /** The write callback of a frame whose sender is gone: a failure becomes a MessageFailed event. */
    const reportIfFailed = (data: Message) => (error?: Error | null): void => {
      if (error !== undefined && error !== null) reportFailure(writeFailed(data, error))
    }

    // Synchronous unless the outbox is full under `suspend`: the pipelining path allocates no
    // Effect.async, no fiber and, when connected with nothing queued, only the write callback.
    const enqueue = (data: Message): Effect.Effect<void, SendError> =>
      Effect.suspend(() => {
        if (stopped) return Effect.fail(new SendError({ reason: "Closed", payload: data }, true))
        const opened = current
        if (opened !== undefined && canWriteDirectly()) {
          writeNow(opened, data, reportIfFailed(data))
          return Effect.void
        }
        let buffered = false
        let rejected: SendError | undefined
        let wake: ((effect: Effect.Effect<void, SendError>) => void) | undefined
        const entry: Entry = {
          payload: data,
          // Before it is buffered a failure fails `enqueue`; after, it is reported as an event.
          done: (error) => {
            if (error === undefined) return
            if (buffered) return reportFailure(error)
            rejected = error
            if (wake !== undefined) wake(Effect.fail(error))
          }
        }
        outbox.offer(entry, () => {
          buffered = true
          if (wake !== undefined) wake(Effect.void)
        })
        if (buffered) {
          Metrics.outboxDepth.unsafeUpdate(outbox.size, NO_TAGS)
          return Effect.void
        }
        if (rejected !== undefined) return Effect.fail(rejected)
        // Full under `suspend`: wait for room.
        return Effect.async<void, SendError>((resume) => {
          wake = resume
          return Effect.sync(() => {
            if (!buffered) outbox.remove(entry)
          })
        })
      })

    const session = (attempt: number, endpoint: string | URL | Effect.Effect<string>): Effect.Effect<SessionEnd, never, Transport> =>
      Effect.scoped(Effect.gen(function*() {
        const label = labelOf(endpoint)
        yield* setState(ClientState.Connecting({ attempt, endpoint: label }))
        const startedAt = yield* Clock.currentTimeMillis
        const headers = settings.headers === undefined ? settings.connection.headers : yield* settings.headers
        const attemptResult = yield* Effect.either(openConnection(endpoint, { ...settings.connection, ...(headers === undefined ? {} : { headers }) })).pipe(
          // A URL or headers Effect that dies is the user's bug: report it as an invalid URL, fatal.
          Effect.catchAllDefect((defect) =>
            Effect.succeed(Either.left(new ConnectError({ reason: "InvalidUrl", url: label, detail: "the URL or headers Effect died", cause: defect }, true)))
          )
        )
        if (attemptResult._tag === "Left") {
          const error = attemptResult.left
          Metrics.connectFailures.unsafeUpdate(1, [MetricLabel.make("reason", error._tag === "ConnectError" ? error.reason : error._tag)])
          return { _tag: "Ended", error, uptime: 0 } as const
        }
        const opened = attemptResult.right
        const openedAt = yield* Clock.currentTimeMillis
        Metrics.connects.unsafeUpdate(1, NO_TAGS)
        Metrics.connectLatency.unsafeUpdate(openedAt - startedAt, NO_TAGS)
        if (everOpened) Metrics.reconnects.unsafeUpdate(1, NO_TAGS)
        everOpened = true
        if (settings.onOpen !== undefined) {
          const onOpen = settings.onOpen
          // User code: a failure or a throw drops this connection, never the supervisor.
          const hook = yield* Effect.exit(Effect.suspend(() => onOpen(opened.connection)))
          if (Exit.isFailure(hook) && !Cause.isInterruptedOnly(hook.cause)) {
            return { _tag: "Ended", error: new OnOpenError({ cause: Cause.squash(hook.cause) }, true), uptime: 0 } as const
          }
        }
        current = opened
        connections.offer(opened.listener.inbound)
        // One signal ends the session: the connection closing, the heartbeat failing, or
        // `reconnect`. Callbacks complete it, so an open client waits without extra fibers.
        const end = Deferred.unsafeMake<ClientError | "reconnect">(FiberId.none)
        sessionEnd = end
        opened.listener.onEnded = (disconnected) => Deferred.unsafeDone(end, Exit.succeed(disconnected))
        // It may have ended already, while onOpen ran.
        const alreadyEnded = opened.listener.endedWith
        if (alreadyEnded !== undefined) Deferred.unsafeDone(end, Exit.succeed(alreadyEnded))
        yield* setState(ClientState.Open({ attempt, endpoint: opened.connection.url, since: openedAt }))
        ready = true
        flush(opened)
        if (settings.heartbeat !== undefined) {
          yield* Effect.forkScoped(
            Effect.flatMap(
              Effect.flip(runHeartbeat(opened.socket, opened.listener, opened.connection.url, settings.heartbeat)),
              (timeout) => Deferred.succeed(end, timeout)
            )
          )
        }
        const ended = yield* Deferred.await(end).pipe(Effect.ensuring(Effect.sync(() => {
          ready = false
          current = undefined
          sessionEnd = undefined
          opened.listener.onEnded = undefined
        })))
        if (ended === "reconnect") return { _tag: "ReconnectRequested" } as const
        // A dead peer will not answer a close frame: skip the close handshake.
        if (ended._tag === "TimeoutError") opened.socket.terminate()
        const uptime = (yield* Clock.currentTimeMillis) - openedAt
        return { _tag: "Ended", error: ended, uptime } as const
      }))

    const stop = (error: Option.Option<ClientError>): Effect.Effect<ReadonlyArray<Message>> =>
      Effect.gen(function*() {
        stopped = true
        const unsent = outbox.failAll("Closed")
        Metrics.outboxDepth.unsafeUpdate(0, NO_TAGS)
        yield* setState(ClientState.Closed({ error }))
        return unsent
      })

    const retryable = (error: ClientError): boolean => {
      try {
        return settings.shouldRetry(error)
      } catch {
        // A throwing predicate cannot say yes: stop rather than loop on a broken policy.
        return false
      }
    }

    const supervise: Effect.Effect<void, never, Transport> = Effect.gen(function*() {
      if (settings.invalid !== undefined) {
        yield* stop(Option.some(new ConnectError({ reason: "InvalidOptions", url: labelOf(settings.endpoints[0] ?? ""), detail: settings.invalid }, true)))
        return
      }
      let scheduleState: unknown = settings.schedule.initial
      let attempt = 0
      let total = 0
      const resetBackoff = (): void => {
        scheduleState = settings.schedule.initial
        attempt = 0
      }
      while (true) {
        attempt++
        // Safe: `make` leaves a client with no endpoint Closed (InvalidOptions) before this loop.
        const endpoint = settings.endpoints[total % settings.endpoints.length]!
        total++
        const end = yield* session(attempt, endpoint)
        // `close` ended the session on purpose: no backoff, `close` sets the final state.
        if (stopped) return
        if (end._tag === "ReconnectRequested") {
          resetBackoff()
          continue
        }
        const error = end.error
        if (!retryable(error)) {
          yield* stop(Option.some(error))
          return
        }
        if (end.uptime >= Duration.toMillis(settings.minUptime)) {
          // Stable long enough: this failure counts as the first of a new series.
          resetBackoff()
          attempt = 1
        }
        const now = yield* Clock.currentTimeMillis
        const [nextState, , decision] = yield* settings.schedule.step(now, error, scheduleState)
        scheduleState = nextState
        if (ScheduleDecision.isDone(decision)) {
          yield* stop(Option.some(error))
          return
        }
        let delay = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
        if (error._tag === "ConnectError" && error.retryAfter !== undefined) {
          delay = Math.max(delay, Duration.toMillis(error.retryAfter))
        }
        yield* setState(ClientState.Backoff({ attempt, delay: Duration.millis(delay), error }))
        const woken = yield* Effect.raceFirst(
          Effect.as(Effect.sleep(Duration.millis(delay)), false),
          Effect.as(Deferred.await(reconnectRequest), true)
        )
        if (woken) {
          reconnectRequest = Deferred.unsafeMake<void>(FiberId.none)
          resetBackoff()
        }
      }
    })

    const start = Effect.gen(function*() {
      stopped = false
      supervisor = yield* Effect.forkIn(Effect.provide(supervise, context), scope)
    })

    const close = (code?: number, reason?: string): Effect.Effect<ReadonlyArray<Message>> =>
      Effect.uninterruptible(Effect.gen(function*() {
        if (closedForGood) return []
        closedForGood = true
        stopped = true
        const opened = current
        // Queued while open: write it before the close frame rather than fail it.
        if (opened !== undefined) {
          flush(opened)
          yield* opened.connection.close(code, reason)
        }
        if (supervisor !== undefined) yield* Fiber.interrupt(supervisor)
        const unsent = yield* stop(Option.none())
        connections.end()
        return unsent
      }))

    const awaitOpen: Effect.Effect<void, ClientError> = state.changes.pipe(
      Stream.filter((current) => current._tag === "Open" || current._tag === "Closed"),
      Stream.runHead,
      Effect.flatMap((found) => {
        if (Option.isNone(found) || found.value._tag === "Open") return Effect.void
        return Effect.fail(found.value._tag === "Closed" ? Option.getOrElse(found.value.error, () => closedByUser) : closedByUser)
      })
    )

    const inbound = Stream.repeatEffectChunkOption(connections.pull).pipe(
      Stream.mapChunks((chunk) => {
        Metrics.messagesIn.unsafeUpdate(chunk.length, NO_TAGS)
        let bytes = 0
        for (const message of chunk) bytes += approximateBytes(message)
        Metrics.bytesIn.unsafeUpdate(bytes, NO_TAGS)
        const isPong = settings.isPong
        return isPong === undefined ? chunk : Chunk.filter(chunk, (message) => !isPong(message))
      })
    )

    yield* start
    // Effect.addFinalizer (unlike Connection): the close logs and publishes, so it should run with
    // the FiberRefs (logger, level, annotations) the client was made with; the supervisor fiber
    // keeps those alive anyway.
    yield* Effect.addFinalizer((exit) => Effect.asVoid(close(closeCodeOf(exit))))

    return {
      state,
      events: Stream.fromPubSub(events),
      messages: inbound,
      send,
      enqueue,
      awaitOpen,
      reconnect: Effect.suspend(() => {
        if (closedForGood) return Effect.void
        if (stopped) return start
        return Effect.sync(() => {
          if (sessionEnd !== undefined) Deferred.unsafeDone(sessionEnd, Exit.succeed("reconnect" as const))
          else Deferred.unsafeDone(reconnectRequest, Exit.void)
        })
      }),
      close,
      outboxSize: Effect.sync(() => outbox.size)
    } satisfies Client
  })


