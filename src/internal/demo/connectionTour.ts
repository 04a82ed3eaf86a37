// A tour of Connection.connect's typed failures against an embedded TestServer: each step provokes
// one failure, catches it by tag, and prints one aligned line. The last step retries a killed
// server with a Schedule until it comes back, then sends "hello" and prints the echo.
import type { Scope } from "effect"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Connection from "../../Connection.js"
import type { ConnectErrorReason, TimeoutError } from "../../Errors.js"
import type { ConnectError } from "../../Errors.js"
import { TestServer } from "../../testing/index.js"
import type * as Transport from "../../Transport.js"

type OpenError = ConnectError | TimeoutError

// ---------------------------------------------------------------------------------------------
// Reading an error

const describeConnectError = (error: ConnectError): string => {
  switch (error.reason) {
    case "HandshakeRejected": {
      const status = error.status === undefined ? "" : ` status ${error.status}`
      const retryAfter = error.retryAfter === undefined ? "" : ` retryAfter ${Duration.format(error.retryAfter)}`
      return `ConnectError HandshakeRejected${status}${retryAfter}`
    }
    default:
      return `ConnectError ${error.reason}`
  }
}

const describeTimeoutError = (error: TimeoutError): string =>
  `TimeoutError ${error.operation} after ${Duration.format(error.timeout)}`

const describe = (error: OpenError): string =>
  error._tag === "ConnectError" ? describeConnectError(error) : describeTimeoutError(error)

// Worth another attempt: the network or the server may recover. A bad URL or a 401 will not.
const transientReasons: ReadonlySet<ConnectErrorReason> = new Set<ConnectErrorReason>([
  "DnsLookupFailed",
  "ConnectionRefused",
  "NetworkUnreachable",
  "ConnectionReset",
  "ClosedBeforeOpen"
])

const isTransient = (error: OpenError): boolean => {
  if (error._tag === "TimeoutError") return true
  if (error.reason === "HandshakeRejected") {
    return error.status !== undefined && (error.status === 429 || error.status >= 500)
  }
  return transientReasons.has(error.reason)
}

const verdict = (error: OpenError): string => {
  if (!isTransient(error)) return "permanent, not retried"
  if (error._tag === "ConnectError" && error.retryAfter !== undefined) {
    return `transient, retry after ${Duration.format(error.retryAfter)}`
  }
  return "transient, retry"
}

// ---------------------------------------------------------------------------------------------
// Printing

const row = (step: string, setup: string, outcome: string, note = ""): Effect.Effect<void> =>
  Console.log(`  ${step.padEnd(3)}${setup.padEnd(32)}${outcome.padEnd(57)}${note}`.trimEnd())

// ---------------------------------------------------------------------------------------------
// One failing open

interface Caught {
  readonly error: OpenError
  readonly text: string
}

/**
 * Opens `url` and expects it to fail with an error whose description starts with `expected`.
 * Anything else (an open, another error) is a defect: the demo then exits 1.
 */
const expectFailure = (
  step: string,
  setup: string,
  url: string,
  expected: string,
  options?: Connection.Options
): Effect.Effect<void, never, Transport.Transport> =>
  Effect.scoped(Connection.connect(url, options)).pipe(
    Effect.flatMap(() => Effect.dieMessage(`step ${step}: expected ${expected}, but ${url} opened`)),
    Effect.catchTags({
      ConnectError: (error) => Effect.succeed<Caught>({ error, text: describeConnectError(error) }),
      TimeoutError: (error) => Effect.succeed<Caught>({ error, text: describeTimeoutError(error) })
    }),
    Effect.flatMap(({ error, text }) =>
      text.startsWith(expected)
        ? row(step, setup, text, verdict(error))
        : Effect.dieMessage(`step ${step}: expected ${expected}, got ${text} (${error.message})`)
    )
  )

// ---------------------------------------------------------------------------------------------
// Retrying until the server is back

// 100 ms, 200 ms, 400 ms, ... each delay capped at 1 second, at most 6 retries (~3.5 s in all).
const retrySchedule = Schedule.exponential("100 millis").pipe(
  Schedule.either(Schedule.spaced("1 second")),
  Schedule.intersect(Schedule.recurs(6))
)

const SERVER_DOWN_FOR = "600 millis"
const ECHO_TIMEOUT = "2 seconds"

const retryUntilBack = (server: TestServer.TestServer): Effect.Effect<void, never, Transport.Transport> =>
  Effect.scoped(Effect.gen(function*() {
    yield* server.kill
    const started = yield* Clock.currentTimeMillis
    const elapsed = Effect.map(Clock.currentTimeMillis, (now) => `+${String(now - started).padStart(4)} ms`)
    yield* server.restart.pipe(Effect.delay(SERVER_DOWN_FOR), Effect.forkScoped)

    const attempts = yield* Ref.make(0)
    const connection = yield* Ref.updateAndGet(attempts, (n) => n + 1).pipe(
      Effect.zipRight(Connection.connect(server.url)),
      Effect.tapError((error) =>
        Effect.all([Ref.get(attempts), elapsed]).pipe(
          Effect.flatMap(([attempt, at]) => row("6", `attempt ${attempt} at ${at}`, describe(error), verdict(error)))
        )
      ),
      Effect.retry({ schedule: retrySchedule, while: isTransient }),
      Effect.catchAll((error) => Effect.dieMessage(`step 6: gave up retrying: ${error.message}`))
    )
    const attempt = yield* Ref.get(attempts)
    yield* row("6", `attempt ${attempt} at ${yield* elapsed}`, `connected to ${connection.url}`)

    yield* connection.send("hello").pipe(Effect.orDie)
    const echo = yield* Stream.runHead(connection.messages).pipe(
      Effect.timeoutFail({
        duration: ECHO_TIMEOUT,
        onTimeout: () => new Error(`step 6: no echo within ${ECHO_TIMEOUT}`)
      }),
      Effect.orDie
    )
    const text = Option.match(echo, {
      onNone: () => "the connection closed before an echo",
      onSome: (message) => typeof message === "string" ? `"${message}"` : `${message.byteLength} bytes`
    })
    yield* row("6", `send "hello"`, `echo ${text}`)
    const disconnected = yield* connection.close()
    yield* row("6", "close()", disconnected.message)
  }))

// ---------------------------------------------------------------------------------------------
// The tour

/**
 * Provokes each way an open can fail, against a TestServer owned by the caller's scope, and prints
 * one line per step. Unexpected outcomes are defects.
 */
export const connectionTour: Effect.Effect<void, never, Scope.Scope | Transport.Transport> = Effect.gen(function*() {
  const server = yield* TestServer.make()
  yield* Console.log(`connection tour against ${server.url}`)

  // 1. Nothing listens on the port.
  yield* server.kill
  yield* expectFailure("1", "server killed", server.url, "ConnectError ConnectionRefused")
  yield* server.restart

  // 2. The server reads the upgrade request and never answers.
  yield* server.hangHandshake
  yield* expectFailure("2", "hung handshake, openTimeout 1s", server.url, "TimeoutError open", {
    openTimeout: "1 second"
  })
  yield* server.behave

  // 3. and 4. The server answers the upgrade with an HTTP error.
  yield* server.rejectNext(401)
  yield* expectFailure("3", "HTTP 401", server.url, "ConnectError HandshakeRejected status 401")
  yield* server.rejectNext(503, { "retry-after": "1" })
  yield* expectFailure(
    "4",
    "HTTP 503, retry-after: 1",
    server.url,
    "ConnectError HandshakeRejected status 503 retryAfter 1s"
  )

  // 5. URLs rejected before any socket exists.
  yield* expectFailure("5", "ws://[::1", "ws://[::1", "ConnectError InvalidUrl")
  const ftpUrl = server.url.replace(/^ws:/, "ftp:")
  yield* expectFailure("5", ftpUrl, ftpUrl, "ConnectError InvalidUrl")

  // 6. The server is down for a while; retry transient failures until it is back.
  yield* retryUntilBack(server)
})
