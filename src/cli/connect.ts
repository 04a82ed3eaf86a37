/**
 * `effect-lifeline connect <url>`: a Client (the default reconnect policy) between stdin and
 * stdout. Each stdin line is sent as a text frame through the Client's outbox (queued while
 * disconnected, never dropped silently); each inbound message is printed on stdout; each state
 * transition is one line on stderr (or a JSON line on stdout with `--json`). At stdin's end the
 * queued lines are written (within `--drain-timeout`), the connection closes with 1000 and the
 * program ends 0. A Client closed by an error ends the program with that error's exit code.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { readFileSync } from "node:fs"
import { createInterface } from "node:readline"
import type { Readable } from "node:stream"
import * as Client from "../Client.js"
import { SendError } from "../Errors.js"
import * as Reconnect from "../Reconnect.js"
import type { ClientError } from "../Reconnect.js"
import type { Transport } from "../Transport.js"
import type { ConnectCommand } from "./args.js"
import { ExitCode, exitCodeOf } from "./exitCodes.js"
import {
  describeError,
  failedJson,
  failedLine,
  messageJson,
  messageText,
  oneLine,
  stateJson,
  stateLine
} from "./render.js"

/** Where the CLI reads and writes: the process's streams, or a test's. */
export interface Io {
  readonly stdin: Readable
  /** Writes one line (a line break is added) to stdout. */
  readonly out: (line: string) => void
  /** Writes one line (a line break is added) to stderr. */
  readonly err: (line: string) => void
  /** Calls `listener` on SIGINT / SIGTERM; returns how to stop. */
  readonly onSignal: (listener: (signal: "SIGINT" | "SIGTERM") => void) => () => void
}

/** Why the session ends (a signal may also cut the drain that follows stdin's end). */
type Outcome = "StdinEnded" | "ClientClosed" | "Signal"

/** How long the end of the program waits for the close to show and the last messages to print. */
const SETTLE_MILLIS = 2_000
/** How often the drain at stdin's end looks at the outbox. */
const DRAIN_POLL_MILLIS = 10

// The Client's own log lines for transitions, which the CLI prints in its own words already.
const TRANSITION_LOG = /^lifeline: (link down|cannot connect|link back|closed by|Closed$|Open$|Backoff )/

/**
 * lifeline's warnings and errors (e.g. that TLS verification is off) on stderr, or as JSON
 * `warning` events; the Client's transition lines are left out (the state lines say it).
 */
const cliLogger = (json: boolean, io: Io) =>
  Logger.make(({ logLevel, message }) => {
    const text = String(Array.isArray(message) ? message.join(" ") : message)
    if (TRANSITION_LOG.test(text)) return
    const said = oneLine(text.replace(/^lifeline: /, ""))
    if (json) io.out(JSON.stringify({ type: "log", level: logLevel.label, message: said }))
    else io.err(`effect-lifeline: ${logLevel.label === "WARN" ? "warning" : logLevel.label.toLowerCase()}: ${said}`)
  })

// Node ignores CA text without a PEM certificate in it: such a file is a usage error here.
const readCa = (file: string): Effect.Effect<string, string> =>
  Effect.try({
    try: () => readFileSync(file, "utf8"),
    catch: (error) => `cannot read --ca ${file}: ${error instanceof Error ? error.message : String(error)}`
  }).pipe(
    Effect.filterOrFail(
      (text) => text.includes("-----BEGIN CERTIFICATE-----"),
      () => `--ca ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`
    )
  )

/** What the session hears of each open, and asks of it. */
export interface OpenHooks {
  /** Called by `onOpen`, before the Open transition is published, with the subprotocol chosen. */
  readonly opened: (protocol: string) => void
  readonly everOpened: () => boolean
}

/** `--heartbeat` and `--no-probe` as the heartbeat option; undefined: lifeline's default. */
const heartbeatOf = ({ heartbeatMillis: millis, probe }: ConnectCommand): Client.Options["heartbeat"] => {
  if (millis === 0) return false
  const timing = millis === undefined ? undefined : { interval: millis, timeout: millis }
  return probe ? timing : { ...timing, probe: false }
}

/** The Client's options for a command line. */
export const clientOptions = (command: ConnectCommand, ca: string | undefined, hooks: OpenHooks): Client.Options => {
  const heartbeat = heartbeatOf(command)
  const tls = ca === undefined && !command.insecure
    ? undefined
    : { ...(ca === undefined ? {} : { ca }), ...(command.insecure ? { rejectUnauthorized: false } : {}) }
  return {
    url: command.url,
    headers: Object.fromEntries(command.headers.map(([name, value]) => [name, Redacted.make(value)])),
    connection: {
      ...(command.protocols.length === 0 ? {} : { protocols: command.protocols }),
      ...(tls === undefined ? {} : { tls })
    },
    ...(heartbeat === undefined ? {} : { heartbeat }),
    // The default policy, but a certificate that fails before the first open will fail again.
    shouldRetry: command.reconnect
      ? (error) =>
        Reconnect.isRetryable(error) &&
        !(error._tag === "ConnectError" && error.reason === "TlsFailed" && !hooks.everOpened())
      : () => false,
    onOpen: (opened) => Effect.sync(() => hooks.opened(opened.protocol)),
    eventsCapacity: 4096
  }
}

/** Runs one session; succeeds with the exit code. */
export const connect = (command: ConnectCommand, io: Io): Effect.Effect<number, never, Transport> =>
  Effect.gen(function*() {
    const ca = command.caFile === undefined ? undefined : yield* Effect.either(readCa(command.caFile))
    if (ca !== undefined && ca._tag === "Left") {
      io.err(`effect-lifeline: ${ca.left}`)
      return ExitCode.Usage
    }
    return yield* session(command, io, ca?.right).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, cliLogger(command.json, io))),
      Logger.withMinimumLogLevel(LogLevel.Warning)
    )
  })

const session = (command: ConnectCommand, io: Io, ca: string | undefined): Effect.Effect<number, never, Transport> =>
  Effect.scoped(Effect.gen(function*() {
    const print = (line: string | undefined, json: Record<string, unknown> | undefined) => {
      if (command.json) {
        if (json !== undefined) io.out(JSON.stringify(json))
      } else if (line !== undefined) io.err(line)
    }
    // Set by `onOpen`, before the Open transition is published.
    let protocol = ""
    let everOpened = false
    // Lines reported as failed by a MessageFailed event so far.
    let reported = 0
    // The error of the latest failed attempt (a Backoff), for a session that never opened.
    let lastFailure: ClientError | undefined = undefined
    // Set when the Closed transition is printed.
    let closedBy: Option.Option<ClientError> | undefined = undefined
    const finished = yield* Deferred.make<Outcome>()
    // The exit code of the first SIGINT / SIGTERM, if one came.
    let signalled: number | undefined = undefined
    const interrupted = yield* Deferred.make<void>()
    const closed = yield* Deferred.make<Option.Option<ClientError>>()

    const client = yield* Client.make(clientOptions(command, ca, {
      opened: (selected) => {
        protocol = selected
        everOpened = true
      },
      everOpened: () => everOpened
    }))

    // Every transition and every line that failed after it was accepted, in order.
    yield* client.events.pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => {
          if (event._tag === "MessageFailed") {
            reported++
            return print(failedLine(event.error), failedJson(event.error))
          }
          if (event._tag !== "Transition") return // no codec: never DecodeFailed
          const to = event.to
          // Only the first Closed: closing a client that an error closed publishes Closed again.
          if (closedBy !== undefined && (to._tag === "Closed" || to._tag === "Idle")) return
          print(stateLine(to, protocol), stateJson(to, protocol))
          if (to._tag === "Backoff") lastFailure = to.error
          if (to._tag === "Closed") {
            closedBy = to.error
            Deferred.unsafeDone(closed, Exit.succeed(to.error))
            Deferred.unsafeDone(finished, Exit.succeed<Outcome>("ClientClosed"))
          }
        })
      ),
      Effect.forkScoped
    )
    // Inbound messages until the client closes.
    const reader = yield* client.messages.pipe(
      Stream.runForEach((message) =>
        Effect.sync(() =>
          command.json ? io.out(JSON.stringify(messageJson(message))) : io.out(messageText(message, command.binary))
        )
      ),
      Effect.forkScoped
    )
    // stdin, line by line, through the outbox (the sink waits for room: a fast stdin is held to
    // the pace of the server). A line the Client refuses (it closed) is reported.
    const lines = Stream.suspend(() =>
      Stream.fromAsyncIterable(
        createInterface({ input: io.stdin, crlfDelay: Infinity, terminal: false }),
        (error) => error
      )
    )
    yield* lines.pipe(
      Stream.run(client.sink),
      Effect.catchAll((error) =>
        Effect.sync(() => {
          if (error instanceof SendError) print(failedLine(error), failedJson(error))
        })
      ),
      Effect.ensuring(Effect.sync(() => Deferred.unsafeDone(finished, Exit.succeed<Outcome>("StdinEnded")))),
      Effect.forkScoped
    )
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        io.onSignal((signal) => {
          signalled = signal === "SIGINT" ? ExitCode.Interrupted : ExitCode.Terminated
          Deferred.unsafeDone(interrupted, Exit.void)
          Deferred.unsafeDone(finished, Exit.succeed<Outcome>("Signal"))
        })
      ),
      (stop) => Effect.sync(stop)
    )

    const outcome = yield* Deferred.await(finished)
    const isClosed = Deferred.isDone(closed)
    if (outcome === "StdinEnded") {
      // Everything accepted written (and the link opened at least once, even with no line: the
      // program says whether the server can be reached), or the deadline, or the client closed by
      // an error, or a signal.
      const deadline = (yield* Clock.currentTimeMillis) + command.drainTimeoutMillis
      while (
        ((yield* client.outboxSize) > 0 || !everOpened) && !(yield* isClosed) && signalled === undefined &&
        (yield* Clock.currentTimeMillis) < deadline
      ) {
        yield* Effect.sleep(DRAIN_POLL_MILLIS)
      }
      if (command.waitMillis > 0) {
        yield* Effect.raceFirst(Deferred.await(closed), Deferred.await(interrupted)).pipe(
          Effect.timeout(command.waitMillis),
          Effect.ignore
        )
      }
    }
    // Writes what is queued if open, closes with 1000; what is still queued fails and is reported.
    yield* client.close(1000)
    // Closed is published as the close starts; the lines it failed are published after it.
    const failed = yield* client.failed
    const settled = Effect.gen(function*() {
      yield* Deferred.await(closed)
      while (reported < failed) yield* Effect.sleep(DRAIN_POLL_MILLIS)
      yield* Fiber.join(reader)
    })
    yield* Effect.timeout(settled, SETTLE_MILLIS).pipe(Effect.ignore)

    const error = closedBy ?? Option.none()
    if (Option.isSome(error)) io.err(`effect-lifeline: ${describeError(error.value)}`)
    let code: number = signalled ?? Option.match(error, { onNone: () => ExitCode.Ok, onSome: exitCodeOf })
    if (code === ExitCode.Ok) {
      if (failed > 0) io.err(`effect-lifeline: ${failed} line${failed === 1 ? "" : "s"} not sent`)
      if (!everOpened) {
        // Retried until the end and never open: not a success, and the last failure says why, lines
        // waiting or not (the cause before its consequence: a 401 exits 4, a closed port 8, not 9).
        const last = lastFailure === undefined ? "" : `; last: ${describeError(lastFailure)}`
        io.err(`effect-lifeline: never connected (within --drain-timeout ${command.drainTimeoutMillis} ms)${last}`)
        const byFailure = lastFailure === undefined ? ExitCode.NotRetried : exitCodeOf(lastFailure)
        code = byFailure === ExitCode.Ok ? ExitCode.NotRetried : byFailure
      } else if (failed > 0) code = ExitCode.LinesNotSent
    }
    if (command.json) io.out(JSON.stringify({ type: "exit", code }))
    return code
  }))
