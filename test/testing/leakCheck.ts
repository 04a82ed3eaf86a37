// Checks that a scoped piece of the kit leaves the event loop as it found it: no handle, no timer.
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import type { Scope } from "effect"
import { pause } from "./rawClient.js"

// vitest throttles its task-update messages with a 100 ms timer started as a test begins; waiting it
// out keeps that timer out of the comparison.
const VITEST_UPDATE_THROTTLE_MILLIS = 110

/** Runs `use` in its own scope and expects the active handles and timers to be the same afterwards. */
export const expectNothingLeftBehind = <A>(use: Effect.Effect<A, never, Scope.Scope>): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* pause(VITEST_UPDATE_THROTTLE_MILLIS)
    const before = process.getActiveResourcesInfo().sort()
    yield* Effect.scoped(use)
    expect(process.getActiveResourcesInfo().sort()).toEqual(before)
  })
