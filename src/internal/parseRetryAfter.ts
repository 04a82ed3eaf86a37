/** Parses an HTTP Retry-After header (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/**
 * The longest wait a Retry-After may ask for: one hour. A larger value (a date years ahead, or
 * 400 digits, which `Number` reads as Infinity) would park a Client for good; after an hour it
 * asks again, and a server still down answers with a new Retry-After.
 */
export const MAX_RETRY_AFTER_MILLIS = 60 * 60 * 1000

/**
 * `"120"` -> 2 minutes; `"Wed, 21 Oct 2026 07:28:00 GMT"` -> the time from `now` to then (0 if
 * past); at most `MAX_RETRY_AFTER_MILLIS` either way.
 */
export const parseRetryAfter = (header: string | undefined, now: number): Option.Option<Duration.Duration> => {
  if (header === undefined) return Option.none()
  const value = header.trim()
  const millis = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - now
  if (Number.isNaN(millis)) return Option.none()
  return Option.some(Duration.millis(Math.min(MAX_RETRY_AFTER_MILLIS, Math.max(0, millis))))
}
