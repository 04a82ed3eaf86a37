/**
 * What the core needs of a codec, apart from `Codec.ts` (which imports `effect/Schema` for
 * `Codec.json`) and from `internal/codec.ts` (the typed wrappers): a Client or Connection made
 * without a codec bundles neither. The wrappers travel with the codec itself, under `CodecEdge`:
 * `Client.make` and `Connection.connect` reach them through the codec they are given.
 */
import type * as Chunk from "effect/Chunk"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { Client } from "../Client.js"
import type { Connection } from "../Connection.js"
import { DecodeError, SendError } from "../Errors.js"
import type { Message } from "../Transport.js"

/** The key of a codec's wrappers (`Codec.make` puts them there). */
export const CodecEdge: unique symbol = Symbol.for("effect-lifeline/CodecEdge") as never

/**
 * What a codec's wrapper reads of a raw Client (the full one and the small one): its inbound
 * pulls, where to report a frame that did not decode, and what it shows when printed.
 */
export interface RawClient extends Client {
  readonly inboundChunks: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>
  readonly inboundOne: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>
  readonly publishDecodeFailure: (error: DecodeError) => void
  readonly toJSON: () => unknown
}

/** The typed wrappers of a raw Client and a raw Connection, carried by every codec. */
export interface Edge {
  readonly client: (live: RawClient, codec: any, decodeErrors: "event" | "fail") => Client<any, any, any>
  readonly connection: (raw: Connection, inbound: InboundPulls, codec: any) => Connection<any, any, any>
}

/** A connection's inbound buffer, as a codec reads it: every frame waiting, or the oldest alone. */
export interface InboundPulls {
  readonly pull: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>
  readonly pullOne: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>
}

/**
 * The `decode` and `encode` functions `Codec.make` returns: they catch what the user's functions
 * throw, so the wrappers call them as they are (one try per frame, not two).
 */
export const neverThrows = new WeakSet<Function>()

/** A value `encode` refused: `payload` is the value, `cause` why. */
export const encodeFailed = (value: unknown, cause: unknown): SendError =>
  new SendError({ reason: "EncodeFailed", payload: value, cause })

/** A frame `decode` refused: `frame` is the frame as received, `cause` why. */
export const decodeFailed = (frame: Message, cause: unknown): DecodeError => new DecodeError({ frame, cause })

const NOT_A_CODEC = "codec: expected a Codec made by Codec.json, Codec.fromSchema or Codec.make"

/**
 * What is wrong with a `codec` given from untyped code (or cast): `undefined` for one made by
 * `Codec.json`, `Codec.fromSchema` or `Codec.make`. A Client then starts Closed and a Connection
 * fails, both with `ConnectError InvalidOptions`, before any socket is opened.
 */
export const invalidCodec = (codec: unknown): string | undefined => {
  try {
    return typeof codec !== "object" || codec === null || typeof Reflect.get(codec, "decode") !== "function" ||
        typeof Reflect.get(codec, "encode") !== "function" || typeof Reflect.get(codec, CodecEdge) !== "object"
      ? NOT_A_CODEC
      : undefined
  } catch {
    // A Proxy whose traps throw (untyped code): not a codec either, never a throw.
    return NOT_A_CODEC
  }
}
