// lifeline `LiteClient` (the small Client) with its defaults, measured as the full Client is
// (client.ts): `enqueue` for pipelining, `send` for request/response, `messages` across reconnects.
// Not in the default set: `npm run bench -- --contenders ws,client,lite`.
import { Effect } from "effect"
import type { LiteClient as LiteClientModule } from "../../src/index.js"
import { LiteClient } from "../lifeline.js"
import { connectTimes, pipelined, pool, roundTrips, runLifeline } from "./connection.js"
import type { Contender } from "./types.js"

const open = (url: string, options: Omit<LiteClientModule.LiteOptions, "url"> = {}) =>
  Effect.gen(function*() {
    const client = yield* LiteClient.make({ url, ...options })
    yield* client.awaitOpen
    return client
  })

export const lite: Contender = {
  name: "lite",
  label: "lifeline LiteClient",
  throughput: (url, payload, count, window) =>
    runLifeline(Effect.gen(function*() {
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
