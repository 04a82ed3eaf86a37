/**
 * Exhaustive `Match` over every typed error of a Client, and `catchTags`.
 *
 * `describeError` has one case per `Client.ClientError` tag and ends with `Match.exhaustive`: add an
 * error to the union and this file stops compiling until it is handled. `catchTags` handles the
 * errors of `send` (`SendError`, `CircuitOpenError`) by tag, each with its fields typed.
 *
 * Run: `npx tsx examples/matchErrors.ts` (starts its own TestServer on 127.0.0.1; shows an open
 * link, a 401 and a refused connection).
 */
import { Console, Effect, Logger, Match, Schedule } from "effect"
import { Client, NodeTransport } from "effect-lifeline"
import { TestServer } from "effect-lifeline/testing"

/** One line per error, every tag handled. */
export const describeError = Match.type<Client.ClientError>().pipe(
  Match.tag("ConnectError", (e) => `ConnectError ${e.reason}${e.status === undefined ? "" : ` HTTP ${e.status}`}`),
  Match.tag("TimeoutError", (e) => `TimeoutError ${e.operation}`),
  Match.tag("Disconnected", (e) => `Disconnected ${e.code} by ${e.initiator}`),
  Match.tag("OnOpenError", (e) => `OnOpenError: ${e.message}`),
  Match.tag("CircuitOpenError", (e) => `CircuitOpenError ${e.endpoint} until ${e.retryAt.toISOString()}`),
  Match.exhaustive
)

/**
 * Opens a Client (one retry at most), sends "ping", and reports each step in a line: how the open
 * went (`describeError` when it failed) and what became of the message (`catchTags`).
 */
export const main = (url: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url, retry: Schedule.recurs(1), heartbeat: false })
    const opened = yield* client.awaitOpen.pipe(
      Effect.as("open"),
      Effect.catchAll((error) => Effect.succeed(`not open: ${describeError(error)}`))
    )
    const sent = yield* client.send("ping").pipe(
      Effect.as("sent: ping"),
      Effect.catchTags({
        SendError: (e) => Effect.succeed(`not sent (${e.reason}): ${String(e.payload)}`),
        CircuitOpenError: (e) => Effect.succeed(`not sent, circuit open until ${e.retryAt.toISOString()}`)
      })
    )
    return [opened, sent]
  }).pipe(Effect.scoped, Effect.provide(NodeTransport.layer))

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* TestServer.make()
    yield* Console.log("a server that answers:", yield* main(server.url))
    yield* server.rejectNext(401)
    yield* Console.log("a server that says 401:", yield* main(server.url))
    yield* server.kill
    yield* Console.log("a server that is gone:", yield* main(server.url))
  })
  // The Client's own WARN lines would repeat what the lines above say.
  Effect.runPromise(Effect.scoped(standalone).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))).catch(
    (error: unknown) => {
      console.error(error)
      process.exitCode = 1
    }
  )
}
