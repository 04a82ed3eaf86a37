/**
 * Which endpoint the next attempt dials, and the circuit breaker in front of it.
 *
 * - `roundRobin` (default): the endpoints in turn, across every attempt.
 * - `ordered`: each series of attempts starts from the first endpoint and goes down the list;
 *   with `returnToPrimary`, a Client open on another endpoint probes the first one every
 *   interval and reconnects to it once it answers.
 * - `random`: a random endpoint per attempt.
 *
 * Endpoints whose breaker is open (or isolated) are skipped while another is not; when every one
 * is open, the first candidate is dialled anyway, and its breaker refuses it at once with
 * `CircuitOpenError` (no handshake): the Client is then Suspended until its `retryAt`.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Random from "effect/Random"
import type { CircuitBreaker } from "../../CircuitBreaker.js"
import type { Transport } from "../../Transport.js"
import type { OpenedConnection } from "../connection.js"
import { acquireConnection, releaseOpened } from "../connection.js"
import { isStaticUrl } from "../parseEndpoint.js"
import type { TimerTarget } from "../primitives/timers.js"
import type { LiveClient } from "./liveClient.js"
import type { Session } from "./session.js"

export type Endpoint = string | URL | Effect.Effect<string>

/** The breaker of `url` from the Client's registry, if it has one (kept per static endpoint). */
export const breakerFor = (
  client: LiveClient,
  index: number,
  url: string | URL
): Effect.Effect<CircuitBreaker | undefined> =>
  Effect.suspend(() => {
    const registry = client.registry
    if (registry === undefined) return Effect.succeed(undefined)
    const known = client.breakers?.[index]
    const endpoint = client.settings.endpoints[index]
    if (known !== undefined && endpoint === url) return Effect.succeed(known)
    return Effect.map(registry.forEndpoint(typeof url === "string" ? url : url.href), (breaker) => {
      // Held either way (the registry holds a Closed breaker weakly: its count of failures must
      // outlive the Backoff between two attempts); only a static endpoint's is reused (above): a URL
      // from an Effect may change at every attempt.
      if (isStaticUrl(endpoint)) (client.breakers ??= [])[index] = breaker
      else holdRecent(client, breaker)
      return breaker
    })
  })

/**
 * The breakers a Client's URL Effects gave lately, most recent last: an Effect that rotates among
 * hosts keeps each host's count of failures between its attempts (the registry holds a Closed
 * breaker weakly). At most `HELD_RECENT` per Client, in a table beside it (no field per Client).
 */
const recentBreakers = new WeakMap<LiveClient, Set<CircuitBreaker>>()
const HELD_RECENT = 16

const holdRecent = (client: LiveClient, breaker: CircuitBreaker): void => {
  let recent = recentBreakers.get(client)
  if (recent === undefined) recentBreakers.set(client, recent = new Set())
  recent.delete(breaker)
  recent.add(breaker)
  if (recent.size > HELD_RECENT) recent.delete(recent.values().next().value!)
}

/**
 * Asks the Client's breaker for `endpoint` to call `wake` when a trial's slot frees or its state
 * changes (`whenFree`, lifeline's own breakers); what cancels it, or undefined when no breaker it
 * holds can say.
 */
export const whenFree = (client: LiveClient, endpoint: string, wake: () => void): (() => void) | undefined => {
  for (const breaker of [...(client.breakers ?? []), ...(recentBreakers.get(client) ?? [])]) {
    const free = (breaker as { whenFree?: (wake: () => void) => () => void } | undefined)?.whenFree
    if (breaker?.endpoint === endpoint && typeof free === "function") return free.call(breaker, wake)
  }
  return undefined
}

/**
 * When the breaker of a static endpoint admits a call again: now (0) if it admits one now, its
 * `retryAt` if it is open, the largest time if it is isolated.
 */
const admitsAt = (client: LiveClient, index: number, refused?: string): Effect.Effect<number> => {
  const given = client.settings.endpoints[index]!
  // An Effect's URL is known once it runs: the one its breaker refused, when there is one.
  const endpoint = isStaticUrl(given) ? given : refused
  if (client.registry === undefined || endpoint === undefined) return Effect.succeed(0)
  return Effect.flatMap(
    breakerFor(client, index, endpoint),
    (breaker) =>
      breaker === undefined ? Effect.succeed(0) : Effect.map(breaker.state.get, (state) => {
        if (state._tag === "Isolated") return Number.MAX_SAFE_INTEGER
        if (state._tag === "Open" && state.retryAt.getTime() > client.clock.unsafeCurrentTimeMillis()) {
          return state.retryAt.getTime()
        }
        return 0
      })
  )
}

/**
 * Whether an endpoint's breaker admits a call now (`admitsAt` 0). Synchronous: a Suspended Client's
 * wait asks it in its timer's callback, where nothing may throw; a registry or breaker of the
 * user's that is not synchronous (or fails) counts as admitting: the attempt will tell. An endpoint
 * given as an Effect is asked about `refused`, the endpoint whose breaker refused the attempt.
 */
export const admitsNow = (client: LiveClient, refused: string, busy = false): boolean =>
  client.settings.endpoints.some((given, index) => {
    // `busy`: the refused endpoint's breaker is HalfOpen with every slot taken, which `admitsAt`
    // counts as admitting; only the other endpoints are asked (an Effect's is the refused one).
    if (busy && (!isStaticUrl(given) || client.breakers?.[index]?.endpoint === refused)) return false
    const at = Effect.runSyncExit(admitsAt(client, index, refused))
    return Exit.isFailure(at) || at.value === 0
  })

/**
 * The index of the endpoint the next attempt dials: the strategy's pick, or the next that admits a
 * call; when none does, the one that will first.
 */
export const pickEndpoint = (client: LiveClient): Effect.Effect<number> =>
  Effect.gen(function*() {
    const count = client.settings.endpoints.length
    if (count === 1) return 0
    let first: number
    switch (client.settings.strategy) {
      case "roundRobin":
        first = client.total % count
        break
      case "ordered":
        // A series starts after a connection that stayed up `minUptime`, or a `reconnect`.
        first = client.series % count
        break
      case "random":
        first = yield* Random.nextIntBetween(0, count)
        break
    }
    let soonest = first
    let soonestAt = Number.POSITIVE_INFINITY
    for (let step = 0; step < count; step++) {
      const index = (first + step) % count
      const at = yield* admitsAt(client, index)
      if (at === 0) return index
      if (at < soonestAt) {
        soonest = index
        soonestAt = at
      }
    }
    return soonest
  })

/**
 * While a Client with `ordered` and `returnToPrimary` is open on another endpoint: every interval,
 * a handshake with the first endpoint (closed once its answer has decided); once one succeeds and
 * the endpoint's breaker (if any) is closed, the Client reconnects, and its next series of
 * attempts starts from the first endpoint.
 */
export class PrimaryProbe implements TimerTarget {
  private timer: unknown = undefined
  private fiber: Fiber.RuntimeFiber<void> | undefined = undefined
  /** From the answer until its connection is closed: `stop` must not cut that close short (bounded: twice closeTimeout). */
  private releasing = false
  private stopped = false

  constructor(
    private readonly client: LiveClient,
    private readonly session: Session,
    private readonly interval: number
  ) {}

  start(): void {
    // Jittered (0.8 to 1.2 x the interval): a node's Clients, dropped together, probe apart.
    if (!this.stopped) this.timer = this.client.timers.after(this.interval * (0.8 + 0.4 * Math.random()), this)
  }

  stop(): void {
    this.stopped = true
    this.client.timers.cancel(this.timer, this)
    // A handshake under way is abandoned: its socket released now, not at its open timeout. An
    // answered one's close is not cut short (the wait is interruptible, and its socket would be
    // left to the transport's own timer): the Client's close awaits it (`LiveClient.probes`).
    if (!this.releasing) this.fiber?.unsafeInterruptAsFork(FiberId.none)
  }

  fire(): void {
    this.timer = undefined
    if (this.stopped) return
    // The last probe still closing its answered connection (its answer ignored): one at a time,
    // so that the Client's close, awaiting the probes' fibers, covers every socket a probe opened.
    if (this.releasing) return this.start()
    let fiber: Fiber.RuntimeFiber<void>
    try {
      fiber = this.client.fork(this.probe(), false)
    } catch (defect) {
      // In the timer's callback: forking threw (a runtime's Supervisor or Scheduler). The session
      // ends with it, as any throw on a callback (invariant 1).
      return this.client.endSession(this.session, this.client.brokenOption("the client failed", defect))
    }
    this.fiber = fiber
    const probes = this.client.probes ??= new Set()
    probes.add(fiber)
    fiber.addObserver(() => {
      probes.delete(fiber)
      if (this.fiber === fiber) this.fiber = undefined
    })
  }

  private probe(): Effect.Effect<void, never, Transport> {
    const client = this.client
    const primary = client.settings.endpoints[0]!
    // The answered connection, closed once the answer has decided (however the probe ends): a
    // primary slow to answer the close (up to closeTimeout) holds neither the move home nor the
    // breaker's trial. The probe's fiber (in `LiveClient.probes`) still ends with it.
    let opened: OpenedConnection | undefined
    return Effect.gen(this, function*() {
      const url = isStaticUrl(primary) ? primary : yield* Effect.orDie(primary)
      const headers = client.settings.headers === undefined ? undefined : yield* Effect.orDie(client.settings.headers)
      const options = headers === undefined ? client.settings.connection : { ...client.settings.connection, headers }
      const handshake = acquireConnection<never, never, never>(
        url,
        options,
        (connection) =>
          Effect.sync(() => {
            opened = connection
            this.releasing = true
          })
      )
      const breaker = yield* breakerFor(client, 0, url)
      const answered = yield* Effect.exit(breaker === undefined ? handshake : breaker.run(handshake))
      if (this.stopped) return
      // Answered, but it may have been admitted before the breaker opened (a primary that froze
      // and came back within the open timeout): while the breaker is not closed (open, or half
      // open with another's trial under way), the reconnect would be refused the primary and dial
      // the same backup again. A probe that is the trial closes it; else the next probe decides.
      // A breaker of the user's whose state cannot be read counts as closed (the attempt tells).
      if (Exit.isSuccess(answered)) {
        const state = breaker === undefined ? undefined : yield* Effect.exit(breaker.state.get)
        if (state === undefined || Exit.isFailure(state) || state.value._tag === "Closed") {
          // The reconnect stops this probe: its connection's close runs on, not interrupted.
          return yield* client.reconnectFrom(this.session)
        }
      }
      this.start()
    }).pipe(
      Effect.catchAllCause(() => Effect.sync(() => this.start())),
      Effect.ensuring(Effect.suspend(() =>
        opened === undefined
          ? Effect.void
          : Effect.ensuring(releaseOpened(opened, Exit.void), Effect.sync(() => this.releasing = false))
      ))
    )
  }
}
