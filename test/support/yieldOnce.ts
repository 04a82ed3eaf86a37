/** A Scheduler that makes a fiber yield at one chosen point, and a turn of the event loop. */
import type { Scheduler } from "effect"
import { Effect } from "effect"

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
