/**
 * The Client's supervisor: a fiber that, after a session ended (if one did), releases it, then
 * attempts until a session opens, the schedule gives up or the error is not worth retrying. It
 * ends when a session is open; the session's end starts it again. Failures travel in the error
 * channel; each attempt's connection lives in the attempt's own Scope, which becomes the
 * session's on success and is closed with the attempt's Exit otherwise. A Client whose attempts
 * run no user code attempts and backs off on callbacks instead (`callbacks.ts`, where installed):
 * this fiber then only releases an ended session and hands the next attempt over.
 */
import type { MetricLabel } from "effect"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as Scope from "effect/Scope"
import { ConnectError, OnOpenError, TimeoutError } from "../../Errors.js"
import type { ClientError } from "../../Reconnect.js"
import type { Network } from "../../Transport.js"
import { Transport } from "../../Transport.js"
import { causeMessage } from "../clientCommon.js"
import { ClientState } from "../clientState.js"
import type { OpenedConnection } from "../connection.js"
import { acquireConnection } from "../connection.js"
import * as Metrics from "../metrics.js"
import type { ConnectOptions } from "../options.js"
import { isStaticUrl } from "../parseEndpoint.js"
import { monotonicMillis, TimedWait } from "../primitives/timers.js"
import type { Timers } from "../primitives/timers.js"
import { admitsNow, breakerFor, pickEndpoint, PrimaryProbe, whenFree } from "./endpoints.js"
import type { LiveClient } from "./liveClient.js"
import { failClient, labelOf } from "./liveClient.js"
import type { Phase } from "./phase.js"
import { Session } from "./session.js"

const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

// A Suspended Client looks at its endpoints' breakers this often (an isolated breaker's retryAt is
// the largest Date), so a `reset` is noticed without a subscription per Client. A look that finds
// every breaker still refusing changes nothing: no attempt, no new state.
const SUSPENDED_RECHECK = 5_000

/**
 * Attempts on callbacks (`callbacks.ts`), where the Node transport installed them (a browser bundle
 * does without): each returns false for a client whose attempts run user code, which then runs
 * them on this fiber.
 */
export const callbacks: {
  /** Starts an attempt now, with no fiber. */
  attempt?: (client: LiveClient) => boolean
  /** What follows `error`, with no fiber: stop, or back off until the next attempt. */
  decide?: (client: LiveClient, error: ClientError, uptime: number) => boolean
} = {}

/**
 * The supervisor's whole run: `ended` is the session whose end started it (the phase is then
 * Ending), or undefined at the start.
 */
export const supervise = (client: LiveClient, ended: Session | undefined): Effect.Effect<void, never, Transport> =>
  Effect.gen(function*() {
    if (client.settings.invalid !== undefined) {
      const error = new ConnectError({
        reason: "InvalidOptions",
        url: labelOf(client.settings.endpoints[0] ?? ""),
        detail: client.settings.invalid
      })
      return yield* client.stop(Option.some(error))
    }
    if (ended !== undefined && !(yield* afterSession(client, ended))) return
    for (let first = true;; first = false) {
      // Only from a phase this fiber was started for or led to: a supervisor that lost the
      // client (stopped, restarted by another) must not connect it again.
      const phase = client.phase
      const mayAttempt = phase._tag === "Idle" || phase._tag === "Ending" || phase._tag === "Backoff" ||
        phase._tag === "Suspended" ||
        (first && ended === undefined && phase._tag === "Closed" && !phase.byClose)
      if (!mayAttempt) return
      // Every attempt starts here or in `LiveClient.start`: one that runs no user code goes on
      // callbacks (where installed), and this fiber ends.
      if (callbacks.attempt?.(client)) return
      const attempt = yield* Effect.either(attemptOnce(client))
      // Open: the session runs on callbacks from here. Or `close` stopped the client.
      if (attempt._tag === "Right" || client.stopped) return
      if (!(yield* decide(client, attempt.left, 0))) return
    }
  })

/** Releases an ended session's connection (closes its Scope); then whether to go on connecting. */
const afterSession = (client: LiveClient, session: Session): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const phase = client.phase
    if (phase._tag !== "Ending" || phase.open.session !== session) return false
    const reason = phase.reason
    // A dead peer will not answer a close frame: skip the close handshake.
    if (reason !== "reconnect" && reason._tag === "TimeoutError") session.opened.socket.terminate()
    // Monotonic, as the session counted it from its open (a step of the wall clock is no uptime).
    const uptime = session.uptime()
    // Uninterruptible: `close` waits for a release under way rather than cutting it short.
    yield* Effect.uninterruptible(Scope.close(session, reason === "reconnect" ? Exit.void : Exit.fail(reason)))
    session.abandonInFlight()
    if (client.stopped) return false
    if (reason === "reconnect" || phase.skipWait) {
      client.resetBackoff()
      return true
    }
    return yield* decide(client, reason, uptime)
  })

/** Decides what follows `error`: false when the client stops, true after the backoff. */
const decide = (client: LiveClient, error: ClientError, uptime: number): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    if (callbacks.decide?.(client, error, uptime)) return false
    const settings = client.settings
    const retry = retryable(client, error)
    if (retry !== true) {
      yield* client.stop(Option.some(retry === false ? error : retry))
      return false
    }
    if (uptime >= Duration.toMillis(settings.minUptime)) {
      // Stable long enough: this failure counts as the first of a new series.
      client.resetBackoff()
      client.attempt = 1
    }
    const now = client.clock.unsafeCurrentTimeMillis()
    const schedule = settings.schedule
    // Never sooner than the floor: a schedule of zero delays would be a hot loop.
    let delay = settings.minRetryDelay
    // `reconnect` during this attempt: the next follows at once and the series starts again, so the
    // schedule is not asked (one that is done would close the Client it was asked to reconnect).
    if (!skipping(client)) {
      // User code: a Schedule that throws or dies in its step closes the client, typed. So does
      // one whose step does not end (an Effect in `tapInput` or `modifyDelayEffect` that hangs):
      // else Connecting for good. Bounded by the open timeout, as the URL and headers Effects are,
      // on one of the client's timers (no fiber: a failed attempt starts none); past it the client
      // closes and this fiber (the supervisor), waiting on the step, is interrupted.
      const guard = {
        fire() {
          if (client.stopped) return
          failClient(client, new Error("the retry Schedule's step did not end within the open timeout"))
          client.supervisor?.unsafeInterruptAsFork(FiberId.none)
        }
      }
      const timer = client.timers.after(Duration.toMillis(settings.connection.openTimeout), guard)
      // Cancelled however the step ends: `close` interrupts this fiber too.
      const stepped = yield* Effect.exit(Effect.suspend(() => schedule.step(now, error, client.scheduleState))).pipe(
        Effect.ensuring(Effect.sync(() => client.timers.cancel(timer, guard)))
      )
      if (Exit.isFailure(stepped)) {
        yield* client.stop(
          Option.some(client.brokenOption("the retry Schedule failed in its step", Cause.squash(stepped.cause)))
        )
        return false
      }
      const [nextState, , decision] = stepped.value
      client.scheduleState = nextState
      if (ScheduleDecision.isDone(decision)) {
        yield* client.stop(Option.some(error))
        return false
      }
      // Whole milliseconds, rounded up: `Schedule.jittered` gives fractions, which the Backoff state
      // and its log line showed to the nanosecond ("retrying in 1s 501ms 638027ns").
      delay = Math.max(delay, Math.ceil(ScheduleIntervals.start(decision.intervals) - now))
      if (error._tag === "ConnectError" && error.retryAfter !== undefined) {
        delay = Math.max(delay, Duration.toMillis(error.retryAfter))
      }
    }
    // No attempt before the breaker's retryAt (an isolated breaker's is the far future: woken by
    // `reconnect`, or by a `reset` the wait's looks find); the schedule's jittered delay, when it
    // is longer, spreads the Clients that share it.
    const scheduled = delay
    if (error._tag === "CircuitOpenError") delay = Math.max(delay, error.retryAt.getTime() - now)
    const woken = yield* backoff(client, error, now, delay, skipping(client), scheduled)
    if (woken) client.resetBackoff()
    return !client.stopped
  })

/** A `reconnect` came during the attempt that failed: no wait before the next. */
const skipping = (client: LiveClient): boolean => client.phase._tag === "Connecting" && client.phase.skipWait

/** Whether to retry after `error`; a `shouldRetry` that throws closes the client with InvalidOptions. */
const retryable = (client: LiveClient, error: ClientError): boolean | ConnectError => {
  try {
    return client.settings.shouldRetry(error)
  } catch (defect) {
    return client.brokenOption("shouldRetry threw", defect)
  }
}

/**
 * The client's wait between attempts: its timer fires (false), or `reconnect` or the network's
 * `online` event wakes it (true). A timer that fires while the network is offline is ignored: the
 * wait goes on until `online`, or until a look each second finds the network back, which wakes
 * it as `online` does (no attempt while offline).
 */
export class BackoffWait extends TimedWait {
  resume: ((effect: Effect.Effect<boolean>) => void) | undefined = undefined
  /** Woken before the supervisor began to wait (between entering the phase and waiting). */
  woken = false
  private unsubscribe: (() => void) | undefined = undefined
  /** Its timer found the network offline. */
  private offline = false
  /** Suspended: at each firing (and at the start), how long to wait on; 0: the wait is over. */
  recheck?: () => number
  /** Suspended by a busy trial: the breaker said a slot freed or its state changed (`whenFree`). */
  freed = false
  /** Suspended by a busy trial: cancels the breaker's `whenFree` call. */
  release?: (() => void) | undefined

  constructor(timers: Timers, private network: Network | undefined) {
    super(timers)
  }

  /**
   * Listens for `online` for the whole wait; a no-op without a network. A transport's network
   * that throws (here, in `isOnline` or its unsubscribe) tells nothing: the wait is the timer's
   * alone, as without one. Its calls run in socket and timer callbacks, which must never throw.
   */
  listen(): void {
    if (this.network === undefined) return
    let subscribing = true
    try {
      // A call back while subscribing is no `online` event (the network was online already): it is
      // ignored. Else a network that calls back at once would wake every backoff (attempts with no
      // wait) before its unsubscribe is known (a listener left behind).
      this.unsubscribe = this.network.onOnline(() => {
        if (!subscribing) this.wake()
      })
    } catch {
      // No `online` event will end the wait: the timer does, whatever `isOnline` says (as without
      // a network).
      this.network = undefined
    }
    subscribing = false
  }

  override fire(): void {
    const next = this.recheck?.()
    if (next) return this.start(next)
    // Offline: no attempt, and a look again in a second. `online` may never come: Chromium fires
    // none in a worker, where `navigator.onLine` turns true all the same. A look that finds the
    // network back wakes the wait as `online` does.
    if (this.network === undefined) return super.fire()
    if (!isOnline(this.network)) {
      this.offline = true
      return this.start(1000)
    }
    if (this.offline) this.wake()
    else super.fire()
  }

  wake(): void {
    if (!this.finish()) return
    if (this.resume === undefined) this.woken = true
    else this.resume(Effect.succeed(true))
  }

  protected timedOut(): void {
    this.resume?.(Effect.succeed(false))
  }

  protected ended(): void {
    this.release?.()
    const unsubscribe = this.unsubscribe
    this.unsubscribe = undefined
    try {
      unsubscribe?.()
    } catch {
      // Nothing more to undo.
    }
  }
}

/** A network whose `isOnline` throws counts as online. */
const isOnline = (network: Network): boolean => {
  try {
    return network.isOnline()
  } catch {
    return true
  }
}

/**
 * Enters Backoff and waits `delay` on one timer, or less if `reconnect` or `online` wakes it
 * (true); longer while the network is offline. No racing fibers: the cost of a retry matters
 * when many clients reconnect at once.
 */
const backoff = (
  client: LiveClient,
  error: ClientError,
  now: number,
  delay: number,
  skip: boolean,
  /** Of `delay`, the schedule's: a look at the breakers never ends the wait sooner. */
  scheduled: number
): Effect.Effect<boolean> =>
  Effect.flatMap(Effect.serviceOption(Transport), (transport) => {
    const wait = new BackoffWait(client.timers, Option.isSome(transport) ? transport.value.network : undefined)
    // A breaker that refused the attempt: Suspended, not Backoff, until its retryAt at least.
    // Skipped (`reconnect`): a Backoff says no wait, not the delay that is not waited.
    const phase: Phase = error._tag === "CircuitOpenError"
      ? { _tag: "Suspended", endpoint: error.endpoint, retryAt: now + delay, error, wait }
      : { _tag: "Backoff", attempt: client.attempt, delay: Duration.millis(skip ? 0 : delay), error, wait }
    return Effect.zipRight(
      client.enter(phase),
      Effect.async<boolean>((resume) => {
        if (skip || wait.woken || client.phase !== phase) return resume(Effect.succeed(skip || wait.woken))
        wait.resume = resume
        wait.listen()
        if (phase._tag === "Suspended") {
          // Until retryAt, a look every few seconds once the schedule's delay is over (it spreads a
          // fleet); one that finds an endpoint's breaker admitting (a `reset`) ends the wait.
          // Monotonic, as the breakers' open periods.
          const start = monotonicMillis(client.clock)
          let until = start + delay
          const floor = start + scheduled
          // Refused while a trial holds every slot (`retryAt` now): no retry at the schedule's pace,
          // which refused again and again while the trial ran (200 Clients on a 20 ms schedule spun
          // 2,000 times a second and starved their own trial past its open timeout). The breaker
          // says when a slot frees or its state changes; a look every few seconds all the same. A
          // breaker of the user's that cannot say: the schedule's pace, as before.
          // A slot freed since the refusal: told at once, before the wait's timer is armed.
          let armed = false
          wait.release = phase.error.retryAt.getTime() <= now
            ? whenFree(client, phase.endpoint, () => {
              wait.freed = true
              if (armed) wait.fireNow()
            })
            : undefined
          if (wait.release !== undefined) until = start + Math.max(scheduled, SUSPENDED_RECHECK)
          // Busy: a slot freed, or another endpoint admits (a Client of several dials it meanwhile).
          const early = (): boolean =>
            wait.release !== undefined
              ? wait.freed || admitsNow(client, phase.endpoint, true)
              : admitsNow(client, phase.endpoint)
          wait.recheck = () => {
            const at = monotonicMillis(client.clock)
            if (at >= until) return 0
            // Before the schedule's delay is over, nothing ends the wait; a busy trial's waits look
            // when it is over (another endpoint may admit), the others at until or their 5 s look.
            if (at < floor) {
              return wait.release !== undefined
                ? floor - at
                : Math.min(until - at, Math.max(floor - at, SUSPENDED_RECHECK))
            }
            return early() ? 0 : Math.min(until - at, SUSPENDED_RECHECK)
          }
          armed = true
          // 0 (over already): the timer fires at once and its look ends the wait.
          wait.start(wait.recheck())
        } else wait.start(delay)
        return Effect.sync(() => wait.finish())
      })
    )
  })

/**
 * One attempt: connect, run `onOpen`, open the session (the phase is then Open). Fails with the
 * error that ended the attempt, its Scope closed (its connection released).
 */
const attemptOnce = (client: LiveClient): Effect.Effect<void, ClientError, Transport> =>
  Effect.gen(function*() {
    const settings = client.settings
    client.attempt++
    const attempt = client.attempt
    // Safe: `make` leaves a client with no endpoint Closed (InvalidOptions) before this.
    const index = yield* pickEndpoint(client)
    client.series++
    const endpoint = settings.endpoints[index]!
    client.total++
    const label = client.labels[index] ??= labelOf(endpoint)
    client.currentLabel = label
    yield* client.enter({ _tag: "Connecting", attempt, endpoint: label, skipWait: false })
    // Monotonic: the connect latency is a duration (see `countOpened`).
    const startedAt = monotonicMillis(client.clock)
    // The attempt's scope, which becomes the open session: one object.
    const session = new Session(client)
    return yield* openIn(client, session, index, endpoint, label, attempt, startedAt).pipe(
      Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Scope.close(session, exit))
    )
  })

const openIn = (
  client: LiveClient,
  scope: Session,
  index: number,
  endpoint: string | URL | Effect.Effect<string>,
  label: string,
  attempt: number,
  startedAt: number
): Effect.Effect<void, ClientError, Transport> =>
  Effect.gen(function*() {
    const settings = client.settings
    // User code: a URL or headers Effect that fails or dies is the user's bug, typed and fatal.
    // One that hangs (a token service that never answers) is bounded by the open timeout: a
    // TimeoutError open, retried like a handshake that does not answer.
    const timeout = settings.connection.openTimeout
    const bounded = <A>(effect: Effect.Effect<A>): Effect.Effect<A, TimeoutError> =>
      Effect.timeoutFail(effect, {
        duration: timeout,
        onTimeout: () => new TimeoutError({ operation: "open", timeout, url: label })
      })
    let target: string | URL
    if (isStaticUrl(endpoint)) target = endpoint
    else {
      const url = yield* Effect.exit(bounded(endpoint))
      if (Exit.isFailure(url)) {
        const cause = Cause.squash(url.cause)
        if (cause instanceof TimeoutError) return yield* cause
        return yield* new ConnectError({
          reason: "InvalidUrl",
          url: label,
          detail: `the URL Effect failed: ${causeMessage(cause)}`,
          cause
        })
      }
      target = url.value
    }
    // The connection options were decoded once, headers included: only an Effect's are new.
    let headers: ConnectOptions["headers"] = undefined
    if (settings.headers !== undefined) {
      const read = yield* Effect.exit(bounded(settings.headers))
      if (Exit.isFailure(read)) {
        const cause = Cause.squash(read.cause)
        if (cause instanceof TimeoutError) return yield* cause
        return yield* client.brokenOption("the headers Effect failed", cause)
      }
      headers = read.value
    }
    const handshake = acquireConnection<never, never, never>(
      target,
      headers === undefined ? settings.connection : { ...settings.connection, headers },
      // The attempt's Scope releases the connection from here: the session's, once open.
      (opened) => scope.addFinalizer(opened),
      client.inbound
    )
    // Through the endpoint's circuit breaker when the Client has a registry: an open one refuses
    // at once, with no handshake.
    const breaker = yield* breakerFor(client, index, target)
    const opened: OpenedConnection = yield* (breaker === undefined ? handshake : breaker.run(handshake)).pipe(
      Effect.tapError((error) =>
        Effect.sync(() => Metrics.connectFailed(error._tag === "ConnectError" ? error.reason : error._tag, label))
      )
    )
    const openedAt = countOpened(client, label, startedAt)
    if (settings.onOpen !== undefined) {
      const onOpen = settings.onOpen
      const timeout = settings.onOpenTimeout
      // User code: a failure, a throw or a hang drops this connection, never the supervisor.
      // Its fiber is known: the Client's own `send` and `awaitOpen` on it fail at once (`inOwnOnOpen`).
      const hook = yield* Effect.exit(
        Effect.raceFirst(
          Effect.withFiberRuntime<void, unknown>((fiber) => {
            client.onOpenFiber = fiber
            return onOpen(opened.connection)
          }).pipe(
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () => new TimeoutError({ operation: "onOpen", timeout, url: opened.connection.url })
            })
          ),
          // The peer (or the network) ends the link under the hook: the hook is interrupted.
          Effect.flatMap(opened.listener.awaitClosed, () => opened.listener.endedByPeer ?? Effect.never)
        )
      ).pipe(Effect.ensuring(Effect.sync(() => {
        client.onOpenFiber = undefined
      })))
      if (Exit.isFailure(hook)) {
        // The link ended by the peer's doing before the hook was done (a server that closes with
        // 1008 "bad token" on the credentials `onOpen` sent, a frame over `maxPayload`): the
        // attempt fails with how it ended, its code for `shouldRetry` to read, as any close. Not
        // after `onOpenTimeout`, and not as the hook's own failure at reading a stream that ended
        // (round 33). Whatever the hook failed with once that had happened: the race above
        // interrupts it as soon as the link ends, so only a failure in the same turn gets here.
        const ended = opened.listener.endedByPeer
        if (ended !== undefined) return yield* ended
        // Any other failure, an interruption the hook raised itself included (the supervisor's
        // own interruption never gets here: it skips this fiber's handlers).
        return yield* new OnOpenError({ cause: Cause.squash(hook.cause) })
      }
    }
    client.inbound.offer(opened.listener.inbound)
    // It may have ended already, while onOpen ran: it never became ready.
    const alreadyEnded = opened.listener.endedWith
    if (alreadyEnded !== undefined) return yield* alreadyEnded
    scope.opened = opened
    yield* openSession(client, scope, openedAt, attempt, label, index)
  })

/**
 * A connection opened: counted (connects, latency, reconnects after the first); when, in Clock
 * millis (the wall clock: its Open state's `since`). `startedAt` is the attempt's start on the
 * monotonic reading: a step of the wall clock while connecting recorded latencies of minus an hour
 * or of a day.
 */
export const countOpened = (client: LiveClient, label: string, startedAt: number): number => {
  const latency = monotonicMillis(client.clock) - startedAt
  const openedAt = client.clock.unsafeCurrentTimeMillis()
  const tags = Metrics.endpointLabels(label)
  Metrics.connects.unsafeUpdate(1, tags)
  Metrics.connectLatency.unsafeUpdate(latency, NO_TAGS)
  if (client.opens > 0) Metrics.reconnects.unsafeUpdate(1, tags)
  client.opens++
  return openedAt
}

/** The session is open: from here it runs on callbacks, and the supervisor ends. */
export const openSession = (
  client: LiveClient,
  session: Session,
  openedAt: number,
  attempt: number,
  label: string,
  index: number
): Effect.Effect<void> => {
  const opened = session.opened
  // The same text as the Connecting label, usually: keep one string of it, not two.
  const endpoint = opened.connection.url === label ? label : opened.connection.url
  session.view = ClientState.Open({ attempt, endpoint, since: openedAt })
  session.markUp()
  const log = client.enter(session)
  // Refused: `close` is under way and interrupts this fiber; the attempt's Scope is closed then.
  if (client.openSession !== session) return Effect.interrupt
  opened.listener.watcher = session
  client.outbound.flush(session)
  if (client.settings.heartbeat !== undefined) session.startHeartbeat()
  const returnToPrimary = client.settings.returnToPrimary
  if (index !== 0 && client.settings.strategy === "ordered" && returnToPrimary !== undefined) {
    const probe = new PrimaryProbe(client, session, Duration.toMillis(returnToPrimary))
    session.probe = probe
    probe.start()
  }
  return log
}
