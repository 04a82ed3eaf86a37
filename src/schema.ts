/**
 * `effect-lifeline/schema`: an Effect `Schema` of each lifeline error and reason, for what sends
 * errors across a boundary (an rpc's error schema, a persisted event). The errors themselves are
 * `Data.TaggedError`s (`effect-lifeline`'s `Errors`) so that a browser app that only connects does
 * not bundle `effect/Schema`; this entry is the one that imports it.
 *
 * Each error Schema decodes `{ _tag, ...fields }` into an instance of the very class the core
 * exports (`ConnectError` here decodes to the `ConnectError` that `Effect.catchTag` sees) and
 * encodes an instance back, as the `Schema.TaggedError` classes did. The encoded side survives
 * JSON (an rpc's `RpcSerialization.json` / `ndjson`, a stored event): a duration (`timeout`,
 * `retryAfter`) is encoded as its milliseconds (`DurationFromMillis`) and a date (`retryAt`) as
 * its ISO string (`Schema.Date`), where the `Schema.TaggedError` classes had `DurationFromSelf` and
 * `DateFromSelf`, which JSON cannot carry back. `cause`, `payload` and `frame` are `Unknown`:
 * carried as they are (JSON keeps an `Error`'s own enumerable fields only).
 *
 * ```ts
 * import { Schema } from "effect"
 * import * as LifelineSchema from "effect-lifeline/schema"
 * const error = Schema.Union(LifelineSchema.ConnectError, LifelineSchema.TimeoutError)
 * ```
 *
 * @module effect-lifeline/schema
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Errors from "./Errors.js"

/**
 * @since 0.1.0
 * @category reasons
 */
export const ConnectErrorReason: Schema.Schema<Errors.ConnectErrorReason> = Schema.Literal(...Errors.ConnectErrorReason)

/**
 * @since 0.1.0
 * @category reasons
 */
export const SendErrorReason: Schema.Schema<Errors.SendErrorReason> = Schema.Literal(...Errors.SendErrorReason)

/**
 * @since 0.1.0
 * @category reasons
 */
export const Initiator: Schema.Schema<Errors.Initiator> = Schema.Literal(...Errors.Initiator)

/**
 * @since 0.1.0
 * @category reasons
 */
export const TimeoutOperation: Schema.Schema<Errors.TimeoutOperation> = Schema.Literal(...Errors.TimeoutOperation)

/** A Schema from `{ _tag, ...fields }` to an instance of `Class`, and back. */
const errorSchema = <E extends { readonly _tag: string }, Fields extends Schema.Struct.Fields>(
  Class: new(fields: never, options?: Errors.MakeOptions) => E,
  tag: E["_tag"],
  fields: Fields
): Schema.Schema<E, Schema.Struct.Encoded<Fields> & { readonly _tag: E["_tag"] }> => {
  const keys = Object.keys(fields)
  return Schema.transform(
    Schema.Struct({ _tag: Schema.Literal(tag), ...fields }),
    Schema.instanceOf(Class),
    {
      strict: false,
      decode: (input) => {
        const { _tag, ...rest } = input as Record<string, unknown>
        return new Class(rest as never, true)
      },
      encode: (error) => {
        const encoded: Record<string, unknown> = { _tag: error._tag }
        for (const key of keys) {
          const value: unknown = Reflect.get(error, key)
          if (value !== undefined) encoded[key] = value
        }
        return encoded as never
      }
    }
  ).annotations({ identifier: tag }) as never
}

/**
 * @since 0.1.0
 * @category errors
 */
export const ConnectError = errorSchema(Errors.ConnectError, "ConnectError", {
  reason: ConnectErrorReason,
  url: Schema.String,
  detail: Schema.String,
  status: Schema.optional(Schema.Number),
  retryAfter: Schema.optional(Schema.DurationFromMillis),
  cause: Schema.optional(Schema.Unknown)
})

/**
 * @since 0.1.0
 * @category errors
 */
export const TimeoutError = errorSchema(Errors.TimeoutError, "TimeoutError", {
  operation: TimeoutOperation,
  timeout: Schema.DurationFromMillis,
  url: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category errors
 */
export const SendError = errorSchema(Errors.SendError, "SendError", {
  reason: SendErrorReason,
  payload: Schema.Unknown,
  cause: Schema.optional(Schema.Unknown)
})

/**
 * @since 0.1.0
 * @category errors
 */
export const Disconnected = errorSchema(Errors.Disconnected, "Disconnected", {
  code: Schema.Number,
  reason: Schema.String,
  wasClean: Schema.Boolean,
  initiator: Initiator
})

/**
 * @since 0.1.0
 * @category errors
 */
export const CircuitOpenError = errorSchema(Errors.CircuitOpenError, "CircuitOpenError", {
  endpoint: Schema.String,
  retryAt: Schema.Date
})

/**
 * @since 0.1.0
 * @category errors
 */
export const DecodeError = errorSchema(Errors.DecodeError, "DecodeError", {
  frame: Schema.Unknown,
  cause: Schema.Unknown
})

/**
 * @since 0.1.0
 * @category errors
 */
export const OnOpenError = errorSchema(Errors.OnOpenError, "OnOpenError", { cause: Schema.Unknown })

/**
 * What a Client's state and events carry (`Reconnect.ClientError`).
 *
 * @since 0.1.0
 * @category errors
 */
export const ClientError = Schema.Union(ConnectError, TimeoutError, Disconnected, OnOpenError, CircuitOpenError)
