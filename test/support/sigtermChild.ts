// A service that holds a Client in a ManagedRuntime and disposes it from its SIGTERM handler,
// the way a Node service shuts down:
//   node --import tsx test/support/sigtermChild.ts <url> <count> <size>
// Once the Client is Open it starts `count` sends of `size` characters at once (the server is
// expected not to be reading, so most of them wait), prints "ready", and waits for SIGTERM. The
// handler disposes the runtime; then the process prints one JSON line: how each send ended (by
// outcome), the Client's `failed` count and state, the MessageFailed events seen, and whether
// anything reached the process as an uncaught exception or unhandled rejection. It must then
// exit by itself: nothing left open.
import { Context, Effect, Exit, Layer, Logger, ManagedRuntime, Stream } from "effect"
import { Client, NodeTransport } from "../../src/index.js"

const [url, countText, sizeText] = process.argv.slice(2)
const count = Number(countText)
const payload = "x".repeat(Number(sizeText))

class Feed extends Context.Tag("sigterm/Feed")<Feed, Client.Client>() {}

const strays: Array<string> = []
process.on("uncaughtException", (error) => strays.push(String(error)))
process.on("unhandledRejection", (error) => strays.push(String(error)))

const runtime = ManagedRuntime.make(
  Client.layer(Feed, { url: url!, connection: { closeTimeout: "200 millis" } }).pipe(
    Layer.provide(Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger)))
  )
)

const describe = (error: { readonly _tag: string }): string =>
  "reason" in error ? `${error._tag} ${String(error.reason)}` : error._tag

const main = async () => {
  const client = await runtime.runPromise(Feed)
  await runtime.runPromise(client.awaitOpen)
  // A watcher for the app's lifetime, on its own (it ends when the Client has closed).
  let messageFailed = 0
  const watcher = Effect.runPromise(
    Stream.runForEach(client.events, (event) => Effect.sync(() => event._tag === "MessageFailed" && messageFailed++))
  )
  // Half awaited sends, half enqueued (fire and forget: their failures are events).
  const sends = Array.from(
    { length: count },
    (_, i) => runtime.runPromiseExit(i % 2 === 0 ? client.send(`${i}:${payload}`) : client.enqueue(`${i}:${payload}`))
  )
  process.once("SIGTERM", () => {
    runtime.dispose().then(async () => {
      const exits = await Promise.all(sends)
      await watcher
      const outcomes: Record<string, number> = {}
      exits.forEach((exit, i) => {
        const kind = i % 2 === 0 ? "send" : "enqueue"
        const key = Exit.isSuccess(exit)
          ? `${kind} ok`
          : `${kind} ${exit.cause._tag === "Fail" ? describe(exit.cause.error) : exit.cause._tag}`
        outcomes[key] = (outcomes[key] ?? 0) + 1
      })
      const failed = await Effect.runPromise(client.failed)
      const state = (await Effect.runPromise(client.state.get))._tag
      process.stdout.write(`${JSON.stringify({ outcomes, failed, messageFailed, state, strays })}\n`)
    })
  })
  // Let the sends reach the outbox and the socket before saying so.
  setTimeout(() => process.stdout.write("ready\n"), 50)
}
main()
