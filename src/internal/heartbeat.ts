/**
 * Dead-peer detection for one open connection. Any inbound frame or pong counts as life; after an
 * interval without one, a probe (protocol ping, or an app-level message) must be answered within
 * the timeout. A gap in this process's own timers (event loop blocked, machine asleep) is not
 * taken as the peer's silence: it leads to an immediate new probe instead of a timeout.
 *
 * A small state machine on one timer, not a fiber: an open Client keeps no fiber alive (idle
 * memory per client is a benchmark target).
 */
import { Duration } from "effect"
import type { Clock } from "effect"
import { TimeoutError } from "../Errors.js"
import type { Message, TransportSocket } from "../Transport.js"
import type { ConnectionListener } from "./connection.js"
import { OPEN } from "./protocol.js"
import type { Timers, TimerTarget } from "./timers.js"

export interface HeartbeatOptions {
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  /** Sent as the probe where the platform has no protocol ping (browsers). */
  readonly message: Message | undefined
}

/** What the heartbeat reports to its client. */
export interface HeartbeatOwner {
  /** The peer did not answer: called once, and the heartbeat stops. */
  readonly onDead: (error: TimeoutError) => void
  /** There is no way to probe on this platform: called once, and the heartbeat stops. */
  readonly onCannotProbe: () => void
}

/** Sends a probe; false when there is no way to probe on this platform. */
const probe = (socket: TransportSocket, message: Message | undefined): boolean => {
  if (socket.readyState() !== OPEN) return false
  if (socket.ping()) return true
  if (message === undefined) return false
  socket.send(message)
  return true
}

/**
 * Samples silence every quarter interval, so a dead peer is found within
 * 1.25 x interval + timeout, and reports it with `TimeoutError heartbeat`.
 */
export class Heartbeat implements TimerTarget {
  private quietSince = 0
  private seen = 0
  /** When the unanswered probe went out; undefined while not waiting for an answer. */
  private probedAt: number | undefined = undefined
  private timer: unknown = undefined
  private stopped = false

  constructor(
    private readonly socket: TransportSocket,
    private readonly listener: ConnectionListener,
    private readonly url: string,
    private readonly options: HeartbeatOptions,
    private readonly clock: Clock.Clock,
    private readonly timers: Timers,
    private readonly owner: HeartbeatOwner
  ) {}

  start(): void {
    this.quietSince = this.clock.unsafeCurrentTimeMillis()
    this.seen = this.listener.activity
    this.after(Duration.toMillis(this.options.interval) / 4)
  }

  stop(): void {
    this.stopped = true
    const timer = this.timer
    this.timer = undefined
    if (timer !== undefined) this.timers.cancel(timer)
  }

  /** The timer fired. */
  fire(): void {
    this.timer = undefined
    if (this.stopped) return
    if (this.probedAt === undefined) this.sample()
    else this.checkAnswer(this.probedAt)
  }

  private after(millis: number): void {
    this.timer = this.timers.after(millis, this)
  }

  /** A paused socket is one whose peer sent more than the consumer has read: alive, and its pong could not be read anyway. */
  private heardFrom(now: number): boolean {
    if (this.listener.activity === this.seen && !this.listener.inbound.isPaused) return false
    this.seen = this.listener.activity
    this.quietSince = now
    return true
  }

  private sample(): void {
    const intervalMillis = Duration.toMillis(this.options.interval)
    const now = this.clock.unsafeCurrentTimeMillis()
    if (this.heardFrom(now) || now - this.quietSince < intervalMillis) return this.after(intervalMillis / 4)
    if (!probe(this.socket, this.options.message)) {
      if (this.socket.readyState() !== OPEN) return this.after(intervalMillis / 4)
      // No protocol ping here (a browser) and no app-level message configured.
      this.stopped = true
      return this.owner.onCannotProbe()
    }
    this.probedAt = now
    this.after(Duration.toMillis(this.options.timeout))
  }

  private checkAnswer(probedAt: number): void {
    this.probedAt = undefined
    const intervalMillis = Duration.toMillis(this.options.interval)
    const timeoutMillis = Duration.toMillis(this.options.timeout)
    const answeredAt = this.clock.unsafeCurrentTimeMillis()
    if (this.heardFrom(answeredAt)) return this.after(intervalMillis / 4)
    // A wait that overran its timer by this much means our own timers were stalled: the answer
    // may be sitting unread behind the stall, so probe again rather than give up.
    const stallTolerance = Math.max(1000, timeoutMillis / 2)
    if (answeredAt - probedAt > timeoutMillis + stallTolerance) {
      this.quietSince = answeredAt - intervalMillis
      return this.after(intervalMillis / 4)
    }
    this.stopped = true
    this.owner.onDead(new TimeoutError({ operation: "heartbeat", timeout: this.options.timeout, url: this.url }, true))
  }
}
