/**
 * Dead-peer detection for one open connection. Any inbound frame or pong counts as life; once an
 * interval has passed since the last one, a probe (protocol ping, or an app-level message) must be
 * answered within the timeout (or, with `probe: false`, the peer's own next frame must come). A gap in this process's own timers (event loop blocked, machine
 * asleep where the monotonic clock counts sleep) is not taken as the peer's silence: it leads to
 * an immediate new probe instead of a timeout. Times are the Clock's monotonic reading (its nanos),
 * not its wall clock: a step of the wall clock (NTP, a user, a VM restored) moves neither.
 *
 * A small state machine on one timer, not a fiber: an open Client keeps no fiber alive (idle
 * memory per client is a benchmark target).
 */
import type { Clock } from "effect"
import * as Duration from "effect/Duration"
import { TimeoutError } from "../Errors.js"
import type { Message, TransportSocket } from "../Transport.js"
import type { ConnectionListener } from "./connection.js"
import { monotonicMillis } from "./primitives/timers.js"
import type { Timers, TimerTarget } from "./primitives/timers.js"
import { OPEN } from "./protocol.js"

export interface HeartbeatOptions {
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  /** Sent as the probe where the platform has no protocol ping (browsers). */
  readonly message: Message | undefined
  /** False: no probe is sent; the peer pings, and `interval + timeout` (+ interval / 4) of its silence is death. */
  readonly probe: boolean
}

/** The connection a heartbeat watches. */
interface Watched {
  readonly socket: TransportSocket
  readonly listener: ConnectionListener
  readonly connection: { readonly url: string }
}

/** What a `Heartbeat` on its own watches and reports to. */
export interface HeartbeatOwner {
  /** The connection watched (read through here, not copied into fields: idle memory per client). */
  readonly opened: Watched
  /** The peer did not answer: called once, and the heartbeat stops. */
  readonly onDead: (error: TimeoutError) => void
  /** There is no way to probe on this platform: called once, and the heartbeat stops. */
  readonly onCannotProbe: () => void
  /** A step threw (see `HeartbeatCore.onFailed`); without it, the throw goes on (the tests' owners). */
  readonly onFailed?: ((defect: unknown) => void) | undefined
}

/** Sends a probe; false when there is no way to probe on this platform. */
const probe = (socket: TransportSocket, message: Message | undefined): boolean => {
  if (socket.readyState() !== OPEN) return false
  if (socket.ping()) return true
  if (message === undefined) return false
  socket.send(message)
  return true
}

/** The first monotonic Clock reading of any heartbeat: what their times count from. */
let epoch: number | undefined

/**
 * What the heartbeats of one Clock know of its two readings: how far the wall clock is ahead of
 * the monotonic one, and when (in heartbeat time) that lead last grew by a second or more. The
 * monotonic reading does not count a machine's sleep (Linux, macOS) and the wall clock does, so a
 * lead that grew means the machine slept (or the wall clock was stepped forward): every heartbeat
 * of that Clock then probes at its next step, as a timer stalled by a blocked loop does. A probe
 * too many is all a step costs. Per Clock: a TestClock's readings move together, and two Clocks'
 * leads have nothing to do with each other.
 */
const leads = new WeakMap<Clock.Clock, [lead: number, grewAt: number]>()

/** When (heartbeat time) this Clock's wall reading last jumped ahead of its monotonic one. */
const resumedAt = (clock: Clock.Clock, now: number): number => {
  // Both readings in millis: the wall clock's, and the monotonic one's since `epoch`.
  const lead = clock.unsafeCurrentTimeMillis() - now
  const known = leads.get(clock)
  if (known === undefined) {
    leads.set(clock, [lead, -Infinity])
    return -Infinity
  }
  if (lead - known[0] >= 1000) known[1] = now
  known[0] = lead
  return known[1]
}

/**
 * The bound, on the Clock: a peer is found dead at most `interval + timeout` after its last sign
 * of life, and reported with `TimeoutError heartbeat` (a live timer may fire up to about 10 ms
 * late where the Node transport is loaded: timers share a setTimeout per 10 ms slot; a stall of this process's own timers buys the
 * peer a new probe, see above).
 *
 * Silence is counted from the last sign of life, not from when the heartbeat noticed it. A pong
 * tells the heartbeat at once, so the next probe goes out exactly `interval` after it: an idle
 * peer that answers is probed every `interval` (plus the round trip). A data frame costs nothing
 * on arrival (the listener only counts it), so the heartbeat samples the count every quarter
 * interval and dates a frame it finds to the sample before: the probe goes out between 3/4
 * interval and interval after that frame, and frames less than 3/4 interval apart keep the link
 * up without probes. The probe's answer is awaited `timeout`, sampled the same way. With
 * `probe: false` a frame is dated to the sample that saw it (no probe makes up for an early date):
 * the peer is found dead between `interval + timeout` and a quarter interval more after it.
 *
 * A probe queued behind outbound bytes (a backlog on a slow link) cannot be answered before they
 * have gone. While it waits behind them, each sample that finds the network took more of them
 * (the transport's `sentBytes`) restarts the wait: the link moved, and that step counts as a sign
 * of life. So a backlog that keeps draining keeps the link up, however long it takes, and the peer
 * is found dead once the backlog made no progress for `timeout`. Once the probe itself has gone
 * (`sentBytes` reached its end), its answer is awaited `timeout` from the sample that saw it go,
 * and later steps no longer count (a proxy may keep taking bytes for a dead peer). The bound above
 * holds with those steps counted: a step is seen at most a sample (interval / 4) after it, so the
 * peer is found at most interval / 4 + timeout after the last one. Measured from the last inbound
 * frame or pong L and the time D the link stopped taking bytes: at most
 * `max(L + interval, D + interval / 4) + timeout`.
 *
 * The kernel reports progress in steps: Linux lets a process write more only once a third of the
 * socket's send buffer is free, so the backlog is seen to move every (send buffer / 3) / link
 * rate, and a probe that has gone still waits behind what the kernel holds (up to its send
 * buffer). `timeout` must exceed both (measured at 1 Mbit/s: steps of about 0.33 MB, 2 to 5 s
 * apart; docs/trials.md). A transport without `sentBytes` (or a probe queued behind nothing, even
 * where the browser takes it on a later turn) gives the old rule: the answer is awaited `timeout`
 * after the probe was queued.
 */
/**
 * The state machine itself, as a base class: a Client's session extends it, as a scope
 * (`SessionScope(HeartbeatCore)`, `session.ts`), so an open session, its scope and its heartbeat
 * are one object (idle memory per client is a benchmark target); the small Client's `Heartbeat`
 * extends it alone. What it watches, its options, its Clock and timers, and whom it reports to are
 * its subclass's.
 */
export abstract class HeartbeatCore implements TimerTarget {
  // Times are the Clock's monotonic millis since `epoch`: small integers, held in the fields
  // themselves, where Clock millis (past 2^31) would each be a number object of their own (16 bytes).
  /**
   * At or before the peer's last sign of life: a pong's own time, or the sample before a frame was
   * counted (with `probe: false`, the sample that counted it, or a wake: at or after it).
   */
  private lastLife = 0
  /** The last sample, and the activity count it saw. */
  private sampledAt = 0
  private seen = 0
  /**
   * When the timer should fire: one that fires far later means this process's timers were stalled.
   * Below zero while the timer is the one more look at a wait that ran out (`step`).
   */
  private dueAt = 0
  /**
   * When the unanswered probe went out, or its wait last restarted (see `sampleDrain`); undefined
   * while not waiting for an answer.
   */
  private probedAt: number | undefined = undefined
  /** While the probe waits behind queued bytes: the socket's `sentBytes` once it is out; -1 otherwise. */
  private probeEnd = -1
  /**
   * The socket's `sentBytes` at the last sample, while `probeEnd` is set (never below zero).
   * While the socket is paused, -1 - the time the last unawaited probe went out (see `sample`):
   * one field for both, as idle memory per client is a benchmark target.
   */
  private sent = 0
  private timer: unknown = undefined
  private stopped = false
  /** When the session opened, on the same reading: its uptime counts from here (see `markUp`). */
  private upSince = 0

  /** The connection watched. */
  abstract readonly opened: Watched
  protected abstract readonly heartbeatOptions: HeartbeatOptions
  protected abstract readonly clock: Clock.Clock
  protected abstract readonly timers: Timers
  /** The peer did not answer: called once, and the heartbeat stops. */
  abstract onDead(error: TimeoutError): void
  /** There is no way to probe on this platform: called once, and the heartbeat stops. */
  abstract onCannotProbe(): void
  /**
   * A step of the heartbeat threw (a defect, or a Clock that throws), in a timer's or the socket's
   * callback: called once, and the heartbeat stops. Never thrown on into the callback (invariant 1).
   */
  abstract onFailed(defect: unknown): void

  private get socket(): TransportSocket {
    return this.opened.socket
  }

  private get listener(): ConnectionListener {
    return this.opened.listener
  }

  private now(): number {
    // Monotonic (the Clock's nanos): a step of the wall clock is no silence and no sign of life.
    // Back an hour, the peer went unprobed for that hour; forward, a probe's wait ran out at once.
    const now = monotonicMillis(this.clock)
    // Rounded: V8 keeps the integer it returns in the field, where a difference of two Clock
    // millis would be a number object even when it is whole.
    return Math.round(now - (epoch ??= now))
  }

  /**
   * The session is open from now: `uptime` counts from here, on the monotonic reading (a Client's
   * `minUptime`). On the wall clock, a step back while open made a long session look short (the
   * backoff not reset), a step forward made a short one look long (reset).
   */
  markUp(): void {
    this.upSince = this.now()
  }

  /** Millis since `markUp`, on the monotonic reading. */
  uptime(): number {
    return this.now() - this.upSince
  }

  startHeartbeat(): void {
    const now = this.now()
    // Read the Clock's lead now, so a sleep before this heartbeat's first step is seen at it.
    resumedAt(this.clock, now)
    this.lastLife = now
    this.sampledAt = now
    this.seen = this.listener.activity
    this.listener.pongWatcher = this
    this.schedule(now)
  }

  stopHeartbeat(): void {
    this.stopped = true
    if (this.listener.pongWatcher === this) this.listener.pongWatcher = undefined
    const timer = this.timer
    this.timer = undefined
    if (timer !== undefined) this.timers.cancel(timer, this)
  }

  /** A pong arrived (the listener tells at once; pongs are rare): the peer was alive just now. */
  onPong(): void {
    if (this.stopped) return
    try {
      this.lastLife = this.now()
    } catch (defect) {
      return this.failed(defect)
    }
    this.probedAt = undefined
  }

  private failed(defect: unknown): void {
    this.stopHeartbeat()
    this.onFailed(defect)
  }

  /** The timer fired. */
  fire(): void {
    this.timer = undefined
    if (this.stopped) return
    try {
      this.step()
    } catch (defect) {
      this.failed(defect)
    }
  }

  private step(): void {
    const now = this.now()
    // Below zero: this step looks once more at a wait that ran out (below), on time by definition.
    const late = this.dueAt < 0 ? 0 : now - this.dueAt
    const sampledBefore = this.sampledAt
    this.sample(now)
    // The machine slept since the last sample (or the wall clock went forward): the peer's last
    // sign of life and any probe's wait are older than they look. Probe now, and wait afresh.
    if (resumedAt(this.clock, now) > sampledBefore) {
      if (this.heartbeatOptions.probe) return this.sendProbe(now)
      // No probe to send (`probe: false`): the peer's silence counts afresh, so a peer that pings
      // every `interval` is not due before its next ping (a probe's `timeout` would be shorter).
      this.lastLife = now
      this.probedAt = undefined
      return this.schedule(now)
    }
    const probedAt = this.probedAt
    if (probedAt !== undefined) {
      const timeoutMillis = Duration.toMillis(this.heartbeatOptions.timeout)
      if (now < probedAt + timeoutMillis) return this.schedule(now)
      // A wait that overran its timer by this much means our own timers were stalled: the answer
      // may be sitting unread behind the stall, so probe again rather than give up.
      if (late <= Math.max(1000, timeoutMillis / 2)) {
        // A timer that fired late (this process held up, however briefly) runs before the I/O of
        // its turn: the answer may have come meanwhile and wait unread. Look once more, on the
        // next turn, after that I/O (a Client whose loop stalled under load was found "dead" with
        // its pong in the socket). A Clock that fires on time (TestClock) decides at once.
        if (late > 0) {
          this.dueAt = -1 - now
          this.timer = this.timers.after(0, this)
          return
        }
        this.stopped = true
        this.listener.pongWatcher = undefined
        return this.onDead(
          new TimeoutError({
            operation: "heartbeat",
            timeout: this.heartbeatOptions.timeout,
            url: this.opened.connection.url
          })
        )
      }
    } else if (now - this.lastLife < Duration.toMillis(this.heartbeatOptions.interval)) {
      return this.schedule(now)
    }
    this.sendProbe(now)
  }

  /**
   * A paused socket is one whose peer sent more than the consumer has read: alive as far as can
   * be told, as its pong could not be read anyway (probes go out all the same, see below).
   */
  private sample(now: number): void {
    if (this.listener.activity !== this.seen) {
      this.seen = this.listener.activity
      // It arrived after the previous sample: date it there, never later than it could have been
      // (a probe goes out early, at worst). With no probe to go out, dated to this sample: never
      // earlier than it was, so a peer that pings every `interval` is not due before its next ping.
      const seenAt = this.heartbeatOptions.probe ? this.sampledAt : now
      if (seenAt > this.lastLife) this.lastLife = seenAt
      this.probedAt = undefined
    }
    if (this.listener.inbound.isPaused) {
      this.lastLife = now
      this.probedAt = undefined
      // Its answer could not be read, but a probe still goes out each interval, unawaited: a peer
      // that is gone answers it with a reset, and the write after that ends the link (a consumer
      // stuck behind a dead peer's frames no longer shows the link Open for as long as it is stuck).
      if (
        this.heartbeatOptions.probe &&
        (this.sent >= 0 || now + 1 + this.sent >= Duration.toMillis(this.heartbeatOptions.interval))
      ) {
        this.sent = -1 - now
        probe(this.socket, this.heartbeatOptions.message)
      }
    }
    if (this.probedAt !== undefined && this.probeEnd >= 0) this.sampleDrain(now)
    this.sampledAt = now
  }

  /**
   * The probe still waits behind bytes queued before it: a peer cannot answer what it has not
   * received. Each time the network is found to have taken more of them, the link moved: the wait
   * restarts now. Once the probe itself is out, the answer is awaited `timeout` from the sample
   * that saw it go, and later progress no longer counts (a middlebox may take bytes for a dead peer).
   */
  private sampleDrain(now: number): void {
    const sent = this.socket.sentBytes?.() ?? this.sent
    const before = this.sent
    this.sent = sent
    if (sent <= before) return
    this.probedAt = now
    if (sent >= this.probeEnd) this.probeEnd = -1
  }

  private sendProbe(now: number): void {
    this.probedAt = undefined
    if (!this.heartbeatOptions.probe) {
      // A peer that pings by itself (Engine.IO, SignalR): its silence for `interval` starts the
      // `timeout`, as a probe would, with nothing sent.
      this.probedAt = now
      this.probeEnd = -1
      return this.schedule(now)
    }
    // Nothing queued ahead of the probe: it is not behind a backlog, even where `bufferedAmount`
    // counts the probe itself until a later turn (browsers hand it to the network after this call).
    const ahead = this.socket.bufferedAmount()
    if (!probe(this.socket, this.heartbeatOptions.message)) {
      if (this.socket.readyState() !== OPEN) return this.schedule(now)
      // No protocol ping here (a browser) and no app-level message configured.
      this.stopped = true
      this.listener.pongWatcher = undefined
      return this.onCannotProbe()
    }
    this.probedAt = now
    // The probe is out once the network has taken what is queued now (`bufferedAmount` counts the
    // probe; on Node it also counts what the kernel took of a write still under way, so this is
    // at or after the probe's real end).
    const sent = this.socket.sentBytes?.()
    const queued = this.socket.bufferedAmount()
    this.probeEnd = sent === undefined || ahead === 0 || queued === 0 ? -1 : sent + queued
    if (sent !== undefined) this.sent = sent
    this.schedule(now)
  }

  /** The next sample: a quarter interval on, or sooner when the probe or its answer falls due. */
  private schedule(now: number): void {
    const quarter = Duration.toMillis(this.heartbeatOptions.interval) / 4
    const due = this.probedAt === undefined
      ? this.lastLife + Duration.toMillis(this.heartbeatOptions.interval)
      : this.probedAt + Duration.toMillis(this.heartbeatOptions.timeout)
    const wait = due > now ? Math.min(quarter, due - now) : quarter
    this.dueAt = now + wait
    this.timer = this.timers.after(wait, this)
  }
}

/** A heartbeat on its own, reporting to an owner (a session is its own: `session.ts`). */
export class Heartbeat extends HeartbeatCore {
  constructor(
    private readonly owner: HeartbeatOwner,
    protected readonly heartbeatOptions: HeartbeatOptions,
    protected readonly clock: Clock.Clock,
    protected readonly timers: Timers
  ) {
    super()
  }

  get opened(): Watched {
    return this.owner.opened
  }

  onDead(error: TimeoutError): void {
    this.owner.onDead(error)
  }

  onCannotProbe(): void {
    this.owner.onCannotProbe()
  }

  onFailed(defect: unknown): void {
    if (this.owner.onFailed === undefined) throw defect
    this.owner.onFailed(defect)
  }

  start(): void {
    this.startHeartbeat()
  }

  stop(): void {
    this.stopHeartbeat()
  }
}
