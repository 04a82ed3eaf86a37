// A minimal browser app with a lifeline Client: the same program, plus a Client that sends and
// reads. Its size minus bare.ts's is lifeline's own cost in a browser bundle.
import { Console, Effect, Schedule, Stream } from "effect"
import { BrowserTransport, Client } from "effect-lifeline/browser"

const program = Effect.gen(function*() {
  const values = yield* Stream.runCollect(Stream.make(1, 2, 3))
  yield* Console.log(values)
  const client = yield* Client.make({ url: "wss://example.com/feed" })
  yield* client.send("hello")
  yield* Stream.runForEach(client.messages, Console.log)
}).pipe(Effect.retry(Schedule.exponential("1 second")), Effect.scoped, Effect.provide(BrowserTransport.layer))

Effect.runFork(program)
