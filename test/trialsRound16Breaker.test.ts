/**
 * Round 16 of trials: the circuit breaker as an operator wires it. Many Clients to one endpoint
 * behind one `CircuitBreaker.layer`, the layer provided in the ways users provide layers,
 * `whenSuspended` both ways, errors that must not trip it, failover with open breakers, an admin's
 * `isolate` / `reset`, and option mistakes. Real servers on 127.0.0.1; the TestClock where time
 * matters (the breakers' and the Clients' timers run on it).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Ref, Schedule, Stream, TestClock } from "effect"
import { CircuitBreaker, Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"
import { realUntil } from "./support/poll.js"

type State = Client.ClientState
type Suspended = Extract<State, { _tag: "Suspended" }>

const statesOf = (clients: ReadonlyArray<Client.Client>) => Effect.forEach(clients, (client) => client.state.get)
const all = (clients: ReadonlyArray<Client.Client>, tag: State["_tag"]) =>
  Effect.map(statesOf(clients), (states) => states.every((state) => state._tag === tag))

/** Counts every state each Client enters from now on, by tag. */
const countStates = (clients: ReadonlyArray<Client.Client>) =>
  Effect.gen(function*() {
    const counts = yield* Ref.make<Record<string, number>>({})
    yield* Effect.forEach(clients, (client) =>
      Effect.forkScoped(Stream.runForEach(Stream.drop(client.state.changes, 1), (state) =>
        Ref.update(counts, (c) => ({ ...c, [state._tag]: (c[state._tag] ?? 0) + 1 })))), { discard: true })
    return counts
  })

describe("round 16: a fleet behind one breaker layer (TestClock)", () => {
  it.scoped("50 Clients, an endpoint that answers 503, then blackholes, then refuses: no handshake while open, exactly `trials` in half-open, every Client Suspended until the breaker's own retryAt with no attempt in between; healed, all Open", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 100_000)
      const registry = yield* CircuitBreaker.Registry
      const breaker = yield* registry.forEndpoint(server.url)
      const clients = yield* Effect.forEach(Array.from({ length: 50 }), () =>
        Client.make({
          url: server.url,
          retry: Schedule.spaced("100 millis"),
          minRetryDelay: "100 millis",
          heartbeat: false,
          connection: { openTimeout: "2 seconds" }
        }))
      // The first wave ran while the breaker was Closed: 50 handshakes, 503 each; 3 opened it.
      yield* realUntil(all(clients, "Backoff"), "every Client in Backoff after its 503")
      expect(yield* server.requests).toBe(50)
      const first = yield* breaker.state.get
      expect(first).toEqual(CircuitBreaker.State.Open({ retryAt: new Date(30_000) }))
      const counts = yield* countStates(clients)
      yield* TestClock.adjust("100 millis")
      yield* realUntil(all(clients, "Suspended"), "every Client Suspended")
      // Every Client Suspended until the breaker's retryAt, the same for all (it was 5.1 s, its
      // next look, whatever the open period).
      for (const state of yield* statesOf(clients)) {
        expect(state).toMatchObject({ _tag: "Suspended", endpoint: `${server.url}/`, retryAt: 30_000 })
      }
      expect(yield* Ref.get(counts)).toEqual({ Connecting: 50, Suspended: 50 })
      // The open period, in 5 s steps: no handshake, and no attempt either (it was a Connecting and
      // a Suspended per Client every 5 s: 500 transitions for nothing).
      for (let step = 0; step < 5; step++) yield* TestClock.adjust("5 seconds")
      yield* TestClock.adjust("4800 millis")
      expect(yield* Ref.get(counts)).toEqual({ Connecting: 50, Suspended: 50 })
      expect(yield* server.requests).toBe(50)

      // Half-open with the endpoint a blackhole (TCP accepted, no answer): exactly `trials` (2)
      // handshakes, the other Clients refused at once; the open timeout fails both trials.
      yield* server.clearRejections
      yield* server.hangHandshake
      yield* TestClock.adjust("100 millis")
      yield* realUntil(Effect.map(server.requests, (n) => n === 52), "the two trials arrive")
      yield* realUntil(
        Effect.map(statesOf(clients), (states) =>
          states.filter(isTag("Connecting")).length === 2 && states.filter(isTag("Suspended")).length === 48),
        "two trials under way, 48 refused"
      )
      yield* TestClock.adjust("100 millis") // the refused look again: the slots are still taken
      yield* TestClock.adjust("2 seconds") // the trials' open timeout
      yield* realUntil(all(clients, "Suspended"), "every Client Suspended again")
      const second = yield* breaker.state.get
      expect(second).toEqual(CircuitBreaker.State.Open({ retryAt: new Date(62_000) }))
      for (const state of yield* statesOf(clients)) expect((state as Suspended).retryAt).toBe(62_000)
      expect(yield* server.requests).toBe(52)

      // Refused connections (the server killed): the trial fails; still no handshake reached it.
      yield* server.behave
      yield* server.kill
      yield* TestClock.adjust("30 seconds")
      yield* realUntil(
        Effect.map(breaker.state.get, (state) => state._tag === "Open" && state.retryAt.getTime() === 92_000),
        "the trial refused, open again"
      )
      yield* TestClock.adjust("100 millis")
      yield* realUntil(all(clients, "Suspended"), "every Client Suspended again")

      // Healed: a trial closes the breaker and every Client opens, each with one handshake.
      yield* server.restart
      yield* TestClock.adjust("30 seconds")
      for (let turn = 0; turn < 20 && !(yield* all(clients, "Open")); turn++) {
        yield* realUntil(
          Effect.map(statesOf(clients), (states) => states.every((s) => s._tag === "Open" || s._tag === "Suspended")),
          "settled"
        )
        yield* TestClock.adjust("100 millis")
      }
      yield* realUntil(all(clients, "Open"), "every Client Open")
      expect(yield* breaker.state.get).toEqual(CircuitBreaker.State.Closed())
      expect(yield* server.connections).toBe(50)
      expect(yield* server.accepted).toBe(50)
    }).pipe(Effect.provide(Layer.merge(
      quietNode,
      CircuitBreaker.layer({
        policy: CircuitBreaker.consecutiveFailures(3),
        openFor: Schedule.spaced("30 seconds"),
        trials: 2
      })
    ))), 20_000)
})
