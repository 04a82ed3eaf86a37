/**
 * A circuit breaker: after enough failures it stops calls to an endpoint that is down (they fail
 * fast with `CircuitOpenError`) for an open period given by a `Schedule`, then lets a bounded
 * number of trial calls through, and closes again after enough of them succeed.
 *
 * `make` builds one breaker; `layer` provides a `Registry` with one breaker per endpoint (redacted
 * origin + path), shared by everything in its context that dials that endpoint.
 *
 * @since 0.1.0
 */
import type { Duration, Schedule, Scope } from "effect"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { CircuitOpenError } from "./Errors.js"
import * as internal from "./internal/circuitBreaker.js"
import type { CircuitTransition } from "./internal/circuitBreakerState.js"
import { redactUnparsedUrl, redactUrl } from "./internal/redactUrl.js"

import { CircuitState } from "./internal/circuitBreakerState.js"

/**
 * `Closed`, `Open { retryAt }`, `HalfOpen` or `Isolated`.
 *
 * @useDeclaredType
 * @since 0.1.0
 * @category models
 */
export type State = CircuitState

/**
 * Constructors and matchers of `State` (`State.Open({ retryAt })`, `State.$is("Open")`).
 *
 * @since 0.1.0
 * @category models
 */
export const State = CircuitState

/**
 * One change of state, as `events` publishes it.
 *
 * @since 0.1.0
 * @category models
 */
export type Transition = CircuitTransition

/**
 * A circuit breaker. Valid until the scope it was made in closes (after that it still works, but an
 * Open breaker becomes HalfOpen only when it is next used or read).
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  /** The endpoint named in `CircuitOpenError`: the `endpoint` option, or the registry's key. */
  readonly endpoint: string
  /** `state.get` now, `state.changes` the state now and then every transition. An Open breaker whose `retryAt` has come reads HalfOpen. */
  readonly state: internal.CircuitBreaker["state"]
  /** Every transition from now on. Sliding (64): a slow reader loses the oldest, never blocks the breaker. */
  readonly events: internal.CircuitBreaker["events"]
  /**
   * Runs `effect` if the breaker admits it, and counts its outcome. Closed: always admitted.
   * Open and Isolated: fails at once with `CircuitOpenError`. HalfOpen: admitted as a trial while
   * fewer than `trials` trials are running, else `CircuitOpenError` with `retryAt` now.
   * An interrupted or dead call counts nothing (a trial gives its slot back).
   */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  /** Holds the breaker open (`Isolated`) until `reset`: every call fails with `CircuitOpenError`. */
  readonly isolate: Effect.Effect<void>
  /** Closes the breaker from any state: counts cleared, the open schedule from its start. */
  readonly reset: Effect.Effect<void>
}

/**
 * How a Closed breaker decides to open.
 *
 * @since 0.1.0
 * @category policies
 */
export type TripPolicy = internal.TripPolicy

/**
 * Opens after `threshold` counted failures in a row (a success resets the count). The default, with 5.
 *
 * @since 0.1.0
 * @category policies
 */
export const consecutiveFailures = (threshold: number): TripPolicy => ({ _tag: "ConsecutiveFailures", threshold })

/**
 * Opens when, over the last `window`, at least `minimumCalls` calls finished and the share of
 * counted failures among them is at least `threshold` (in (0, 1]). Checked at each failure.
 * The window is kept as `buckets` slices (default 10, at most 1000): a call leaves it between
 * window x (1 - 1 / buckets) and window after it finished.
 *
 * @since 0.1.0
 * @category policies
 */
export const failureRatio = (options: {
  readonly threshold: number
  readonly window: Duration.DurationInput
  readonly minimumCalls: number
  readonly buckets?: number | undefined
}): TripPolicy => ({ _tag: "FailureRatio", ...options })

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Named in `CircuitOpenError`. Default "circuit"; the registry uses the endpoint's key. */
  readonly endpoint?: string | undefined
  /** Default `consecutiveFailures(5)`. */
  readonly policy?: TripPolicy | undefined
  /**
   * Which failures count. Default `defaultIsFailure`: a lifeline error counts when
   * `Reconnect.isRetryable` says so (a 401 is not the endpoint being down), any other error counts.
   * An error that does not count is a success: the endpoint answered. Interruptions and
   * defects count nothing. Only `false` is "does not count": a predicate that throws or returns
   * anything else counts the failure.
   */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /**
   * The open period: the breaker steps it at each opening (its input: the number of openings
   * since it last closed), so it can grow from one opening to the next; it starts again when the
   * breaker closes. A schedule that is done keeps its last period. It must be synchronous, as
   * every schedule built with `Schedule`'s combinators is. One that gives no period at the first
   * opening (done, a delay of zero: `Schedule.forever`, `recurs`, `once`; or one that dies or is not
   * synchronous there) is refused at `make` and `layer`. Default `defaultOpenFor`.
   */
  readonly openFor?: Schedule.Schedule<unknown, number> | undefined
  /** How many trial calls HalfOpen lets run at once. Default 1. */
  readonly trials?: number | undefined
  /** How many trial successes close the breaker. Default 1. */
  readonly successes?: number | undefined
}

/**
 * The default predicate of `Options.isFailure`.
 *
 * @since 0.1.0
 * @category policies
 */
export const defaultIsFailure: (error: unknown) => boolean = internal.defaultIsFailure

/**
 * The default open period: 5 s, doubling at each opening in a row, at most 60 s.
 *
 * @since 0.1.0
 * @category policies
 */
export const defaultOpenFor: Schedule.Schedule<Duration.Duration, unknown> = internal.defaultOpenFor

const settingsOrDie = (options: Options): Effect.Effect<internal.Settings> =>
  Effect.suspend(() => {
    const settings = internal.settingsOf(options)
    return typeof settings === "string"
      ? Effect.die(new Cause.IllegalArgumentException(settings))
      : Effect.succeed(settings)
  })

/**
 * A circuit breaker for the life of the scope. Options that cannot work (a threshold, `trials` or
 * `successes` below 1, a ratio outside (0, 1], a window that is not a positive duration, `buckets`
 * outside [1, 1000], an `openFor` with no first period) are a defect (`IllegalArgumentException`).
 * An open period too long for a Date (`Duration.infinity`) gives the largest Date as `retryAt`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<CircuitBreaker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* settingsOrDie(options)
    const runtime = yield* Effect.runtime<never>()
    const clock = yield* Effect.clock
    return yield* Effect.acquireRelease(
      Effect.sync(() => new internal.Breaker(settings, runtime, clock)),
      (breaker) => breaker.shutdown
    )
  })

/**
 * The name of an endpoint's breaker in the registry, the `endpoint` of its errors: the URL's
 * origin and path, redacted (no userinfo, no query, no fragment). `wss://u:p@Host:443/feed?token=x`
 * and `wss://host/feed` share one breaker. **(changed)** Two endpoints may show the same name (an
 * `@` in a path is redacted with the host before it) and still have a breaker each.
 *
 * @since 0.1.0
 * @category registry
 */
export const endpointKey = (url: string): string => {
  const input = url.trim()
  let parsed: URL
  try {
    parsed = new URL(input)
  } catch {
    const redacted = redactUnparsedUrl(input)
    const cut = redacted.search(/[?#]/)
    return cut === -1 ? redacted : redacted.slice(0, cut)
  }
  parsed.username = ""
  parsed.password = ""
  parsed.search = ""
  // The fragment is left to `redactUrl`, which drops it: an `@` in it is a password typed raw
  // (`ws+unix:/:pw#@host`), which it redacts only when it sees that `@`.
  return redactUrl(parsed)
}

/**
 * What tells endpoints apart in the registry, never shown: origin and path as parsed (the host
 * lowercased, a default port dropped), without userinfo, query or fragment. Not the shown key: an
 * `@` in a path redacts the host before it there (`wss://a.example/users/@me` shows as
 * `wss://redacted@me`, as `wss://b.example/users/@me` does), and two hosts must not share a breaker.
 */
const endpointIdentity = (url: string): string => {
  const input = url.trim()
  try {
    const parsed = new URL(input)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return endpointKey(input)
  }
}

/**
 * One breaker per endpoint, made on first use. The registry keeps a breaker while it is Open or
 * Isolated; a Closed one (or a HalfOpen one whose period ran out) lives as long as something holds
 * it, a Client that dials its endpoint or code that kept what `forEndpoint` returned, and is then
 * let go (its count of recent failures and of openings with it): a process that dials ever new
 * endpoints keeps no breaker per endpoint for ever. The next caller gets a new one, Closed.
 *
 * @since 0.1.0
 * @category registry
 */
export class Registry extends Context.Tag("lifeline/CircuitBreaker/Registry")<Registry, {
  /** The breaker of the endpoint `url` dials (its origin and path; named by `endpointKey(url)`). */
  readonly forEndpoint: (url: string) => Effect.Effect<CircuitBreaker>
}>() {}

/**
 * A `Registry` whose breakers all use `options` (with the endpoint's key as `endpoint`). Every
 * Client in its context uses the breaker of the endpoint it dials, so many Clients to a dead
 * endpoint cost at most `trials` attempts per open period between them.
 *
 * @since 0.1.0
 * @category registry
 */
export const layer = (options: Omit<Options, "endpoint"> = {}): Layer.Layer<Registry> =>
  Layer.scoped(
    Registry,
    Effect.gen(function*() {
      const settings = yield* settingsOrDie(options)
      const runtime = yield* Effect.runtime<never>()
      const clock = yield* Effect.clock
      // Every breaker by its endpoint's key, held weakly; an Open or Isolated one is held here too,
      // so it outlives the Clients it refused. One whose open period ran out (HalfOpen) is let go
      // with the Closed ones once no caller holds it: nothing would call it again, and the next
      // caller gets a new one, Closed (the count of openings, openFor's next step, goes with it).
      // A collected one's key goes.
      const breakers = new Map<string, WeakRef<internal.Breaker>>()
      const held = new Set<internal.Breaker>()
      const collected = new FinalizationRegistry<string>((key) => {
        if (breakers.get(key)?.deref() === undefined) breakers.delete(key)
      })
      const onEnter = (breaker: internal.Breaker, state: State) => {
        if (state._tag === "Open" || state._tag === "Isolated") held.add(breaker)
        else held.delete(breaker)
      }
      yield* Effect.addFinalizer(() =>
        Effect.forEach(breakers.values(), (ref) => ref.deref()?.shutdown ?? Effect.void, { discard: true })
      )
      return Registry.of({
        forEndpoint: (url) =>
          Effect.sync(() => {
            const key = endpointIdentity(url)
            let breaker = breakers.get(key)?.deref()
            if (breaker === undefined) {
              breaker = new internal.Breaker({ ...settings, endpoint: endpointKey(url) }, runtime, clock, onEnter)
              breakers.set(key, new WeakRef(breaker))
              collected.register(breaker, key)
            }
            return breaker
          })
      })
    })
  )
