/**
 * Type-level checks of the public signatures the codec made generic (`Client.make`, `Client.layer`,
 * `Client.Tag`, `Connection.connect`, `Connection.layer`, `Codec.*`): the typed overloads pick the
 * right signature, and code written against the raw signatures (explicit type arguments,
 * `Parameters<typeof ...>`, options held in variables) still compiles to what it did. Checked by
 * `tsc` (this file is in tsconfig's `include`); the runtime test only keeps vitest from calling the
 * file empty. A `@ts-expect-error` that stops erroring fails the typecheck.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Schema } from "effect"
import type { Layer, Scope, Stream } from "effect"
import type { ConnectErrorReason } from "../src/Errors.js"
import { Client, Codec, Connection } from "../src/index.js"
import type { ConnectError, DecodeError, Reconnect, SendError, TimeoutError, Transport } from "../src/index.js"

const Tick = Schema.Struct({ symbol: Schema.String })
type Tick = typeof Tick.Type
const Order = Schema.Struct({ buy: Schema.String })
type Order = typeof Order.Type
const codec = Codec.json(Tick, Order)
const url = "ws://127.0.0.1:1/"
type Env = Scope.Scope | Transport.Transport

// Client.make: decodeErrors picks E.
export const eventClient: Effect.Effect<Client.Client<Tick, Order>, never, Env> = Client.make({ url, codec })
export const failClient: Effect.Effect<Client.Client<Tick, Order, DecodeError>, never, Env> = Client.make({
  url,
  codec,
  decodeErrors: "fail"
})
// Options held in variables (never called: only their types matter).
export const held = (
  either: "event" | "fail",
  codecOptions: Client.CodecOptions<Tick, Order>,
  rawOptions: Client.Options,
  maybeOptions: Connection.Options | undefined,
  urlEffect: Effect.Effect<string, "UrlFailed", "UrlContext">
) => {
  const unionClient: Effect.Effect<Client.Client<Tick, Order, DecodeError>, never, Env> = Client.make({
    url,
    codec,
    decodeErrors: either
  })
  const heldClient: Effect.Effect<Client.Client<Tick, Order, DecodeError>, never, Env> = Client.make(codecOptions)
  const rawClient: Effect.Effect<Client.Client, never, Env> = Client.make(rawOptions)
  const maybeConnect: Effect.Effect<Connection.Connection, ConnectError | TimeoutError, Env> = Connection.connect(
    url,
    maybeOptions
  )
  // Connection.connect with a codec: typed, the URL Effect's error and context kept.
  const typedConnect: Effect.Effect<
    Connection.Connection<Tick, Order, DecodeError>,
    ConnectError | TimeoutError | "UrlFailed",
    Env | "UrlContext"
  > = Connection.connect(urlEffect, { codec })
  return [unionClient, heldClient, rawClient, maybeConnect, typedConnect] as const
}
// @ts-expect-error: decodeErrors "fail" can fail messages: not a Client whose messages cannot
export const wrongE: Effect.Effect<Client.Client<Tick, Order>, never, Env> = Client.make({
  url,
  codec,
  decodeErrors: "fail"
})
// @ts-expect-error: decodeErrors without a codec is no option
export const noCodec = Client.make({ url, decodeErrors: "fail" })

// The raw signatures, as they were.
export const rawMake: Parameters<typeof Client.make>[0] = { url }
export const rawConnectOptions: Parameters<typeof Connection.connect>[1] = { protocols: "a" }
export const explicitConnect: Effect.Effect<Connection.Connection, ConnectError | TimeoutError, Env> = Connection
  .connect<never, never>(url)
class Feed extends Context.Tag("Feed")<Feed, Connection.Connection>() {}
export const feedLayer: Layer.Layer<Feed, ConnectError | TimeoutError, Transport.Transport> = Connection.layer<Feed>(
  Feed,
  url
)
class Prices extends Client.Tag("Prices")<Prices>() {}
export const pricesLayer: Layer.Layer<Prices, never, Transport.Transport> = Client.layer<Prices>(Prices, { url })
export const rawFrames = Effect.map(
  Connection.connect(url),
  (connection): Stream.Stream<Connection.Message> => connection.messages
)

// @ts-expect-error: a Connection has no decodeErrors (its messages fail)
export const connectDecodeErrors = Connection.connect(url, { codec, decodeErrors: "event" })

// Tags and layers: a Tag's service is invariant, so the options must match it.
class Ticks extends Client.Tag("Ticks")<Ticks, Tick, Order>() {}
export const ticksLayer: Layer.Layer<Ticks, never, Transport.Transport> = Client.layer(Ticks, { url, codec })
// @ts-expect-error: a client whose messages may fail under a tag whose messages cannot
export const ticksFail = Client.layer(Ticks, { url, codec, decodeErrors: "fail" })
class Strict extends Client.Tag("Strict")<Strict, Tick, Order, DecodeError>() {}
export const strictLayer: Layer.Layer<Strict, never, Transport.Transport> = Client.layer(Strict, {
  url,
  codec,
  decodeErrors: "fail"
})
// @ts-expect-error: a raw tag takes no codec
export const rawTagCodec = Client.layer(Prices, { url, codec })
class TypedFeed extends Context.Tag("TypedFeed")<TypedFeed, Connection.Connection<Tick, Order, DecodeError>>() {}
export const typedFeed: Layer.Layer<TypedFeed, ConnectError | TimeoutError, Transport.Transport> = Connection.layer(
  TypedFeed,
  url,
  { codec }
)

// Codecs: In covariant, Out contravariant; fromSchema only over a frame.
export const made: Codec.Codec<number, number> = Codec.make({
  decode: (frame) => Either.right(String(frame).length),
  encode: (value: number) => Either.right(String(value))
})
export const widened: Codec.Codec<unknown, never> = codec
export const generic = Effect.map(
  Client.make({ url, codec }),
  (client): Client.Client<unknown, never, unknown> => client
)
export const textSchema = Codec.fromSchema(Schema.parseJson(Tick))
// @ts-expect-error: a Struct's encoded side is no frame
export const notAFrame = Codec.fromSchema(Tick)

// Every error: a literal `_tag` that Effect.catchTags narrows on, its fields typed.
export const caught = (failing: Effect.Effect<string, Reconnect.ClientError | SendError | DecodeError>) => {
  const handled: Effect.Effect<string> = Effect.catchTags(failing, {
    ConnectError: (error) => Effect.succeed(error.reason),
    TimeoutError: (error) => Effect.succeed(error.operation),
    Disconnected: (error) => Effect.succeed(String(error.code)),
    OnOpenError: (error) => Effect.succeed(String(error.cause)),
    CircuitOpenError: (error) => Effect.succeed(error.retryAt.toISOString()),
    SendError: (error) => Effect.succeed(error.reason),
    DecodeError: (error) => Effect.succeed(String(error.frame))
  })
  const reason: Effect.Effect<string, Exclude<Reconnect.ClientError, ConnectError> | SendError | DecodeError> = Effect
    .catchTag(
      failing,
      "ConnectError",
      (error) => Effect.succeed(error.reason satisfies ConnectErrorReason)
    )
  return [handled, reason] as const
}

describe("public types", () => {
  it("are checked by tsc (npx tsc -p tsconfig.json --noEmit)", () => {
    expect(Effect.isEffect(eventClient)).toBe(true)
  })
})
