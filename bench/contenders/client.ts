// lifeline `Client` with its defaults (heartbeat on, outbox on, default reconnect schedule):
// `enqueue` for pipelining (returns once the frame is buffered), `send` for request/response
// (completes on the write callback), `messages` across reconnects.
import { Effect, Scope, Stream } from "effect"
import type { Client as ClientModule } from "../../src/index.js"
import { Client } from "../lifeline.js"
import { connectTimes, LifelineLive, pipelined, pool, roundTrips, runLifeline } from "./connection.js"
import type { Herd } from "./types.js"
import type { Contender } from "./types.js"

const open = (url: string, options: Omit<ClientModule.Options, "url"> = {}) =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url, ...options })
    yield* client.awaitOpen
    return client
  })

/** `count` Clients with every default, in their own scope. */
export const clientHerd = (url: string, count: number): Herd => {
  const scope = Effect.runSync(Scope.make())
  const reconnectedAt: Array<number | undefined> = new Array(count).fill(undefined)
  const clients = Effect.runSync(
    Effect.forEach(Array.from({ length: count }), () => Client.make({ url })).pipe(
      Scope.extend(scope),
      Effect.provide(LifelineLive)
    )
  )
  // The first Open after the client was anything else, timed by the Open state's own `since`
  // (Clock time when the socket opened, whole milliseconds), as partysocket's is taken in its
  // `open` listener: when the watching fiber gets to run is a matter of scheduling, not of
  // reconnection. `changes` starts with the current state, so nothing falls between reading it
  // and watching. One long-lived subscription per client, as an application would keep: a stream
  // started and stopped at every transition (`runHead`) costs the process it runs in more than
  // the reconnection it measures.
  const watch = (client: ClientModule.Client, index: number) =>
    Effect.suspend(() => {
      let left = false
      return Stream.runForEach(client.state.changes, (state) =>
        Effect.sync(() => {
          if (state._tag !== "Open") left = true
          else if (left && reconnectedAt[index] === undefined) {
            reconnectedAt[index] = state.since - performance.timeOrigin
          }
        }))
    })
  return {
    opened: Effect.runPromise(
      Effect.forEach(clients, (client) => client.awaitOpen, { concurrency: "unbounded", discard: true })
    ),
    watchReconnects: () => {
      Effect.runSync(
        Effect.forEach(clients, (client, index) => Effect.forkIn(watch(client, index), scope), { discard: true })
      )
    },
    reconnectedAt: () => reconnectedAt
  }
}

export const client: Contender = {
  name: "client",
  label: "lifeline Client",
  throughput: (url, payload, count, window) =>
    runLifeline(Effect.gen(function*() {
      // Pipelining with `enqueue` waits for room under `suspend`: the outbox bounds the frames
      // not yet written too, and a window of 1,000 unanswered can briefly hold more than the
      // default 1,024 unwritten (write callbacks lag the echoes), which `fail` would refuse.
      const client = yield* open(url, { outbox: { overflow: "suspend" } })
      return yield* pipelined(client.enqueue, client.messages, payload, count, window)
    })),
  latency: (url, payload, count, spacing) =>
    runLifeline(Effect.gen(function*() {
      const client = yield* open(url)
      return yield* roundTrips(client.send, client.messages, payload, count, spacing)
    })),
  connect: (url, count) => connectTimes(open(url), count),
  pool: (url) => pool(open(url))
}
