/** Invariant 7 in tests: the active handles after a scope closes are those before it opened. */
import { Effect } from "effect"

const snapshot = (): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1)
  return counts
}

const leaked = (before: Map<string, number>, after: Map<string, number>): Array<string> => {
  const extra: Array<string> = []
  for (const [name, count] of after) {
    const previous = before.get(name) ?? 0
    if (count > previous) extra.push(`${name} x${count - previous}`)
  }
  return extra
}

/**
 * Runs `self` in its own scope and fails if handles remain afterwards. Handles that close on the
 * next turns of the event loop (a socket's 'close' after `destroy()`) get a bounded grace period.
 */
export const withNoHandlesLeft = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = snapshot()
    const result = yield* Effect.scoped(self)
    for (let turn = 0; turn < 50; turn++) {
      if (leaked(before, snapshot()).length === 0) return result
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    const extra = leaked(before, snapshot())
    return yield* Effect.dieMessage(`handles left after the scope closed: ${extra.join(", ")}`)
  })
