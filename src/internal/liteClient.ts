/**
 * The small Client (`effect-lifeline/LiteClient`): the `Client` interface over one URL, on a fiber
 * and `Deferred`s where the full Client has hand-made primitives built for thousands of Clients
 * per process, and without what a page with a link or two does not need: failover across
 * endpoints, circuit breakers, metrics, attempts on callbacks. What it shares with the full Client
 * is the same code: the options checks, the connection, its inbound buffers read in order across
 * reconnects under one bound (`SuccessiveInbound`), the heartbeat, the listener sets of `state` and
 * `events`, `Reconnect`. One test suite (test/support/clientContract.ts) holds both to the same
 * behaviour.
 *
 * One fiber runs the link: it attempts; while a connection is open it waits on one Deferred that
 * the connection's end, the heartbeat, `reconnect` or a throwing `isPong` completes (no fiber per
 * open link: the outbox is written on the socket's callbacks); then it backs off by the retry
 * Schedule and attempts again, until the Schedule is done, `shouldRetry` says no, or `close`
 * interrupts it.
 */
import type { Scope } from "effect"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Scope_ from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Subscribable from "effect/Subscribable"
import { ConnectError, OnOpenError, SendError, TimeoutError } from "../Errors.js"
import type { ClientError } from "../Reconnect.js"
import type { Message } from "../Transport.js"
import { Transport } from "../Transport.js"
import { brokenOption, cannotProbeLog, causeMessage, closedByUser, unsentLog } from "./clientCommon.js"
import { ClientEvent, ClientState } from "./clientState.js"
import type { RawClient } from "./codecErrors.js"
import type { OpenedConnection } from "./connection.js"
import { acquireConnection, closeCodeOf, refusedFrame, releaseOpened, trySend, writeFailed } from "./connection.js"
import { Heartbeat } from "./heartbeat.js"
import type { ClientSettings } from "./options.js"
import { isStaticUrl } from "./parseEndpoint.js"
import { streamOfPulls } from "./primitives/inboundBuffer.js"
import { Listeners } from "./primitives/listeners.js"
import { SuccessiveInbound } from "./primitives/successiveInbound.js"
import { currentTimers } from "./primitives/timers.js"
import { frameBytes, OPEN } from "./protocol.js"
import { redactInput, redactUrl } from "./redactUrl.js"

/** A frame accepted into the outbox, and whom its end is reported to (the `send` caller, or events). */
interface Item {
  readonly data: Message
  readonly bytes: number
  readonly done: (error?: SendError) => void
}

/** How a session ended: a failure of the link, or `reconnect`. */
type End = ClientError | "reconnect"

/** The small Client over decoded options: `Client.make`'s settings, one endpoint. */
export const makeLiteClient = (settings: ClientSettings): Effect.Effect<RawClient, never, Scope.Scope | Transport> =>
  Effect.gen(function*() {
    const transport = yield* Transport
    const timers = yield* currentTimers
    const clock = yield* Effect.clock
    const endpoint = settings.endpoints[0] ?? ""
    const label = endpoint instanceof URL
      ? redactUrl(endpoint)
      : typeof endpoint === "string"
      ? redactInput(endpoint)
      : "(url from an Effect)"
    // The state, and its changes to each reader of `changes` (the current one first).
    let now: ClientState = ClientState.Idle()
    // Listener sets, as the full Client's: once `close` has finished (`stopped`), every `changes`
    // and `events` stream ends (after what `close` reported). A Closed by an error may connect
    // again: they go on.
    const states = new Listeners<ClientState>()
    const state = Subscribable.make({
      get: Effect.sync(() => now),
      changes: states.stream(() => [now], { bufferSize: "unbounded" }, () => stopped)
    })
    // A new reader of `events` gets the recent ones first, as with the full Client.
    const eventsCapacity = settings.eventsCapacity
    const events = new Listeners<ClientEvent>()
    const recent: Array<ClientEvent> = []
    const inbound = new SuccessiveInbound()
    const isPong = settings.isPong
    const monotonic = () => Number(clock.unsafeCurrentTimeNanos() / 1_000_000n)

    // The outbox: frames accepted and not yet written, oldest first; the first `handed` are in
    // flight on the open connection (`session` its token: a write's callback from an earlier
    // connection finds another). `waiting`: senders waiting for room (`suspend`), in order.
    let queue: Array<Item> = []
    let queuedBytes = 0
    let handed = 0
    let session: object | undefined
    let waiting: Array<Item & { readonly room: Deferred.Deferred<void, SendError> }> = []
    let failedTotal = 0
    /** Set by `close` (and the scope's end): nothing is attempted or accepted any more. */
    let stopping = false
    let stopped = false
    let current: OpenedConnection | undefined
    let loop: Fiber.RuntimeFiber<void> | undefined
    /** `reconnect` while open or backing off: the session ends, or the wait does. */
    let kick: Deferred.Deferred<End> | undefined

    const publish = (event: ClientEvent) => {
      if (recent.push(event) > eventsCapacity) recent.shift()
      events.emit(event)
    }
    // Logs as the full Client's: a WARN when the link goes down (or the first attempt fails), an
    // INFO when it is back, a WARN when an error closes the Client, DEBUG for the rest.
    let downSince: number | undefined
    let downAttempts = 0
    const logOf = (to: ClientState): Effect.Effect<void> => {
      switch (to._tag) {
        case "Connecting":
          downAttempts++
          break
        case "Backoff": {
          const first = downSince === undefined
          downSince ??= clock.unsafeCurrentTimeMillis()
          return first
            ? Effect.logWarning(
              `lifeline: ${everOpened ? "link down" : "cannot connect"}: ${to.error.message}; retrying ${
                Duration.isZero(to.delay) ? "now" : `in ${Duration.format(to.delay)}`
              }`
            )
            : Effect.logDebug(`lifeline: Backoff ${Duration.format(to.delay)} after ${to.error.message}`)
        }
        case "Open": {
          const since = downSince
          downSince = undefined
          everOpened = true
          const attempts = downAttempts
          downAttempts = 0
          if (since === undefined) break
          return Effect.logInfo(
            `lifeline: link back after ${attempts} attempt${attempts === 1 ? "" : "s"}, down for ${
              Duration.format(Duration.millis(Math.max(0, to.since - since)))
            }`
          )
        }
        case "Closed":
          if (Option.isSome(to.error)) {
            return Effect.logWarning(`lifeline: closed by ${to.error.value.message}; not retrying`)
          }
      }
      return Effect.logDebug(`lifeline: ${to._tag}`)
    }
    let everOpened = false
    /** A log line with the endpoint; a logger that fails takes nothing down. */
    const logged = (log: Effect.Effect<void>) =>
      log.pipe(Effect.annotateLogs("lifeline.url", label), Effect.catchAllCause(() => Effect.void))
    // `awaitOpen`'s: Open, done; Closed, its error (or the user's close). Told by `enter`.
    const openOutcome = (): Effect.Effect<void, ClientError> | undefined =>
      now._tag === "Open"
        ? Effect.void
        : now._tag === "Closed"
        ? Effect.fail(Option.getOrElse(now.error, () => closedByUser))
        : undefined
    const openWaiters = new Set<(outcome: Effect.Effect<void, ClientError>) => void>()
    const enter = (to: ClientState) =>
      Effect.suspend(() => {
        const from = now
        now = to
        const outcome = openOutcome()
        if (outcome !== undefined) {
          for (const resume of openWaiters) resume(outcome)
          openWaiters.clear()
        }
        states.emit(to)
        publish(ClientEvent.Transition({ from, to }))
        return Effect.void
      }).pipe(
        Effect.zipRight(logged(logOf(to)))
      )

    /** Ends an accepted frame with `error`: to its sender, or as an event. */
    const fail = (item: Item, error: SendError) => {
      failedTotal++
      item.done(error)
    }
    /** The oldest frame, written or failed: out of the outbox, and the senders waiting for room let in. */
    const shift = () => {
      const item = queue.shift()!
      queuedBytes -= item.bytes
      handed--
      admit()
      return item
    }
    /**
     * The senders waiting for room, in order, into the outbox while they fit: done here, by what
     * freed the room, so that no later sender passes them and no wake is lost between.
     */
    const admit = () => {
      while (waiting.length > 0 && hasRoom(waiting[0]!.bytes)) {
        const sender = waiting.shift()!
        queue.push(sender)
        queuedBytes += sender.bytes
        Deferred.unsafeDone(sender.room, Effect.void)
      }
    }
    const refusal = (reason: SendError["reason"], payload: Message) => new SendError({ reason, payload })
    /**
     * Every frame not written, then every sender waiting for room, failed with `Closed`: their
     * payloads, in that order.
     */
    const failAll = (): Array<Message> => {
      const items = queue
      const senders = waiting
      queue = []
      waiting = []
      queuedBytes = 0
      handed = 0
      for (const item of items) fail(item, refusal("Closed", item.data))
      for (const sender of senders) {
        failedTotal++
        Deferred.unsafeDone(sender.room, Effect.fail(refusal("Closed", sender.data)))
      }
      return [...items, ...senders].map((item) => item.data)
    }

    /**
     * Hands the frames queued to the open connection, in order, while its buffer is under the
     * high-water mark; each is done when its write is reported (`written`).
     */
    const flush = () => {
      const opened = current
      const token = session
      if (opened === undefined) return
      const socket = opened.socket
      while (
        handed < queue.length && socket.readyState() === OPEN &&
        socket.bufferedAmount() < settings.connection.writeHighWaterMark
      ) {
        const item = queue[handed++]!
        const thrown = trySend(socket, item.data, (error) => written(token, socket, error))
        if (thrown !== undefined) {
          // Nothing was written, and no callback will come.
          queue.splice(--handed, 1)
          queuedBytes -= item.bytes
          admit()
          fail(item, writeFailed(item.data, thrown))
        }
      }
    }

    /** The oldest frame in flight was written, or not. */
    const written = (token: object | undefined, socket: OpenedConnection["socket"], error?: Error | null) => {
      if (token !== session || handed === 0) return
      // Not a byte of it reached the network, nor of any frame after it (a stream is written in
      // order), and the link is going: they all go out again on the next connection. While the
      // Client closes, what was not written is what `close` returns.
      if (
        error && (stopping || (error as { notWritten?: unknown }).notWritten === true && socket.readyState() !== OPEN)
      ) {
        handed = 0
        return
      }
      const item = shift()
      if (error) fail(item, writeFailed(item.data, error))
      else item.done()
      flush()
    }

    const hasRoom = (bytes: number) =>
      queue.length < settings.outboxCapacity && (queue.length === 0 || queuedBytes + bytes <= settings.outboxBytes)

    /** Accepts a frame into the outbox (or refuses it); `overflow` decides what happens when full. */
    const accept = (
      data: Message,
      done: (error?: SendError) => void,
      overflow: ClientSettings["overflow"]
    ): Effect.Effect<void, SendError> =>
      Effect.suspend((): Effect.Effect<void, SendError> => {
        // Closed (by an error too: nothing would send it until a `reconnect`), or closing.
        if (stopping || now._tag === "Closed") return Effect.fail(refusal("Closed", data))
        const bytes = frameBytes(data)
        const refused = refusedFrame(data, bytes, settings.connection.maxMessageSize)
        if (refused !== undefined) return Effect.fail(refused)
        // A sender that waits for room is not passed by later ones that would fit.
        if (!hasRoom(bytes) || overflow === "suspend" && waiting.length > 0) {
          if (overflow === "fail") return Effect.fail(refusal("OutboxFull", data))
          if (overflow === "suspend") {
            // Let in by `admit` (accepted then), or failed with `Closed` by `close`.
            const sender = { data, bytes, done, room: Deferred.unsafeMake<void, SendError>(FiberId.none) }
            waiting.push(sender)
            return Deferred.await(sender.room).pipe(
              // Interrupted while it waits: out of the line (let in already: accepted).
              Effect.onInterrupt(() =>
                Effect.sync(() => {
                  const index = waiting.indexOf(sender)
                  if (index !== -1) waiting.splice(index, 1)
                })
              ),
              Effect.zipRight(Effect.sync(flush))
            )
          }
          // dropOldest: the oldest not in flight goes, failed with `Dropped`, until it fits.
          while (!hasRoom(bytes) && queue.length > handed) {
            const [oldest] = queue.splice(handed, 1)
            queuedBytes -= oldest!.bytes
            fail(oldest!, refusal("Dropped", oldest!.data))
          }
          if (!hasRoom(bytes)) return Effect.fail(refusal("OutboxFull", data))
        }
        queue.push({ data, bytes, done })
        queuedBytes += bytes
        flush()
        return Effect.void
      })

    // The Client's own `send` or `awaitOpen` run in its `onOpen` would wait for that `onOpen` (until
    // `onOpenTimeout`, at every attempt): it fails the hook at once instead, saying why.
    let hookFiber: object | undefined
    const notInHook = (what: string) =>
      Effect.withFiberRuntime<void>((fiber) =>
        fiber === hookFiber
          ? Effect.dieMessage(`the Client's ${what} in its own onOpen waits for onOpen: use the connection onOpen gets`)
          : Effect.void
      )
    // Done when written, or failed with what ended it.
    const send = (data: Message): Effect.Effect<void, SendError> =>
      Effect.suspend(() => {
        const done = Deferred.unsafeMake<void, SendError>(FiberId.none)
        const sent = Effect.zipRight(
          accept(
            data,
            (error) => Deferred.unsafeDone(done, error ? Effect.fail(error) : Effect.void),
            settings.overflow
          ),
          Deferred.await(done)
        )
        // Only a send that would wait can be the hook's own (its link is not Open yet): no look at
        // the fiber on the way of every frame.
        return now._tag === "Open" ? sent : Effect.zipRight(notInHook("send"), sent)
      })

    const report = (error?: SendError) => {
      if (error !== undefined) publish(ClientEvent.MessageFailed({ error }))
    }
    const enqueue = (data: Message) => accept(data, report, settings.overflow)

    /**
     * Watches an open connection for its end, with no fiber: its close (the listener's watcher),
     * the heartbeat's verdict, `reconnect`, an `isPong` that throws; the first completes `ended`.
     * Returns how to stop watching.
     */
    const watch = (opened: OpenedConnection, ended: Deferred.Deferred<End>): () => void => {
      const end = (value: End) => Deferred.unsafeDone(ended, Effect.succeed(value))
      opened.listener.watcher = { connectionEnded: end }
      const beat = settings.heartbeat === undefined ? undefined : new Heartbeat(
        {
          opened,
          onDead: end,
          onCannotProbe: () => Effect.runFork(cannotProbeLog()),
          onFailed: (defect) => end(broken("the heartbeat failed", defect))
        },
        settings.heartbeat,
        clock,
        timers
      )
      beat?.start()
      // It may have ended already, before the watcher was set.
      const already = opened.listener.endedWith
      if (already !== undefined) end(already)
      return () => {
        opened.listener.watcher = undefined
        beat?.stop()
      }
    }

    const broken = (detail: string, cause: unknown) => brokenOption(label, detail, cause)

    /** One attempt, in `scope`: the connection, once `onOpen` is done with it. */
    const attempt = (scope: Scope.CloseableScope): Effect.Effect<OpenedConnection, ClientError, Transport> =>
      Effect.gen(function*() {
        // The URL and headers Effects (user code) are bounded by the open timeout: one that hangs
        // is a TimeoutError open, retried like a handshake that does not answer.
        const timeout = settings.connection.openTimeout
        const read = <A>(effect: Effect.Effect<A>, fails: (cause: unknown) => ConnectError) =>
          Effect.catchAllCause(
            Effect.timeoutFail(effect, {
              duration: timeout,
              onTimeout: () => new TimeoutError({ operation: "open", timeout, url: label })
            }),
            (cause) => {
              const error = Cause.squash(cause)
              return Effect.fail(error instanceof TimeoutError ? error : fails(error))
            }
          )
        const target = isStaticUrl(endpoint) ? endpoint : yield* read(endpoint, (cause) =>
          new ConnectError({
            reason: "InvalidUrl",
            url: label,
            detail: `the URL Effect failed: ${causeMessage(cause)}`,
            cause
          }))
        // The connection options were decoded once, fixed headers included: only an Effect's are new.
        const headers = settings.headers === undefined
          ? undefined
          : yield* read(settings.headers, (cause) => broken("the headers Effect failed", cause))
        const opened = yield* acquireConnection<never, never, never>(
          target,
          headers === undefined ? settings.connection : { ...settings.connection, headers },
          (opened) => Scope_.addFinalizerExit(scope, (exit) => releaseOpened(opened, exit)),
          inbound
        )
        const onOpen = settings.onOpen
        if (onOpen !== undefined) {
          const timeout = settings.onOpenTimeout
          const hook = yield* Effect.exit(
            Effect.raceFirst(
              // User code: a throw is its failure too.
              Effect.timeoutFail(
                Effect.withFiberRuntime<void, unknown>((fiber) => {
                  hookFiber = fiber
                  return onOpen(opened.connection)
                }),
                {
                  duration: timeout,
                  onTimeout: () => new TimeoutError({ operation: "onOpen", timeout, url: opened.connection.url })
                }
              ),
              Effect.flatMap(opened.listener.awaitClosed, () => opened.listener.endedByPeer ?? Effect.never)
            ).pipe(Effect.ensuring(Effect.sync(() => hookFiber = undefined)))
          )
          if (Exit.isFailure(hook)) {
            const ended = opened.listener.endedByPeer
            if (ended !== undefined) return yield* ended
            return yield* new OnOpenError({ cause: Cause.squash(hook.cause) })
          }
        }
        inbound.offer(opened.listener.inbound)
        const ended = opened.listener.endedWith
        if (ended !== undefined) return yield* ended
        return opened
      })

    /** What follows `error`: the delay before the next attempt, or none (the Client stops). */
    let scheduleState = settings.schedule.initial
    /** `reconnect` came during the attempt under way. */
    let skipWait = false
    const next = (error: ClientError, skip: boolean): Effect.Effect<number | ClientError> =>
      Effect.gen(function*() {
        let retry: boolean
        try {
          retry = settings.shouldRetry(error)
        } catch (defect) {
          return broken("shouldRetry threw", defect)
        }
        if (!retry) return error
        if (skip) return 0
        const now = clock.unsafeCurrentTimeMillis()
        const step = yield* Effect.exit(
          Effect.timeout(
            Effect.suspend(() => settings.schedule.step(now, error, scheduleState)),
            settings.connection.openTimeout
          )
        )
        if (Exit.isFailure(step)) {
          const cause = Cause.squash(step.cause)
          // In the full Client's words.
          return Cause.isTimeoutException(cause)
            ? broken("the client failed", new Error("the retry Schedule's step did not end within the open timeout"))
            : broken("the retry Schedule failed in its step", cause)
        }
        const [nextState, , decision] = step.value
        scheduleState = nextState
        if (ScheduleDecision.isDone(decision)) return error
        let delay = Math.max(settings.minRetryDelay, Math.ceil(ScheduleIntervals.start(decision.intervals) - now))
        if (error._tag === "ConnectError" && error.retryAfter !== undefined) {
          delay = Math.max(delay, Duration.toMillis(error.retryAfter))
        }
        return delay
      })

    /**
     * Waits `delay`, or less when `reconnect` or the network's `online` wakes it (true); longer
     * while offline (true too, once a look finds the network back).
     */
    const backoff = (delay: number): Effect.Effect<boolean> => {
      const woken = kick = Deferred.unsafeMake<End>(FiberId.none)
      const network = transport.network
      const online = () => {
        try {
          return network === undefined || network.isOnline()
        } catch {
          return true
        }
      }
      // Offline when the delay is over: no attempt, and a look again each second (`online` may
      // never come: Chromium fires none in a worker); one that finds the network back ends it.
      const offline = (waited: boolean): Effect.Effect<boolean> =>
        Effect.suspend(() => online() ? Effect.succeed(waited) : Effect.zipRight(Effect.sleep(1000), offline(true)))
      const wait = Effect.zipRight(Effect.sleep(delay), offline(false))
      let unsubscribe: (() => void) | undefined
      try {
        let subscribing = true
        unsubscribe = network?.onOnline(() => {
          if (!subscribing) Deferred.unsafeDone(woken, Effect.succeed("reconnect"))
        })
        subscribing = false
      } catch {
        // No `online` event: the timer alone.
      }
      return Effect.raceFirst(wait, Effect.as(Deferred.await(woken), true)).pipe(
        Effect.ensuring(Effect.sync(() => {
          kick = undefined
          try {
            unsubscribe?.()
          } catch {
            // Nothing more to undo.
          }
        }))
      )
    }

    const stop = (error: Option.Option<ClientError>) =>
      Effect.suspend(() => {
        failAll()
        inbound.end()
        return enter(ClientState.Closed({ error }))
      })

    // Interruptible (by `close`) only where it waits: attempting, open, deciding, backing off;
    // each of those leaves nothing behind when interrupted.
    const run: Effect.Effect<void, never, Transport> = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        if (settings.invalid !== undefined) {
          return yield* stop(
            Option.some(new ConnectError({ reason: "InvalidOptions", url: label, detail: settings.invalid }))
          )
        }
        let attempts = 0
        for (;;) {
          attempts++
          // The first Connecting is `start`'s.
          if (attempts > 1 || now._tag !== "Connecting") {
            yield* enter(ClientState.Connecting({ attempt: attempts, endpoint: label }))
          }
          const scope = yield* Scope_.make()
          // Interrupted (`close`) or failed: the attempt's connection goes with its scope.
          const opened = yield* Effect.either(
            Effect.onExit(restore(attempt(scope)), (exit) =>
              Exit.isSuccess(exit) ? Effect.void : Scope_.close(scope, exit))
          )
          let error: ClientError
          if (opened._tag === "Left") {
            error = opened.left
          } else {
            const connection = opened.right
            // The session, its end and its writes are set before Open is seen: a `send` that
            // follows an `awaitOpen` writes at once, and a `reconnect` ends this link.
            current = connection
            session = {}
            const kicked = kick = Deferred.unsafeMake<End>(FiberId.none)
            const unwatch = watch(connection, kicked)
            const since = clock.unsafeCurrentTimeMillis()
            const upSince = monotonic()
            yield* enter(ClientState.Open({ attempt: attempts, endpoint: connection.connection.url, since }))
            flush()
            const ended = () => {
              unwatch()
              kick = undefined
              current = undefined
              session = undefined
            }
            // Interrupted (`close`, with the link closed already): the connection goes with its scope.
            const end: End = yield* restore(Deferred.await(kicked)).pipe(
              Effect.onInterrupt(() =>
                Effect.zipRight(Effect.sync(ended), Scope_.close(scope, Exit.void))
              )
            )
            ended()
            if (end !== "reconnect" && end._tag === "TimeoutError") connection.socket.terminate()
            // Frames whose write never completed were not written: failed, or returned by `close`.
            if (stopping) handed = 0
            while (handed > 0) {
              const item = shift()
              fail(item, writeFailed(item.data, new Error("the connection ended")))
            }
            yield* Scope_.close(scope, end === "reconnect" ? Exit.void : Exit.fail(end))
            // `close` takes it from here.
            if (stopping) return
            // `reconnect`: at once, and a new series.
            if (end === "reconnect") {
              scheduleState = settings.schedule.initial
              attempts = 0
              continue
            }
            error = end
            if (monotonic() - upSince >= Duration.toMillis(settings.minUptime)) {
              scheduleState = settings.schedule.initial
              attempts = 1
            }
          }
          // `reconnect` during the attempt: the next follows at once, a new series (the Schedule
          // is not asked: one that is done would close the Client it was asked to reconnect).
          const skip = skipWait
          skipWait = false
          const delay = yield* restore(next(error, skip))
          if (typeof delay !== "number") return yield* stop(Option.some(delay))
          if (skip) {
            scheduleState = settings.schedule.initial
            attempts = 0
          }
          yield* enter(ClientState.Backoff({ attempt: attempts, delay: Duration.millis(delay), error }))
          // Woken by `reconnect` or `online`: a new series.
          if (yield* restore(backoff(delay))) {
            scheduleState = settings.schedule.initial
            attempts = 0
          }
        }
      })
    )

    // Connecting already when it returns (`make`, `reconnect` after a Closed): an `awaitOpen` that
    // follows waits for this attempt.
    const start = Effect.suspend(() => {
      stopped = false
      scheduleState = settings.schedule.initial
      inbound.reopen()
      return Effect.zipRight(
        settings.invalid === undefined ? enter(ClientState.Connecting({ attempt: 1, endpoint: label })) : Effect.void,
        Effect.forkDaemon(Effect.provideService(run, Transport, transport))
      )
    }).pipe(Effect.tap((fiber) => Effect.sync(() => loop = fiber)))

    // On a fiber of its own, which the caller waits for: a `close` from the Client's own `onOpen` or
    // URL Effect (on the fiber it interrupts) ends too. A second `close` returns once the first
    // is done, with nothing (the first returned what was not sent).
    let closing: Deferred.Deferred<ReadonlyArray<Message>> | undefined
    const close = (code?: number, reason?: string): Effect.Effect<ReadonlyArray<Message>> =>
      Effect.suspend(() => {
        if (closing !== undefined) return Effect.as(Deferred.await(closing), [])
        const done = closing = Deferred.unsafeMake<ReadonlyArray<Message>>(FiberId.none)
        stopping = true
        const open = current
        const work = Effect.gen(function*() {
          if (open !== undefined) yield* open.connection.close(code, reason)
          if (loop !== undefined) yield* Fiber.interrupt(loop)
          const unsent = failAll()
          stopping = false
          inbound.end()
          yield* enter(ClientState.Closed({ error: Option.none() }))
          stopped = true
          states.end()
          events.end()
          return unsent
        })
        return Effect.zipRight(
          Effect.forkDaemon(Effect.flatMap(work, (unsent) => Deferred.succeed(done, unsent))),
          Deferred.await(done)
        )
      })

    const awaitOpen: Effect.Effect<void, ClientError> = Effect.zipRight(
      notInHook("awaitOpen"),
      Effect.async<void, ClientError>((resume) => {
        const outcome = openOutcome()
        if (outcome !== undefined) return resume(outcome)
        openWaiters.add(resume)
        return Effect.sync(() => openWaiters.delete(resume))
      })
    )

    // Without the heartbeat's answers (`isPong`). An `isPong` that throws ends the link, as a
    // broken option: the frame is kept.
    const pull = <E>(take: Effect.Effect<Chunk.Chunk<Message>, E>) =>
      isPong === undefined ? take : Effect.map(
        take,
        Chunk.filter((frame) => {
          try {
            return !isPong(frame)
          } catch (defect) {
            // Only an open link's end: a frame of an earlier link read later ends nothing.
            if (current !== undefined && kick !== undefined) {
              Deferred.unsafeDone(kick, Effect.succeed(broken("heartbeat.isPong threw", defect)))
            }
            return true
          }
        })
      )

    const inboundChunks = pull(inbound.pull)
    const inboundOne = pull(inbound.pullOne)
    const client: RawClient = {
      state,
      events: events.stream(() => recent, { bufferSize: eventsCapacity, strategy: "sliding" }, () => stopped),
      messages: streamOfPulls(inboundChunks, inboundOne),
      inboundChunks,
      inboundOne,
      publishDecodeFailure: (error) => publish(ClientEvent.DecodeFailed({ error })),
      // What a log or `JSON.stringify` shows: no URL secret, no option.
      toJSON: () => ({ _id: "lifeline/Client", endpoint: label, outboxSize: queue.length }),
      send,
      enqueue,
      sink: Sink.forEach((data: Message) => accept(data, report, "suspend")),
      awaitOpen,
      reconnect: Effect.suspend(() => {
        if (kick !== undefined) {
          Deferred.unsafeDone(kick, Effect.succeed("reconnect"))
          return Effect.void
        }
        // During an attempt: the next follows it at once.
        if (now._tag === "Connecting") skipWait = true
        return now._tag === "Closed" && closing === undefined ? Effect.asVoid(start) : Effect.void
      }),
      close,
      outboxSize: Effect.sync(() => queue.length),
      failed: Effect.sync(() => failedTotal)
    }
    // The scope's end closes it: 1000 on success, 1001 on failure. What it did not send is
    // returned to no one: one WARN says how much.
    yield* Effect.addFinalizer((exit) =>
      Effect.flatMap(close(closeCodeOf(exit)), (unsent) =>
        unsent.length > 0
          ? logged(unsentLog(unsent.length))
          : Effect.void)
    )
    yield* start
    return client
  })
