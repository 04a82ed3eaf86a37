// clientModules.ts with Effect imported by its modules' paths: here the Effect modules that only
// lifeline uses count in its cost (in the barrel apps they are in the baseline already).
import * as BrowserTransport from "effect-lifeline/BrowserTransport"
import * as Client from "effect-lifeline/Client"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"

class Greeter
  extends Context.Tag("app/Greeter")<Greeter, { readonly greet: (name: string) => Effect.Effect<string> }>()
{}
const GreeterLive = Layer.succeed(Greeter, { greet: (name) => Effect.succeed(`hello ${name}`) })

const program = Effect.gen(function*() {
  const greeter = yield* Greeter
  yield* Console.log(yield* greeter.greet("world"))
  const values = yield* Stream.runCollect(Stream.make(1, 2, 3))
  yield* Console.log(values)
  const client = yield* Client.make({ url: "wss://example.com/feed" })
  yield* client.send("hello")
  yield* Stream.runForEach(client.messages, Console.log)
}).pipe(
  Effect.retry(Schedule.exponential("1 second")),
  Effect.scoped,
  Effect.provide(Layer.merge(GreeterLive, BrowserTransport.layer))
)

Effect.runFork(program)
