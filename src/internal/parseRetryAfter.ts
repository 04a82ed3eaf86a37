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
 * The three forms of an HTTP-date a recipient reads (RFC 9110 §5.6.7): IMF-fixdate, RFC 850's
 * and asctime's (which has no zone: GMT). Only these go to `Date.parse`, which alone reads much
 * else as a date: "-5" and "1.5" as days of 2001 (a wait of 0), "next year 2099" (an hour).
 */
const IMF_FIXDATE = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/
const RFC_850 = /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/

const httpDate = (value: string): number =>
  IMF_FIXDATE.test(value) || RFC_850.test(value)
    ? Date.parse(value)
    : ASCTIME.test(value)
    ? Date.parse(`${value} GMT`)
    : Number.NaN

/**
 * `"120"` -> 2 minutes; `"Wed, 21 Oct 2026 07:28:00 GMT"` -> the time from `now` to then (0 if
 * past); at most `MAX_RETRY_AFTER_MILLIS` either way; anything else is none.
 */
export const parseRetryAfter = (header: string | undefined, now: number): Option.Option<Duration.Duration> => {
  if (header === undefined) return Option.none()
  const value = header.trim()
  const millis = /^\d+$/.test(value) ? Number(value) * 1000 : httpDate(value) - now
  if (Number.isNaN(millis)) return Option.none()
  return Option.some(Duration.millis(Math.min(MAX_RETRY_AFTER_MILLIS, Math.max(0, millis))))
}
