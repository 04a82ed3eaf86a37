/**
 * Review of round 8's source changes: each test here failed on the code before its fix.
 * Real sockets on 127.0.0.1 through the test kit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { CircuitBreaker, Client } from "../src/index.js"
import * as LifelinePlatform from "../src/platform.js"
import { TestServer } from "../src/testing/index.js"
import { awaitReceived, awaitState, isTag } from "./support/clientKit.js"
import { collect } from "./support/gc.js"
import { provideNode, quietNode } from "./support/node.js"
import { closedPort } from "./support/ports.js"

describe("review3: circuit breaker registry held weakly", () => {
  it.live(
    "a Client whose url is an Effect holds its breaker between attempts: a collection in Backoff does not reset the failure count",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* server.rejectNext(503, {}, 100)
        const client = yield* Client.make({
          url: Effect.succeed(server.url),
          retry: Schedule.spaced("150 millis"),
          minRetryDelay: "150 millis",
          heartbeat: false
        })
        // A full collection in every Backoff: what a busy process does between attempts, sooner or later.
        const collector = yield* Effect.fork(Stream.runForEach(
          client.state.changes,
          (state) => state._tag === "Backoff" ? collect : Effect.void
        ))
        // Three failures open the breaker: Suspended. Bounded: 8 requests at most.
        const seen = yield* awaitState(
          client,
          (state) => state._tag === "Suspended" || state._tag === "Closed",
          "4 seconds"
        ).pipe(Effect.race(Effect.gen(function*() {
          for (let turn = 0; turn < 400; turn++) {
            if ((yield* server.requests) >= 8) return yield* client.state.get
            yield* Effect.sleep("10 millis")
          }
          return yield* client.state.get
        })))
        yield* Fiber.interrupt(collector)
        expect(seen._tag).toBe("Suspended")
        expect(yield* server.requests).toBe(3)
        yield* client.close()
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(
          quietNode,
          CircuitBreaker.layer({
            policy: CircuitBreaker.consecutiveFailures(3),
            openFor: Schedule.spaced("10 seconds")
          })
        ))
      ),
    30_000
  )
})

describe("review3: a url Effect that alternates between two endpoints", () => {
  // The breaker of the endpoint an Effect url gave last was the only one held (one per endpoint
  // index): an Effect that rotates among hosts left the others' Closed breakers held by no one
  // between their attempts, a collection reset their count of failures, and they never opened. A
  // Client now holds the 16 breakers its URL Effects gave most recently.
  it.live(
    "two hosts that both refuse: each one's breaker opens after its failures, whatever the collector does",
    () =>
      Effect.gen(function*() {
        const one = yield* TestServer.make()
        const two = yield* TestServer.make()
        yield* one.rejectNext(503, {}, 100)
        yield* two.rejectNext(503, {}, 100)
        let turn = 0
        const client = yield* Client.make({
          url: Effect.sync(() => (turn++ % 2 === 0 ? one : two).url),
          retry: Schedule.spaced("150 millis"),
          minRetryDelay: "150 millis",
          heartbeat: false
        })
        const collector = yield* Effect.fork(Stream.runForEach(
          client.state.changes,
          (state) => state._tag === "Backoff" ? collect : Effect.void
        ))
        const seen = yield* awaitState(
          client,
          (state) => state._tag === "Suspended" || state._tag === "Closed",
          "4 seconds"
        )
          .pipe(Effect.race(Effect.gen(function*() {
            for (let n = 0; n < 400; n++) {
              if ((yield* one.requests) + (yield* two.requests) >= 10) return yield* client.state.get
              yield* Effect.sleep("10 millis")
            }
            return yield* client.state.get
          })))
        yield* Fiber.interrupt(collector)
        expect(seen._tag).toBe("Suspended")
        yield* client.close()
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(
          quietNode,
          CircuitBreaker.layer({
            policy: CircuitBreaker.consecutiveFailures(2),
            openFor: Schedule.spaced("10 seconds")
          })
        ))
      ),
    30_000
  )
})

describe("review3: platform Socket over a Client closed on purpose", () => {
  it.live("a run whose onOpen ends after close gets every message that arrived before close (state.changes ending does not cut the reading short)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, heartbeat: false })
      yield* client.awaitOpen
      const socket = LifelinePlatform.fromClient(client)
      const gate = yield* Deferred.make<void>()
      const got: Array<string> = []
      const run = yield* Effect.fork(socket.runRaw((data) => {
        got.push(typeof data === "string" ? data : new TextDecoder().decode(data))
      }, { onOpen: Deferred.await(gate) }))
      // Echoed by the server before it reads the close frame: they arrive before its close frame.
      const texts = Array.from({ length: 300 }, (_, i) => `m${i}`)
      for (const text of texts) yield* client.send(text)
      yield* awaitReceived(server, 300)
      yield* client.close()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(run)
      expect(got).toEqual(texts)
    }).pipe(Effect.scoped, provideNode))
})

/** Opens the registry's breaker of `url` with one failure, waits (bounded) for `until`; only a WeakRef of it is returned. */
const breakerLeftIn = (url: string, until: CircuitBreaker.State["_tag"], healed = false) =>
  Effect.gen(function*() {
    const registry = yield* CircuitBreaker.Registry
    const breaker = yield* registry.forEndpoint(url)
    if (until !== "Closed" || healed) yield* Effect.exit(breaker.run(Effect.fail("refused")))
    const awaited = healed ? "HalfOpen" : until
    for (let turn = 0; turn < 200 && (yield* breaker.state.get)._tag !== awaited; turn++) {
      yield* Effect.sleep("5 millis")
    }
    // Healed: a trial that succeeds closes it again (its timer has run).
    if (healed) yield* breaker.run(Effect.void)
    expect((yield* breaker.state.get)._tag).toBe(until)
    return new WeakRef(breaker)
  })

describe("review3: what the registry keeps of an endpoint no Client dials any more", () => {
  const registry = CircuitBreaker.layer({
    policy: CircuitBreaker.consecutiveFailures(1),
    openFor: Schedule.spaced("20 millis")
  })

  it.live("a Closed breaker no one holds is let go", () =>
    Effect.gen(function*() {
      const ref = yield* breakerLeftIn("ws://127.0.0.1:9/closed", "Closed")
      yield* collect
      expect(ref.deref()).toBeUndefined()
    }).pipe(Effect.provide(registry)))

  it.live("a breaker that opened, ran its timer and closed again after a trial is let go too", () =>
    Effect.gen(function*() {
      const ref = yield* breakerLeftIn("ws://127.0.0.1:9/healed", "Closed", true)
      yield* collect
      expect(ref.deref()).toBeUndefined()
    }).pipe(Effect.provide(registry)))

  // An Open one is held for its period, but once the period has run out (HalfOpen) nothing would
  // call it again if no Client dials that endpoint: it is let go as a Closed one is (a caller in a
  // trial holds it), with its count of openings (openFor's next step). Before, the registry kept it
  // (about 9 KB) for each endpoint that ever opened.
  it.live("a breaker whose open period ran out (HalfOpen) and that no one calls is let go", () =>
    Effect.gen(function*() {
      const ref = yield* breakerLeftIn("ws://127.0.0.1:9/half-open", "HalfOpen")
      yield* collect
      expect(ref.deref()).toBeUndefined()
    }).pipe(Effect.provide(registry)))
})

describe("review3: state.changes and events end at close", () => {
  it.live("closed while messages are queued: events ends after a MessageFailed (Closed) for each, state.changes after Closed; neither waits for ever", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const client = yield* Client.make({
        url: `ws://127.0.0.1:${port}`,
        heartbeat: false,
        retry: Schedule.spaced("10 seconds")
      })
      yield* awaitState(client, isTag("Backoff"))
      for (let n = 0; n < 5; n++) yield* client.enqueue(`queued ${n}`)
      const events = yield* Effect.fork(Stream.runCollect(client.events))
      const states = yield* Effect.fork(Stream.runCollect(client.state.changes))
      yield* Effect.sleep("20 millis")
      const unsent = yield* client.close()
      expect(unsent).toHaveLength(5)
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(events).pipe(Effect.timeout("2 seconds")))
      const failed = seen.filter((event) => event._tag === "MessageFailed")
      expect(failed.map((event) => event._tag === "MessageFailed" && event.error.reason)).toEqual(
        Array(5).fill("Closed")
      )
      const last = seen.filter((event) => event._tag === "Transition").at(-1)
      expect(last?._tag === "Transition" && last.to._tag).toBe("Closed")
      const changes = Chunk.toReadonlyArray(yield* Fiber.join(states).pipe(Effect.timeout("2 seconds")))
      expect(changes.map((state) => state._tag)).toEqual(["Backoff", "Closed"])
      // Subscribed after close: the state now, the recent events, then the end.
      expect(Chunk.toReadonlyArray(yield* Stream.runCollect(client.state.changes)).map((s) => s._tag)).toEqual([
        "Closed"
      ])
      // The recent events end as the live ones did: five failures after the Transition to Closed.
      const late = Chunk.toReadonlyArray(yield* Stream.runCollect(client.events))
      expect(late.slice(-6).map((event) => event._tag === "Transition" ? event.to._tag : event._tag)).toEqual([
        "Closed",
        ...Array(5).fill("MessageFailed")
      ])
    }).pipe(Effect.scoped, provideNode))
})
