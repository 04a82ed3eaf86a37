// Raw `ws` clients for the test kit's own tests (not lifeline: the kit must be checked without it),
// each a scoped resource that records what it receives, plus real-time waits that ignore TestClock.
import { Deferred, Effect, Exit, Option, Queue } from "effect"
import type { Scope } from "effect"
import type { IncomingHttpHeaders } from "node:http"
import { WebSocket } from "ws"
import type { ClientOptions } from "ws"

/** A message as the client got it: text frames as strings, binary frames as bytes. */
export type Received = string | Uint8Array

/** How the opening handshake ended. */
export type HandshakeOutcome =
  | { readonly _tag: "Open"; readonly protocol: string }
  | { readonly _tag: "Rejected"; readonly status: number; readonly headers: IncomingHttpHeaders }
  | { readonly _tag: "Failed"; readonly message: string }

/** The close event the client saw. */
export interface Closed {
  readonly code: number
  readonly reason: string
}

/** A raw ws client and everything it observed. */
export interface RawClient {
  readonly ws: WebSocket
  readonly handshake: Effect.Effect<HandshakeOutcome>
  readonly messages: Queue.Dequeue<Received>
  readonly pongs: Queue.Dequeue<string>
  readonly closed: Effect.Effect<Closed>
  /** every error event's message, in order */
  readonly errors: ReadonlyArray<string>
}

/** Starts a handshake; the scope terminates the client and waits for its close event. */
export const start = (
  url: string,
  options: ClientOptions & { readonly protocols?: ReadonlyArray<string> } = {}
): Effect.Effect<RawClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const messages = yield* Queue.unbounded<Received>()
    const pongs = yield* Queue.unbounded<string>()
    const handshake = yield* Deferred.make<HandshakeOutcome>()
    const closed = yield* Deferred.make<Closed>()
    const errors: Array<string> = []
    const { protocols = [], ...clientOptions } = options
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const ws = new WebSocket(url, [...protocols], clientOptions)
        const settle = (outcome: HandshakeOutcome) => Deferred.unsafeDone(handshake, Exit.succeed(outcome))
        ws.on("open", () => settle({ _tag: "Open", protocol: ws.protocol }))
        ws.on("unexpected-response", (_request, response) => {
          settle({ _tag: "Rejected", status: response.statusCode ?? 0, headers: response.headers })
          // With this listener attached ws leaves the aborting to us.
          ws.terminate()
        })
        ws.on("error", (error) => {
          errors.push(error.message)
          settle({ _tag: "Failed", message: error.message })
        })
        ws.on("message", (data, isBinary) => messages.unsafeOffer(toReceived(data, isBinary)))
        ws.on("pong", (data) => pongs.unsafeOffer(data.toString("utf8")))
        ws.on("close", (code, reason) => {
          settle({ _tag: "Failed", message: `closed with ${code} before open` })
          Deferred.unsafeDone(closed, Exit.succeed({ code, reason: reason.toString("utf8") }))
        })
        return ws
      }),
      (ws) => Effect.sync(() => ws.terminate()).pipe(Effect.zipRight(Deferred.await(closed)))
    )
    return {
      ws,
      handshake: Deferred.await(handshake),
      messages,
      pongs,
      closed: Deferred.await(closed),
      errors
    }
  })

/** Opens a client and fails the test unless the handshake succeeds. */
export const open = (
  url: string,
  options: ClientOptions & { readonly protocols?: ReadonlyArray<string> } = {}
): Effect.Effect<RawClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* start(url, options)
    const outcome = yield* client.handshake
    if (outcome._tag !== "Open") {
      return yield* Effect.dieMessage(`expected an open client, got ${JSON.stringify(outcome)}`)
    }
    return client
  })

/** Waits in real time; the kit's tests run under TestClock, which only moves when told to. */
export const pause = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/** The effect's result if it completes within `millis` of real time. */
export const within = <A>(millis: number, effect: Effect.Effect<A>): Effect.Effect<Option.Option<A>> =>
  Effect.raceFirst(Effect.map(effect, Option.some), Effect.as(pause(millis), Option.none()))

/** Re-reads until `accept` holds, at most `attempts` times 5 ms apart; returns the last reading. */
export const eventually = <A>(
  read: Effect.Effect<A>,
  accept: (value: A) => boolean,
  attempts = 100
): Effect.Effect<A> =>
  Effect.flatMap(read, (value) =>
    accept(value) || attempts <= 1
      ? Effect.succeed(value)
      : Effect.zipRight(pause(5), eventually(read, accept, attempts - 1)))

const toReceived = (data: WebSocket.RawData, isBinary: boolean): Received => {
  const bytes = new Uint8Array(Array.isArray(data) ? Buffer.concat(data) : data)
  return isBinary ? bytes : Buffer.from(bytes).toString("utf8")
}
