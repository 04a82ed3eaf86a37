/**
 * The same scenario through lifeline: 100 connects to an endpoint that never answers, each ended
 * while CONNECTING, half by the open timeout and half by closing the scope. Exits 0 only if
 * nothing reached uncaughtException or unhandledRejection.
 */
import { Effect, Fiber } from "effect"
import { Connection, NodeTransport } from "../../src/index.js"
import { listenHanging } from "./hangingEndpoint.js"

let escaped = 0
process.on("uncaughtException", (error) => {
  escaped++
  console.error("uncaughtException:", error.message)
})
process.on("unhandledRejection", (reason) => {
  escaped++
  console.error("unhandledRejection:", reason)
})

const endpoint = await listenHanging()
const outcomes = new Map<string, number>()
const program = Effect.gen(function*() {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (attempt % 2 === 0) {
      const error = yield* Connection.connect(endpoint.url, { openTimeout: "5 millis" }).pipe(
        Effect.scoped,
        Effect.flip
      )
      outcomes.set(error._tag, (outcomes.get(error._tag) ?? 0) + 1)
    } else {
      const fiber = yield* Effect.fork(Effect.scoped(Connection.connect(endpoint.url)))
      yield* Effect.sleep("5 millis")
      yield* Fiber.interrupt(fiber)
      outcomes.set("Interrupted", (outcomes.get("Interrupted") ?? 0) + 1)
    }
  }
}).pipe(Effect.provide(NodeTransport.layer))

await Effect.runPromise(program)
endpoint.close()
// Let any late event (ws emits on the next tick) surface before judging.
await new Promise((resolve) => setTimeout(resolve, 50))
console.log(JSON.stringify({ outcomes: Object.fromEntries(outcomes), escaped }))
process.exit(escaped === 0 ? 0 : 1)
