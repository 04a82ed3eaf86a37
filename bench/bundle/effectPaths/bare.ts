// bare.ts with Effect imported by its modules' paths (`effect/Effect`), as an app that wants the
// smallest bundle does: esbuild then keeps only what is used of each, as Vite (Rollup) does of
// Effect's index too. The baseline of the apps beside it.
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
}).pipe(Effect.retry(Schedule.exponential("1 second")), Effect.scoped, Effect.provide(GreeterLive))

Effect.runFork(program)
