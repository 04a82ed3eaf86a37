// client.ts with lifeline's modules imported by their own paths (`effect-lifeline/Client`), as
// Effect's own are for the smallest bundles: esbuild keeps every member of a namespace re-exported
// by an entry (`import { Client } from "effect-lifeline/browser"`), and only the used ones of a
// module imported by its path.
// A minimal browser app with a lifeline Client: the same app as bare.ts, plus a Client that sends
// and reads. Its size minus bare.ts's is lifeline's own cost in a browser bundle.
import { Console, Context, Effect, Layer, Schedule, Stream } from "effect"
import * as BrowserTransport from "effect-lifeline/BrowserTransport"
import * as Client from "effect-lifeline/Client"

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
