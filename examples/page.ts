/**
 * The small Client in a page: a typed price feed over one URL with `effect-lifeline/LiteClient`,
 * which is the same `Client`, smaller in a browser bundle (no failover, breakers or metrics). Import it by its path, with the browser transport: a bundler then keeps only what
 * the page uses.
 *
 * The app never names a transport: `main` takes it. In a page it is `BrowserTransport.layer` (the
 * page's own WebSocket); here, run by Node, `NodeTransport.layer`. The Client code is the same.
 *
 * Run: `npx tsx examples/page.ts` (starts its own TestServer on 127.0.0.1).
 */
import { Console, Effect, Layer, Schema, Stream } from "effect"
import * as Client from "effect-lifeline/Client"
import * as Codec from "effect-lifeline/Codec"
import * as LiteClient from "effect-lifeline/LiteClient"
import * as NodeTransport from "effect-lifeline/NodeTransport"
import { TestServer } from "effect-lifeline/testing"
import type { Transport } from "effect-lifeline/Transport"

/** What the feed sends: a price tick. */
export const Tick = Schema.Struct({ symbol: Schema.String, price: Schema.Number })
/** What the page sends: which symbols it wants. */
export const Subscribe = Schema.Struct({ subscribe: Schema.Array(Schema.String) })

/** The feed, typed: `messages` yields ticks, `send` takes subscriptions. */
export class Feed extends Client.Tag("examples/Feed")<Feed, typeof Tick.Type, typeof Subscribe.Type>() {}

/**
 * The small Client behind `Feed`. `onOpen` subscribes on every link, on that link (a frame of the
 * raw connection: the codec is the Client's), before anything queued goes out.
 */
export const FeedLive = (url: string, symbols: ReadonlyArray<string>) =>
  LiteClient.layer(Feed, {
    url,
    codec: Codec.json(Tick, Subscribe),
    onOpen: (connection) => connection.send(JSON.stringify({ subscribe: symbols })),
    // A page has no protocol ping: an app-level probe the feed answers (kept out of `messages`).
    heartbeat: { interval: "15 seconds", timeout: "5 seconds", message: "ping", isPong: (frame) => frame === "pong" }
  })

/** The page: the first `count` ticks of the symbols it asked for. */
export const main = (
  url: string,
  transport: Layer.Layer<Transport>,
  count = 3
): Effect.Effect<ReadonlyArray<typeof Tick.Type>> =>
  Effect.gen(function*() {
    const feed = yield* Feed
    return yield* feed.messages.pipe(Stream.take(count), Stream.runCollect, Effect.map((ticks) => [...ticks]))
  }).pipe(Effect.provide(FeedLive(url, ["BTC-USD"]).pipe(Layer.provide(transport))))

/** A feed for the example and its test: on a subscription, three ticks of each symbol asked for. */
export const feedServer = TestServer.make({
  handler: (message, reply) => {
    if (message === "ping") return reply("pong")
    const { subscribe } = JSON.parse(String(message)) as typeof Subscribe.Type
    for (const symbol of subscribe) {
      for (const price of [100, 101, 102]) reply(JSON.stringify({ symbol, price }))
    }
  }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* feedServer
    // In a page: `main(url, BrowserTransport.layer)`.
    for (const tick of yield* main(server.url, NodeTransport.layer)) yield* Console.log(tick)
  })
  Effect.runPromise(Effect.scoped(standalone)).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
