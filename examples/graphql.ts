/**
 * GraphQL over WebSocket on a lifeline Client: the `graphql-transport-ws` protocol (graphql-ws's),
 * queries and subscriptions that outlive reconnects.
 *
 * The protocol is per connection: each link starts with `connection_init`, and the server
 * answers `connection_ack` before anything else; a `subscribe` lives as long as the link it was
 * sent on, and an id sent twice on one link closes it (4409 "Subscriber already exists"). So:
 * - `onOpen` does the handshake with the connection it is given, then sends `subscribe` again
 *   for every operation still running. The Client is Open only once that is done.
 * - A `subscribe` goes out on the link of the session it belongs to (`session.connection.send`),
 *   never through the Client's outbox (`client.send`): the outbox keeps a frame for the next link
 *   when the link is down, and `onOpen` sends that operation on the next link too, so the server
 *   would see the id twice. Each operation records the session it was sent on, so that the
 *   `onOpen` of a new session and a `subscribe` called meanwhile send it once between them.
 * - A frame on a link that is gone fails (`SendError NotOpen`): nothing to do, the next `onOpen`
 *   sends it.
 * - The close codes after which graphql-ws's own client gives up (4400 Bad request, 4401
 *   Unauthorized, 4409, 4429, ...) stop the Client (`shouldRetry`), and so do those lifeline's
 *   default gives up on (1008 Policy violation, 1002, 1003, 1007, 1009, 1010: `isRetryable`);
 *   every running operation then fails with that error, and so does any started later (the
 *   GraphQL client ends with its Client: make a new one). A link the server closes during the
 *   handshake (4403 Forbidden, say) fails the attempt with that `Disconnected` too, so one rule
 *   reads every code.
 *
 * What a subscription misses while the link is down is gone (GraphQL subscriptions have no
 * replay): the server starts it again on the next link. A query or a mutation still running when
 * the link drops is sent again too, as graphql-ws's own client does: a mutation is at least once.
 * An operation's results wait in memory until its reader takes them (a Mailbox each).
 *
 * Run: `npx tsx examples/graphql.ts` (starts graphql-ws's server on 127.0.0.1, see `graphqlServer.ts`).
 */
import { Chunk, Data, Effect, Mailbox, Option, Schedule, Stream } from "effect"
import type { Scope } from "effect"
import { Client, Disconnected, NodeTransport, Reconnect } from "effect-lifeline"
import type { Connection, Transport } from "effect-lifeline"
import { serve } from "./graphqlServer.js"

/** What the server sends for an operation: `data` and, when part of it failed, `errors`. */
export interface ExecutionResult {
  readonly data?: unknown
  readonly errors?: ReadonlyArray<{ readonly message: string }>
}

/** The server refused an operation (an `error` message: a bad query, a failed validation). */
export class GraphQLError extends Data.TaggedError("GraphQLError")<{
  readonly errors: ReadonlyArray<{ readonly message: string }>
}> {}

/** What an operation fails with: refused by the server, or the Client stopped (`Client.ClientError`). */
export type OperationError = GraphQLError | Client.ClientError

/** A query or a subscription, as `subscribe` sends it. */
export interface Operation {
  readonly query: string
  readonly variables?: Record<string, unknown>
}

/**
 * The close codes of graphql-ws after which retrying cannot help (its own client gives up on them,
 * and so does this one): 4400 Bad request, 4401 Unauthorized, 4406 Subprotocol not acceptable,
 * 4409 Subscriber already exists, 4429 Too many initialisation requests, 4500 Internal server
 * error, 4004 Bad response, 4005 Internal client error. 4403 Forbidden, 4408 and 4504 (timeouts)
 * and 4499 are retried, as graphql-ws's client does: `fatal` adds codes of your own.
 */
export const FATAL_CLOSE_CODES: ReadonlySet<number> = new Set([4004, 4005, 4400, 4401, 4406, 4409, 4429, 4500])

export interface GraphQLClient {
  /** A subscription's results, until the server completes it; interrupting it completes it on the server. */
  readonly subscribe: (operation: Operation) => Stream.Stream<ExecutionResult, OperationError>
  /** A query's (or a mutation's) one result. */
  readonly execute: (operation: Operation) => Effect.Effect<ExecutionResult, OperationError>
  /** The Client underneath: its state, events, `close`. */
  readonly client: Client.Client
}

export interface Options {
  readonly url: string
  /** `connection_init`'s payload (a token, say). */
  readonly connectionParams?: Record<string, unknown>
  readonly retry?: Client.Options["retry"]
  /** More close codes that stop the Client. */
  readonly fatal?: ReadonlyArray<number>
}

/** One link's session: its connection, and its number (each `onOpen` starts the next). */
interface Session {
  readonly connection: Connection.Connection
  readonly number: number
}

/** A running operation: where its results go, and the session its `subscribe` went out on. */
interface Running {
  readonly id: string
  readonly subscribe: string
  readonly results: Mailbox.Mailbox<ExecutionResult, OperationError>
  sentOn: number
}

type ServerMessage =
  | { readonly type: "connection_ack" | "ping" | "pong"; readonly id?: undefined }
  | { readonly type: "next"; readonly id: string; readonly payload: ExecutionResult }
  | { readonly type: "error"; readonly id: string; readonly payload: ReadonlyArray<{ readonly message: string }> }
  | { readonly type: "complete"; readonly id: string }

const parse = (frame: unknown): ServerMessage | undefined => {
  try {
    const message = JSON.parse(String(frame))
    return typeof message === "object" && message !== null && typeof message.type === "string" ? message : undefined
  } catch {
    return undefined
  }
}

/** A GraphQL client over a lifeline Client, for the scope's life. */
export const make = (options: Options): Effect.Effect<GraphQLClient, never, Scope.Scope | Transport.Transport> =>
  Effect.gen(function*() {
    const fatal = new Set([...FATAL_CLOSE_CODES, ...(options.fatal ?? [])])
    const running = new Map<string, Running>()
    // The session of the last `onOpen`; left as it is when its link drops (a send on it then fails).
    let session: Session | undefined
    let sessions = 0
    // Why the Client stopped, once it has: the error that closed it, or `close`'s own (as
    // `awaitOpen` reports it). This client ends with it: a `client.reconnect` after a fatal close
    // restarts the Client, not this one (make a new one).
    let stopped: Client.ClientError | undefined
    let ids = 0

    /** Sends `operation` on `to` unless it went out on that session already; a link gone is left to the next `onOpen`. */
    const sendOn = (to: Session, operation: Running) =>
      Effect.suspend(() => {
        if (operation.sentOn === to.number) return Effect.void
        operation.sentOn = to.number
        return Effect.ignore(to.connection.send(operation.subscribe))
      })

    const client = yield* Client.make({
      url: options.url,
      connection: { protocols: "graphql-transport-ws" },
      heartbeat: { interval: "10 seconds", timeout: "5 seconds" },
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      // A link the server closes while `onOpen` runs (refusing `connection_init`) is a
      // `Disconnected` too, with the server's code.
      shouldRetry: (error) => !(error._tag === "Disconnected" && fatal.has(error.code)) && Reconnect.isRetryable(error),
      onOpen: (connection) =>
        Effect.gen(function*() {
          yield* connection.send(JSON.stringify({ type: "connection_init", payload: options.connectionParams }))
          // None: the server closed the link (the attempt then fails with how: 4403, say).
          const first = yield* Stream.runHead(connection.messages)
          if (Option.isSome(first) && parse(first.value)?.type !== "connection_ack") {
            // Anything before the ack breaks the protocol: closed as graphql-ws's client does, and
            // the attempt fails with that close (`Disconnected` 4004, which stops the Client).
            yield* connection.close(4004, "Bad response")
          }
          if (Option.isNone(first) || (yield* connection.readyState) !== 1) return
          const current = { connection, number: ++sessions }
          session = current
          // Operations started meanwhile go out from `subscribe`, once (`sendOn`).
          yield* Effect.forEach(running.values(), (operation) => sendOn(current, operation), { discard: true })
        })
    })

    /** Ends an operation and forgets it. */
    const settle = (id: string, end: (results: Running["results"]) => Effect.Effect<boolean>) =>
      Effect.suspend(() => {
        const operation = running.get(id)
        if (operation === undefined) return Effect.void
        running.delete(id)
        return end(operation.results)
      })

    // One reader for the Client's life: each message to its operation.
    yield* client.messages.pipe(
      Stream.runForEach((frame) => {
        const message = parse(frame)
        switch (message?.type) {
          case "next":
            return Effect.suspend(() => running.get(message.id)?.results.offer(message.payload) ?? Effect.void)
          case "error":
            return settle(message.id, (results) => results.fail(new GraphQLError({ errors: message.payload })))
          case "complete":
            return settle(message.id, (results) => results.end)
          case "ping":
            // Answered on the link of now, never queued for a later one.
            return Effect.suspend(() =>
              session === undefined ? Effect.void : Effect.ignore(session.connection.send(`{"type":"pong"}`))
            )
          default:
            return Effect.void
        }
      }),
      // The Client stopped (a fatal close, `close`): every operation still running fails with why,
      // and so does every one started from now on (`stopped`).
      Effect.zipRight(Effect.gen(function*() {
        const state = yield* client.state.get
        const error = state._tag === "Closed" ? Option.getOrUndefined(state.error) : undefined
        stopped = error ??
          new Disconnected({ code: 1000, reason: "client closed", wasClean: true, initiator: "client" })
        for (const id of [...running.keys()]) {
          yield* settle(id, (results) => error === undefined ? results.end : results.fail(error))
        }
      })),
      Effect.forkScoped
    )

    const subscribe = (operation: Operation): Stream.Stream<ExecutionResult, OperationError> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const results = yield* Mailbox.make<ExecutionResult, OperationError>()
        // Checked and registered in one step: the reader's end cannot come between.
        if (stopped !== undefined) return Stream.fail(stopped)
        const id = String(++ids)
        const started: Running = {
          id,
          subscribe: JSON.stringify({ id, type: "subscribe", payload: operation }),
          results,
          sentOn: 0
        }
        running.set(id, started)
        // Stopped before the server completed it: `complete` on the link it runs on, if that is up.
        yield* Effect.addFinalizer(() =>
          Effect.suspend(() => {
            if (!running.delete(id) || session === undefined || started.sentOn !== session.number) return Effect.void
            return Effect.ignore(session.connection.send(JSON.stringify({ id, type: "complete" })))
          })
        )
        if (session !== undefined) yield* sendOn(session, started)
        return Mailbox.toStream(results)
      }))

    const execute = (operation: Operation) =>
      Stream.runCollect(subscribe(operation)).pipe(
        Effect.flatMap((results) =>
          Option.match(Chunk.head(results), {
            // Ended by the Client's `close` (a subscription just ends then): why, not a server's error.
            onNone: () =>
              Effect.fail(
                stopped ?? new GraphQLError({ errors: [{ message: "the server completed with no result" }] })
              ),
            onSome: Effect.succeed
          })
        )
      )

    return { subscribe, execute, client }
  })

/** The example: `hello`, then the first three values of `count(to: 5)`, then all five. */
export const main = (url: string) =>
  Effect.gen(function*() {
    const graphql = yield* make({ url, retry: Schedule.spaced("100 millis") })
    const hello = yield* graphql.execute({ query: "{ hello }" })
    const counted = yield* Stream.runCollect(graphql.subscribe({ query: "subscription { count(to: 5) }" }))
    yield* graphql.client.close()
    return { hello: hello.data, counted: [...counted].map((result) => result.data) }
  }).pipe(Effect.scoped, Effect.provide(NodeTransport.layer))

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* serve()
    yield* Effect.log(yield* main(server.url))
  })
  Effect.runPromise(Effect.scoped(standalone))
}
