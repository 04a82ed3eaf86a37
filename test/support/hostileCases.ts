/**
 * The runner of a scripted hostile peer against lifeline, written once for round 22's raw scripts
 * (test/trialsRound22Wire.test.ts) and round 23's compressed and TLS ones
 * (test/trialsRound23Deflate.test.ts). `connectionCase` plays a script against `Connection.connect`,
 * `clientCase` against a `Client` that retries once; both return the problems found (none when
 * lifeline did right). What differs between the rounds is passed in: the oracle's answer
 * (`Expected`), the peer, the connection options, and a `Judge` (how errors and messages are checked).
 * `catchStrays` and `fuzzCases` are the files' shared fast-check harness.
 */
import { afterAll, beforeAll } from "@effect/vitest"
import {
  Cause,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  LogLevel,
  Option,
  Schedule,
  Stream
} from "effect"
import type * as Net from "node:net"
import { ConnectErrorReason } from "../../src/Errors.js"
import { Client, Connection, NodeTransport } from "../../src/index.js"
import type { ClientError, Transport } from "../../src/index.js"
import type { Expected, Outcome } from "./hostileWire.js"
import { describeMessage } from "./hostileWire.js"
import { captureLogs, undocumentedLines } from "./logs.js"

type ClientEvent = Client.ClientEvent

/**
 * What reached the process (an uncaught exception, an unhandled rejection): nothing may. Listens
 * for the file's tests (beforeAll/afterAll); the array grows as they come.
 */
export const catchStrays = (): Array<string> => {
  const strays: Array<string> = []
  const onStray = (error: unknown) => void strays.push(String(error))
  beforeAll(() => {
    process.on("uncaughtException", onStray)
    process.on("unhandledRejection", onStray)
  })
  afterAll(() => {
    process.off("uncaughtException", onStray)
    process.off("unhandledRejection", onStray)
  })
  return strays
}

/**
 * A round's fast-check property over its `scripts`, given the runner to play each with
 * (`connectionCase` or `clientCase`): a script with problems, or with anything that reached the
 * process meanwhile, fails, printed by `describe`.
 */
export const fuzzCases = <S>(round: {
  readonly scripts: fc.Arbitrary<S>
  readonly caseOf: (script: S) => Case
  readonly judge: Judge
  readonly describe: (script: S) => string
  readonly strays: ReadonlyArray<string>
  readonly parameters: { readonly seed: number; readonly numRuns: number }
}) =>
(run: (judge: Judge, script: Case) => Effect.Effect<ReadonlyArray<string>>) =>
  fc.assert(
    fc.asyncProperty(round.scripts, async (generated) => {
      const before = round.strays.length
      const problems = [...await Effect.runPromise(run(round.judge, round.caseOf(generated)))]
      if (round.strays.length > before) problems.push(`reached the process: ${round.strays.slice(before).join("; ")}`)
      if (problems.length > 0) throw new Error(`${problems.join("\n")}\nscript: ${round.describe(generated)}`)
    }),
    { ...round.parameters, interruptAfterTimeLimit: 600_000, markInterruptAsFailure: true }
  )

/**
 * A short openTimeout where the script leaves the handshake unanswered (the timeout is the outcome);
 * a long one elsewhere: on a loaded machine a stall of the process longer than the timeout ends
 * the wait first (timers run before the I/O that came meanwhile), and that is no finding. The long
 * one and the bounds below are hang guards: a case that passes never waits them out, so they are
 * sized for a suite run on 2 loaded cores, not for one file alone.
 */
const SHORT_OPEN = Duration.millis(150)
const LONG_OPEN = Duration.seconds(5)
export const CLOSE_TIMEOUT = Duration.millis(100)
export const openTimeoutOf = (want: Expected) =>
  want.outcomes.some((outcome) => outcome.kind === "TimeoutError") ? SHORT_OPEN : LONG_OPEN
/** How long a Connection's `messages` is read before the test closes it (a silent peer). */
const READ_BOUND = Duration.millis(250)
/** The same, for a script whose peer ends the link by itself: a hang guard only (a loaded machine may take more than READ_BOUND). */
const ENDING_BOUND = Duration.seconds(5)
/** A scope that takes longer than this to close is a hang (its parts: open, read, close twice). */
const SCOPE_BOUND = Duration.seconds(15)

/** The script opens, then its peer neither closes nor breaks the protocol: the test closes it. */
export const staysOpen = (ending: string, want: Expected) =>
  ending === "silent" &&
  want.outcomes.some((outcome) =>
    outcome.kind === "Disconnected" && outcome.initiator === "client" && outcome.code === 1006
  )

/**
 * What is wrong with an error as lifeline reports it, whatever the script: its tag one of `tags`,
 * its fields filled. `rejections`: a ConnectError's `retryAfter` and `status` are checked too.
 */
export const untypedAmong = (tags: ReadonlyArray<string>, rejections: boolean) => {
  const errorTags = new Set(tags)
  return (error: unknown): string | undefined => {
    const tag = (error as { _tag?: unknown })?._tag
    if (typeof tag !== "string" || !errorTags.has(tag)) return `untyped error ${String(error)}`
    const fields = error as { reason?: unknown; detail?: unknown; operation?: unknown; code?: unknown }
    if (tag === "ConnectError") {
      if (!(ConnectErrorReason as ReadonlyArray<unknown>).includes(fields.reason)) {
        return `reason ${String(fields.reason)}`
      }
      if (typeof fields.detail !== "string" || fields.detail.trim() === "") return "ConnectError without a detail"
      if (rejections) {
        const { retryAfter, status } = error as { retryAfter?: unknown; status?: unknown }
        if (retryAfter !== undefined && !(Duration.isDuration(retryAfter) && Duration.toMillis(retryAfter) >= 0)) {
          return `retryAfter ${String(retryAfter)}`
        }
        if ((fields.reason === "HandshakeRejected") !== (typeof status === "number")) return `status ${String(status)}`
      }
    }
    if (tag === "TimeoutError" && fields.operation !== "open") return `TimeoutError ${String(fields.operation)}`
    if (tag === "Disconnected" && (typeof fields.code !== "number" || typeof fields.reason !== "string")) {
      return "Disconnected without code or reason"
    }
    return undefined
  }
}

/** Whether an error fits one of the oracle's outcomes (an outcome's unset fields: any). */
export const fits = (error: ClientError, outcome: Outcome): boolean => {
  if (error._tag !== outcome.kind) return false
  switch (error._tag) {
    case "ConnectError": {
      const wanted = outcome as Extract<Outcome, { kind: "ConnectError" }>
      return error.reason === wanted.reason && (wanted.status === undefined || error.status === wanted.status) &&
        (wanted.retryAfter === undefined || (error.retryAfter !== undefined) === wanted.retryAfter)
    }
    case "Disconnected": {
      const wanted = outcome as Extract<Outcome, { kind: "Disconnected" }>
      return (wanted.code === undefined || error.code === wanted.code) &&
        (wanted.initiator === undefined || error.initiator === wanted.initiator) &&
        (wanted.reason === undefined || error.reason === wanted.reason) &&
        (wanted.wasClean === undefined || error.wasClean === wanted.wasClean) &&
        // A fault's reason says what it was (ws's message)
        (wanted.wasClean !== false || error.reason !== "")
    }
    default:
      return true
  }
}

/** How a round checks what lifeline reported. */
export interface Judge {
  /** What is wrong with an error whatever the script (`untypedAmong`). */
  readonly untyped: (error: unknown) => string | undefined
  /** An error, shown in a failure. */
  readonly show: (error: unknown) => string
  /** The messages of one Connection against the oracle's. */
  readonly messages: (received: ReadonlyArray<string>, want: Expected) => string | undefined
  /** The messages of a Client over its `opens` connections against the oracle's. */
  readonly clientMessages: (received: ReadonlyArray<string>, want: Expected, opens: number) => ReadonlyArray<string>
}

/** One script of a round, ready to play. */
export interface Case {
  readonly want: Expected
  readonly options: Connection.Options
  /** `staysOpen(script.ending, want)` */
  readonly staysOpen: boolean
  /** Runs `use` against the script's peer (scoped). */
  readonly withPeer: (
    use: (url: string, sockets: Set<Net.Socket>) => Effect.Effect<void, never, Transport.Transport>
  ) => Effect.Effect<void, never, Transport.Transport>
}

/** Waits (real time, bounded) until the peer's sockets are all closed. */
const socketsClosed = (sockets: Set<Net.Socket>) =>
  Effect.gen(function*() {
    for (let poll = 0; poll < 1000 && sockets.size > 0; poll++) yield* Effect.sleep("5 millis")
    return sockets.size === 0
  })

/** One script against Connection.connect: its problems, none when lifeline did right. */
export const connectionCase = (judge: Judge, { options, staysOpen, want, withPeer }: Case) => {
  const logs = captureLogs(LogLevel.Info)
  const received: Array<string> = []
  const problems: Array<string> = []
  return withPeer((url, sockets) =>
    Effect.gen(function*() {
      const started = Date.now()
      const run = yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* Connection.connect(url, options)
        const ended = yield* connection.messages.pipe(
          Stream.runForEach((message) => Effect.sync(() => received.push(describeMessage(message)))),
          Effect.timeoutOption(staysOpen ? READ_BOUND : ENDING_BOUND)
        )
        return Option.isSome(ended) ? yield* connection.closed : yield* connection.close()
      })).pipe(Effect.disconnect, Effect.exit, Effect.timeoutOption(SCOPE_BOUND))
      if (Option.isNone(run)) {
        return void problems.push(`the scope did not close within ${Duration.format(SCOPE_BOUND)}`)
      }
      const exit = run.value
      const took = Date.now() - started
      if (Exit.isFailure(exit)) {
        if (Cause.isDie(exit.cause)) problems.push(`defect: ${Cause.pretty(exit.cause)}`)
        const failure = Cause.failureOption(exit.cause)
        if (Option.isNone(failure)) problems.push(`not a failure: ${Cause.pretty(exit.cause)}`)
        else {
          const wrong = judge.untyped(failure.value)
          if (wrong !== undefined) problems.push(wrong)
          else if (!want.outcomes.some((outcome) => fits(failure.value as ClientError, outcome))) {
            problems.push(
              `failed with ${judge.show(failure.value)}, expected one of ${JSON.stringify(want.outcomes)}`
            )
          }
        }
        if (received.length > 0) problems.push(`messages without an open: ${JSON.stringify(received)}`)
      } else {
        const disconnected = exit.value
        const wrong = judge.untyped(disconnected)
        if (wrong !== undefined) problems.push(wrong)
        else if (!want.outcomes.some((outcome) => fits(disconnected, outcome))) {
          problems.push(`ended with ${judge.show(disconnected)}, expected one of ${JSON.stringify(want.outcomes)}`)
        }
        const wrongMessages = judge.messages(received, want)
        if (wrongMessages !== undefined) problems.push(wrongMessages)
      }
      if (!(yield* socketsClosed(sockets))) problems.push(`${sockets.size} peer socket(s) still open after the scope`)
      if (took > Duration.toMillis(SCOPE_BOUND)) problems.push(`the scope took ${took} ms`)
    })
  ).pipe(
    Effect.provide(Layer.merge(NodeTransport.layer, logs.layer)),
    Effect.map(() => {
      for (const line of logs.lines) problems.push(`log line ${line.level}: ${line.message}`)
      return problems
    })
  )
}

/** The errors a Client's transitions carried, in order. */
export const errorsOf = (events: ReadonlyArray<ClientEvent>): Array<ClientError> =>
  events.flatMap((event) => {
    if (event._tag !== "Transition") return []
    const to = event.to
    if (to._tag === "Backoff") return [to.error]
    if (to._tag === "Closed" && Option.isSome(to.error)) return [to.error.value]
    return []
  })

/** The same script against a Client that retries once. */
export const clientCase = (judge: Judge, { options, staysOpen, want, withPeer }: Case) => {
  const logs = captureLogs(LogLevel.Info)
  const received: Array<string> = []
  const events: Array<ClientEvent> = []
  const times: Array<number> = []
  const problems: Array<string> = []
  return withPeer((url, sockets) =>
    Effect.gen(function*() {
      const started = Date.now()
      const run = yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Client.make({
          url,
          retry: Schedule.recurs(1),
          minRetryDelay: "1 millis",
          heartbeat: false,
          connection: options
        })
        // Daemons: they read on to the end of both streams, after the scope's close.
        const reading = yield* Effect.forkDaemon(Stream.runForEach(client.events, (event) =>
          Effect.sync(() => {
            events.push(event)
            times.push(Date.now() - started)
          })))
        const messages = yield* Effect.forkDaemon(
          Stream.runForEach(client.messages, (message) => Effect.sync(() => received.push(describeMessage(message))))
        )
        // Two attempts, then Closed; or Open on a silent peer until this bound.
        if (staysOpen) {
          yield* client.awaitOpen.pipe(Effect.timeoutOption(openTimeoutOf(want)), Effect.ignore)
          yield* Effect.sleep(READ_BOUND)
        } else {
          yield* client.state.changes.pipe(
            Stream.takeUntil((state) => state._tag === "Closed"),
            Stream.runDrain,
            Effect.timeoutOption(Duration.sum(Duration.times(openTimeoutOf(want), 2), READ_BOUND))
          )
        }
        return [reading, messages] as const
      })).pipe(Effect.disconnect, Effect.exit, Effect.timeoutOption(SCOPE_BOUND))
      if (Option.isNone(run)) {
        return void problems.push(`the scope did not close within ${Duration.format(SCOPE_BOUND)}`)
      }
      const took = Date.now() - started
      const exit = run.value
      if (Exit.isFailure(exit)) return void problems.push(`the Client's scope failed: ${Cause.pretty(exit.cause)}`)
      for (const fiber of exit.value) {
        const ended = yield* Fiber.join(fiber).pipe(Effect.exit, Effect.timeoutOption("5 seconds"))
        if (Option.isNone(ended)) problems.push("a stream of the Client did not end after its scope closed")
        else if (Exit.isFailure(ended.value)) problems.push(`a stream failed: ${Cause.pretty(ended.value.cause)}`)
      }
      const errors = errorsOf(events)
      for (const error of errors) {
        const wrong = judge.untyped(error)
        if (wrong !== undefined) problems.push(wrong)
      }
      const first = errors[0]
      if (first === undefined) {
        if (!staysOpen) problems.push(`no error, expected one of ${JSON.stringify(want.outcomes)}`)
      } else if (!want.outcomes.some((outcome) => fits(first, outcome))) {
        problems.push(
          `first error ${judge.show(first)} (all: ${errors.map(judge.show).join(", ")}; events at ${
            times.join(", ")
          } ms of ${took} ms), expected one of ${JSON.stringify(want.outcomes)}`
        )
      }
      const opens = events.filter((event) => event._tag === "Transition" && event.to._tag === "Open").length
      problems.push(...judge.clientMessages(received, want, opens))
      if (!(yield* socketsClosed(sockets))) problems.push(`${sockets.size} peer socket(s) still open after the scope`)
      if (took > Duration.toMillis(SCOPE_BOUND)) problems.push(`the scope took ${took} ms`)
    })
  ).pipe(
    Effect.provide(Layer.merge(NodeTransport.layer, logs.layer)),
    Effect.map(() => {
      problems.push(...undocumentedLines(logs.lines))
      return problems
    })
  )
}
