/** A Scheduler that makes a fiber yield at one chosen point, and a turn of the event loop. */
import type { Scheduler } from "effect"
import { Effect, Fiber } from "effect"

/**
 * A Scheduler under which the fiber yields once, before its `at`-th operation, and `onYield` runs
 * while it is away (resumed by `setImmediate`): a socket callback that ran while a reader had
 * yielded, as Effect's own scheduler makes a fiber yield every 2,048 operations.
 */
export class YieldOnce implements Scheduler.Scheduler {
  calls = 0
  yielded = false
  constructor(readonly at: number, readonly onYield: () => void) {}
  shouldYield(): number | false {
    return ++this.calls === this.at ? 0 : false
  }
  scheduleTask(task: Scheduler.Task): void {
    setImmediate(() => {
      if (!this.yielded) {
        this.yielded = true
        this.onYield()
      }
      task()
    })
  }
}

/** One turn of the event loop (a `setImmediate`). */
export const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * Runs `pull` on a fiber that yields once, before its `at`-th operation, with `arrive` run while it
 * is away; when the pull has no `at`-th operation (it waited sooner: `waiting()`, or it ran out of
 * turns), `arrive` runs then. The pull's Exit, or a failure naming what was lost after a second.
 */
export const pullAcrossYield = <A, E>(
  pull: Effect.Effect<A, E>,
  at: number,
  arrive: () => void,
  what: string,
  waiting: () => boolean = () => false
) =>
  Effect.gen(function*() {
    const scheduler = new YieldOnce(at, arrive)
    const reader = yield* Effect.fork(Effect.exit(Effect.withScheduler(pull, scheduler)))
    for (let step = 0; step < 100 && !scheduler.yielded && !waiting(); step++) yield* turn
    if (!scheduler.yielded) {
      scheduler.yielded = true
      arrive()
    }
    return yield* Fiber.join(reader).pipe(
      Effect.timeoutFail({ duration: "1 second", onTimeout: () => `${what} lost, a yield before operation ${at}` })
    )
  })
