/**
 * Client options from the environment: `Client.layerConfig` with `Client.config("FEED")` reads
 * `FEED_URL` (required), `FEED_RETRY_BASE`, `FEED_RETRY_CAP`, `FEED_OUTBOX_CAPACITY`, ... through
 * the current `ConfigProvider` (Effect's default reads `process.env`). What config cannot say
 * (`onOpen`) is given in code and merged over it. A missing or unusable value fails the layer with
 * a `ConfigError` that names its key.
 *
 * `main(env)` runs the app with `env` as the environment (a map spelled as environment variables),
 * so a test can give it any; `app` alone uses whatever provider is current.
 *
 * Run: `npx tsx examples/config.ts` (starts its own TestServer on 127.0.0.1 and sets FEED_URL to
 * it; then shows the ConfigError of a bad FEED_OUTBOX_CAPACITY).
 */
import { Chunk, ConfigError, ConfigProvider, Console, Effect, Layer, Stream } from "effect"
import { Client, NodeTransport } from "effect-lifeline"
import type { CircuitOpenError, SendError } from "effect-lifeline"
import { TestServer } from "effect-lifeline/testing"

export class Feed extends Client.Tag("examples/Feed")<Feed>() {}

/** FEED_* from config, plus an `onOpen` that config cannot express. */
export const FeedLive = Client.layerConfig(Feed, Client.config("FEED"), {
  onOpen: (connection) => connection.send("subscribe")
}).pipe(Layer.provide(NodeTransport.layer))

/** Sends one message and returns the first two frames back (the echoes of "subscribe" and "hello"). */
export const app: Effect.Effect<ReadonlyArray<unknown>, ConfigError.ConfigError | SendError | CircuitOpenError> = Effect
  .gen(
    function*() {
      const feed = yield* Feed
      yield* feed.send("hello")
      return Chunk.toArray(yield* feed.messages.pipe(Stream.take(2), Stream.runCollect))
    }
  ).pipe(Effect.provide(FeedLive))

/** `app` with `env` as the environment: keys joined with `_`, as `ConfigProvider.fromEnv` reads them. */
export const main = (env: Readonly<Record<string, string>>) =>
  app.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })))

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* TestServer.make()
    yield* Console.log("FEED_URL set:", yield* main({ FEED_URL: server.url, FEED_RETRY_CAP: "5 seconds" }))
    const bad = yield* Effect.flip(main({ FEED_URL: server.url, FEED_OUTBOX_CAPACITY: "0" }))
    yield* Console.log("FEED_OUTBOX_CAPACITY=0:", ConfigError.isConfigError(bad) ? String(bad) : bad)
    const missing = yield* Effect.flip(main({}))
    yield* Console.log("no FEED_URL:", ConfigError.isConfigError(missing) ? String(missing) : missing)
  })
  Effect.runPromise(Effect.scoped(standalone)).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
