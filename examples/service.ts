/**
 * A service that depends on a Client provided as a Layer, in a small app.
 *
 * `Chat` is the link (a Client under your own tag); `Greeter` is your service, built from it. The
 * app asks `Greeter` for greetings and never sees a socket: reconnects, the outbox and the
 * heartbeat are the Client's business. Swap `ChatLive` for another layer in tests.
 *
 * Run: `npx tsx examples/service.ts` (starts its own TestServer on 127.0.0.1).
 */
import { Console, Context, Effect, Layer, Option, Queue, Schedule, Stream } from "effect"
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

/**
 * `Greeter` over whatever `Chat` is in context. `messages` has a single consumer: one reader, for
 * the layer's life, hands each frame on; a call takes the next. (A reader per call, such as
 * `Stream.runHead(chat.messages)`, drops the frames it pulled with the one it used: two frames
 * waiting, the second is lost.) Calls are one at a time, so the next frame is the answer.
 */
export const GreeterLive = Layer.scoped(
  Greeter,
  Effect.gen(function*() {
    const chat = yield* Chat
    // Each frame, then None once the Client closed (its `messages` ended).
    const frames = yield* Queue.unbounded<Option.Option<string>>()
    yield* chat.messages.pipe(
      Stream.runForEach((frame) => Queue.offer(frames, Option.some(String(frame)))),
      Effect.zipRight(Queue.offer(frames, Option.none())),
      Effect.forkScoped
    )
    const lock = yield* Effect.makeSemaphore(1)
    return Greeter.of({
      greet: (name) =>
        lock.withPermits(1)(
          chat.send(`hello ${name}`).pipe(
            Effect.zipRight(Queue.take(frames)),
            // Closed: left for the calls after this one too.
            Effect.tap((frame) => Option.isNone(frame) ? Queue.offer(frames, frame) : Effect.void),
            Effect.map(Option.getOrElse(() => "(no answer: the client closed)"))
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
