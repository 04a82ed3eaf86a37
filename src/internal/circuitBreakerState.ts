/** The circuit breaker's observable state and transitions, as tagged unions. */
import * as Data from "effect/Data"

/**
 * Closed: calls go through, outcomes are counted by the trip policy. Open: calls fail fast with
 * `CircuitOpenError` until `retryAt`. HalfOpen: a bounded number of trial calls go through; enough
 * successes close the breaker, a counted failure opens it again. Isolated: held open by hand
 * (`isolate`) until `reset`.
 */
export type CircuitState = Data.TaggedEnum<{
  Closed: {}
  Open: { readonly retryAt: Date }
  HalfOpen: {}
  Isolated: {}
}>

export const CircuitState = /* @__PURE__ */ Data.taggedEnum<CircuitState>()

/** One change of state. @inline */
export interface CircuitTransition {
  readonly from: CircuitState
  readonly to: CircuitState
}
