// The same app as clientModules.ts with the small Client (`effect-lifeline/LiteClient`): one URL,
// no failover, breakers or metrics, on one fiber and Effect's Deferred. Its size minus
// bare.ts's is the small Client's cost in a browser bundle (#13's 15 KiB target).
import { Console, Context, Effect, Layer, Schedule, Stream } from "effect"
import * as BrowserTransport from "effect-lifeline/BrowserTransport"
import * as LiteClient from "effect-lifeline/LiteClient"

class Greeter
  extends Context.Tag("app/Greeter")<Greeter, { readonly greet: (name: string) => Effect.Effect<string> }>()
{}
const GreeterLive = Layer.succeed(Greeter, { greet: (name) => Effect.succeed(`hello ${name}`) })

const program = Effect.gen(function*() {
  const greeter = yield* Greeter
  yield* Console.log(yield* greeter.greet("world"))
  const values = yield* Stream.runCollect(Stream.make(1, 2, 3))
  yield* Console.log(values)
  const client = yield* LiteClient.make({ url: "wss://example.com/feed" })
  yield* client.send("hello")
  yield* Stream.runForEach(client.messages, Console.log)
}).pipe(
  Effect.retry(Schedule.exponential("1 second")),
  Effect.scoped,
  Effect.provide(Layer.merge(GreeterLive, BrowserTransport.layer))
)

Effect.runFork(program)
