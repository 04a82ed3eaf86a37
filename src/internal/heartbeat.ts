/**
 * Dead-peer detection for one open connection. Any inbound frame or pong counts as life; after an
 * interval without one, a probe (protocol ping, or an app-level message) must be answered within
 * the timeout. A gap in this process's own timers (event loop blocked, machine asleep) is not
 * taken as the peer's silence: it leads to an immediate new probe instead of a timeout.
 */
import { Clock, Duration, Effect } from "effect"
import { TimeoutError } from "../Errors.js"
import type { Message, TransportSocket } from "../Transport.js"
import type { ConnectionListener } from "./connection.js"
import { OPEN } from "./protocol.js"

export interface HeartbeatOptions {
  readonly interval: Duration.Duration
  readonly timeout: Duration.Duration
  /** Sent as the probe where the platform has no protocol ping (browsers). */
  readonly message: Message | undefined
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
 * Runs until the peer stops answering, then fails with `TimeoutError heartbeat`. Silence is
 * sampled every quarter interval, so a dead peer is found within 1.25 x interval + timeout.
 */
export const runHeartbeat = (
  socket: TransportSocket,
  listener: ConnectionListener,
  url: string,
  options: HeartbeatOptions
): Effect.Effect<never, TimeoutError> =>
  Effect.gen(function*() {
    const intervalMillis = Duration.toMillis(options.interval)
    const tick = Duration.millis(intervalMillis / 4)
    const timeoutMillis = Duration.toMillis(options.timeout)
    // A wait that overran its timer by this much means our own timers were stalled.
    const stallTolerance = Math.max(1000, timeoutMillis / 2)
    let quietSince = yield* Clock.currentTimeMillis
    let seen = listener.activity
    while (true) {
      yield* Effect.sleep(tick)
      const now = yield* Clock.currentTimeMillis
      // A paused socket is one whose peer sent more than the consumer has read: alive, and its
      // pong could not be read anyway.
      if (listener.activity !== seen || listener.inbound.isPaused) {
        seen = listener.activity
        quietSince = now
        continue
      }
      if (now - quietSince < intervalMillis) continue
      if (!probe(socket, options.message)) {
        if (socket.readyState() === OPEN) {
          // No protocol ping here (a browser) and no app-level message configured: say so once.
          yield* Effect.logWarning("lifeline: heartbeat cannot probe on this platform; set heartbeat.message (and isPong)")
          return yield* Effect.never
        }
        continue
      }
      const probedAt = now
      yield* Effect.sleep(options.timeout)
      const answeredAt = yield* Clock.currentTimeMillis
      if (listener.activity !== seen || listener.inbound.isPaused) {
        seen = listener.activity
        quietSince = answeredAt
        continue
      }
      if (answeredAt - probedAt > timeoutMillis + stallTolerance) {
        // The answer may be sitting unread behind the stall: probe again rather than give up.
        quietSince = answeredAt - intervalMillis
        continue
      }
      return yield* Effect.fail(new TimeoutError({ operation: "heartbeat", timeout: options.timeout, url }, true))
    }
  })
