/**
 * lifeline's browser transport over Node's own `WebSocket` (undici's, the WHATWG API that Deno,
 * Bun and workers also give): run with `node --experimental-websocket` (Node 20), printed as one
 * JSON line. The same trials as a page would make: echo of text and binary frames, a server killed
 * and restarted with sends queued meanwhile, a 401, a server's close code, a hung handshake.
 * Counts anything that reaches uncaughtException or unhandledRejection.
 */
import { Chunk, Effect, Layer, Logger, Stream } from "effect"
import { BrowserTransport, Client, Connection } from "../../src/browser.js"
import { TestServer } from "../../src/testing/index.js"

let escaped = 0
process.on("uncaughtException", () => escaped++)
process.on("unhandledRejection", () => escaped++)

const describeState = (state: Client.ClientState): string => {
  if (state._tag !== "Backoff" && state._tag !== "Closed") return state._tag
  const error = state._tag === "Backoff" ? state.error : state.error._tag === "Some" ? state.error.value : undefined
  if (error === undefined) return state._tag
  const detail = error._tag === "ConnectError" ? error.reason : error._tag === "Disconnected" ? error.code : ""
  return `${state._tag} ${error._tag} ${detail}`
}

const program = Effect.gen(function*() {
  const server = yield* TestServer.make()
  const states: Array<string> = []
  const client = yield* Client.make({ url: server.url, heartbeat: false, minRetryDelay: 50 })
  yield* client.state.changes.pipe(
    Stream.runForEach((state) => Effect.sync(() => states.push(describeState(state)))),
    Effect.forkScoped
  )
  yield* client.awaitOpen
  const reader = yield* Stream.toPull(client.messages)
  const next = (count: number) =>
    Effect.gen(function*() {
      const got: Array<unknown> = []
      while (got.length < count) got.push(...Chunk.toArray(yield* reader))
      return got
    }).pipe(Effect.timeout("10 seconds"))
  for (const text of ["a", "b", "c"]) yield* client.send(text)
  const echoed = yield* next(3)
  yield* client.send(new Uint8Array([1, 2, 3]))
  const [binary] = yield* next(1)
  const binaryEcho = binary instanceof Uint8Array ? Array.from(binary) : String(binary)
  yield* server.kill
  yield* client.state.changes.pipe(Stream.filter((state) => state._tag === "Backoff"), Stream.runHead)
  for (const text of ["d", "e", "f"]) yield* client.enqueue(text)
  yield* server.restart
  yield* client.awaitOpen.pipe(Effect.timeout("10 seconds"))
  const afterRestart = yield* next(3)
  const unsent = yield* client.close()

  // A Connection: a 401 (browsers hide why), a server's close code, a hung handshake.
  yield* server.rejectNext(401)
  const rejected = yield* Effect.flip(Effect.scoped(Connection.connect(server.url)))
  const closedByServer = yield* Effect.scoped(Effect.gen(function*() {
    const connection = yield* Connection.connect(server.url)
    yield* server.closeAll(4001, "bye")
    return yield* connection.closed
  }))
  yield* server.hangHandshake
  const hung = yield* Effect.flip(Effect.scoped(Connection.connect(server.url, { openTimeout: "300 millis" })))
  return {
    echoed,
    binaryEcho,
    afterRestart,
    unsent,
    states,
    received: (yield* server.received).filter((message) => typeof message === "string"),
    rejected: { tag: rejected._tag, reason: rejected._tag === "ConnectError" ? rejected.reason : undefined },
    closedByServer: { code: closedByServer.code, reason: closedByServer.reason, initiator: closedByServer.initiator },
    hung: { tag: hung._tag, operation: hung._tag === "TimeoutError" ? hung.operation : undefined }
  }
})

const result = await Effect.runPromise(
  program.pipe(Effect.scoped, Effect.provide(Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))))
)
// Anything late (a socket's event after the scope closed) has had its turn.
await new Promise((resolve) => setTimeout(resolve, 100))
console.log(JSON.stringify({ ...result, escaped }))
