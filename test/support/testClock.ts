/** Waits (bounded) until some fiber sleeps on the TestClock, so that `TestClock.adjust` reaches it. */
import { Chunk, Effect, TestClock } from "effect"

export const awaitSleeper = Effect.gen(function*() {
  for (let turn = 0; turn < 10_000; turn++) {
    if (Chunk.isNonEmpty(yield* TestClock.sleeps())) return
    yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
  }
  return yield* Effect.dieMessage("no fiber ever slept on the TestClock")
})
