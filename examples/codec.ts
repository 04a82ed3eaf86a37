/**
 * Typed messages: a price feed whose frames are JSON checked by Schemas.
 *
 * The peer sends `Tick`s and takes `Subscribe`s, so the codec has a schema for each direction:
 * `Codec.json(Tick, Subscribe)`. The Client under the `Prices` tag takes `Subscribe` values in
 * `send` and yields `Tick` values from `messages`; a frame that is not a Tick is skipped and shows
 * on `events` as `DecodeFailed`, with the frame, while the link stays up.
 *
 * Run: `npx tsx examples/codec.ts` (starts its own TestServer on 127.0.0.1).
 */
import { Chunk, Console, Effect, Fiber, Layer, Schema, Stream } from "effect"
import { Client, Codec, NodeTransport } from "effect-lifeline"
import type { CircuitOpenError, SendError } from "effect-lifeline"
import { TestServer } from "effect-lifeline/testing"

/** What the feed sends. */
export const Tick = Schema.Struct({ symbol: Schema.String, price: Schema.Number.pipe(Schema.positive()) })
export type Tick = typeof Tick.Type

/** What the app sends. */
export const Subscribe = Schema.Struct({ type: Schema.Literal("subscribe"), symbol: Schema.String })
export type Subscribe = typeof Subscribe.Type

/** The link, typed: `In` is Tick, `Out` is Subscribe. */
export class Prices extends Client.Tag("examples/Prices")<Prices, Tick, Subscribe>() {}

export const PricesLive = (url: string) =>
  Client.layer(Prices, { url, codec: Codec.json(Tick, Subscribe) }).pipe(Layer.provide(NodeTransport.layer))

/**
 * Subscribes to `symbol`, reads `count` ticks, closes, and returns the ticks with the frames the
 * codec refused on the way (reported as `DecodeFailed` events, not as ticks).
 */
export const main = (
  url: string,
  symbol = "ACME",
  count = 2
): Effect.Effect<
  { readonly ticks: ReadonlyArray<Tick>; readonly refused: ReadonlyArray<unknown> },
  SendError | CircuitOpenError
> =>
  Effect.gen(function*() {
    const prices = yield* Prices
    const refused: Array<unknown> = []
    // Every event until the client is closed (a subscriber first gets the recent ones it missed).
    const watcher = yield* prices.events.pipe(
      Stream.takeUntil((event) => event._tag === "Transition" && event.to._tag === "Closed"),
      Stream.runForEach((event) => Effect.sync(() => event._tag === "DecodeFailed" && refused.push(event.error.frame))),
      Effect.fork
    )
    yield* prices.send({ type: "subscribe", symbol })
    const ticks = Chunk.toArray(yield* prices.messages.pipe(Stream.take(count), Stream.runCollect))
    yield* prices.close()
    yield* Fiber.join(watcher)
    return { ticks, refused }
  }).pipe(Effect.provide(PricesLive(url)))

/** A feed for the example: answers a subscription with a tick, a frame that is no Tick, and another tick. */
export const feed = (message: string | Uint8Array, reply: (data: string) => void): void => {
  const { symbol } = JSON.parse(String(message)) as Subscribe
  reply(JSON.stringify({ symbol, price: 101.5 }))
  reply(JSON.stringify({ symbol, price: -1 }))
  reply(JSON.stringify({ symbol, price: 102 }))
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* TestServer.make({ handler: feed })
    const { refused, ticks } = yield* main(server.url)
    for (const tick of ticks) yield* Console.log(`tick: ${tick.symbol} at ${tick.price}`)
    for (const frame of refused) yield* Console.log(`refused: ${String(frame)}`)
  })
  Effect.runPromise(Effect.scoped(standalone)).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
