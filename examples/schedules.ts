/**
 * Reconnect policies are plain `Schedule`s:
 * - `backoff`: exponential (here without jitter, so the delays are exact) plus `recurs`;
 * - `onlyTransient`: the same, stopped by `whileInput` at the first fatal error, for `Effect.retry`
 *   (the Client already stops on fatal errors by its `shouldRetry`);
 * - Retry-After: the Client stretches the next delay to a rejected handshake's `retryAfter` itself;
 *   `honourRetryAfter` does the same for `Effect.retry`, which does not read it;
 * - `quickThenSlow`: a policy of your own from `Schedule` combinators.
 *
 * `main` runs a Client with a policy and reports every delay it waited and how it ended.
 *
 * Run: `npx tsx examples/schedules.ts` (starts its own TestServer on 127.0.0.1, a few seconds).
 */
import { Console, Duration, Effect, Option, Schedule, Stream } from "effect"
import { Client, Connection, NodeTransport, Reconnect } from "effect-lifeline"
import type { ClientError, ConnectError, TimeoutError } from "effect-lifeline"
import { TestServer } from "effect-lifeline/testing"

/** 100 ms, 200 ms, 400 ms, 800 ms, 1.6 s, then give up. `jitter: 0` keeps them exact; keep the default jitter in production. */
export const backoff = Reconnect.exponentialBackoff({ base: "100 millis", cap: "5 seconds", jitter: 0 }).pipe(
  Schedule.intersect(Schedule.recurs(5))
)

/** `backoff`, but not past an error that will come back on every attempt (a 401, a bad URL, close 1008). */
export const onlyTransient = backoff.pipe(Schedule.whileInput((error: ClientError) => Reconnect.isRetryable(error)))

/**
 * For `Effect.retry`, which does not read `retryAfter`: each delay of `schedule` stretched to the
 * error's `retryAfter` when the server sent one (HTTP 429 / 503 with `Retry-After`).
 */
export const honourRetryAfter = <Out>(schedule: Schedule.Schedule<Out, ClientError>) =>
  Schedule.identity<ClientError>().pipe(
    Schedule.intersect(schedule),
    Schedule.modifyDelay(([error], delay) =>
      error._tag === "ConnectError" && error.retryAfter !== undefined ? Duration.max(delay, error.retryAfter) : delay
    )
  )

/** Your own: two quick retries 250 ms apart, then exponential from 1 s for three more, then give up. */
export const quickThenSlow = Schedule.spaced("250 millis").pipe(
  Schedule.intersect(Schedule.recurs(2)),
  Schedule.andThen(Schedule.exponential("1 second").pipe(Schedule.intersect(Schedule.recurs(3))))
)

/** What `main` saw: each backoff's delay (ms) and error, and the end (`Open`, or the error that closed the Client). */
export interface Report {
  readonly delays: ReadonlyArray<number>
  readonly errors: ReadonlyArray<string>
  readonly outcome: string
}

const describe = (error: ClientError): string =>
  error._tag === "ConnectError"
    ? `${error.reason}${error.status === undefined ? "" : ` ${error.status}`}`
    : error._tag

/** Runs a Client with `policy` until it is Open or Closed, and reports the delays the policy produced. */
export const main = (
  url: string,
  policy: Schedule.Schedule<unknown, ClientError> = quickThenSlow
): Effect.Effect<Report> =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url, retry: policy, heartbeat: false })
    const states = yield* client.state.changes.pipe(
      Stream.takeUntil((state) => state._tag === "Open" || state._tag === "Closed"),
      Stream.runCollect
    )
    const delays: Array<number> = []
    const errors: Array<string> = []
    let outcome = "still running"
    for (const state of states) {
      if (state._tag === "Backoff") {
        delays.push(Duration.toMillis(state.delay))
        errors.push(describe(state.error))
      } else if (state._tag === "Open") {
        outcome = "Open"
      } else if (state._tag === "Closed") {
        outcome = Option.match(state.error, {
          onNone: () => "Closed",
          onSome: (error) => `Closed by ${describe(error)}`
        })
      }
    }
    return { delays, errors, outcome }
  }).pipe(Effect.scoped, Effect.provide(NodeTransport.layer))

/** One Connection, retried by `Effect.retry` with `onlyTransient`, Retry-After honoured: the number of attempts it made. */
export const dial = (url: string): Effect.Effect<number, ConnectError | TimeoutError> =>
  Effect.gen(function*() {
    let attempts = 0
    const connection = yield* Effect.suspend(() => {
      attempts++
      return Connection.connect(url)
    }).pipe(Effect.retry(honourRetryAfter(onlyTransient)))
    yield* connection.close()
    return attempts
  }).pipe(Effect.scoped, Effect.provide(NodeTransport.layer))

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* TestServer.make()
    // 503 with Retry-After: 1 s, then 502 twice: the Client waits 1 s (not 250 ms), then 250 ms, then 1 s.
    yield* server.rejectNext(503, { "retry-after": "1" })
    yield* server.rejectNext(502, {}, 2)
    yield* Console.log("quickThenSlow, through a 503 + Retry-After and two 502:", yield* main(server.url))
    yield* server.rejectNext(503)
    yield* server.rejectNext(401)
    const dialed = yield* dial(server.url).pipe(
      Effect.match({
        onFailure: (error) => `gave up: ${error.message}`,
        onSuccess: (attempts) => `open after ${attempts} attempts`
      })
    )
    yield* Console.log(`Effect.retry(onlyTransient), through a 503 then a 401: ${dialed}`)
  })
  Effect.runPromise(Effect.scoped(standalone)).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
