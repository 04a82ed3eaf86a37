/**
 * A breaker shared by a fleet: many Clients to one endpoint behind one `CircuitBreaker.layer`.
 *
 * While the endpoint is down, the first failures open the endpoint's breaker (shared by every
 * Client in the layer's context) and every Client is `Suspended` until the same `retryAt`: no
 * handshakes in the open period, then `trials` (1) trial handshake for the whole fleet. When the
 * trial succeeds the breaker closes and every Client connects; the messages sent meanwhile waited
 * in each Client's outbox (`whenSuspended: "queue"`, the default) and go out then.
 *
 * Run: `npx tsx examples/fleet.ts` (starts its own TestServer on 127.0.0.1 that answers the first
 * handshakes with 503).
 */
import { Console, Effect, Layer, Logger, Option, Schedule, Stream } from "effect"
import { CircuitBreaker, Client, NodeTransport } from "effect-lifeline"
import type { CircuitOpenError, SendError } from "effect-lifeline"
import { TestServer } from "effect-lifeline/testing"

/**
 * One breaker per endpoint for everything in this layer's context: 3 failures in a row open it for
 * 2 s. (With 500 ms, a loaded machine once retried a Client after the open period had ended: its
 * trial opened, and it was never Suspended.)
 */
export const BreakersLive = CircuitBreaker.layer({
  policy: CircuitBreaker.consecutiveFailures(3),
  openFor: Schedule.spaced("2 seconds"),
  trials: 1
})

/** What the fleet saw while the endpoint was down, and what it sent once it was back. */
export interface Report {
  /** Clients that were Suspended at once, waiting on the shared breaker. */
  readonly suspended: number
  /** The endpoints they were suspended on (one: the shared breaker's key). */
  readonly endpoints: ReadonlyArray<string>
  /** The distinct `retryAt`s of the breaker's refusals (one: the same open period for all). */
  readonly retryAts: number
  /** Messages written once the endpoint was back, one per Client. */
  readonly sent: number
}

/** `size` Clients to `url`; each sends one message, which waits while its Client is suspended. */
export const main = (url: string, size = 10): Effect.Effect<Report, SendError | CircuitOpenError> =>
  Effect.gen(function*() {
    const clients = yield* Effect.forEach(
      Array.from({ length: size }, (_, index) => index),
      () => Client.make({ url, retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis", heartbeat: false })
    )
    // Every Client ends up Suspended on the one breaker (bounded: the endpoint may be up after all).
    // Each Client's first Suspended: `events` replays the recent transitions to a new subscriber,
    // so one that is over already (a slow machine) is seen too, as `state.changes` would not.
    const suspensions = yield* Effect.forEach(
      clients,
      (client) =>
        client.events.pipe(
          Stream.filterMap((event) =>
            event._tag === "Transition" && event.to._tag === "Suspended" ? Option.some(event.to) : Option.none()
          ),
          Stream.runHead,
          // each Client on its own: one that never was Suspended (its retry came after the open
          // period, on a slow machine) is left out, not the whole report
          Effect.timeoutTo({ duration: "5 seconds", onSuccess: (found) => found, onTimeout: () => Option.none() })
        ),
      { concurrency: "unbounded" }
    )
    const seen = suspensions.flatMap((state) => Option.isSome(state) ? [state.value] : [])
    // Sent while suspended: each waits in its Client's outbox and is written once the trial succeeds.
    yield* Effect.forEach(clients, (client, index) => client.send(`hello from client ${index}`), {
      concurrency: "unbounded",
      discard: true
    })
    return {
      suspended: seen.length,
      endpoints: [...new Set(seen.map((state) => state.endpoint))],
      retryAts: new Set(seen.map((state) => state.error.retryAt.getTime())).size,
      sent: clients.length
    }
  }).pipe(Effect.scoped, Effect.provide(Layer.merge(NodeTransport.layer, BreakersLive)))

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* TestServer.make()
    yield* server.rejectNext(503, {}, 10)
    const report = yield* main(server.url, 10)
    yield* Console.log(report)
    yield* Console.log(`handshakes at the server: ${yield* server.requests}, accepted: ${yield* server.accepted}`)
  })
  // Without the default logger: each Client would log its failed first attempt.
  Effect.runPromise(Effect.scoped(standalone).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))).catch(
    (error: unknown) => {
      console.error(error)
      process.exitCode = 1
    }
  )
}
