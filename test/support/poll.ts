/** Bounded waits on a condition, for tests: they fail the test instead of hanging it, and never
 * stand in for the condition with a fixed sleep (which a loaded machine can outrun). */
import { Effect, Fiber, FiberStatus } from "effect"

/** Polls `check` every 5 ms until it holds; dies after `polls` polls (3,000: 15 s at least, a hang guard). */
export const awaitTrue = (check: Effect.Effect<boolean>, what: string, polls = 3_000) =>
  Effect.gen(function*() {
    for (let poll = 0; poll < polls; poll++) {
      if (yield* check) return
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`never true: ${what}`)
  })

/**
 * As `awaitTrue`, but each poll waits 5 ms of real time (a `setTimeout`), not on the Clock: under
 * the TestClock, which stands still meanwhile, socket I/O gets the real time it needs.
 */
export const realUntil = (check: Effect.Effect<boolean>, what: string, polls = 2_000) =>
  Effect.gen(function*() {
    for (let poll = 0; poll < polls; poll++) {
      if (yield* check) return
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))
    }
    return yield* Effect.dieMessage(`never: ${what}`)
  })

/** Waits until a forked fiber has started and is suspended (blocked on something), e.g. a sender
 * waiting for room in the outbox. */
export const awaitSuspended = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  awaitTrue(Effect.map(Fiber.status(fiber), FiberStatus.isSuspended), "the fiber is suspended")
