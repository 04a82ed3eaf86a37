/** A full garbage collection in this worker (vitest's workers run without --expose-gc). */
import { Effect } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

let gc: (() => void) | undefined

/** Collects three times, a turn of the event loop apart (FinalizationRegistry callbacks run between). */
export const collect: Effect.Effect<void> = Effect.promise(async () => {
  if (gc === undefined) {
    setFlagsFromString("--expose-gc")
    gc = runInNewContext("gc") as () => void
  }
  for (let round = 0; round < 3; round++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
})
