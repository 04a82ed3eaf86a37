/**
 * Typed messages: a `Codec` turns inbound frames into values and values into outbound frames, so
 * a `Client` or a `Connection` made with one reads `A`s from `messages` and takes `A`s in `send`.
 * `Codec.json(schema)` for JSON text frames checked by a Schema, `Codec.fromSchema(schema)` for a
 * Schema whose encoded side is a frame itself (a string, or bytes: a binary protocol), and
 * `Codec.make` for anything else.
 *
 * Both directions are synchronous and return an `Either`: a frame costs one function call, no
 * Effect. A frame that does not decode is a `DecodeError { frame, cause }`; a value that does not
 * encode is a `SendError` with reason `EncodeFailed`, the value as `payload`, refused before
 * anything is written.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type { DecodeError, SendError } from "./Errors.js"
import { edge } from "./internal/codec.js"
import type { Edge } from "./internal/codecErrors.js"
import { CodecEdge, decodeFailed, encodeFailed, neverThrows } from "./internal/codecErrors.js"
import type { Message } from "./Transport.js"

/**
 * Reads inbound frames as `In`, writes `Out` values as frames. `In` is what `messages` yields,
 * `Out` what `send` takes (named for the direction, not Schema's `<Type, Encoded>`). The two
 * differ when the peer's messages and yours are not the same type (`Codec.json(inbound, outbound)`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Codec<In, Out = In> {
  /** One inbound frame: the value, or why it is not one. */
  readonly decode: (frame: Message) => Either.Either<In, DecodeError>
  /** One outbound value: the frame to write, or `SendError EncodeFailed` carrying the value. */
  readonly encode: (value: Out) => Either.Either<Message, SendError>
  /**
   * The typed wrappers of a Client and a Connection, carried by the codec so that an app without
   * one does not bundle them. Every constructor here sets it: make codecs with them.
   *
   * @internal
   */
  readonly [CodecEdge]: Edge
}

export {
  /**
   * The error of a frame `decode` refused: `frame` is the frame as received, `cause` why.
   *
   * @since 0.1.0
   * @category errors
   */
  decodeFailed,
  /**
   * The error of a value `encode` refused: `payload` is the value, `cause` why.
   *
   * @since 0.1.0
   * @category errors
   */
  encodeFailed
} from "./internal/codecErrors.js"

// A function that returns its value bare (`decode: (frame) => JSON.parse(frame)`) is the usual slip:
// say so in the cause, rather than a Left of `undefined`.
const notAnEither = (name: string, result: unknown): TypeError =>
  new TypeError(`Codec.make: ${name} must return an Either (Either.right or Either.left), got ${typeof result}`)

/** What `json` and `fromSchema` were given instead of a Schema: a TypeError that says so, at once. */
const schemaOrThrow = (name: string, input: unknown): void => {
  if (!Schema.isSchema(input)) throw new TypeError(`Codec.${name}: expected a Schema, got ${typeof input}`)
}

/**
 * A codec from two functions. Each returns an `Either` whose `Left` is the cause (the reason the
 * frame or value is refused, e.g. a `ParseError`); a function that throws refuses too, with what
 * it threw as the cause. The Left becomes `DecodeError { frame, cause }` or
 * `SendError { reason: "EncodeFailed", payload: value, cause }`. A function that returns its
 * value bare, not an `Either`, refuses too, with a `TypeError` cause that says so.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Codec } from "effect-lifeline"
 *
 * const upper = Codec.make<string>({
 *   decode: (frame) => typeof frame === "string" ? Either.right(frame.toUpperCase()) : Either.left("binary frame"),
 *   encode: (value) => Either.right(value)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <In, Out = In>(functions: {
  readonly decode: (frame: Message) => Either.Either<In, unknown>
  readonly encode: (value: Out) => Either.Either<Message, unknown>
}): Codec<In, Out> => {
  const { decode, encode } = functions
  const codec: Codec<In, Out> = {
    [CodecEdge]: edge,
    decode: (frame) => {
      let result: Either.Either<In, unknown>
      try {
        result = decode(frame)
      } catch (thrown) {
        return Either.left(decodeFailed(frame, thrown))
      }
      if (!Either.isEither(result)) return Either.left(decodeFailed(frame, notAnEither("decode", result)))
      return Either.isRight(result) ? result as Either.Either<In, never> : Either.left(decodeFailed(frame, result.left))
    },
    encode: (value) => {
      let result: Either.Either<Message, unknown>
      try {
        result = encode(value)
      } catch (thrown) {
        return Either.left(encodeFailed(value, thrown))
      }
      if (!Either.isEither(result)) return Either.left(encodeFailed(value, notAnEither("encode", result)))
      return Either.isRight(result)
        ? result as Either.Either<Message, never>
        : Either.left(encodeFailed(value, result.left))
    }
  }
  neverThrows.add(codec.decode)
  neverThrows.add(codec.encode)
  return codec
}

// One decoder for every codec: `fatal`, so bytes that are not UTF-8 are a DecodeError, not U+FFFD.
let utf8: TextDecoder | undefined

// A leading BOM (U+FEFF) is dropped from a text frame as TextDecoder drops it from a binary one, so
// that the same text decodes alike in either kind of frame (RFC 8259 lets a parser ignore it).
const textOf = (frame: Message): string =>
  typeof frame === "string"
    ? frame.charCodeAt(0) === 0xFEFF ? frame.slice(1) : frame
    : (utf8 ??= new TextDecoder("utf-8", { fatal: true })).decode(frame)

/**
 * `JSON.parse`, refusing a `"__proto__"` key: `JSON.parse` makes it an own property, but a
 * Schema that copies keys into a new object (`Schema.Record`, an index signature) assigns it, which
 * sets the prototype of the value the app receives to what the peer sent. A key can only decode to
 * `__proto__` if the text holds it literally or through a `\u` escape: other frames take the plain
 * `JSON.parse`.
 */
const parseJson = (text: string): unknown =>
  text.includes("__proto__") || text.includes("\\u")
    ? JSON.parse(text, (key, value: unknown) => {
      if (key === "__proto__") throw new SyntaxError("a \"__proto__\" key in a JSON frame is refused")
      return value
    })
    : JSON.parse(text)

// A replacer sees a Date after its toJSON: an invalid Date is `null` by then; its holder still has it.
function refuseNonFinite(this: Record<string, unknown>, key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) throw new TypeError(`${value} has no JSON form`)
  if (value === null && this[key] instanceof Date) throw new TypeError("an invalid Date has no JSON form")
  return value
}

/**
 * `JSON.stringify`, refusing what JSON cannot hold instead of changing it: `undefined` or a
 * function at the top, and `NaN` / `Infinity` / an invalid Date anywhere (which `JSON.stringify`
 * writes as `null`).
 * Only a text that holds `null` is looked at again.
 */
const stringifyJson = (value: unknown): Either.Either<string, unknown> => {
  const text: string | undefined = JSON.stringify(value)
  if (text === undefined) return Either.left(new TypeError("the encoded value has no JSON form"))
  if (text.includes("null")) JSON.stringify(value, refuseNonFinite)
  return Either.right(text)
}

/**
 * JSON in text frames, checked by a Schema both ways. Decoding: the frame's text (a binary frame
 * is read as UTF-8), `JSON.parse` (a `"__proto__"` key is refused: a `DecodeError`), then the
 * schema's decoding (extra fields are ignored, as Schema does by default). Encoding: the schema's
 * encoding (which checks the value: a refinement it fails is `SendError EncodeFailed`), then
 * `JSON.stringify` (`NaN` and `Infinity` are refused, not written as `null`), sent as a text frame. The schema
 * needs no context (`R = never`): it runs synchronously, once per frame. Anything but a Schema is a
 * `TypeError`, thrown at once.
 *
 * With two schemas, the first reads the peer's messages and the second checks yours.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Client, Codec } from "effect-lifeline"
 *
 * const Tick = Schema.Struct({ symbol: Schema.String, price: Schema.Number })
 * const program = Effect.gen(function*() {
 *   const client = yield* Client.make({ url: "wss://example.com/ticks", codec: Codec.json(Tick) })
 *   return client.messages // Stream<{ readonly symbol: string; readonly price: number }>
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const json: {
  <A, I>(schema: Schema.Schema<A, I, never>): Codec<A, A>
  <In, InI, Out, OutI>(
    inbound: Schema.Schema<In, InI, never>,
    outbound: Schema.Schema<Out, OutI, never>
  ): Codec<In, Out>
} = <In, Out>(
  inbound: Schema.Schema<In, unknown, never>,
  outbound?: Schema.Schema<Out, unknown, never>
): Codec<In, Out> => {
  schemaOrThrow("json", inbound)
  if (outbound !== undefined) schemaOrThrow("json", outbound)
  const decode = Schema.decodeUnknownEither(inbound)
  const encode = Schema.encodeUnknownEither(outbound ?? (inbound as unknown as Schema.Schema<Out, unknown, never>))
  return make<In, Out>({
    decode: (frame) => decode(parseJson(textOf(frame))),
    encode: (value) => Either.flatMap(encode(value), stringifyJson)
  })
}

/**
 * A Schema whose encoded side is the frame itself: `Schema<A, string>` for a text protocol (e.g.
 * `Schema.parseJson(schema)`, or `Schema.NumberFromString`), `Schema<A, Uint8Array>` for a binary
 * one (a `Schema.transformOrFail` from `Schema.Uint8ArrayFromSelf` that reads and writes the bytes
 * with a `DataView`: no dependency). A frame of the other kind fails the schema: a `DecodeError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSchema = <A, I extends Message>(schema: Schema.Schema<A, I, never>): Codec<A, A> => {
  schemaOrThrow("fromSchema", schema)
  const decode = Schema.decodeUnknownEither(schema)
  const encode = Schema.encodeUnknownEither(schema)
  return make<A, A>({ decode, encode })
}
