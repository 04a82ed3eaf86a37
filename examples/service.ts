/**
 * A service that depends on a Client provided as a Layer, in a small app.
 *
 * `Chat` is the link (a Client under your own tag); `Greeter` is your service, built from it. The
 * app asks `Greeter` for greetings and never sees a socket: reconnects, the outbox and the
 * heartbeat are the Client's business. Swap `ChatLive` for another layer in tests.
 *
 * Run: `npx tsx examples/service.ts` (starts its own TestServer on 127.0.0.1).
 */
import { Console, Context, Effect, Layer, Option, Schedule, Stream } from "effect"
import { Client, NodeTransport, Reconnect } from "effect-lifeline"
import type { CircuitOpenError, SendError } from "effect-lifeline"
import { TestServer } from "effect-lifeline/testing"

/** The link: one Client, under a tag of its own. */
export class Chat extends Client.Tag("examples/Chat")<Chat>() {}

/** Your service: it knows how to greet, not how to keep a socket up. */
export class Greeter extends Context.Tag("examples/Greeter")<Greeter, {
  /** Sends `hello <name>` and returns the server's answer. */
  readonly greet: (name: string) => Effect.Effect<string, SendError | CircuitOpenError>
}>() {}

/** `Greeter` over whatever `Chat` is in context. Calls are one at a time: `messages` has a single reader. */
export const GreeterLive = Layer.effect(
  Greeter,
  Effect.gen(function*() {
    const chat = yield* Chat
    const lock = yield* Effect.makeSemaphore(1)
    return Greeter.of({
      greet: (name) =>
        lock.withPermits(1)(
          chat.send(`hello ${name}`).pipe(
            // The next inbound frame is the answer; a reader that stops leaves the rest for the next.
            Effect.zipRight(Stream.runHead(chat.messages)),
            Effect.map(Option.match({ onNone: () => "(no answer: the client closed)", onSome: String }))
          )
        )
    })
  })
)

/** The Client behind `Chat`, for one URL: jittered exponential backoff, at most 10 retries in a row. */
export const ChatLive = (url: string, options: Partial<Client.Options> = {}) =>
  Client.layer(Chat, {
    url,
    retry: Reconnect.exponentialBackoff({ base: "200 millis", cap: "5 seconds" }).pipe(
      Schedule.intersect(Schedule.recurs(10))
    ),
    ...options
  })

/** The whole app's layer: Greeter <- Chat <- NodeTransport. */
export const AppLive = (url: string) =>
  GreeterLive.pipe(Layer.provide(ChatLive(url)), Layer.provide(NodeTransport.layer))

/** The app: greets two people and returns the answers. */
export const main = (url: string): Effect.Effect<ReadonlyArray<string>, SendError | CircuitOpenError> =>
  Effect.gen(function*() {
    const greeter = yield* Greeter
    return yield* Effect.forEach(["alice", "bob"], greeter.greet)
  }).pipe(Effect.provide(AppLive(url)))

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* TestServer.make({ handler: (message, reply) => reply(`server says: ${String(message)}`) })
    const answers = yield* main(server.url)
    for (const answer of answers) yield* Console.log(answer)
    yield* Console.log(`the server received: ${JSON.stringify(yield* server.received)}`)
  })
  Effect.runPromise(Effect.scoped(standalone)).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
