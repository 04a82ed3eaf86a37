// A Node process with a Client over Node's own WebSocket (the global one, undici's), through
// `effect-lifeline/browser`, as code shared with a browser app runs on its server side:
//   node --experimental-websocket --import tsx test/support/undiciChild.ts <mode> <url>
// Modes:
// - once: opens, sends "hello", waits for the echo, closes;
// - dead: an app-level heartbeat (200 + 200 ms); prints "open" once Open (the parent then
//   blackholes the link), waits for the heartbeat's TimeoutError, closes;
// - storm: a ManagedRuntime holding a Client that retries every 10 ms; prints "open" once Open
//   (the parent then kills the server), "ready" after 20 more attempts, and waits for SIGTERM,
//   whose handler disposes the runtime.
// Each prints one JSON line (the Client's state, its `failed` count, the heartbeat error or the
// attempts seen, and whatever reached the process as an uncaught exception or unhandled
// rejection) and must then exit by itself: nothing left open, no `process.exit`.
import { Context, Effect, Layer, Logger, ManagedRuntime, Schedule, Stream } from "effect"
import { BrowserTransport, Client } from "../../src/browser.js"

const [mode, url] = process.argv.slice(2) as [string, string]

const strays: Array<string> = []
process.on("uncaughtException", (error) => strays.push(`uncaught: ${String(error)}`))
process.on("unhandledRejection", (error) => strays.push(`unhandled: ${String(error)}`))

const live = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))
const report = (fields: Record<string, unknown>) => console.log(JSON.stringify({ ...fields, strays }))

const once = Effect.gen(function*() {
  const client = yield* Client.make({ url })
  yield* client.awaitOpen
  yield* client.send("hello")
  const echo = yield* Stream.runHead(client.messages)
  const unsent = yield* client.close()
  report({ echo, unsent: unsent.length, state: (yield* client.state.get)._tag, failed: yield* client.failed })
})

const dead = Effect.gen(function*() {
  const client = yield* Client.make({
    url,
    retry: Schedule.spaced("1 hour"),
    heartbeat: { interval: "200 millis", timeout: "200 millis", message: "ping", isPong: (m) => m === "pong" }
  })
  yield* client.awaitOpen
  console.log("open")
  const backoff = yield* client.state.changes.pipe(Stream.filter((state) => state._tag === "Backoff"), Stream.runHead)
  yield* client.close()
  report({
    error: backoff._tag === "Some" && backoff.value._tag === "Backoff" ? backoff.value.error._tag : "none",
    state: (yield* client.state.get)._tag
  })
})

class Feed extends Context.Tag("undiciChild/Feed")<Feed, Client.Client>() {}

const storm = async () => {
  const runtime = ManagedRuntime.make(
    Client.layer(Feed, { url, retry: Schedule.spaced("10 millis"), minRetryDelay: "10 millis" }).pipe(
      Layer.provide(live)
    )
  )
  const client = await runtime.runPromise(Feed)
  await runtime.runPromise(client.awaitOpen)
  let attempts = 0
  let ready = false
  void Effect.runPromise(Stream.runForEach(client.state.changes, (state) =>
    Effect.sync(() => {
      if (state._tag !== "Connecting") return
      attempts++
      if (attempts === 21 && !ready) {
        ready = true
        console.log("ready")
      }
    })))
  console.log("open")
  process.once("SIGTERM", () => {
    void runtime.dispose().then(() =>
      Effect.runPromise(client.state.get).then((state) => report({ state: state._tag, stormed: attempts > 20 }))
    )
  })
}

if (mode === "storm") void storm()
else void Effect.runPromise(Effect.scoped(mode === "once" ? once : dead).pipe(Effect.provide(live)))
