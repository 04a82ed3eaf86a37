/**
 * Round 23: the three public surfaces round 22 did not reach, with random inputs (fast-check,
 * seed 23, round 22's helpers in test/support/anyInput.ts):
 *
 * - the CLI, in process (`run(argv, io)` of src/cli/main.ts): random command lines against a
 *   TestServer that echoes, one that answers 401, a closed port and URLs that cannot work; the
 *   exit code of docs/cli.md's table, the bad flag named, no password / token / header value of
 *   the command line ever printed, bounded;
 * - CircuitBreaker: `make` with random options (always a working breaker or an
 *   `IllegalArgumentException`), random call sequences under TestClock against a reference model
 *   written from the docs, and `endpointKey` with random URLs;
 * - the platform Socket (`effect-lifeline/platform`): random writes, CloseEvents and handlers
 *   against a TestServer; every failure a `SocketError` with lifeline's typed error as `cause`.
 *
 * More cases by hand: LIFELINE_FUZZ_RUNS=2000 LIFELINE_FUZZ_SEED=$RANDOM npx vitest run test/trialsRound23Surface.test.ts
 * (LIFELINE_FUZZ_REPORT=1 prints the tally of outcomes). Every URL dialled is on 127.0.0.1.
 */
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Option,
  Schedule,
  Stream,
  TestClock,
  TestContext
} from "effect"
import { Readable } from "node:stream"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { ExitCode } from "../src/cli/exitCodes.js"
import { run } from "../src/cli/main.js"
import { CircuitOpenError, ConnectError, Disconnected } from "../src/Errors.js"
import { Client } from "../src/index.js"
import { checkEndpoint } from "../src/internal/parseEndpoint.js"
import * as LifelinePlatform from "../src/platform.js"
import { TestServer } from "../src/testing/index.js"
import {
  anyUrl,
  anyValue,
  fuzzParameters,
  marker,
  oddDuration,
  oddNumber,
  optionsOf,
  throwingProxy,
  toLoopback,
  urlWithPassword
} from "./support/anyInput.js"
import { quietNode } from "./support/node.js"
import { closedPort } from "./support/ports.js"

const SEED = 23
const FIXED_SEED = (process.env.LIFELINE_FUZZ_SEED ?? "") === "" && (process.env.LIFELINE_FUZZ_RUNS ?? "") === ""
/** A property's bound: 30 s for the fixed seed's runs, 15 minutes for thousands by hand. */
const TIMEOUT = FIXED_SEED ? 30_000 : 900_000

const tally = (counts: Map<string, number>, outcome: string) => counts.set(outcome, (counts.get(outcome) ?? 0) + 1)

/** With LIFELINE_FUZZ_REPORT set, the outcomes of a property (for runs by hand); quiet otherwise. */
const report = (name: string, counts: Map<string, number>) => {
  if (process.env.LIFELINE_FUZZ_REPORT === undefined) return
  process.stderr.write(`${name}: ${JSON.stringify(Object.fromEntries([...counts].sort()))}\n`)
}

/** A secret in clear or percent-encoded. */
const shows = (text: string, secret: string): boolean =>
  text.includes(secret) || text.includes(encodeURIComponent(secret))

// ---------------------------------------------------------------------------------------------
// 1. The CLI
// ---------------------------------------------------------------------------------------------

interface CliRun {
  readonly code: number
  readonly out: ReadonlyArray<string>
  readonly err: ReadonlyArray<string>
  readonly millis: number
}

const EXIT_CODES: ReadonlySet<number> = new Set(Object.values(ExitCode))

/** Runs the CLI in process with an empty stdin; a rejection, a synchronous throw or 8 s are bugs. */
const runCli = async (argv: ReadonlyArray<string>): Promise<CliRun> => {
  const out: Array<string> = []
  const err: Array<string> = []
  const io = {
    stdin: Readable.from([]),
    out: (line: string) => void out.push(line),
    err: (line: string) => void err.push(line),
    onSignal: () => () => {}
  }
  const started = Date.now()
  let promise: Promise<number>
  try {
    promise = run(argv, io)
  } catch (error) {
    throw new Error(`run threw synchronously: ${String(error)}`)
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  const hung = new Promise<"hung">((resolve) => {
    timer = setTimeout(() => resolve("hung"), 8_000)
  })
  const code = await Promise.race([promise, hung]).finally(() => clearTimeout(timer))
  if (code === "hung") throw new Error(`run did not resolve within 8 s: ${JSON.stringify(argv)}`)
  return { code, out, err, millis: Date.now() - started }
}

/** One piece of a command line, with what the docs say it does. */
interface Piece {
  readonly tokens: ReadonlyArray<string>
  /** The flag a usage error must name when this piece is the mistake; undefined: no mistake here. */
  readonly bad?: string | undefined
  /** A secret this piece carries (a header value). */
  readonly secret?: string | undefined
  /** An invalid subprotocol name: InvalidOptions (exit 3) once the command line parsed. */
  readonly invalidOption?: boolean
  /** A --ca file that does not exist: exit 2 once the command line parsed. */
  readonly missingCa?: boolean
}

/** A flag and its value, as `--flag value` or `--flag=value` (or `-x value` for a short one). */
const flagged = (flag: string, value: string, short?: string) =>
  fc.constantFrom("separate", "equals", "short").map((form): ReadonlyArray<string> =>
    form === "equals" ? [`${flag}=${value}`] : form === "short" && short !== undefined ? [short, value] : [flag, value]
  )

/** Millisecond values the CLI refuses: not `^\d{1,9}$`. */
const badMillis = fc.constantFrom("", "-1", "NaN", "1e3", "0x10", "1234567890", " 5", "5.5", "\u0663", "Infinity", "+5")

const piece = (wait: fc.Arbitrary<string>): fc.Arbitrary<Piece> =>
  fc.oneof({ arbitrary: goodPiece(wait), weight: 4 }, { arbitrary: badPiece, weight: 1 })

const goodPiece = (wait: fc.Arbitrary<string>): fc.Arbitrary<Piece> =>
  fc.oneof(
    fc.constantFrom<Piece>({ tokens: ["--json"] }, { tokens: ["--no-reconnect"] }, { tokens: ["--insecure"] }),
    fc.constantFrom("v1", "chat.v2", "x").chain((name) => flagged("--subprotocol", name, "-s")).map((tokens) => ({
      tokens
    })),
    marker.chain((secret) =>
      flagged("--header", `X-Token: ${secret}`, "-H").map((tokens): Piece => ({ tokens, secret }))
    ),
    fc.constantFrom("summary", "base64").chain((value) => flagged("--binary", value)).map((tokens) => ({ tokens })),
    fc.constantFrom("0", "5000", "999999999").chain((value) => flagged("--heartbeat", value)).map((tokens) => ({
      tokens
    })),
    wait.chain((value) => flagged("--wait", value, "-w")).map((tokens) => ({ tokens }))
  )

const badPiece: fc.Arbitrary<Piece> = fc.oneof(
  // Mistakes of the command line: each must be named.
  fc.tuple(fc.constantFrom("--heartbeat", "--drain-timeout", "--wait"), badMillis).chain(([flag, value]) =>
    flagged(flag, value, flag === "--wait" ? "-w" : undefined).map((tokens): Piece => ({ tokens, bad: flag }))
  ),
  fc.constantFrom("hex", "", "BASE64", "ws://u:pwBinaryZq7@127.0.0.1:1/").chain((value) =>
    flagged("--binary", value).map((tokens): Piece => ({ tokens, bad: "--binary" }))
  ),
  marker.chain((secret) =>
    fc.constantFrom(`Bearer ${secret}`, `X Token: ${secret}`, `: ${secret}`, `X=${secret}`).chain((text) =>
      flagged("--header", text, "-H").map((tokens): Piece => ({ tokens, bad: "-H", secret }))
    )
  ),
  flagged("--subprotocol", "", "-s").map((tokens): Piece => ({ tokens, bad: "-s" })),
  fc.constantFrom("--bogus", "--JSON", "-x", "--no-json", "--wait-for", "--ca-file").map((flag): Piece => ({
    tokens: [flag],
    bad: flag
  })),
  fc.constantFrom("a b", "é", "x,y", "[v1]").chain((name) => flagged("--subprotocol", name, "-s")).map((
    tokens
  ): Piece => ({ tokens, invalidOption: true })),
  fc.constantFrom("/nonexistent/lifeline-ca.pem", "", "./no such file.pem").chain((file) => flagged("--ca", file)).map((
    tokens
  ): Piece => ({ tokens, missingCa: true }))
)

/** Where the URL points: the echo server, the 401 server, a closed port, or nowhere it could work. */
type Target = "echo" | "reject" | "closed" | "invalid" | "random"

interface CliCase {
  /** `connect <url>`, or the URL typed where the command goes, or after `demo`: usage errors. */
  readonly command: "connect" | "url" | "demo"
  readonly target: Target
  readonly userinfo: boolean
  readonly query: boolean
  readonly pieces: ReadonlyArray<Piece>
  /** The URL after a `--`. */
  readonly dashDash: boolean
  /** The URL before the flags (connect <url> [flags]) or after them. */
  readonly urlFirst: boolean
  /** A random URL with a password (round 22's), pointed at the closed port. */
  readonly random: { readonly url: string; readonly secret: string }
  readonly secrets: { readonly password: string; readonly token: string }
}

const cliCase: fc.Arbitrary<CliCase> = fc.constantFrom<Target>("echo", "reject", "closed", "invalid", "random").chain((
  target
) =>
  fc.record({
    command: fc.constantFrom<CliCase["command"]>("connect", "connect", "connect", "connect", "connect", "url", "demo"),
    target: fc.constant(target),
    userinfo: fc.boolean(),
    query: fc.boolean(),
    // Towards a server, the drain must outlast the handshake; towards nothing, it bounds the run.
    pieces: fc.array(
      piece(target === "echo" || target === "reject" ? fc.constantFrom("0", "5") : fc.constantFrom("0", "20")),
      { maxLength: 5 }
    ),
    dashDash: fc.boolean(),
    urlFirst: fc.boolean(),
    random: urlWithPassword,
    secrets: fc.record({ password: marker, token: marker })
  })
)

/** The command line of a case, given the servers' URLs and the closed port. */
const argvOf = (
  c: CliCase,
  where: { readonly echo: string; readonly reject: string; readonly closed: number }
): { readonly argv: ReadonlyArray<string>; readonly url: string; readonly drainFlag: ReadonlyArray<string> } => {
  const userinfo = c.userinfo ? `user:${c.secrets.password}@` : ""
  const query = c.query ? `?token=${c.secrets.token}` : ""
  const hostPort = (url: string) => url.replace(/^ws:\/\//, "").replace(/\/$/, "")
  let url: string
  switch (c.target) {
    case "echo":
      url = `ws://${userinfo}${hostPort(where.echo)}/feed${query}`
      break
    case "reject":
      url = `ws://${userinfo}${hostPort(where.reject)}/feed${query}`
      break
    case "closed":
      url = `ws://${userinfo}127.0.0.1:${where.closed}/feed${query}`
      break
    case "invalid":
      // Each fails before any socket: a scheme lifeline does not dial, a fragment, no host.
      url = [
        `ftp://${userinfo}127.0.0.1:${where.closed}/${query}`,
        `ws://${userinfo}127.0.0.1:${where.closed}/${query}#frag`,
        `ws://${userinfo}/${query}`
      ][c.secrets.password.length % 3]!
      break
    case "random":
      url = toLoopback(c.random.url, where.closed)
      break
  }
  // Towards a server: the default drain (10 s, ended by the open) or a long one; else short.
  const toServer = c.target === "echo" || c.target === "reject"
  const drain = toServer
    ? (c.secrets.token.length % 2 === 0 ? "" : "5000")
    : (c.secrets.token.length % 2 === 0 ? "0" : "25")
  const flags = c.pieces.flatMap((p) => p.tokens)
  const drainFlag = drain === "" ? [] : ["--drain-timeout", drain]
  const tail = c.dashDash ? ["--", url] : [url]
  const argv = c.command === "url"
    ? [url, ...flags]
    : c.command === "demo"
    ? ["demo", url]
    : c.urlFirst && !c.dashDash
    ? ["connect", url, ...flags, ...drainFlag]
    : ["connect", ...drainFlag, ...flags, ...tail]
  return { argv, url, drainFlag }
}

/** A URL that would dial anything but 127.0.0.1 must never be run. */
const dialsOnlyLoopback = (url: string): boolean => {
  const endpoint = checkEndpoint(url)
  return endpoint instanceof ConnectError || endpoint.url.hostname === "127.0.0.1"
}

/** The flags that take one value: the last one given counts (node:util parseArgs). */
const SINGLE: ReadonlySet<string> = new Set(["--heartbeat", "--drain-timeout", "--wait", "--binary", "--ca"])
const flagOf = (p: Piece): string => {
  const name = p.tokens[0]!.split("=")[0]!
  return name === "-w" ? "--wait" : name
}

/**
 * The mistakes that make a usage error, in the order given: an unknown flag, a bad -H or -s (each
 * is read), a value that starts with "-" after a space (parseArgs refuses it as ambiguous), and
 * a bad value of a one-value flag that no later one of the same flag replaces. `drainFlag` is
 * where `argvOf` put its own --drain-timeout (first, or after the flags when the URL is first).
 */
const mistakes = (c: CliCase, drainFlag: ReadonlyArray<string>): ReadonlyArray<Piece> => {
  const drain: ReadonlyArray<Piece> = drainFlag.length === 0 ? [] : [{ tokens: drainFlag }]
  const pieces = c.urlFirst && !c.dashDash ? [...c.pieces, ...drain] : [...drain, ...c.pieces]
  return pieces.filter((p, i) =>
    p.bad !== undefined && (
      !SINGLE.has(flagOf(p)) ||
      (p.tokens.length === 2 && p.tokens[1]!.startsWith("-")) ||
      !pieces.slice(i + 1).some((later) => flagOf(later) === flagOf(p))
    )
  )
}

/**
 * The exit code docs/cli.md gives a case (empty stdin): 2 for a mistake on the command line or a
 * --ca file that cannot be read, 3 for a URL or an option that cannot work, then by the server:
 * 0 echo (opened, closed with 1000), 4 a 401 (never retried), 8 a closed port (refused; retried
 * until --drain-timeout, then "never connected" with the last failure's code, 8).
 */
const expectedCode = (c: CliCase, url: string, drainFlag: ReadonlyArray<string>): number => {
  if (c.command !== "connect" || mistakes(c, drainFlag).length > 0) return ExitCode.Usage
  if (url.startsWith("-")) return ExitCode.Usage
  if (c.pieces.some((p) => p.missingCa === true)) return ExitCode.Usage
  if (checkEndpoint(url) instanceof ConnectError) return ExitCode.InvalidInput
  if (c.pieces.some((p) => p.invalidOption === true)) return ExitCode.InvalidInput
  // A subprotocol offered twice (-s v1 -s v1) is InvalidOptions too (RFC 6455: unique names).
  const offered = c.pieces.filter((p) => flagOf(p) === "--subprotocol" || flagOf(p) === "-s").map((p) =>
    p.tokens.length === 2 ? p.tokens[1]! : p.tokens[0]!.slice(p.tokens[0]!.indexOf("=") + 1)
  )
  if (new Set(offered).size < offered.length) return ExitCode.InvalidInput
  switch (c.target) {
    case "echo":
      return ExitCode.Ok
    case "reject":
      return ExitCode.Rejected
    default:
      return ExitCode.NotRetried
  }
}

describe("round 23: the CLI with random command lines", () => {
  it.live(
    "run resolves with the documented exit code, names the bad flag, never prints a secret of the command line",
    () =>
      Effect.gen(function*() {
        const echo = yield* TestServer.make()
        const reject = yield* TestServer.make()
        yield* reject.rejectNext(401, {}, 1_000_000)
        const closed = yield* closedPort
        const counts = new Map<string, number>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(cliCase, async (c) => {
              const { argv, drainFlag, url } = argvOf(c, { echo: echo.url, reject: reject.url, closed })
              if (!dialsOnlyLoopback(url)) return
              const result = await runCli(argv)
              const printed = [...result.out, ...result.err].join("\n")
              // The exit code: one of the table's, and the one the docs give this case.
              expect(EXIT_CODES.has(result.code)).toBe(true)
              const expected = expectedCode(c, url, drainFlag)
              if (result.code !== expected) {
                throw new Error(`exit ${result.code}, expected ${expected}: ${JSON.stringify(argv)}\n${printed}`)
              }
              tally(counts, `${c.target} ${result.code}`)
              // No secret of the command line: the URL's password and token, a header's value.
              const secrets = [
                ...(c.userinfo ? [c.secrets.password] : []),
                ...(c.query ? [c.secrets.token] : []),
                ...(c.target === "random" ? [c.random.secret] : []),
                ...(c.command === "demo" ? [] : c.pieces.flatMap((p) => p.secret === undefined ? [] : [p.secret])),
                "pwBinaryZq7"
              ]
              for (const secret of secrets) {
                if (shows(printed, secret)) throw new Error(`${secret} printed: ${JSON.stringify(argv)}\n${printed}`)
              }
              if (result.code === ExitCode.Usage) {
                // One line that names a mistake of the command line, then the pointer to --help.
                const named = c.command !== "connect" ? [] : [
                  ...mistakes(c, drainFlag).map((p) => p.bad!),
                  ...c.pieces.flatMap((p) => p.missingCa === true ? ["--ca"] : [])
                ]
                const first = result.err[0] ?? ""
                expect(first.startsWith("effect-lifeline: ")).toBe(true)
                expect(first).not.toContain("\n")
                if (named.length > 0 && !named.some((flag) => first.includes(flag))) {
                  throw new Error(`the usage error names none of ${named.join(" ")}: ${first}`)
                }
              }
              // --json (when it parsed): every line on stdout is JSON, the last one the exit.
              if (result.code !== ExitCode.Usage && argv.includes("--json")) {
                const events = result.out.map((line) => JSON.parse(line) as { type: string; code?: number })
                expect(events.at(-1)).toEqual({ type: "exit", code: result.code })
              }
            }),
            fuzzParameters(50, SEED)
          )
        )
        report("cli", counts)
        if (FIXED_SEED) {
          const seen = [...counts.keys()]
          for (const outcome of ["echo 0", "reject 4", "closed 8", "invalid 3", "echo 2"]) {
            expect(seen).toContain(outcome)
          }
        }
      }).pipe(Effect.scoped),
    TIMEOUT
  )

  it("a usage error does not print a password or a header's value typed on the command line (regression)", async () => {
    // Before: `unknown command "ws://user:pwA1Zq7@..."`, `demo takes no arguments ..., got ws://...`,
    // `--binary takes ..., got "ws://..."` and `-H takes ..., got "Bearer pwB2Zq7"` printed them.
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["ws://user:pwA1Zq7@127.0.0.1:1/?token=tkA1Zq7"], `unknown command "ws://redacted@127.0.0.1:1/?token=redacted"`],
      [
        ["demo", "ws://user:pwA1Zq7@127.0.0.1:1/"],
        "demo takes no arguments or options, got ws://redacted@127.0.0.1:1/"
      ],
      [
        ["connect", "--binary", "ws://user:pwA1Zq7@127.0.0.1:1/", "ws://127.0.0.1:1/"],
        `--binary takes "summary" or "base64", got "ws://redacted@127.0.0.1:1/"`
      ],
      [
        ["connect", "-H", "Bearer pwB2Zq7", "ws://127.0.0.1:1/"],
        `-H takes "Name: value" with a valid header name, got no ":"`
      ],
      [
        ["connect", "-H", "X Token: pwB2Zq7", "ws://127.0.0.1:1/"],
        `-H takes "Name: value" with a valid header name, got a name with a character not allowed`
      ]
    ]
    for (const [argv, message] of cases) {
      const result = await runCli(argv)
      expect(result.code).toBe(ExitCode.Usage)
      expect(result.out).toEqual([])
      expect(result.err[0]).toContain(message)
      expect(result.err.join("\n")).not.toMatch(/pwA1Zq7|tkA1Zq7|pwB2Zq7/)
    }
    // parseArgs's message for a value that starts with a dash is three lines: folded into one.
    const ambiguous = await runCli(["connect", "--heartbeat", "-5", "ws://127.0.0.1:1/"])
    expect(ambiguous.code).toBe(ExitCode.Usage)
    expect(ambiguous.err).toHaveLength(2)
    expect(ambiguous.err[0]).toMatch(/^effect-lifeline: Option '--heartbeat' argument is ambiguous\. Did you forget/)
  })
})

// ---------------------------------------------------------------------------------------------
// 2. CircuitBreaker
// ---------------------------------------------------------------------------------------------

/** The largest Date: Isolated's `retryAt`, and an open period too long for a Date. */
const NEVER = 8_640_000_000_000_000

/** `openFor` as the model reads it: the period of the n-th opening since the breaker last closed. */
interface OpenFor {
  readonly name: string
  readonly schedule: Schedule.Schedule<unknown, number>
  /** n >= 1; a schedule that is done keeps its last period (the docs). */
  readonly period: (n: number) => number
}

const openForArb: fc.Arbitrary<OpenFor> = fc.oneof(
  fc.constantFrom(1, 50, 1_000, 5_000).map((d): OpenFor => ({
    name: `spaced(${d})`,
    schedule: Schedule.spaced(Duration.millis(d)),
    period: () => d
  })),
  fc.constantFrom(10, 1_000).map((d): OpenFor => ({
    name: `exponential(${d})`,
    schedule: Schedule.exponential(Duration.millis(d)),
    period: (n) => d * 2 ** (n - 1)
  })),
  // A later delay of zero: that opening lasts no time (HalfOpen at once); then done: the last kept.
  fc.array(fc.constantFrom(0, 1, 100, 3_000), { minLength: 1, maxLength: 3 }).map((rest): OpenFor => {
    const delays = [500, ...rest]
    return {
      name: `fromDelays(${delays.join(", ")})`,
      schedule: Schedule.fromDelays(...delays.map((d) => Duration.millis(d)) as [Duration.Duration]),
      period: (n) => delays[Math.min(n, delays.length) - 1]!
    }
  }),
  fc.constant<OpenFor>({
    name: "spaced(infinity)",
    schedule: Schedule.spaced(Duration.infinity),
    period: () => Infinity
  })
)

/** The errors a call may fail with, and how each `isFailure` counts them. */
type CallKind = "ok" | "retryable" | "fatal" | "plain" | "die" | "interrupt"
type FailureKind = "retryable" | "fatal" | "plain"
type Predicate = "default" | "throws" | "undefined" | "never" | "onlyPlain"

const errorOf = (kind: FailureKind): unknown =>
  kind === "retryable"
    ? new Disconnected({ code: 1006, reason: "", initiator: "transport", wasClean: false })
    : kind === "fatal"
    ? new ConnectError({ reason: "HandshakeRejected", url: "ws://127.0.0.1:1/", status: 401, detail: "401" })
    : "plain failure"

const predicateOf = (predicate: Predicate): ((error: unknown) => boolean) | undefined => {
  switch (predicate) {
    case "default":
      return undefined
    case "throws":
      return () => {
        throw new Error("isFailure threw")
      }
    case "undefined":
      // A block body without its return.
      return (() => undefined) as unknown as (error: unknown) => boolean
    case "never":
      return () => false
    case "onlyPlain":
      return (error) => error === "plain failure"
  }
}

/** Whether `predicate` counts a failure (the docs: only `false` is "does not count"; 401 is not the endpoint down). */
const counts = (predicate: Predicate, kind: FailureKind): boolean => {
  switch (predicate) {
    case "default":
      return kind !== "fatal"
    case "throws":
    case "undefined":
      return true
    case "never":
      return false
    case "onlyPlain":
      return kind === "plain"
  }
}

type Op =
  | { readonly _tag: "call"; readonly kind: CallKind }
  | { readonly _tag: "start"; readonly kind: CallKind }
  | { readonly _tag: "finish"; readonly index: number }
  | { readonly _tag: "advance"; readonly millis: number }
  | { readonly _tag: "isolate" }
  | { readonly _tag: "reset" }

const callKind = fc.constantFrom<CallKind>("ok", "ok", "retryable", "retryable", "fatal", "plain", "die", "interrupt")
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: callKind.map((kind): Op => ({ _tag: "call", kind })), weight: 6 },
  { arbitrary: callKind.map((kind): Op => ({ _tag: "start", kind })), weight: 2 },
  { arbitrary: fc.nat(5).map((index): Op => ({ _tag: "finish", index })), weight: 2 },
  {
    arbitrary: fc.oneof(fc.constantFrom(0, 1, 49, 50, 499, 500, 1_000, 5_000), fc.nat(12_000)).map((millis): Op => ({
      _tag: "advance",
      millis
    })),
    weight: 3
  },
  { arbitrary: fc.constant<Op>({ _tag: "isolate" }), weight: 1 },
  { arbitrary: fc.constant<Op>({ _tag: "reset" }), weight: 1 }
)

interface BreakerCase {
  readonly threshold: number
  readonly trials: number
  readonly successes: number
  readonly openFor: OpenFor
  readonly predicate: Predicate
  readonly endpoint: string | undefined
  readonly ops: ReadonlyArray<Op>
}

const breakerCase: fc.Arbitrary<BreakerCase> = fc.record({
  threshold: fc.integer({ min: 1, max: 4 }),
  trials: fc.integer({ min: 1, max: 3 }),
  successes: fc.integer({ min: 1, max: 3 }),
  openFor: openForArb,
  predicate: fc.constantFrom<Predicate>("default", "default", "throws", "undefined", "never", "onlyPlain"),
  endpoint: fc.option(fc.string({ unit: "grapheme", maxLength: 12 }), { nil: undefined }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 30 })
})

type ModelState =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "Open"; readonly until: number; readonly retryAt: number }
  | { readonly _tag: "HalfOpen" }
  | { readonly _tag: "Isolated" }

/** What a call returned: its value, its own failure, or a refusal with `retryAt`. */
type Result =
  | { readonly _tag: "value" }
  | { readonly _tag: "failed"; readonly kind: FailureKind }
  | { readonly _tag: "died" }
  | { readonly _tag: "interrupted" }
  | { readonly _tag: "refused"; readonly retryAt: number }

/** The state machine of src/CircuitBreaker.ts's docs, on the TestClock's time (wall and monotonic together). */
class Model {
  state: ModelState = { _tag: "Closed" }
  /** Every state entered, in order. */
  readonly entered: Array<string> = []
  private failures = 0
  private openings = 0
  private generation = 0
  private inflight = 0
  private trialSuccesses = 0
  now = 0
  constructor(private readonly c: BreakerCase) {}

  private enter(state: ModelState) {
    this.state = state
    this.generation++
    this.entered.push(describeState(state))
    if (state._tag === "Closed") {
      this.failures = 0
      this.openings = 0
    } else if (state._tag === "HalfOpen") {
      this.inflight = 0
      this.trialSuccesses = 0
    } else this.failures = 0
  }

  private open() {
    this.openings++
    const period = this.c.openFor.period(this.openings)
    this.enter({ _tag: "Open", until: this.now + period, retryAt: Math.min(this.now + period, NEVER) })
  }

  /** An Open breaker whose period is over is HalfOpen (read, or its timer). */
  observe(): ModelState {
    if (this.state._tag === "Open" && this.now >= this.state.until) this.enter({ _tag: "HalfOpen" })
    return this.state
  }

  /** Admission: undefined when admitted (with what to call at the end), else the refusal's retryAt. */
  admit(): { readonly admitted: false; readonly retryAt: number } | {
    readonly admitted: true
    readonly done: (outcome: "success" | "failure" | "none") => void
  } {
    const state = this.observe()
    switch (state._tag) {
      case "Closed":
        return {
          admitted: true,
          done: (outcome) => {
            if (this.state._tag !== "Closed" || outcome === "none") return
            if (outcome === "success") this.failures = 0
            else if (++this.failures >= this.c.threshold) this.open()
          }
        }
      case "Open":
        return { admitted: false, retryAt: state.retryAt }
      case "Isolated":
        return { admitted: false, retryAt: NEVER }
      case "HalfOpen": {
        if (this.inflight >= this.c.trials) return { admitted: false, retryAt: this.now }
        this.inflight++
        const generation = this.generation
        return {
          admitted: true,
          done: (outcome) => {
            if (generation !== this.generation) return
            if (outcome === "failure") return this.open()
            this.inflight--
            if (outcome === "success" && ++this.trialSuccesses >= this.c.successes) this.enter({ _tag: "Closed" })
          }
        }
      }
    }
  }

  outcomeOf(kind: CallKind): "success" | "failure" | "none" {
    if (kind === "ok") return "success"
    if (kind === "die" || kind === "interrupt") return "none"
    return counts(this.c.predicate, kind) ? "failure" : "success"
  }

  isolate() {
    if (this.state._tag !== "Isolated") this.enter({ _tag: "Isolated" })
  }

  reset() {
    if (this.state._tag === "Closed") {
      this.failures = 0
      this.openings = 0
    } else this.enter({ _tag: "Closed" })
  }
}

const describeState = (state: ModelState | CircuitBreaker.State): string =>
  state._tag === "Open"
    ? `Open(${
      "retryAt" in state && state.retryAt instanceof Date
        ? state.retryAt.getTime()
        : (state as { retryAt: number }).retryAt
    })`
    : state._tag

const expectedResult = (kind: CallKind): Result =>
  kind === "ok"
    ? { _tag: "value" }
    : kind === "die"
    ? { _tag: "died" }
    : kind === "interrupt"
    ? { _tag: "interrupted" }
    : { _tag: "failed", kind }

/** What a call's exit was, checked to be one of the kinds a call can have. */
const resultOf = (exit: Exit.Exit<number, unknown>, endpoint: string): Result => {
  if (Exit.isSuccess(exit)) return { _tag: "value" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof CircuitOpenError) {
      expect(error.endpoint).toBe(endpoint)
      // Its message renders (it read an Invalid Date before: a RangeError).
      expect(error.message).toBe(`circuit open for ${endpoint} until ${error.retryAt.toISOString()}`)
      return { _tag: "refused", retryAt: error.retryAt.getTime() }
    }
    if (error instanceof Disconnected) return { _tag: "failed", kind: "retryable" }
    if (error instanceof ConnectError) return { _tag: "failed", kind: "fatal" }
    if (error === "plain failure") return { _tag: "failed", kind: "plain" }
    throw new Error(`an unknown failure: ${String(error)}`)
  }
  if (Cause.isDie(exit.cause)) return { _tag: "died" }
  if (Cause.isInterruptedOnly(exit.cause)) return { _tag: "interrupted" }
  throw new Error(`an unknown exit: ${Cause.pretty(exit.cause)}`)
}

/** The effect a call runs: `release` lets a held one end. */
const callEffect = (kind: CallKind, started: Deferred.Deferred<void>, release: Effect.Effect<void>) =>
  Effect.zipRight(
    Effect.zipRight(Deferred.succeed(started, undefined), release),
    kind === "ok"
      ? Effect.succeed(1)
      : kind === "die"
      ? Effect.die(new Error("call died"))
      : kind === "interrupt"
      ? Effect.interrupt
      : Effect.fail(errorOf(kind))
  )

/** Runs a case against a breaker and the model; throws at the first difference. */
const runBreakerCase = (c: BreakerCase) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make({
      policy: CircuitBreaker.consecutiveFailures(c.threshold),
      trials: c.trials,
      successes: c.successes,
      openFor: c.openFor.schedule,
      ...(c.endpoint === undefined ? {} : { endpoint: c.endpoint }),
      ...(c.predicate === "default" ? {} : { isFailure: predicateOf(c.predicate)! })
    })
    const endpoint = c.endpoint ?? "circuit"
    const model = new Model(c)
    // Every state entered, from `state.changes` (its first element: the state now).
    const seen: Array<string> = []
    const subscribed = yield* Deferred.make<void>()
    yield* breaker.state.changes.pipe(
      Stream.runForEach((state) =>
        Effect.sync(() => seen.push(describeState(state))).pipe(
          Effect.zipRight(Deferred.succeed(subscribed, undefined))
        )
      ),
      Effect.forkScoped
    )
    yield* Deferred.await(subscribed)
    seen.shift()
    const held: Array<{
      readonly kind: CallKind
      readonly release: Deferred.Deferred<void>
      readonly fiber: Fiber.RuntimeFiber<number, unknown>
      readonly done: ((outcome: "success" | "failure" | "none") => void) | undefined
    }> = []
    const step = (index: number, what: string, got: Result, expected: Result) => {
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        throw new Error(`op ${index} (${what}): got ${JSON.stringify(got)}, the model ${JSON.stringify(expected)}`)
      }
    }
    for (const [index, op] of c.ops.entries()) {
      switch (op._tag) {
        case "call": {
          const admission = model.admit()
          const started = yield* Deferred.make<void>()
          const exit = yield* Effect.exit(breaker.run(callEffect(op.kind, started, Effect.void)))
          const expected: Result = admission.admitted
            ? expectedResult(op.kind)
            : { _tag: "refused", retryAt: admission.retryAt }
          step(index, `call ${op.kind}`, resultOf(exit, endpoint), expected)
          if (admission.admitted) admission.done(model.outcomeOf(op.kind))
          break
        }
        case "start": {
          const admission = model.admit()
          const started = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(breaker.run(callEffect(op.kind, started, Deferred.await(release))))
          // Admitted (it started) or refused (it ended).
          yield* Effect.raceFirst(Deferred.await(started), Effect.asVoid(Fiber.await(fiber)))
          const admitted = yield* Deferred.isDone(started)
          if (admitted !== admission.admitted) {
            throw new Error(`op ${index} (start ${op.kind}): admitted ${admitted}, the model ${admission.admitted}`)
          }
          if (admission.admitted) held.push({ kind: op.kind, release, fiber, done: admission.done })
          else {step(index, `start ${op.kind}`, resultOf(yield* Fiber.await(fiber), endpoint), {
              _tag: "refused",
              retryAt: admission.retryAt
            })}
          break
        }
        case "finish": {
          const call = held.splice(op.index % Math.max(1, held.length), 1)[0]
          if (call === undefined) break
          yield* Deferred.succeed(call.release, undefined)
          step(
            index,
            `finish ${call.kind}`,
            resultOf(yield* Fiber.await(call.fiber), endpoint),
            expectedResult(call.kind)
          )
          call.done?.(model.outcomeOf(call.kind))
          break
        }
        case "advance":
          yield* TestClock.adjust(Duration.millis(op.millis))
          model.now += op.millis
          break
        case "isolate":
          yield* breaker.isolate
          model.isolate()
          break
        case "reset":
          yield* breaker.reset
          model.reset()
          break
      }
      const state = yield* breaker.state.get
      const expected = model.observe()
      if (describeState(state) !== describeState(expected)) {
        throw new Error(
          `after op ${index} (${JSON.stringify(op)}): ${describeState(state)}, the model ${describeState(expected)}`
        )
      }
    }
    // The transitions `state.changes` published: those of the model, in order.
    for (let turn = 0; turn < 100 && seen.length < model.entered.length; turn++) yield* Effect.yieldNow()
    expect(seen).toEqual(model.entered)
    // Held calls still running: interrupted, as the scope would.
    yield* Effect.forEach(held, ({ fiber }) => Fiber.interrupt(fiber), { discard: true })
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

describe("round 23: CircuitBreaker at random", () => {
  it("random call sequences (TestClock): states, refusals and retryAt as the docs' state machine says", async () => {
    const outcomes = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(breakerCase, async (c) => {
        await Effect.runPromise(runBreakerCase(c))
        tally(outcomes, c.openFor.name.replace(/\(.*/, ""))
      }),
      fuzzParameters(80, SEED)
    )
    report("breaker sequences", outcomes)
  }, TIMEOUT)
})

/** A number of any kind: round 22's odd ones, small integers, fractions. */
const anyNumber = fc.oneof(oddNumber, fc.integer({ min: -3, max: 6 }), fc.double({ noNaN: false }))

/** Schedules for `openFor`: usable ones, and the ones the docs refuse (no first period, dying, not synchronous). */
const anySchedule = fc.constantFrom<readonly [string, () => Schedule.Schedule<unknown, unknown>]>(
  ["spaced(1000)", () => Schedule.spaced("1 second")],
  ["exponential(5)", () => Schedule.exponential("5 millis")],
  ["spaced(infinity)", () => Schedule.spaced(Duration.infinity)],
  ["spaced(1e9 days)", () => Schedule.spaced(Duration.days(1e9))],
  ["spaced(0)", () => Schedule.spaced(0)],
  ["spaced(-5)", () => Schedule.spaced(Duration.millis(-5))],
  ["spaced(NaN)", () => Schedule.spaced(Duration.millis(NaN))],
  ["forever", () => Schedule.forever],
  ["once", () => Schedule.once],
  ["recurs(3)", () => Schedule.recurs(3)],
  ["stop", () => Schedule.stop],
  ["dies at its first step", () =>
    Schedule.map(Schedule.spaced("1 second"), (): number => {
      throw new Error("schedule died")
    })],
  ["not synchronous", () => Schedule.tapOutput(Schedule.spaced("1 second"), () => Effect.sleep("1 millis"))],
  ["fromDelays(1000, 0)", () => Schedule.fromDelays("1 second", "0 millis")],
  ["jittered(spaced(1000))", () => Schedule.jittered(Schedule.spaced("1 second"))]
).map(([name, make]) => {
  const schedule = make() as Schedule.Schedule<unknown, number>
  return Object.assign(Object.create(schedule) as object, schedule, { [fc.toStringMethod]: () => name })
})

const predicates = fc.constantFrom(
  Object.assign(() => true, { [fc.toStringMethod]: () => "() => true" }),
  Object.assign(() => 1, { [fc.toStringMethod]: () => "() => 1" }),
  Object.assign(() => {
    throw new Error("isFailure threw")
  }, { [fc.toStringMethod]: () => "() => { throw }" })
)

const breakerOptionValue = (key: string): fc.Arbitrary<unknown> => {
  switch (key) {
    case "policy":
      return fc.oneof(
        anyNumber.map((threshold) => CircuitBreaker.consecutiveFailures(threshold)),
        fc.record({
          threshold: fc.oneof(anyNumber, fc.double({ min: 0, max: 1 })),
          window: fc.oneof(
            oddDuration,
            anyNumber,
            fc.constantFrom<Duration.DurationInput>("1 minute", Duration.infinity)
          ),
          minimumCalls: anyNumber,
          buckets: fc.oneof(anyNumber, fc.constantFrom(undefined, 2 ** 32, 1_000, 1_001))
        }).map((options) => CircuitBreaker.failureRatio(options as Parameters<typeof CircuitBreaker.failureRatio>[0])),
        anyValue
      )
    case "trials":
    case "successes":
      return fc.oneof(anyNumber, anyValue)
    case "isFailure":
      return fc.oneof(predicates, anyValue)
    case "openFor":
      return fc.oneof({ arbitrary: anySchedule, weight: 3 }, { arbitrary: anyValue, weight: 1 })
    default:
      return fc.oneof(fc.string(), anyValue)
  }
}

const BREAKER_KEYS = ["policy", "trials", "successes", "isFailure", "openFor", "endpoint"]

/** What a breaker made from random options does: it works, and what it returns renders. */
const exercise = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    expect(yield* breaker.run(Effect.succeed(7))).toBe(7)
    for (let i = 0; i < 60; i++) {
      const exit = yield* Effect.exit(
        breaker.run(Effect.fail(new Disconnected({ code: 1006, reason: "", initiator: "transport", wasClean: false })))
      )
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      if (error instanceof CircuitOpenError) {
        expect(Number.isFinite(error.retryAt.getTime())).toBe(true)
        expect(error.message).toContain("circuit open for ")
      } else expect(error).toBeInstanceOf(Disconnected)
    }
    const state = yield* breaker.state.get
    if (state._tag === "Open") expect(Number.isFinite(state.retryAt.getTime())).toBe(true)
    yield* breaker.isolate
    const isolated = yield* Effect.flip(breaker.run(Effect.succeed(1)))
    expect(isolated.retryAt.getTime()).toBe(NEVER)
    yield* breaker.reset
    expect(yield* breaker.run(Effect.succeed(8))).toBe(8)
  })

describe("round 23: CircuitBreaker options and keys at random", () => {
  it(
    "make and layer with any options: a working breaker or an IllegalArgumentException defect, never another defect or a hang",
    async () => {
      const outcomes = new Map<string, number>()
      await fc.assert(
        fc.asyncProperty(
          optionsOf(BREAKER_KEYS, breakerOptionValue),
          fc.boolean(),
          anyUrl,
          async (options, viaLayer, url) => {
            const made = viaLayer
              ? Effect.flatMap(CircuitBreaker.Registry, (registry) => registry.forEndpoint(url.url)).pipe(
                Effect.provide(CircuitBreaker.layer(options as CircuitBreaker.Options))
              )
              : CircuitBreaker.make(options as CircuitBreaker.Options)
            const exit = await Effect.runPromiseExit(
              Effect.flatMap(made, exercise).pipe(
                Effect.scoped,
                Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "hung" as const })
              )
            )
            if (Exit.isSuccess(exit)) return void tally(outcomes, "works")
            const error = Cause.squash(exit.cause)
            if (!Cause.isDie(exit.cause) || !(error instanceof Cause.IllegalArgumentException)) {
              throw new Error(`not an IllegalArgumentException: ${Cause.pretty(exit.cause)}`)
            }
            expect(error.message).toMatch(/^CircuitBreaker: /)
            tally(outcomes, "IllegalArgumentException")
          }
        ),
        fuzzParameters(150, SEED)
      )
      report("breaker options", outcomes)
      if (FIXED_SEED) expect([...outcomes.keys()].sort()).toEqual(["IllegalArgumentException", "works"])
    },
    TIMEOUT
  )

  it("unusable options found at random are IllegalArgumentException (regression: each was another defect or no breaker)", async () => {
    const refusal = async (options: unknown): Promise<string> => {
      const exit = await Effect.runPromiseExit(Effect.scoped(CircuitBreaker.make(options as CircuitBreaker.Options)))
      if (Exit.isSuccess(exit)) return "made"
      const error = Cause.squash(exit.cause)
      return error instanceof Cause.IllegalArgumentException ? error.message : `${String(error)}`
    }
    // Each was a TypeError or the hostile object's own Error before (a defect, but not this one).
    expect(await refusal(throwingProxy())).toBe(
      "CircuitBreaker: the options cannot be read (reading them threw: a getter or a Proxy?)"
    )
    expect(await refusal({ trials: Symbol("t") })).toBe(
      "CircuitBreaker: trials must be an integer >= 1 (got Symbol(t))"
    )
    expect(
      await refusal({ policy: { _tag: "FailureRatio", threshold: 0.5, window: Object.create(null), minimumCalls: 1 } })
    )
      .toBe("CircuitBreaker: window must be a finite duration above zero (got a value that cannot be printed)")
    // A RangeError ("Invalid array length") before; 10 ** 8 took gigabytes.
    expect(
      await refusal({
        policy: CircuitBreaker.failureRatio({ threshold: 0.5, window: "1 minute", minimumCalls: 1, buckets: 2 ** 32 })
      })
    )
      .toBe("CircuitBreaker: buckets must be an integer in [1, 1000] (got 4294967296)")
    // Made before, and its CircuitOpenError's message threw (a template of a Proxy).
    expect(await refusal({ endpoint: throwingProxy() })).toBe("CircuitBreaker: endpoint must be a string")
    // Made before, and opened for no time at all at each opening (the period of zero kept).
    for (
      const openFor of [
        Schedule.map(Schedule.spaced("1 second"), (): number => {
          throw new Error("schedule died")
        }),
        Schedule.tapOutput(Schedule.spaced("1 second"), () => Effect.sleep("1 millis"))
      ]
    ) {
      expect(await refusal({ openFor })).toContain("CircuitBreaker: openFor gives no open period at the first opening")
    }
  })

  it.effect("an open period too long for a Date: retryAt is the largest Date, and the refusal's message renders (regression: an Invalid Date, its message a RangeError)", () =>
    Effect.gen(function*() {
      for (const openFor of [Schedule.spaced(Duration.infinity), Schedule.spaced(Duration.days(1e9))]) {
        const breaker = yield* CircuitBreaker.make({ openFor, policy: CircuitBreaker.consecutiveFailures(1) })
        yield* Effect.exit(breaker.run(Effect.fail("down")))
        const state = yield* breaker.state.get
        expect(state._tag === "Open" && state.retryAt.getTime()).toBe(NEVER)
        const refused = yield* Effect.flip(breaker.run(Effect.succeed(1)))
        expect(refused).toBeInstanceOf(CircuitOpenError)
        expect((refused as CircuitOpenError).message).toBe("circuit open for circuit until +275760-09-13T00:00:00.000Z")
        yield* TestClock.adjust("1000 days")
        expect((yield* breaker.state.get)._tag).toBe("Open")
      }
    }).pipe(Effect.scoped))

  it.live("a Client behind a breaker open for Duration.infinity stays Suspended (regression: Suspended until NaN, it tried again every few ms, 116 transitions a second)", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const states: Array<string> = []
      const client = yield* Client.make({
        url: `ws://127.0.0.1:${port}/`,
        retry: Schedule.spaced("20 millis"),
        heartbeat: false
      })
      yield* client.events.pipe(
        Stream.runForEach((event) =>
          Effect.sync(() => {
            if (event._tag !== "Transition") return
            states.push(event.to._tag === "Suspended" ? `Suspended ${event.to.retryAt}` : event.to._tag)
          })
        ),
        Effect.forkScoped
      )
      yield* Effect.sleep("300 millis")
      expect(states).toEqual(["Connecting", "Backoff", "Connecting", `Suspended ${NEVER}`])
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(
        quietNode,
        CircuitBreaker.layer({
          openFor: Schedule.spaced(Duration.infinity),
          policy: CircuitBreaker.consecutiveFailures(1)
        })
      ))
    ))

  it("endpointKey: one key for URLs that differ only in userinfo, query or fragment; never a secret in a key", () => {
    const component = fc.record({
      scheme: fc.constantFrom("ws", "wss", "http", "https", "WS"),
      host: fc.constantFrom("127.0.0.1", "example.com", "Host.Example", "[::1]", "xn--bcher-kva.example"),
      port: fc.constantFrom("", ":0", ":80", ":443", ":8080"),
      path: fc.oneof(fc.constantFrom("", "/", "/feed", "/a/b/", "/%7Efeed", "/é"), fc.webPath()).filter((path) =>
        !path.includes("@")
      ),
      password: marker,
      token: marker,
      fragment: marker
    })
    fc.assert(
      fc.property(component, ({ fragment, host, password, path, port, scheme, token }) => {
        const bare = `${scheme}://${host}${port}${path}`
        const full = `${scheme}://user:${password}@${host}${port}${path}?token=${token}&a=1#${fragment}`
        const key = CircuitBreaker.endpointKey(full)
        expect(key).toBe(CircuitBreaker.endpointKey(bare))
        expect(CircuitBreaker.endpointKey(`  ${full}  `)).toBe(key)
        for (const secret of [password, token, fragment]) expect(shows(key, secret)).toBe(false)
      }),
      fuzzParameters(300, SEED)
    )
    // Any URL text at all (round 22's, most of them invalid): never its password.
    fc.assert(
      fc.property(anyUrl, ({ secret, url }) => {
        expect(shows(CircuitBreaker.endpointKey(url), secret)).toBe(false)
      }),
      fuzzParameters(500, SEED)
    )
    // Found at random (regression): a password holding "#", typed raw, was left in the key: the
    // fragment was dropped before redactUrl could see its "@".
    expect(CircuitBreaker.endpointKey("ws+unix:/:pwRaw1Zq7#@127.0.0.1:0")).toBe("ws+unix:redacted@127.0.0.1:0")
    expect(CircuitBreaker.endpointKey("file:/:pwRaw1Zq7#@host/x")).toBe("file:///redacted@host/x")
    // An "@" in the path is redacted as a password typed raw (`ws://admin:12/34@host`), host and
    // all, so two hosts show the same key (the registry still gives them a breaker each: below).
    expect(CircuitBreaker.endpointKey("wss://a.example/users/@me")).toBe("wss://redacted@me")
    expect(CircuitBreaker.endpointKey("wss://b.example/other/@me")).toBe("wss://redacted@me")
  }, TIMEOUT)
})

// ---------------------------------------------------------------------------------------------
// 3. The platform Socket
// ---------------------------------------------------------------------------------------------

type HandlerKind = "effect" | "void" | "slow" | "fail" | "die" | "throw"
type PlatformStep =
  | { readonly _tag: "write"; readonly data: string | Uint8Array }
  | { readonly _tag: "restart" }
type PlatformEnd =
  | { readonly _tag: "CloseEvent"; readonly code: number | undefined; readonly reason: string | undefined }
  | { readonly _tag: "serverClose"; readonly code: number }
  | { readonly _tag: "scope" }

interface PlatformCase {
  readonly perConnection: boolean
  readonly raw: boolean
  readonly handler: HandlerKind
  readonly steps: ReadonlyArray<PlatformStep>
  readonly end: PlatformEnd
}

/** Close codes of every kind: sendable, reserved (1004-1006, 1015), out of range, not integers. */
const anyCloseCode = fc.oneof(
  fc.constantFrom(999, 1000, 1001, 1003, 1004, 1005, 1006, 1011, 1014, 1015, 2999, 3000, 4999, 5000, 65536),
  fc.constantFrom(-1, 0, 1000.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31),
  fc.integer({ min: 0, max: 6000 })
)
/** Reasons of every length: over 123 bytes of UTF-8 too, emoji across the cut, lone surrogates. */
const anyReason = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ minLength: 100, maxLength: 200 }),
  fc.tuple(fc.nat(130), fc.constantFrom("é", "\u{1F600}", "\ud800", "x")).map(([n, tail]) =>
    `${"r".repeat(n)}${tail.repeat(4)}`
  )
)

const platformCase: fc.Arbitrary<PlatformCase> = fc.record({
  perConnection: fc.boolean(),
  raw: fc.boolean(),
  handler: fc.constantFrom<HandlerKind>("effect", "effect", "void", "slow", "fail", "die", "throw"),
  steps: fc.array(
    fc.oneof(
      {
        arbitrary: fc.string({ unit: "binary", maxLength: 30 }).map((data): PlatformStep => ({ _tag: "write", data })),
        weight: 3
      },
      { arbitrary: fc.uint8Array({ maxLength: 40 }).map((data): PlatformStep => ({ _tag: "write", data })), weight: 2 },
      { arbitrary: fc.constant<PlatformStep>({ _tag: "restart" }), weight: 1 }
    ),
    { maxLength: 6 }
  ),
  end: fc.oneof(
    {
      arbitrary: fc.record({
        code: fc.option(anyCloseCode, { nil: undefined }),
        reason: fc.option(anyReason, { nil: undefined })
      }).map((e): PlatformEnd => ({ _tag: "CloseEvent", ...e })),
      weight: 4
    },
    {
      arbitrary: fc.constantFrom(1002, 1008, 1011, 1012, 4000).map((code): PlatformEnd => ({
        _tag: "serverClose",
        code
      })),
      weight: 1
    },
    { arbitrary: fc.constant<PlatformEnd>({ _tag: "scope" }), weight: 1 }
  )
})

/** What a peer decodes from a string's UTF-8: lone surrogates as U+FFFD. */
const wellFormed = (text: string): string =>
  text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd")

const utf8 = new TextEncoder()

/** RFC 6455 7.4: the codes an endpoint may send; the docs: any other becomes 1000. */
const sendable = (code: number): boolean =>
  Number.isInteger(code) && ((code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) ||
    (code >= 3000 && code <= 4999))

/** The docs: a reason over 123 bytes is cut between characters; what the peer reads of it. */
const reasonSent = (reason: string): string => {
  let cut = ""
  let bytes = 0
  for (const char of reason) {
    const size = utf8.encode(char).length
    if (bytes + size > 123) break
    cut += char
    bytes += size
  }
  return wellFormed(cut)
}

/** What the handler is handed for a message written and echoed: bytes (run) or as it was (runRaw). */
const delivered = (data: string | Uint8Array, raw: boolean): string =>
  JSON.stringify(
    typeof data === "string"
      ? raw ? wellFormed(data) : Array.from(utf8.encode(wellFormed(data)))
      : Array.from(data)
  )

const LIFELINE_TAGS: ReadonlySet<unknown> = new Set([
  "ConnectError",
  "TimeoutError",
  "Disconnected",
  "OnOpenError",
  "CircuitOpenError",
  "SendError"
])

/** A failure of a run or a write: a SocketError of `reason`, lifeline's typed error (or, perConnection, the Client's next state) as cause. */
const expectSocketError = (
  error: unknown,
  reason: "Open" | "Read" | "Write" | "Close",
  what: string
): Record<string, unknown> => {
  const socketError = error as { _tag?: unknown; reason?: unknown; cause?: { _tag?: unknown } }
  if (!Socket.isSocketError(error) || socketError.reason !== reason) {
    throw new Error(`${what}: not a SocketError ${reason}: ${String(error)} ${JSON.stringify(error)}`)
  }
  const cause = socketError.cause
  if (!(LIFELINE_TAGS.has(cause?._tag) || cause?._tag === "Connecting")) {
    throw new Error(`${what}: the cause is not lifeline's: ${JSON.stringify(cause)}`)
  }
  return cause as Record<string, unknown>
}

/** Waits (real time, bounded) for `check`. */
const until = (check: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 600; turn++) {
      if (check()) return
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.fail(`never: ${what}`)
  })

const HANDLER_FAILED = "handler failed"

const runPlatformCase = (c: PlatformCase) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    const layer = LifelinePlatform.layer({
      url: server.url,
      retry: Schedule.spaced("20 millis"),
      minRetryDelay: "20 millis",
      heartbeat: false,
      perConnection: c.perConnection
    }).pipe(Layer.provide(quietNode))
    const context = yield* Layer.build(layer)
    const socket = Context.get(context, Socket.Socket)
    const write = yield* socket.writer
    const received: Array<string> = []
    const thrown = new Error("handler threw")
    const died = new Error("handler died")
    const handle = (data: string | Uint8Array): Effect.Effect<void, string> | void => {
      received.push(JSON.stringify(typeof data === "string" ? data : Array.from(data)))
      switch (c.handler) {
        case "effect":
          return Effect.void
        case "void":
          return
        case "slow":
          return Effect.sleep("15 millis")
        case "fail":
          return Effect.fail(HANDLER_FAILED)
        case "die":
          return Effect.die(died)
        case "throw":
          throw thrown
      }
    }
    // Whether the run under way got past its wait for an open Client (its onOpen ran).
    let runOpen = false
    const onOpen = Effect.sync(() => {
      runOpen = true
    })
    const startRun = () => {
      runOpen = false
      return Effect.fork(c.raw ? socket.runRaw(handle, { onOpen }) : socket.run((bytes) => handle(bytes), { onOpen }))
    }
    let reader = yield* startRun()
    const written: Array<string> = []
    // A handler that fails, dies or throws ends its run at the first message, with that.
    const breaks = c.handler === "fail" || c.handler === "die" || c.handler === "throw"
    let broken = false
    // Writes `data`: it must succeed; its echo reaches the handler, which may end its run.
    const writeAndEcho = (data: string | Uint8Array) =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(write(data))
        if (Exit.isFailure(exit)) throw new Error(`a write failed: ${Cause.pretty(exit.cause)}`)
        if (broken) return
        written.push(delivered(data, c.raw))
        yield* until(() => received.length === written.length, `${written.length} echoed`)
        if (breaks) {
          const exit = yield* Fiber.await(reader).pipe(
            Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => "the run did not end (its handler broke it)" })
          )
          if (c.handler === "fail") expect(exit).toEqual(Exit.fail(HANDLER_FAILED))
          else {expect(Exit.isFailure(exit) && Cause.isDie(exit.cause) && Cause.squash(exit.cause)).toBe(
              c.handler === "die" ? died : thrown
            )}
          broken = true
        }
      })
    for (const step of c.steps) {
      if (broken) break
      if (step._tag === "write") {
        yield* writeAndEcho(step.data)
      } else {
        // The run reads a connection (a run still waiting for the first open would wait on).
        yield* until(() => runOpen, "the run opened")
        yield* server.kill
        if (c.perConnection) {
          const exit = yield* Fiber.await(reader).pipe(Effect.timeoutFail({
            duration: "3 seconds",
            onTimeout: () => "the run did not end (perConnection, its connection dropped)"
          }))
          if (Exit.isSuccess(exit)) {
            throw new Error("perConnection: a run read on after its connection dropped")
          }
          expectSocketError(Cause.squash(exit.cause), "Read", "perConnection, the connection dropped")
        }
        yield* server.restart
        if (c.perConnection) reader = yield* startRun()
        // The next writes wait in the outbox for the new connection.
      }
    }
    expect(received).toEqual(written)
    const end = c.end
    if (end._tag === "CloseEvent") {
      // A write completes once written: the Client is Open (a close while it is still connecting
      // aborts the handshake, and the server sees 1006, not the code).
      yield* writeAndEcho("open?")
      const [peer] = yield* server.peers
      // A CloseEvent never fails: an invalid code is sent as 1000 (the docs), never a defect.
      const closed = yield* Effect.exit(write(new Socket.CloseEvent(end.code, end.reason)))
      expect(closed).toEqual(Exit.void)
      const code = end.code ?? 1000
      expect(yield* peer!.awaitClosed()).toEqual({
        code: sendable(code) ? code : 1000,
        reason: reasonSent(end.reason ?? "")
      })
      // Closed on purpose: the run completes (unless its handler ended it first).
      if (!broken) {
        expect(
          yield* Fiber.await(reader).pipe(Effect.timeoutFail({
            duration: "3 seconds",
            onTimeout: () => "the run did not end (CloseEvent)"
          }))
        ).toEqual(Exit.void)
      }
      // Then a write fails with SocketError Write, lifeline's SendError Closed as cause.
      const after = yield* Effect.flip(write("after the close"))
      expect(expectSocketError(after, "Write", "a write after the close")).toMatchObject({
        _tag: "SendError",
        reason: "Closed"
      })
    } else if (end._tag === "serverClose") {
      yield* server.awaitConnections(1)
      yield* server.closeAll(end.code, "server closes")
      const fatal = end.code === 1002 || end.code === 1008
      if (!broken && (fatal || c.perConnection)) {
        const exit = yield* Fiber.await(reader).pipe(
          Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => "the run did not end (the server closed)" })
        )
        if (Exit.isSuccess(exit)) throw new Error(`the run ended well after the server closed with ${end.code}`)
        // A close frame is the platform's SocketCloseError (round 34), with its code and reason.
        const error = Cause.squash(exit.cause)
        const cause = expectSocketError(error, "Close", `the server closed with ${end.code}`)
        expect(error).toMatchObject({ code: end.code, closeReason: "server closes" })
        expect(cause).toMatchObject({ _tag: "Disconnected", code: end.code, initiator: "server" })
      }
    }
    yield* Fiber.interrupt(reader)
  }).pipe(
    Effect.scoped,
    Effect.timeoutFail({ duration: "6 seconds", onTimeout: () => "the case hung" })
  )

describe("round 23: the platform Socket at random", () => {
  it.live(
    "random writes, CloseEvents and handlers: every failure a SocketError with lifeline's error as cause, the close code and reason as the docs say, bounded",
    () =>
      Effect.gen(function*() {
        const outcomes = new Map<string, number>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(platformCase, async (c) => {
              const exit = await Effect.runPromiseExit(runPlatformCase(c))
              if (Exit.isFailure(exit)) throw new Error(Cause.pretty(exit.cause))
              const restarts = c.steps.filter((step) => step._tag === "restart").length
              tally(outcomes, `${c.handler} ${c.end._tag}${restarts > 0 ? " restarts" : ""}`)
              if (c.end._tag === "CloseEvent" && !sendable(c.end.code ?? 1000)) tally(outcomes, "invalid close code")
              if (c.end._tag === "CloseEvent" && utf8.encode(c.end.reason ?? "").length > 123) {
                tally(outcomes, "reason cut")
              }
            }),
            fuzzParameters(30, SEED)
          )
        )
        report("platform", outcomes)
        if (FIXED_SEED) {
          for (const outcome of ["invalid close code", "reason cut"]) expect([...outcomes.keys()]).toContain(outcome)
        }
      }),
    TIMEOUT
  )
})
