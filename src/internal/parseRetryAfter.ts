/** Parses an HTTP Retry-After header (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/** `"120"` -> 2 minutes; `"Wed, 21 Oct 2026 07:28:00 GMT"` -> the time from `now` to then (0 if past). */
export const parseRetryAfter = (header: string | undefined, now: number): Option.Option<Duration.Duration> => {
  if (header === undefined) return Option.none()
  const value = header.trim()
  if (/^\d+$/.test(value)) return Option.some(Duration.seconds(Number(value)))
  const date = Date.parse(value)
  if (Number.isNaN(date)) return Option.none()
  return Option.some(Duration.millis(Math.max(0, date - now)))
}
