/**
 * Reconnect policy: which errors are worth retrying, and the default backoff `Schedule`
 * (exponential, jittered, capped). Both are plain values that compose with Effect's own.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"

import type { ConnectError, Disconnected, TimeoutError } from "./Errors.js"
import type { OnOpenError } from "./Errors.js"
import type { CircuitOpenError } from "./Errors.js"

/**
 * Every error that can end a Client's connection attempt or session.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientError = ConnectError | TimeoutError | Disconnected | OnOpenError | CircuitOpenError

/** Close codes that mean "this will fail again": protocol error, unsupported data, invalid data, policy, too big, extension. */
const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([1002, 1003, 1007, 1008, 1009, 1010])

/**
 * The default `shouldRetry`: false for errors that will recur on every attempt: `InvalidUrl`,
 * `InvalidOptions`, `ProtocolViolation`, an HTTP rejection below 500 (1xx, 2xx, 3xx, 4xx) other than 408 and 429, and close
 * codes 1002, 1003, 1007, 1008, 1009, 1010. Everything else is transient, `CircuitOpenError`
 * included: its `retryAt` is the earliest time a next attempt can be admitted, so a retry should
 * wait at least until then (the largest Date while the breaker is isolated by hand).
 *
 * @since 0.1.0
 * @category policies
 */
export const isRetryable = (error: ClientError): boolean => {
  switch (error._tag) {
    case "ConnectError":
      switch (error.reason) {
        case "InvalidUrl":
        case "InvalidOptions":
        case "ProtocolViolation":
          return false
        case "HandshakeRejected":
          // Below 500: 3xx too (redirects are not followed, so the same answer comes back), and a
          // 1xx or 2xx that is not 101 (not a WebSocket server).
          return error.status === undefined || error.status >= 500 || error.status === 408 || error.status === 429
        default:
          return true
      }
    case "Disconnected":
      return !FATAL_CLOSE_CODES.has(error.code)
    case "TimeoutError":
    case "OnOpenError":
    case "CircuitOpenError":
      return true
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BackoffOptions {
  /** The first delay's centre. Default 1.1 s. */
  readonly base?: Duration.DurationInput | undefined
  /** Growth per attempt. Default 2; below 1 (or NaN) is taken as 1, so delays never shrink. */
  readonly factor?: number | undefined
  /** Largest delay: the centre stops growing at cap / (1 + jitter). Default 30 s. */
  readonly cap?: Duration.DurationInput | undefined
  /**
   * How far each delay strays from its centre, as a share of it, from 0 (none) to 1: a delay
   * with centre `d` is uniform in [d x (1 - jitter), d x (1 + jitter)]. Default 0.9; NaN means
   * the default, other values outside [0, 1] are clamped. `{ base: b / 2, jitter: 1 }` is the
   * classic full jitter: uniform in (0, b x factor^n].
   */
  readonly jitter?: number | undefined
}

/**
 * Exponential backoff with jitter: the n-th delay (from 0) is uniform in
 * [d x (1 - jitter), d x (1 + jitter)] with d = min(cap / (1 + jitter), base x factor^n), so
 * never above `cap`, and never below 1 ms.
 * Safe after any number of attempts: the exponent overflows to Infinity, which a finite cap
 * bounds, so the delay is never zero or NaN, and never above the cap.
 *
 * The defaults (1.1 s, x2, 30 s, jitter 0.9) are chosen for the herd: when a server that many
 * clients use comes back after a 1 s outage, about 8 % of the clients reconnect in the busiest
 * 100 ms, the median client is back about 0.85 s after the return and 90 % within about 3 s
 * (`npm run bench`, 1,000 clients; `bench/herdModel.ts`). Jitter around the centre, rather than below
 * it, keeps the retries during a short outage few (about half a failed retry per client, against
 * two with full jitter from 500 ms) and the first retry at least 110 ms after the close. A base
 * of 1 s puts more of the first retries just after the return (9-13 % per 100 ms); 1.2 s moves
 * the median close to 1 s.
 *
 * @since 0.1.0
 * @category policies
 */
export const exponentialBackoff = (options: BackoffOptions = {}): Schedule.Schedule<Duration.Duration> => {
  const problems: Array<string> = []
  const positive = (name: string, input: Duration.DurationInput | undefined, fallback: number): number => {
    if (input === undefined) return fallback
    // decodeUnknown, not decode: a string it cannot read ("soon") is a problem, not a throw.
    const decoded = Duration.decodeUnknown(input)
    if (Option.isSome(decoded) && Duration.isFinite(decoded.value) && Duration.toMillis(decoded.value) > 0) {
      return Duration.toMillis(decoded.value)
    }
    problems.push(`${name} must be a finite duration above zero (got ${describe(input)})`)
    return fallback
  }
  const base = positive("base", options.base, 1100)
  const cap = positive("cap", options.cap, 30_000)
  if (problems.length > 0) return invalidSchedule(`exponentialBackoff: ${problems.join("; ")}`)
  const jitter = options.jitter === undefined || Number.isNaN(options.jitter)
    ? 0.9
    : Math.min(1, Math.max(0, options.jitter))
  const factor = options.factor === undefined ? 2 : options.factor >= 1 ? options.factor : 1
  return backoff(base, factor, cap, jitter)
}

/**
 * `exponentialBackoff`'s schedule, from options checked and completed (milliseconds): apart from
 * the checks, so that `defaultSchedule` does not bring them into a bundle that never calls
 * `exponentialBackoff`.
 */
const backoff = (base: number, factor: number, cap: number, jitter: number): Schedule.Schedule<Duration.Duration> => {
  // The largest centre: with the jitter on top, no delay goes above the cap.
  const largestCentre = cap / (1 + jitter)
  return Schedule.exponential(Duration.millis(base), factor).pipe(
    Schedule.modifyDelayEffect((_, delay) =>
      Effect.map(Random.next, (random) => {
        const centre = Math.min(Duration.toMillis(delay), largestCentre)
        const millis = centre * (1 - jitter + 2 * jitter * random)
        return Duration.millis(Math.max(1, Math.floor(millis)))
      })
    )
  )
}

const describe = (input: unknown): string => typeof input === "string" ? JSON.stringify(input) : String(input)

// Schedules made from options that cannot work, and why: `Client.make` reports them as
// `ConnectError InvalidOptions` before any attempt.
const invalidSchedules = new WeakMap<object, string>()

/**
 * A schedule for options that cannot work: constructing it never throws; its first step dies
 * with the reason (which the Client reports as `ConnectError InvalidOptions`).
 */
const invalidSchedule = (reason: string): Schedule.Schedule<Duration.Duration> => {
  const schedule = Schedule.exponential(Duration.seconds(1)).pipe(
    Schedule.modifyDelayEffect(() => Effect.die(new Cause.IllegalArgumentException(reason)))
  )
  invalidSchedules.set(schedule, reason)
  return schedule
}

/**
 * Why a schedule made by `exponentialBackoff` cannot work, or undefined. A schedule composed
 * from one (e.g. with `Schedule.intersect`) is not recognised here; its first step dies with the
 * same reason instead.
 *
 * @since 0.1.0
 * @category policies
 */
export const invalidScheduleReason = (schedule: Schedule.Schedule<unknown, never, never>): string | undefined =>
  invalidSchedules.get(schedule)

/**
 * The Client's default schedule: `exponentialBackoff()`, forever. The Client resets it after a
 * connection stayed up for `minUptime`. (Built from its defaults, without its option checks.)
 *
 * @since 0.1.0
 * @category policies
 */
export const defaultSchedule: Schedule.Schedule<Duration.Duration> = backoff(1100, 2, 30_000, 0.9)
