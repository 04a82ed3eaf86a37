/** partysocket's reconnection delays as a Schedule, spread upwards by a jitter. */
import { Duration, Effect, Random, Schedule } from "effect"

export interface DelayOptions {
  /** ms */
  readonly min: number
  /** ms */
  readonly max: number
  readonly factor: number
  /** 0 to 1 */
  readonly jitter: number
  /** Retries allowed; Infinity for no end. */
  readonly maxRetries: number
}

/**
 * The n-th delay after a failure (from 0) is `min x factor^n`, at most `max` (partysocket's), each
 * drawn uniformly from [d, d x (1 + jitter)] with d at most `max / (1 + jitter)` (and at least
 * `min`): never below `min`, never above `max`. Done after `maxRetries` retries.
 */
export const reconnectSchedule = (options: DelayOptions): Schedule.Schedule<unknown> => {
  const { factor, jitter, max, maxRetries, min } = options
  const delays = Schedule.exponential(Duration.millis(min), factor).pipe(
    Schedule.modifyDelayEffect((_, delay) =>
      Effect.map(Random.next, (random) => {
        const centre = Math.max(min, Math.min(Duration.toMillis(delay), max / (1 + jitter)))
        return Duration.millis(Math.min(max, centre * (1 + jitter * random)))
      })
    )
  )
  return Number.isFinite(maxRetries) ? Schedule.intersect(delays, Schedule.recurs(Math.floor(maxRetries))) : delays
}
