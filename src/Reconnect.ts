/**
 * Reconnect policy: which errors are worth retrying, and the default backoff `Schedule`
 * (exponential, full jitter, capped). Both are plain values that compose with Effect's own.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Random, Schedule } from "effect"
import type { ConnectError, Disconnected, TimeoutError } from "./Errors.js"
import type { OnOpenError } from "./Errors.js"

/**
 * Every error that can end a Client's connection attempt or session.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientError = ConnectError | TimeoutError | Disconnected | OnOpenError

/** Close codes that mean "this will fail again": protocol error, unsupported data, invalid data, policy, too big, extension. */
const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([1002, 1003, 1007, 1008, 1009, 1010])

/**
 * The default `shouldRetry`: false for errors that will recur on every attempt: `InvalidUrl`,
 * `InvalidOptions`, `ProtocolViolation`, an HTTP 3xx or 4xx rejection other than 408 and 429, and close
 * codes 1002, 1003, 1007, 1008, 1009, 1010. Everything else is transient.
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
          // 3xx too: redirects are not followed, so the same answer comes back.
          return error.status === undefined || error.status >= 500 || error.status === 408 || error.status === 429
        default:
          return true
      }
    case "Disconnected":
      return !FATAL_CLOSE_CODES.has(error.code)
    case "TimeoutError":
    case "OnOpenError":
      return true
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BackoffOptions {
  /** First delay before jitter. Default 500 ms. */
  readonly base?: Duration.DurationInput
  /** Growth per attempt. Default 2. */
  readonly factor?: number
  /** Largest delay before jitter. Default 30 s. */
  readonly cap?: Duration.DurationInput
}

/**
 * Exponential backoff with full jitter: the n-th delay is uniform in (0, min(cap, base * factor^n)],
 * never below 1 ms. Safe after any number of attempts: the exponent overflows to Infinity, which
 * the cap bounds, so the delay is never zero, NaN or unbounded.
 *
 * @since 0.1.0
 * @category policies
 */
export const exponentialBackoff = (options: BackoffOptions = {}): Schedule.Schedule<Duration.Duration> => {
  const cap = Duration.toMillis(Duration.decode(options.cap ?? "30 seconds"))
  return Schedule.exponential(options.base ?? "500 millis", options.factor ?? 2).pipe(
    Schedule.modifyDelayEffect((_, delay) =>
      Effect.map(Random.next, (random) => {
        const ceiling = Math.min(Duration.toMillis(delay), cap)
        const millis = Number.isFinite(ceiling) ? ceiling * random : cap * random
        return Duration.millis(Math.max(1, Math.round(millis)))
      })
    )
  )
}

/**
 * The Client's default schedule: `exponentialBackoff()`, forever. The Client resets it after a
 * connection stayed up for `minUptime`.
 *
 * @since 0.1.0
 * @category policies
 */
export const defaultSchedule: Schedule.Schedule<Duration.Duration> = exponentialBackoff()
