// The baseline: a small Effect program with no lifeline (what an app pays for Effect itself).
import { Console, Effect, Schedule, Stream } from "effect"

const program = Effect.gen(function*() {
  const values = yield* Stream.runCollect(Stream.make(1, 2, 3))
  yield* Console.log(values)
}).pipe(Effect.retry(Schedule.exponential("1 second")))

Effect.runFork(program)
