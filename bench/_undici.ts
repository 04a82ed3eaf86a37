import { Effect, Layer, Logger, Stream, Chunk } from "effect"
import { BrowserTransport, Client } from "/work/main/src/browser.js"
import * as TestServer from "/work/main/src/testing/TestServer.js"
const program = Effect.gen(function*() {
  const server = yield* TestServer.make()
  const client = yield* Client.make({ url: server.url, heartbeat: false })
  const states: Array<string> = []
  yield* client.state.changes.pipe(Stream.runForEach((s) => Effect.sync(() => states.push(s._tag + ("error" in s && s.error ? ":" + (s.error as any)._tag + "/" + ((s.error as any).reason ?? (s.error as any).code) : "")))), Effect.forkScoped)
  yield* client.awaitOpen
  for (let i = 0; i < 5; i++) yield* client.send(`m${i}`)
  const got = yield* client.messages.pipe(Stream.take(5), Stream.runCollect)
  console.log("echo", Chunk.toArray(got))
  yield* server.kill
  yield* Effect.sleep("300 millis")
  for (let i = 5; i < 8; i++) yield* client.enqueue(`m${i}`)
  yield* server.restart
  yield* client.awaitOpen.pipe(Effect.timeout("10 seconds"))
  const got2 = yield* client.messages.pipe(Stream.take(3), Stream.runCollect, Effect.timeout("5 seconds"))
  console.log("after restart", Chunk.toArray(got2))
  // a binary frame
  yield* client.send(new Uint8Array([1,2,3]))
  const bin = yield* client.messages.pipe(Stream.take(1), Stream.runCollect)
  console.log("binary", Chunk.toArray(bin))
  console.log("states", states.join(" "))
  console.log("closed ->", yield* client.close())
})
Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))))).then(() => console.log("done"), (e) => console.log("failed", e))
