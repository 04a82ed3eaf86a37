/**
 * Round 22: a hostile peer at random. fast-check generates scripts for a raw TCP server on
 * 127.0.0.1 (test/support/hostileWire.ts: the handshake answer, the frames after a 101, the
 * pieces they are written in, the ending), and each script is played against `Connection.connect`
 * and against a `Client` (one retry). For every script: nothing escapes (no uncaught exception, no
 * unhandled rejection, no defect, no log line above DEBUG but the Client's documented ones), every
 * failure is typed and fits the script (the oracle: `expected`), the scope closes within a bound
 * and the peer's socket is closed afterwards, and the messages framed before the fault arrive in
 * order, none invented. docs/trials.md, "round 22", says what was found.
 *
 * Seeded: `LIFELINE_FUZZ_SEED` and `LIFELINE_FUZZ_RUNS` run other and more cases by hand, e.g.
 *   LIFELINE_FUZZ_RUNS=2000 LIFELINE_FUZZ_SEED=$RANDOM npx vitest run test/trialsRound22Wire.test.ts
 * and `LIFELINE_FUZZ_SCRIPT='<the script's JSON, as a failure prints it>'` replays one script.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, FastCheck as fc } from "effect"
import { Connection } from "../src/index.js"
import { fuzzParameters } from "./support/anyInput.js"
import type { Case, Judge } from "./support/hostileCases.js"
import {
  catchStrays,
  clientCase,
  CLOSE_TIMEOUT,
  connectionCase,
  fuzzCases,
  openTimeoutOf,
  staysOpen,
  untypedAmong
} from "./support/hostileCases.js"
import type { Expected, Script } from "./support/hostileWire.js"
import { describeScript, expected, script, withPeer } from "./support/hostileWire.js"
import { quietNode } from "./support/node.js"

/** One script as a failure printed it (its JSON), replayed LIFELINE_FUZZ_RUNS times (40 by default) instead of random ones. */
const REPLAY = process.env["LIFELINE_FUZZ_SCRIPT"]
const scripts: fc.Arbitrary<Script> = REPLAY === undefined ? script : fc.constant(JSON.parse(REPLAY) as Script)

// What reached the process: nothing may (invariant 1).
const strays = catchStrays()

const show = (error: unknown): string => {
  const fields = error as {
    _tag?: string
    reason?: string
    code?: number
    initiator?: string
    status?: number
    wasClean?: boolean
  }
  return JSON.stringify({
    tag: fields._tag,
    reason: fields.reason,
    code: fields.code,
    initiator: fields.initiator,
    wasClean: fields.wasClean,
    status: fields.status,
    retryAfter: (error as { retryAfter?: Duration.Duration }).retryAfter === undefined
      ? undefined
      : Duration.format((error as { retryAfter: Duration.Duration }).retryAfter)
  })
}

/** The messages of one connection against the oracle's. */
const messageProblem = (received: ReadonlyArray<string>, want: Expected): string | undefined => {
  const prefix = received.slice(0, want.messages.length)
  const inOrder = prefix.every((message, index) => message === want.messages[index])
  const ok = want.mode === "exact"
    ? inOrder && received.length === want.messages.length
    : want.mode === "prefix"
    ? inOrder && received.length <= want.messages.length
    : want.mode === "prefixThenAny"
    ? inOrder && received.length >= want.messages.length
    : inOrder
  return ok
    ? undefined
    : `messages ${JSON.stringify(received)}, expected (${want.mode}) ${JSON.stringify(want.messages)}`
}

/** A Client's messages: each connection delivers the script's messages, in all a prefix of them over and over. */
const clientMessages = (received: ReadonlyArray<string>, want: Expected, opens: number): Array<string> => {
  const problems: Array<string> = []
  if (want.mode === "exact" || want.mode === "prefix") {
    // Cut into runs that each start the script's messages again: one per connection at most.
    const runs: Array<number> = []
    for (const message of received) {
      const at = runs.length === 0 ? 0 : runs[runs.length - 1]!
      if (runs.length > 0 && message === want.messages[at]) runs[runs.length - 1] = at + 1
      else if (message === want.messages[0]) runs.push(1)
      else runs.push(-1)
    }
    if (runs.includes(-1) || runs.length > opens) {
      problems.push(
        `messages ${JSON.stringify(received)} over ${opens} open(s) of ${JSON.stringify(want.messages)}`
      )
    }
    if (want.mode === "exact" && opens > 0 && (runs[0] ?? 0) < want.messages.length) {
      problems.push(`messages ${JSON.stringify(received)}, expected at least ${JSON.stringify(want.messages)}`)
    }
  } else if (opens === 0 && received.length > 0) problems.push("messages without an open")
  return problems
}

const judge: Judge = {
  untyped: untypedAmong(["ConnectError", "TimeoutError", "Disconnected", "OnOpenError", "CircuitOpenError"], true),
  show,
  messages: messageProblem,
  clientMessages
}

/** A script as the runner plays it: round 22's oracle, peer and options. */
const caseOf = (script: Script): Case => {
  const want = expected(script)
  return {
    want,
    options: { openTimeout: openTimeoutOf(want), closeTimeout: CLOSE_TIMEOUT },
    staysOpen: staysOpen(script.ending, want),
    withPeer: (use) => withPeer(script, use)
  }
}

const property = fuzzCases({
  scripts,
  caseOf,
  judge,
  describe: describeScript,
  strays,
  parameters: fuzzParameters(40, 22)
})

describe("round 22: a hostile peer at random", () => {
  it(
    "Connection.connect against random scripts: typed, fitting outcomes; messages before the fault in order; scope bounded; no socket left",
    async () => {
      await property(connectionCase)
    },
    600_000
  )

  it(
    "a Client (one retry) against random scripts: its first error fits the script, every error typed, only documented logs, streams end, no socket left",
    async () => {
      await property(clientCase)
    },
    600_000
  )
})

describe("round 22: the cases it found, plainly", () => {
  it.live("a message, then a close frame with code 1005 (Deno's server stopped by its AbortSignal): the message, then Disconnected 1006 from the client side, for a Connection and a Client (the model's round 36 rule, whether or not the random scripts draw it)", () =>
    Effect.gen(function*() {
      const badCloseCode: Script = {
        handshake: { kind: "accept", headers: [] },
        items: [{ kind: "text", text: "hi", length: 0 }, {
          kind: "fault",
          fault: { kind: "closeBadCode", code: 1005 }
        }],
        chunks: [48],
        pace: "burst",
        ending: "fin"
      }
      expect(expected(badCloseCode).outcomes).toEqual([
        { kind: "Disconnected", code: 1006, initiator: "client", wasClean: false }
      ])
      expect(yield* connectionCase(judge, caseOf(badCloseCode))).toEqual([])
      expect(yield* clientCase(judge, caseOf(badCloseCode))).toEqual([])
    }))

  const rejected = (retryAfter: string) =>
    withPeer(
      {
        handshake: { kind: "status", status: 503, retryAfter, body: "" },
        items: [],
        chunks: [48],
        pace: "burst",
        ending: "fin"
      },
      (url) => Effect.flip(Effect.scoped(Connection.connect(url, { openTimeout: "2 seconds" })))
    ).pipe(Effect.provide(quietNode))

  it.live("a 503 whose Retry-After is neither delay-seconds nor an HTTP-date ('-5', '1.5', 'next year 2099'): HandshakeRejected 503 without retryAfter (was 0, 0 and an hour: Date.parse read them as dates)", () =>
    Effect.gen(function*() {
      for (const text of ["-5", "1.5", "next year 2099"]) {
        const error = yield* rejected(text)
        expect([
          text,
          error._tag,
          error._tag === "ConnectError" && error.reason,
          error._tag === "ConnectError" && error.status,
          (error as { retryAfter?: unknown }).retryAfter
        ])
          .toEqual([text, "ConnectError", "HandshakeRejected", 503, undefined])
      }
      // An HTTP-date still counts, in its obsolete RFC 850 form too.
      const ahead = new Date(Date.now() + 600_000)
      const rfc850 = ahead.toUTCString().replace(
        /^(\w{3}), (\d\d) (\w{3}) \d\d(\d\d)/,
        (_, day: string, date: string, month: string, year: string) =>
          `${
            ({
              Mon: "Monday",
              Tue: "Tuesday",
              Wed: "Wednesday",
              Thu: "Thursday",
              Fri: "Friday",
              Sat: "Saturday",
              Sun: "Sunday"
            } as Record<string, string>)[day]
          }, ${date}-${month}-${year}`
      )
      for (const text of [ahead.toUTCString(), rfc850]) {
        const error = yield* rejected(text)
        const millis = error._tag === "ConnectError" && error.retryAfter !== undefined
          ? Duration.toMillis(error.retryAfter)
          : -1
        expect([text, millis > 590_000 && millis <= 600_000]).toEqual([text, true])
      }
    }))
})
