/** What the tests of throws in callbacks share: a Clock that throws once, and the errors that reached the process. */
import { Clock, Effect } from "effect"

/**
 * Effect's live Clock but for one call of `unsafeCurrentTimeMillis` or `unsafeCurrentTimeNanos`
 * (the monotonic reading) that throws, once `armed`: a Client's attempts stay on callbacks with it
 * (a Clock is not what sends a Client to the fiber path), and its timers are the live ones.
 */
export const breakingClock = (): Clock.Clock & { armed: boolean } => {
  const live = Clock.make()
  const clock = Object.create(live) as Clock.Clock & { armed: boolean }
  clock.armed = false
  const breaking = <A>(read: () => A) => () => {
    if (!clock.armed) return read()
    clock.armed = false
    throw new Error("the clock broke")
  }
  Object.defineProperty(clock, "unsafeCurrentTimeMillis", { value: breaking(() => live.unsafeCurrentTimeMillis()) })
  Object.defineProperty(clock, "unsafeCurrentTimeNanos", { value: breaking(() => live.unsafeCurrentTimeNanos()) })
  return clock
}

/** Runs `self`, and returns with its value every uncaught exception and unhandled rejection meanwhile (listeners removed after). */
export const catchingStrays = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const strays: Array<unknown> = []
      const onError = (error: unknown) => strays.push(error)
      process.on("uncaughtException", onError)
      process.on("unhandledRejection", onError)
      return { strays, onError }
    }),
    ({ strays }) => Effect.map(self, (a) => [a, strays] as const),
    ({ onError }) =>
      Effect.sync(() => {
        process.off("uncaughtException", onError)
        process.off("unhandledRejection", onError)
      })
  )
