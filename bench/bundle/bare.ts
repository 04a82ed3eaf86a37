// The baseline: a small Effect app with no lifeline (what an app pays for Effect itself): a
// service behind a Context.Tag provided by a Layer, a Stream, a Schedule to retry, a scope.
import { Console, Context, Effect, Layer, Schedule, Stream } from "effect"

class Greeter
  extends Context.Tag("app/Greeter")<Greeter, { readonly greet: (name: string) => Effect.Effect<string> }>()
{}
const GreeterLive = Layer.succeed(Greeter, { greet: (name) => Effect.succeed(`hello ${name}`) })

const program = Effect.gen(function*() {
  const greeter = yield* Greeter
  yield* Console.log(yield* greeter.greet("world"))
  const values = yield* Stream.runCollect(Stream.make(1, 2, 3))
  yield* Console.log(values)
}).pipe(Effect.retry(Schedule.exponential("1 second")), Effect.scoped, Effect.provide(GreeterLive))

Effect.runFork(program)
