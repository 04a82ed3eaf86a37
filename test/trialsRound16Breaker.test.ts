/**
 * Round 16 of trials: the circuit breaker as an operator wires it. Many Clients to one endpoint
 * behind one `CircuitBreaker.layer`, the layer provided in the ways users provide layers,
 * `whenSuspended` both ways, errors that must not trip it, failover with open breakers, an admin's
 * `isolate` / `reset`, and option mistakes. Real servers on 127.0.0.1; the TestClock where time
 * matters (the breakers' and the Clients' timers run on it).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Metric, Ref, Schedule, Stream, TestClock } from "effect"
import { CircuitBreaker, CircuitOpenError, Client } from "../src/index.js"
import * as Metrics from "../src/internal/metrics.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"
import { realUntil as realUntilWithin } from "./support/poll.js"

/** Waits (real time) until `check` holds: a hang guard of 10 s, which a loaded machine needs with a fleet. */
const realUntil = (check: Effect.Effect<boolean>, what: string) => realUntilWithin(check, what, 2000)

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
  it.scoped(
    "20 Clients, an endpoint that answers 503, then blackholes, then refuses: no handshake while open, exactly `trials` in half-open, every Client Suspended until the breaker's own retryAt with no attempt in between; healed, all Open",
    () =>
      Effect.gen(function*() {
        const fleet = 20
        const server = yield* TestServer.make()
        yield* server.rejectNext(503, {}, 100_000)
        const registry = yield* CircuitBreaker.Registry
        const breaker = yield* registry.forEndpoint(server.url)
        const transitions: Array<string> = []
        yield* Effect.forkScoped(
          Stream.runForEach(breaker.events, ({ from, to }) =>
            Effect.sync(() => transitions.push(`${from._tag}>${to._tag}`)))
        )
        yield* Effect.yieldNow()
        const metrics = Effect.all([
          Effect.map(Metric.value(Metrics.circuitsOpen), (gauge) =>
            gauge.value),
          ...(["Open", "HalfOpen", "Closed"] as const).map((state) =>
            Effect.map(
              Metric.value(Metrics.circuitTransitions.pipe(Metric.tagged("state", state))),
              (counter) => counter.count
            )
          )
        ])
        const metricsBefore = yield* metrics
        const clients = yield* Effect.forEach(Array.from({ length: fleet }), () =>
          Client.make({
            url: server.url,
            retry: Schedule.spaced("100 millis"),
            minRetryDelay: "100 millis",
            heartbeat: false,
            connection: { openTimeout: "2 seconds" }
          }))
        // The first wave ran while the breaker was Closed: 20 handshakes, 503 each; 3 opened it.
        yield* realUntil(all(clients, "Backoff"), "every Client in Backoff after its 503")
        expect(yield* server.requests).toBe(fleet)
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
        expect(yield* Ref.get(counts)).toEqual({ Connecting: fleet, Suspended: fleet })
        // The open period, in 5 s steps: no handshake, and no attempt either (it was a Connecting and
        // a Suspended per Client every 5 s: 200 transitions for nothing).
        for (let step = 0; step < 5; step++) yield* TestClock.adjust("5 seconds")
        yield* TestClock.adjust("4800 millis")
        expect(yield* Ref.get(counts)).toEqual({ Connecting: fleet, Suspended: fleet })
        expect(yield* server.requests).toBe(fleet)

        // Half-open with the endpoint a blackhole (TCP accepted, no answer): exactly `trials` (2)
        // handshakes, the other Clients refused at once; the open timeout fails both trials.
        yield* server.clearRejections
        yield* server.hangHandshake
        yield* TestClock.adjust("100 millis")
        yield* realUntil(Effect.map(server.requests, (n) => n === fleet + 2), "the two trials arrive")
        yield* realUntil(
          Effect.map(statesOf(clients), (states) =>
            states.filter(isTag("Connecting")).length === 2 && states.filter(isTag("Suspended")).length === fleet - 2),
          "two trials under way, the others refused"
        )
        yield* TestClock.adjust("100 millis") // the refused look again: the slots are still taken
        yield* TestClock.adjust("2 seconds") // the trials' open timeout
        yield* realUntil(all(clients, "Suspended"), "every Client Suspended again")
        const second = yield* breaker.state.get
        expect(second).toEqual(CircuitBreaker.State.Open({ retryAt: new Date(62_000) }))
        for (const state of yield* statesOf(clients)) {
          expect((state as Suspended).retryAt).toBe(62_000)
        }
        expect(yield* server.requests).toBe(fleet + 2)

        // Refused connections (the server killed): the trial fails; still no handshake reached it.
        yield* server.behave
        yield* server.kill
        yield* TestClock.adjust("30 seconds")
        yield* realUntil(
          Effect.map(breaker.state.get, (state) =>
            state._tag === "Open" && state.retryAt.getTime() === 92_000),
          "the trial refused, open again"
        )
        yield* TestClock.adjust("100 millis")
        yield* realUntil(all(clients, "Suspended"), "every Client Suspended again")

        // Healed: a trial closes the breaker and every Client opens, each with one handshake.
        yield* server.restart
        yield* TestClock.adjust("30 seconds")
        for (let turn = 0; turn < 20 && !(yield* all(clients, "Open")); turn++) {
          yield* realUntil(
            Effect.map(statesOf(clients), (states) =>
              states.every((s) =>
                s._tag === "Open" || s._tag === "Suspended"
              )),
            "settled"
          )
          yield* TestClock.adjust("100 millis")
        }
        yield* realUntil(all(clients, "Open"), "every Client Open")
        expect(yield* breaker.state.get).toEqual(CircuitBreaker.State.Closed())
        expect(yield* server.connections).toBe(fleet)
        expect(yield* server.accepted).toBe(fleet)
        // Three openings (the 503s, the blackholed trials, the refused trial), each ended by its
        // period, and one close: on the breaker's events and in the metrics.
        expect(transitions).toEqual([
          "Closed>Open",
          ...Array.from({ length: 2 }, () => ["Open>HalfOpen", "HalfOpen>Open"]).flat(),
          "Open>HalfOpen",
          "HalfOpen>Closed"
        ])
        const metricsAfter = yield* metrics
        expect(metricsAfter.map((value, i) => Number(value) - Number(metricsBefore[i]))).toEqual([0, 3, 3, 1])
      }).pipe(Effect.provide(Layer.merge(
        quietNode,
        CircuitBreaker.layer({
          policy: CircuitBreaker.consecutiveFailures(3),
          openFor: Schedule.spaced("30 seconds"),
          trials: 2
        })
      ))),
    30_000
  )
})

const fast = { retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis", heartbeat: false } as const
const tripOnce = { policy: CircuitBreaker.consecutiveFailures(1), openFor: Schedule.spaced("1 hour") }

describe("round 16: after the heal (TestClock)", () => {
  it.scoped("at retryAt the fleet wakes together: one trial, the nine refused meanwhile (its slot taken) wait their own backoff (16 s), which the 5 s looks do not cut short; then all Open", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      yield* server.rejectNext(503, {}, 10)
      const registry = yield* CircuitBreaker.Registry
      const breaker = yield* registry.forEndpoint(proxy.url)
      const clients = yield* Effect.forEach(Array.from({ length: 10 }), () =>
        Client.make({
          url: proxy.url,
          retry: Schedule.exponential("1 second", 4),
          minRetryDelay: "100 millis",
          heartbeat: false
        }))
      yield* realUntil(all(clients, "Backoff"), "every Client in Backoff after its 503")
      yield* TestClock.adjust("1 second")
      yield* realUntil(all(clients, "Suspended"), "every Client Suspended")
      // The trial's handshake takes 300 ms of real time: the other nine are refused meanwhile
      // (its slot is taken) and wait their backoff's next step, 16 s.
      yield* proxy.latency(300)
      yield* TestClock.adjust("9 seconds")
      yield* realUntil(
        Effect.map(
          statesOf(clients),
          (states) => states.filter(isTag("Open")).length === 1 && states.filter(isTag("Suspended")).length === 9
        ),
        "the trial Open, nine refused"
      )
      expect(yield* breaker.state.get).toEqual(CircuitBreaker.State.Closed())
      for (const state of (yield* statesOf(clients)).filter(isTag("Suspended"))) expect(state.retryAt).toBe(26_000)
      // The breaker Closed does not end a backoff: the schedule's (jittered by default) delay is
      // what spreads a fleet back onto a node that just healed.
      yield* TestClock.adjust("15900 millis")
      expect((yield* statesOf(clients)).filter(isTag("Suspended")).length).toBe(9)
      yield* TestClock.adjust("100 millis")
      yield* realUntil(all(clients, "Open"), "every Client Open")
      expect(yield* server.accepted).toBe(10)
    }).pipe(Effect.provide(Layer.merge(
      quietNode,
      CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(1), openFor: Schedule.spaced("10 seconds") })
    ))))
})

describe("round 16: a Registry of the user's (TestClock)", () => {
  it.scoped("its breaker's state.get is asynchronous: the Suspended Client's look (in a timer's callback) counts it as admitting and attempts, instead of dying there and staying Suspended for good", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      let refusals = 0
      const breaker: CircuitBreaker.CircuitBreaker = {
        endpoint: `${server.url}/`,
        state: {
          get: Effect.promise(() => Promise.resolve(CircuitBreaker.State.Open({ retryAt: new Date(60_000) }))),
          changes: Stream.empty
        } as unknown as CircuitBreaker.CircuitBreaker["state"],
        events: Stream.empty,
        // Refuses the first attempt (open until 60 s), then admits.
        run: (effect) =>
          refusals++ === 0
            ? Effect.fail(new CircuitOpenError({ endpoint: `${server.url}/`, retryAt: new Date(60_000) }))
            : effect,
        isolate: Effect.void,
        reset: Effect.void
      }
      const registry = CircuitBreaker.Registry.of({ forEndpoint: () => Effect.succeed(breaker) })
      const client = yield* Client.make({ url: server.url, ...fast }).pipe(
        Effect.provideService(CircuitBreaker.Registry, registry)
      )
      yield* realUntil(Effect.map(client.state.get, (s) => s._tag === "Suspended"), "Suspended")
      expect(yield* client.state.get).toMatchObject({ retryAt: 60_000 })
      yield* TestClock.adjust("5 seconds")
      yield* realUntil(Effect.map(client.state.get, (s) => s._tag === "Open"), "Open after the first look")
      expect(yield* server.requests).toBe(1)
    }).pipe(Effect.provide(quietNode)))
})

describe("round 16: the layer as users provide it", () => {
  it.live("one layer value provided once shares one breaker; provided twice (or two layer values) it is two registries, and the second Client pays its own handshake", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 1000)
      const layer = CircuitBreaker.layer(tripOnce)
      // Provided once around both: the second Client is Suspended with no handshake of its own.
      yield* Effect.gen(function*() {
        const a = yield* Client.make({ url: server.url, ...fast })
        yield* awaitState(a, isTag("Suspended"))
        const b = yield* Client.make({ url: server.url, ...fast })
        yield* awaitState(b, isTag("Suspended"))
      }).pipe(Effect.scoped, Effect.provide(layer))
      expect(yield* server.requests).toBe(1)
      // The same value provided to each (each `Effect.provide` builds it): two registries.
      for (let client = 0; client < 2; client++) {
        yield* Client.make({ url: server.url, ...fast }).pipe(
          Effect.flatMap((c) => awaitState(c, isTag("Suspended"))),
          Effect.scoped,
          Effect.provide(layer)
        )
      }
      expect(yield* server.requests).toBe(3)
    }).pipe(Effect.scoped, Effect.provide(quietNode)))

  it.live("provided per request in a loop (Effect.provide around each call): the breaker never opens, every call reaches the endpoint; built once, it opens after the threshold", () =>
    Effect.gen(function*() {
      let reached = 0
      const call = Effect.gen(function*() {
        const registry = yield* CircuitBreaker.Registry
        const breaker = yield* registry.forEndpoint("wss://feed.example/v1")
        return yield* breaker.run(Effect.suspend(() => {
          reached++
          return Effect.fail("down")
        }))
      })
      const layer = CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(3) })
      for (let i = 0; i < 10; i++) yield* Effect.exit(call.pipe(Effect.provide(layer)))
      expect(reached).toBe(10)
      reached = 0
      const errors = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.flip(call)).pipe(
        Effect.provide(layer)
      )
      expect(reached).toBe(3)
      expect(errors.map((error) => typeof error === "string" ? error : error._tag)).toEqual([
        ...Array.from({ length: 3 }, () => "down"),
        ...Array.from({ length: 7 }, () => "CircuitOpenError")
      ])
      // Layer.fresh around one provide changes nothing for the calls inside it: one registry.
      reached = 0
      yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.exit(call)).pipe(
        Effect.provide(Layer.fresh(layer))
      )
      expect(reached).toBe(3)
    }).pipe(Effect.scoped))

  it.live("the layer's scope closed while its Clients run (Client.make inside Effect.provide, the Client in an outer scope): Suspended, then healed by a trial all the same", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 1000)
      const client = yield* Client.make({ url: server.url, ...fast }).pipe(
        Effect.tap((c) => awaitState(c, isTag("Suspended"))),
        Effect.provide(
          CircuitBreaker.layer({
            policy: CircuitBreaker.consecutiveFailures(1),
            openFor: Schedule.spaced("300 millis")
          })
        )
      )
      expect(yield* server.requests).toBe(1)
      yield* server.clearRejections
      yield* client.awaitOpen
      expect(yield* server.requests).toBe(2)
    }).pipe(Effect.scoped, Effect.provide(quietNode)))
})

/** Every event of `client` (the replayed ones first), as `from>to` or the event's tag. */
const recordEvents = (client: Client.Client) =>
  Effect.gen(function*() {
    const events: Array<string> = []
    yield* Effect.forkScoped(Stream.runForEach(client.events, (event) =>
      Effect.sync(() =>
        events.push(event._tag === "Transition" ? `${event.from._tag}>${event.to._tag}` : event._tag)
      )))
    yield* Effect.yieldNow()
    return events
  })

describe("round 16: whenSuspended, both ways (TestClock)", () => {
  const breakers = Layer.merge(
    quietNode,
    CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(1), openFor: Schedule.spaced("30 seconds") })
  )
  const suspendedClient = (whenSuspended: "queue" | "failFast") =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      yield* server.rejectNext(503, {}, 1)
      const client = yield* Client.make({ url: server.url, ...fast, whenSuspended })
      yield* realUntil(Effect.map(client.state.get, (s) => s._tag === "Backoff"), "Backoff after the 503")
      yield* TestClock.adjust("20 millis")
      yield* realUntil(Effect.map(client.state.get, (s) => s._tag === "Suspended"), "Suspended")
      return { server, client }
    })

  it.scoped("queue: 3 sends, 2 enqueues and a sink of 2 wait in the outbox; at retryAt all 7 written in order, awaitOpen completes; nothing failed", () =>
    Effect.gen(function*() {
      const { client, server } = yield* suspendedClient("queue")
      const events = yield* recordEvents(client)
      const sends = yield* Effect.forEach(["s1", "s2", "s3"], (m) => Effect.fork(client.send(m)))
      yield* client.enqueue("e1")
      yield* client.enqueue("e2")
      const sink = yield* Effect.fork(Stream.run(Stream.make("k1", "k2"), client.sink))
      const waiting = yield* Effect.fork(client.awaitOpen)
      yield* realUntil(Effect.map(client.outboxSize, (n) => n === 7), "seven queued")
      yield* TestClock.adjust("30 seconds")
      yield* Effect.forEach([...sends, sink], Fiber.join, { discard: true })
      yield* Fiber.join(waiting)
      const received = yield* server.awaitReceived(7)
      expect([...received].sort()).toEqual(["e1", "e2", "k1", "k2", "s1", "s2", "s3"])
      // The replayed history, then the heal: no MessageFailed, Suspended until the trial opened it.
      expect(events.filter((event) => event.startsWith("MessageFailed"))).toEqual([])
      expect(events.slice(-4)).toEqual([
        "Backoff>Connecting",
        "Connecting>Suspended",
        "Suspended>Connecting",
        "Connecting>Open"
      ])
      expect(yield* server.requests).toBe(2)
    }).pipe(Effect.provide(breakers)))

  it.scoped("failFast: send, enqueue, a sink and awaitOpen fail at once with CircuitOpenError (the breaker's retryAt); the outbox stays empty; at retryAt Open with nothing to write", () =>
    Effect.gen(function*() {
      const { client, server } = yield* suspendedClient("failFast")
      const events = yield* recordEvents(client)
      yield* realUntil(Effect.sync(() => events.length === 4), "the replayed history")
      expect(events).toEqual(["Idle>Connecting", "Connecting>Backoff", "Backoff>Connecting", "Connecting>Suspended"])
      const replayed = 4
      const failures = yield* Effect.all([
        Effect.flip(client.send("s")),
        Effect.flip(client.enqueue("e")),
        Effect.flip(Stream.run(Stream.make("k1", "k2"), client.sink)),
        Effect.flip(client.awaitOpen)
      ])
      for (const error of failures) {
        expect(error).toMatchObject({ _tag: "CircuitOpenError", endpoint: `${server.url}/`, retryAt: new Date(30_000) })
      }
      expect(yield* client.outboxSize).toBe(0)
      // Nothing changes in the open period (no look turns into an attempt that would queue a send).
      yield* TestClock.adjust("29 seconds")
      expect(yield* Effect.flip(client.send("late"))).toMatchObject({ _tag: "CircuitOpenError" })
      expect(yield* client.state.get).toMatchObject({ _tag: "Suspended", retryAt: 30_000 })
      expect(events.slice(replayed)).toEqual([])
      yield* TestClock.adjust("1 second")
      yield* realUntil(Effect.map(client.state.get, (s) => s._tag === "Open"), "Open")
      expect(yield* server.received).toEqual([])
      expect(events.slice(replayed)).toEqual(["Suspended>Connecting", "Connecting>Open"])
    }).pipe(Effect.provide(breakers)))
})

describe("round 16: what must not trip the breaker, and isFailure gone wrong", () => {
  it.live("ten Clients answered 401: each Closed with HandshakeRejected, the breaker stays Closed (the endpoint answered); a close while Connecting counts nothing", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(401, {}, 10)
      const registry = yield* CircuitBreaker.Registry
      const breaker = yield* registry.forEndpoint(server.url)
      for (let i = 0; i < 10; i++) {
        const client = yield* Client.make({ url: server.url, ...fast })
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: { _tag: "Some", value: { _tag: "ConnectError", reason: "HandshakeRejected", status: 401 } }
        })
      }
      expect(yield* breaker.state.get).toEqual(CircuitBreaker.State.Closed())
      yield* server.hangHandshake
      for (let i = 0; i < 3; i++) {
        const client = yield* Client.make({ url: server.url, ...fast })
        yield* realUntil(Effect.map(server.requests, (n) => n === 11 + i), "the handshake under way")
        yield* client.close()
      }
      expect(yield* breaker.state.get).toEqual(CircuitBreaker.State.Closed())
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(quietNode, CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(2) })))
    ))

  it.effect("an isFailure that throws, or returns something other than a boolean (a block body without its return), counts the failure: the breaker opens; only false is a success", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, (error: unknown) => unknown, "Open" | "Closed"]> = [
        ["throws", () => {
          throw new Error("bug")
        }, "Open"],
        ["undefined", () => undefined, "Open"],
        ["0", () => 0, "Open"],
        ["'no'", () => "no", "Open"],
        ["false", () => false, "Closed"],
        ["true", () => true, "Open"]
      ]
      const seen: Array<string> = []
      for (const [name, isFailure] of cases) {
        const breaker = yield* CircuitBreaker.make({
          policy: CircuitBreaker.consecutiveFailures(2),
          isFailure: isFailure as (error: unknown) => boolean
        })
        yield* Effect.exit(breaker.run(Effect.fail("down")))
        yield* Effect.exit(breaker.run(Effect.fail("down")))
        seen.push(`${name}: ${(yield* breaker.state.get)._tag}`)
      }
      expect(seen).toEqual(cases.map(([name, , state]) => `${name}: ${state}`))
    }).pipe(Effect.scoped))
})

describe("round 16: option mistakes", () => {
  const defectOf = (options: CircuitBreaker.Options) =>
    Effect.gen(function*() {
      const made = yield* Effect.exit(Effect.scoped(CircuitBreaker.make(options)))
      const layered = yield* Effect.exit(Effect.scoped(Layer.build(CircuitBreaker.layer(options))))
      const message = (exit: Exit.Exit<unknown>) => Exit.isFailure(exit) ? Cause.squash(exit.cause) : "accepted"
      expect(String(message(layered))).toBe(String(message(made)))
      return String(message(made))
    })

  it.effect("threshold 0, negative, NaN; a ratio window of 0; each an IllegalArgumentException naming the field and the value", () =>
    Effect.gen(function*() {
      const window = { threshold: 0.5, minimumCalls: 1 }
      expect(yield* defectOf({ policy: CircuitBreaker.consecutiveFailures(0) })).toBe(
        "IllegalArgumentException: CircuitBreaker: threshold must be an integer >= 1 (got 0)"
      )
      expect(yield* defectOf({ policy: CircuitBreaker.consecutiveFailures(-3) })).toContain("(got -3)")
      expect(yield* defectOf({ policy: CircuitBreaker.consecutiveFailures(NaN) })).toContain("(got NaN)")
      expect(yield* defectOf({ policy: CircuitBreaker.failureRatio({ ...window, window: 0 }) })).toBe(
        "IllegalArgumentException: CircuitBreaker: window must be a finite duration above zero (got 0)"
      )
      expect(yield* defectOf({ policy: CircuitBreaker.failureRatio({ ...window, window: "0 millis" }) })).toContain(
        "window must be a finite duration above zero"
      )
    }))

  it.effect("an openFor that gives no open period (Schedule.forever, recurs, once, stop) is refused at make and at layer; one that ends later keeps its last period", () =>
    Effect.gen(function*() {
      for (const openFor of [Schedule.forever, Schedule.recurs(3), Schedule.once, Schedule.stop]) {
        expect(yield* defectOf({ openFor })).toContain("openFor gives no open period at the first opening")
      }
      const ending = Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(1)))
      expect(yield* defectOf({ openFor: ending })).toBe("accepted")
      const breaker = yield* CircuitBreaker.make({ policy: CircuitBreaker.consecutiveFailures(1), openFor: ending })
      const retryAts: Array<number> = []
      for (let opening = 0; opening < 3; opening++) {
        yield* Effect.exit(breaker.run(Effect.fail("down")))
        const state = yield* breaker.state.get
        retryAts.push(state._tag === "Open" ? state.retryAt.getTime() : -1)
        yield* TestClock.adjust("1 second")
      }
      expect(retryAts).toEqual([1000, 2000, 3000])
    }).pipe(Effect.scoped))
})

describe("round 16: failover and an admin's isolate / reset (TestClock)", () => {
  const breakers = Layer.merge(
    quietNode,
    CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(1), openFor: Schedule.spaced("10 seconds") })
  )
  const stateIs = (client: Client.Client, predicate: (state: State) => boolean, what: string) =>
    realUntil(Effect.map(client.state.get, predicate), what)

  /** Steps the TestClock by the retry's 20 ms (at most 50 times) until the Client's state satisfies `predicate`. */
  const stepUntil = (client: Client.Client, predicate: (state: State) => boolean, what: string) =>
    Effect.gen(function*() {
      for (let step = 0; step < 50; step++) {
        yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))
        if (predicate(yield* client.state.get)) return
        yield* TestClock.adjust("20 millis")
      }
      return yield* Effect.dieMessage(`never: ${what}`)
    })

  it.scoped("ordered: the primary refused, Open on the secondary; the secondary killed too: Suspended on the primary (its breaker admits first); the primary back: Open on it at its retryAt, one handshake", () =>
    Effect.gen(function*() {
      const primary = yield* TestServer.make()
      const secondary = yield* TestServer.make()
      yield* primary.kill
      const client = yield* Client.make({ url: [primary.url, secondary.url], strategy: "ordered", ...fast })
      yield* stepUntil(client, (s) => s._tag === "Open" && s.endpoint === `${secondary.url}/`, "Open on the secondary")
      yield* secondary.kill
      yield* stepUntil(client, isTag("Suspended"), "Suspended")
      expect(yield* client.state.get).toMatchObject({ _tag: "Suspended", endpoint: `${primary.url}/`, retryAt: 10_000 })
      yield* primary.restart
      yield* TestClock.adjust("10 seconds")
      yield* stateIs(client, (s) => s._tag === "Open" && s.endpoint === `${primary.url}/`, "Open on the primary")
      expect(yield* primary.requests).toBe(1)
      expect(yield* secondary.requests).toBe(1)
    }).pipe(Effect.provide(breakers)))

  it.scoped("returnToPrimary with the primary's breaker open: its probes are refused by the breaker (no handshake) until retryAt; then one probe and the reconnect: home on the primary", () =>
    Effect.gen(function*() {
      const primary = yield* TestServer.make()
      const secondary = yield* TestServer.make()
      yield* primary.kill
      const client = yield* Client.make({
        url: [primary.url, secondary.url],
        strategy: "ordered",
        returnToPrimary: "2 seconds",
        ...fast
      })
      yield* stepUntil(client, (s) => s._tag === "Open" && s.endpoint === `${secondary.url}/`, "Open on the secondary")
      yield* primary.restart
      // Probes every 1.6 to 2.4 s: four or five in the open period, each refused by the breaker.
      for (let step = 0; step < 4; step++) yield* TestClock.adjust("2400 millis")
      expect(yield* primary.requests).toBe(0)
      expect(yield* client.state.get).toMatchObject({ _tag: "Open", endpoint: `${secondary.url}/` })
      yield* TestClock.adjust("2400 millis")
      yield* TestClock.adjust("2400 millis")
      yield* stateIs(client, (s) => s._tag === "Open" && s.endpoint === `${primary.url}/`, "home on the primary")
      expect(yield* primary.requests).toBe(2)
      expect(yield* secondary.requests).toBe(1)
    }).pipe(Effect.provide(breakers)))

  it.scoped("isolate while Clients are Open: they stay Open (a breaker guards handshakes, not connections); dropped (1012), each is Suspended with no handshake until reset", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const registry = yield* CircuitBreaker.Registry
      const breaker = yield* registry.forEndpoint(server.url)
      const clients = yield* Effect.forEach(Array.from({ length: 3 }), () => Client.make({ url: server.url, ...fast }))
      yield* realUntil(all(clients, "Open"), "every Client Open")
      yield* breaker.isolate
      expect(yield* all(clients, "Open")).toBe(true)
      yield* server.closeAll(1012)
      yield* realUntil(all(clients, "Backoff"), "every Client in Backoff (Disconnected 1012)")
      yield* TestClock.adjust("20 millis")
      yield* realUntil(all(clients, "Suspended"), "every Client Suspended")
      expect(yield* server.requests).toBe(3)
      yield* breaker.reset
      yield* TestClock.adjust("5 seconds")
      yield* realUntil(all(clients, "Open"), "every Client Open again")
      expect(yield* server.requests).toBe(6)
    }).pipe(Effect.provide(breakers)))

  it.scoped("isolate from an admin fiber while a handshake hangs: it times out, the Client is Suspended with the isolated breaker's retryAt and makes no handshake; reset: its next look (within 5 s) finds it and it opens", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.hangHandshake
      const registry = yield* CircuitBreaker.Registry
      const breaker = yield* registry.forEndpoint(server.url)
      const client = yield* Client.make({ url: server.url, ...fast, connection: { openTimeout: "3 seconds" } })
      yield* realUntil(Effect.map(server.requests, (n) => n === 1), "the handshake under way")
      yield* Effect.fork(breaker.isolate)
      yield* TestClock.adjust("3 seconds")
      yield* stateIs(client, isTag("Backoff"), "Backoff after the open timeout")
      expect(yield* client.state.get).toMatchObject({ error: { _tag: "TimeoutError" } })
      yield* TestClock.adjust("20 millis")
      yield* stateIs(client, isTag("Suspended"), "Suspended by the isolated breaker")
      expect(yield* client.state.get).toMatchObject({
        endpoint: `${server.url}/`,
        retryAt: 8_640_000_000_000_000,
        error: { _tag: "CircuitOpenError", retryAt: new Date(8_640_000_000_000_000) }
      })
      const counts = yield* countStates([client])
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(counts)).toEqual({})
      expect(yield* server.requests).toBe(1)
      yield* server.behave
      yield* Effect.fork(breaker.reset)
      yield* TestClock.adjust("5 seconds")
      yield* stateIs(client, isTag("Open"), "Open after the reset")
      expect(yield* Ref.get(counts)).toEqual({ Connecting: 1, Open: 1 })
      expect(yield* server.requests).toBe(2)
    }).pipe(Effect.provide(breakers)))
})
