/**
 * The Client's attempts on callbacks, for a Client whose attempts run no user code (static
 * endpoints, no headers Effect, no `onOpen`, no breakers, the default `shouldRetry` and `retry`)
 * and whose connect span nobody could read (Effect's own tracer): the socket is made where the
 * attempt starts (`make`, `reconnect` from Closed, the backoff's timer) and its open event opens
 * the session in its callback; a failed attempt decides what follows once its socket has closed,
 * and backs off on one timer, whose end starts the next attempt. No fiber, no fiber hop between
 * the socket's open and `awaitOpen`; a fiber runs only for a session's release and for a log line
 * that the level lets through (loggers are user code: invariant 1). Installed by the Node transport
 * (`NodeTransport.ts`, where it is loaded): a browser page holds a Client or two, and its bundle does without this.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Tracer from "effect/Tracer"
import { ConnectError } from "../../Errors.js"
import type { TimeoutError } from "../../Errors.js"
import type { ClientError } from "../../Reconnect.js"
import { defaultSchedule, isRetryable } from "../../Reconnect.js"
import { Transport } from "../../Transport.js"
import type { OpenedConnection, OpenWaiter } from "../connection.js"
import { createConnection, releaseOpened } from "../connection.js"
import * as Metrics from "../metrics.js"
import { checkEndpoint, isStaticUrl } from "../parseEndpoint.js"
import { monotonicMillis } from "../primitives/timers.js"
import type { Timers, TimerTarget } from "../primitives/timers.js"
import { GOING_AWAY } from "../protocol.js"
import type { LiveClient } from "./liveClient.js"
import { failClient, labelOf } from "./liveClient.js"
import type { Phase } from "./phase.js"
import { Session } from "./session.js"
import { BackoffWait, callbacks, countOpened, openSession } from "./supervisor.js"

/** Installs the attempts on callbacks for every Client made from here on (the Node transport calls it where it is loaded). */
export const install = (): void => {
  callbacks.attempt = (client) => eligible(client) && (attempt(client), true)
  callbacks.decide = (client, error, uptime) => eligible(client) && (decide(client, error, uptime), true)
}

const live = DefaultServices.liveServices

/**
 * Whether an attempt runs no user code (static endpoints, no headers Effect, no `onOpen`, no
 * breakers, no `random` pick among several, the default `shouldRetry` and schedule with Effect's
 * own `Random`), and no tracer but Effect's own could read its span.
 */
const eligible = (client: LiveClient): boolean => {
  const { connection, endpoints, headers, invalid, onOpen, schedule, shouldRetry, strategy } = client.settings
  const services = FiberRefs.getOrDefault(client.runtime.fiberRefs, DefaultServices.currentServices)
  return invalid === undefined && headers === undefined && onOpen === undefined && client.registry === undefined &&
    connection.tls === undefined && (strategy !== "random" || endpoints.length === 1) &&
    endpoints.every(isStaticUrl) &&
    shouldRetry === isRetryable && schedule === defaultSchedule &&
    Context.get(services, Tracer.Tracer) === Context.get(live, Tracer.Tracer) &&
    Context.get(services, Random.Random) === Context.get(live, Random.Random)
}

// `Reconnect.defaultSchedule` (`exponentialBackoff()`) as arithmetic: delay n is uniform in
// [0.1, 1.9] x min(1.1 s x 2^n, 30 s / 1.9), at least 1 ms (test/callbacks.test.ts holds the two together).
const BASE = 1100
const FACTOR = 2
const JITTER = 0.9
const LARGEST_CENTRE = 30_000 / (1 + JITTER)

/** The default schedule's delay `step` (0 for the first), in millis, for `random` in [0, 1). */
export const defaultDelay = (step: number, random: number): number =>
  Math.max(
    1,
    Math.floor(Math.min(BASE * Math.pow(FACTOR, step), LARGEST_CENTRE) * (1 - JITTER + 2 * JITTER * random))
  )

/**
 * `enter` outside a fiber: the log line runs on one (loggers are user code), unless its level
 * (the observer's rule: a first Backoff warns, the Open after one informs, a Closed by an error
 * warns, the rest is debug) is below the Client's minimum; then nothing runs.
 */
const enterOutside = (client: LiveClient, next: Phase): void => {
  const down = client.downSince !== undefined
  const level = next._tag === "Closed" || (next._tag === "Backoff" && !down)
    ? LogLevel.Warning
    : next._tag === "Open" && down
    ? LogLevel.Info
    : LogLevel.Debug
  const log = client.enter(next)
  if (
    log !== Effect.void &&
    !LogLevel.lessThan(level, FiberRefs.getOrDefault(client.runtime.fiberRefs, FiberRef.currentMinimumLogLevel))
  ) client.fork(log, false)
}

/**
 * An error ends the client, outside a fiber. (A throw here, forking its log line, goes to the
 * entry point's catch: `failClient` then fails what was queued.)
 */
const stopNow = (client: LiveClient, error: ClientError): void => {
  enterOutside(client, { _tag: "Closed", error: Option.some(error), byClose: false })
  client.outbound.failQueued()
}

/**
 * What the supervisor's `decide` does, with no fiber: the default `shouldRetry` and schedule are
 * not user code. Stops the client, or enters Backoff on one timer whose end (or `reconnect`, or
 * `online`) starts the next attempt; at once if `reconnect` asked to skip the wait.
 */
const decide = guarded(decideNow)

/**
 * One entry point of this path (an attempt's start, a decision; `Attempt` guards its open's
 * outcome and its close watch): what it throws closes the Client, never goes on into the socket's
 * or timer's callback (invariant 1).
 */
function guarded<A extends ReadonlyArray<unknown>>(
  step: (client: LiveClient, ...args: A) => void
): (client: LiveClient, ...args: A) => void {
  return (client, ...args) => {
    try {
      step(client, ...args)
    } catch (defect) {
      failClient(client, defect)
    }
  }
}

function decideNow(client: LiveClient, error: ClientError, uptime: number): void {
  const settings = client.settings
  if (!isRetryable(error)) return stopNow(client, error)
  if (uptime >= Duration.toMillis(settings.minUptime)) {
    client.resetBackoff()
    client.attempt = 1
  }
  // The schedule steps once per failure and starts again with the attempt count: the failure of
  // attempt n is step n - 1.
  let delay = Math.max(settings.minRetryDelay, defaultDelay(Math.max(0, client.attempt - 1), Math.random()))
  if (error._tag === "ConnectError" && error.retryAfter !== undefined) {
    delay = Math.max(delay, Duration.toMillis(error.retryAfter))
  }
  const skip = client.phase._tag === "Connecting" && client.phase.skipWait
  const wait = new Backoff(client, client.timers, Context.get(client.runtime.context, Transport).network)
  // Skipped (`reconnect`): the state and its line say no wait, not the delay that is not waited.
  const phase: Phase = {
    _tag: "Backoff",
    attempt: client.attempt,
    delay: Duration.millis(skip ? 0 : delay),
    error,
    wait
  }
  wait.phase = phase
  enterOutside(client, phase)
  if (skip) wait.wake()
  else if (client.phase === phase) {
    wait.listen()
    wait.start(delay)
  }
}

/** The backoff's wait, over by its timer (false), `reconnect` or `online` (true): the next attempt. */
class Backoff extends BackoffWait {
  phase: Phase | undefined = undefined

  constructor(private readonly client: LiveClient, timers: Timers, network: Transport["network"]) {
    super(timers, network)
  }

  override wake(): void {
    if (this.finish()) this.next(true)
  }

  protected override timedOut(): void {
    this.next(false)
  }

  private next(woken: boolean): void {
    const client = this.client
    // `close` came first.
    if (client.phase !== this.phase) return
    if (woken) client.resetBackoff()
    attempt(client)
  }
}

/** What the supervisor's attempt does, up to the socket's creation: the rest is `Attempt`'s. */
const attempt = guarded(attemptNow)

function attemptNow(client: LiveClient): void {
  const settings = client.settings
  client.attempt++
  const attempt = client.attempt
  // No breaker registry, no `random` among several: the strategy's pick.
  const count = settings.endpoints.length
  const index = count === 1 ? 0 : (settings.strategy === "ordered" ? client.series : client.total) % count
  client.series++
  const endpoint = settings.endpoints[index] as string | URL
  client.total++
  const label = client.labels[index] ??= labelOf(endpoint)
  client.currentLabel = label
  const phase: Phase = { _tag: "Connecting", attempt, endpoint: label, skipWait: false }
  enterOutside(client, phase)
  if (client.phase !== phase) return
  // Monotonic: the connect latency is a duration (see `countOpened`).
  const startedAt = monotonicMillis(client.clock)
  const parsed = checkEndpoint(endpoint)
  const opened: OpenedConnection | ConnectError = parsed instanceof ConnectError
    ? parsed
    : createConnection(parsed, settings.connection, Context.get(client.runtime.context, Transport), client.inbound)
  if (opened instanceof ConnectError) {
    Metrics.connectFailed(opened.reason, label)
    return decide(client, opened, 0)
  }
  const pending = new Attempt(client, phase, opened, index, label, attempt, startedAt)
  phase.pending = pending
  try {
    pending.waiter = opened.listener.waitOpen(
      settings.connection.openTimeout,
      client.timers,
      (exit) => pending.settled(exit)
    )
  } catch (defect) {
    opened.socket.terminate()
    throw defect
  }
}

/**
 * An attempt on callbacks: the wait for the open, then the session or, after a failure, the wait
 * for its socket to close (at most `closeTimeout`: then it is terminated) before what follows is
 * decided, as the supervisor's release of a failed attempt would.
 */
class Attempt implements TimerTarget {
  waiter: OpenWaiter | undefined = undefined
  private error: ClientError | undefined = undefined
  private timer: unknown = undefined

  constructor(
    private readonly client: LiveClient,
    private readonly phase: Phase,
    private readonly opened: OpenedConnection,
    private readonly index: number,
    private readonly label: string,
    private readonly attempt: number,
    private readonly startedAt: number
  ) {}

  /** The open's outcome, in the socket's or the open timer's callback. */
  settled(exit: Exit.Exit<void, ConnectError | TimeoutError>): void {
    try {
      this.settledNow(exit)
    } catch (defect) {
      this.failed(defect)
    }
  }

  /** A throw in a step of this attempt: its socket goes with the Client (see `failed`). */
  private failed(defect: unknown): void {
    this.client.timers.cancel(this.timer, this)
    // The throw came after the session opened (its log line, its heartbeat's or probe's start):
    // Closed is no move from Open, and the session's close watch is its own.
    const session = this.client.openSession
    if (session !== undefined && session.opened === this.opened) {
      // Its heartbeat and primary probe stopped, its close watch taken away.
      session.detach()
      return failClient(this.client, defect, session)
    }
    this.opened.listener.watcher = undefined
    this.opened.socket.terminate()
    failClient(this.client, defect)
  }

  private settledNow(exit: Exit.Exit<void, ConnectError | TimeoutError>): void {
    const client = this.client
    // `close` abandoned it (and releases its socket).
    if (client.phase !== this.phase) return
    const opened = this.opened
    const listener = opened.listener
    if (Exit.isSuccess(exit)) {
      // What the supervisor does on an open with no `onOpen`: counted, the session opened.
      const openedAt = countOpened(client, this.label, this.startedAt)
      client.inbound.offer(listener.inbound)
      // It may have ended already (a transport that reports its open and its close at once): it
      // never became ready, and what follows is decided, as on the supervisor's path.
      const ended = listener.endedWith
      if (ended !== undefined) {
        this.error = ended
        return this.decide()
      }
      // The session is the scope that releases the connection.
      const session = new Session(client)
      session.opened = opened
      session.add(opened)
      const down = client.downSince !== undefined
      const log = openSession(
        client,
        session,
        openedAt,
        this.attempt,
        this.label,
        this.index
      )
      // The observer's rule: the Open after a Backoff informs ("link back"), any other is debug.
      if (!LogLevel.lessThan(down ? LogLevel.Info : LogLevel.Debug, minimumLevel(client))) client.fork(log, false)
      return
    }
    const error = this.error = Cause.squash(exit.cause) as ConnectError | TimeoutError
    Metrics.connectFailed(error._tag === "ConnectError" ? error.reason : error._tag, this.label)
    // A handshake that timed out is still CONNECTING: abort it.
    listener.requestClose(GOING_AWAY, "")
    if (listener.endedWith !== undefined) return this.decide()
    listener.watcher = this
    this.timer = client.timers.after(Duration.toMillis(listener.closeTimeout), this)
  }

  connectionEnded(): void {
    this.decide()
  }

  /** The socket did not report its close in time. */
  fire(): void {
    this.timer = undefined
    try {
      this.opened.socket.terminate()
    } catch (defect) {
      return this.failed(defect)
    }
    this.decide()
  }

  private decide(): void {
    this.opened.listener.watcher = undefined
    this.client.timers.cancel(this.timer, this)
    if (this.client.phase === this.phase) decide(this.client, this.error!, 0)
  }

  /** `close`: the attempt ends here, its socket released. */
  abandon(): Effect.Effect<void> {
    this.waiter?.finish()
    this.opened.listener.watcher = undefined
    this.client.timers.cancel(this.timer, this)
    return releaseOpened(this.opened, Exit.interrupt(FiberId.none))
  }
}

const minimumLevel = (client: LiveClient): LogLevel.LogLevel =>
  FiberRefs.getOrDefault(client.runtime.fiberRefs, FiberRef.currentMinimumLogLevel)
