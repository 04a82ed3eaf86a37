/**
 * Review of round 8's source changes: each test here failed on the code before its fix.
 * Real sockets on 127.0.0.1 through the test kit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { CircuitBreaker, Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"

/** A full collection in this worker (vitest's workers have no --expose-gc). */
const collect = (() => {
  let gc: (() => void) | undefined
  return Effect.promise(async () => {
    if (gc === undefined) {
      setFlagsFromString("--expose-gc")
      gc = runInNewContext("gc") as () => void
    }
    for (let round = 0; round < 2; round++) {
      gc()
      await new Promise((resolve) => setImmediate(resolve))
    }
  })
})()

describe("review3: circuit breaker registry held weakly", () => {
  it.live("a Client whose url is an Effect holds its breaker between attempts: a collection in Backoff does not reset the failure count", () =>
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
        CircuitBreaker.layer({ policy: CircuitBreaker.consecutiveFailures(3), openFor: Schedule.spaced("10 seconds") })
      ))
    ), 15_000)
})
