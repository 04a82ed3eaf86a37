import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import { MAX_RETRY_AFTER_MILLIS, parseRetryAfter } from "../src/internal/parseRetryAfter.js"

const millis = (header: string | undefined, now = Date.UTC(2026, 10, 29, 12)) =>
  Option.map(parseRetryAfter(header, now), Duration.toMillis)

describe("parseRetryAfter", () => {
  it("delay-seconds and an HTTP date, as RFC 9110 writes them; anything else is no Retry-After", () => {
    expect(millis("120")).toEqual(Option.some(120_000))
    expect(millis(" 0 ")).toEqual(Option.some(0))
    expect(millis("Sun, 29 Nov 2026 12:00:30 GMT")).toEqual(Option.some(30_000))
    expect(millis("Sun, 29 Nov 2026 11:00:00 GMT")).toEqual(Option.some(0))
    expect(millis(undefined)).toEqual(Option.none())
    expect(millis("soon")).toEqual(Option.none())
  })

  it("round 22: the obsolete HTTP-date forms are read (RFC 850, asctime as GMT); text that Date.parse alone takes for a date is none", () => {
    expect(millis("Sunday, 29-Nov-26 12:00:30 GMT")).toEqual(Option.some(30_000))
    expect(millis("Sun Nov 29 12:00:30 2026")).toEqual(Option.some(30_000))
    // V8's Date.parse: "-5" is May 2001, "1.5" January 5th 2001 (a wait of 0), "120.5" May of the
    // year 120; "next year 2099" and "+9999" are years ahead (an hour): none of them is a Retry-After.
    for (const text of ["-5", "1.5", "120.5", "10,5", "Mon 7", "2030-01-01", "next year 2099", "+9999", "Dec 2027"]) {
      expect([text, millis(text)]).toEqual([text, Option.none()])
    }
  })

  it("a wait longer than an hour (400 digits, a date years ahead) is an hour: no Client parked for good", () => {
    expect(MAX_RETRY_AFTER_MILLIS).toBe(3_600_000)
    expect(millis("9".repeat(400))).toEqual(Option.some(3_600_000))
    expect(millis("86400")).toEqual(Option.some(3_600_000))
    expect(millis("Fri, 01 Jan 9999 00:00:00 GMT")).toEqual(Option.some(3_600_000))
    expect(millis("3600")).toEqual(Option.some(3_600_000))
    expect(millis("3599")).toEqual(Option.some(3_599_000))
  })
})
