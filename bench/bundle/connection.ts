// The same app as clientModules.ts with a Connection instead of a Client: what the single
// connection costs in a browser bundle, the floor any Client built on it starts from.
import { Console, Context, Effect, Layer, Schedule, Stream } from "effect"
import * as BrowserTransport from "effect-lifeline/BrowserTransport"
import * as Connection from "effect-lifeline/Connection"

class Greeter
  extends Context.Tag("app/Greeter")<Greeter, { readonly greet: (name: string) => Effect.Effect<string> }>()
{}
const GreeterLive = Layer.succeed(Greeter, { greet: (name) => Effect.succeed(`hello ${name}`) })

const program = Effect.gen(function*() {
  const greeter = yield* Greeter
  yield* Console.log(yield* greeter.greet("world"))
  const values = yield* Stream.runCollect(Stream.make(1, 2, 3))
  yield* Console.log(values)
  const connection = yield* Connection.connect("wss://example.com/feed")
  yield* connection.send("hello")
  yield* Stream.runForEach(connection.messages, Console.log)
}).pipe(
  Effect.retry(Schedule.exponential("1 second")),
  Effect.scoped,
  Effect.provide(Layer.merge(GreeterLive, BrowserTransport.layer))
)

Effect.runFork(program)
