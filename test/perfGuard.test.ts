/**
 * Performance guards that cannot flake: they count operations, not time. The per-message path
 * must start no fiber, so fibers started while N messages go out and come back do not grow with N.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream, Supervisor } from "effect"
import { Client, Connection, NodeTransport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"

class FiberCounter extends Supervisor.AbstractSupervisor<number> {
  started = 0
  readonly value = Effect.sync(() => this.started)
  override onStart(): void {
    this.started++
  }
}

const counted = (counter: FiberCounter) =>
  Effect.provide(Layer.merge(Supervisor.addSupervisor(counter), NodeTransport.layer))

const payload = "x".repeat(64)

describe("per-message cost guards", () => {
  it.live("Connection: write and messages start no fiber per message", () => {
    const counter = new FiberCounter()
    return withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url)
      const roundTrip = (count: number) =>
        Effect.gen(function*() {
          const before = counter.started
          const reader = yield* Effect.fork(connection.messages.pipe(Stream.take(count), Stream.runCount))
          for (let index = 0; index < count; index++) yield* connection.write(payload)
          expect(yield* Fiber.join(reader)).toBe(count)
          return counter.started - before
        })
      const small = yield* roundTrip(100)
      const large = yield* roundTrip(5000)
      expect(large).toBe(small)
      expect(small).toBeLessThanOrEqual(2)
    })).pipe(counted(counter))
  })

  it.live("Connection: send (awaiting each write) starts no fiber per message", () => {
    const counter = new FiberCounter()
    return withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const connection = yield* Connection.connect(server.url)
      const sendAll = (count: number) =>
        Effect.gen(function*() {
          const before = counter.started
          for (let index = 0; index < count; index++) yield* connection.send(payload)
          return counter.started - before
        })
      expect(yield* sendAll(100)).toBe(0)
      expect(yield* sendAll(2000)).toBe(0)
    })).pipe(counted(counter))
  })

  it.live("Client: send, enqueue and messages start no fiber per message, heartbeat and outbox on", () => {
    const counter = new FiberCounter()
    return withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, heartbeat: { interval: "20 seconds" } })
      yield* client.awaitOpen
      const roundTrip = (count: number) =>
        Effect.gen(function*() {
          const before = counter.started
          const reader = yield* Effect.fork(client.messages.pipe(Stream.take(count * 2), Stream.runCount))
          for (let index = 0; index < count; index++) {
            yield* client.send(payload)
            yield* client.enqueue(payload)
          }
          expect(yield* Fiber.join(reader)).toBe(count * 2)
          return counter.started - before
        })
      const small = yield* roundTrip(100)
      const large = yield* roundTrip(3000)
      expect(large).toBe(small)
      expect(small).toBeLessThanOrEqual(2)
    })).pipe(counted(counter))
  })
})
