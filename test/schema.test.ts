/**
 * `effect-lifeline/schema` (src/schema.ts): a Schema of each error, decoding to the very classes the
 * core exports (which are `Data.TaggedError`s, no Schema), and encoding them back.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Schema } from "effect"
import { CircuitOpenError, ConnectError, DecodeError, Disconnected, OnOpenError, SendError, TimeoutError } from "../src/index.js"
import * as LifelineSchema from "../src/schema.js"

describe("error Schemas", () => {
  it("decode `{ _tag, ...fields }` to the core's classes and encode them back", () => {
    const cases = [
      [LifelineSchema.ConnectError, ConnectError, { _tag: "ConnectError", reason: "HandshakeRejected", url: "ws://h/", detail: "d", status: 429, retryAfter: Duration.seconds(3) }],
      [LifelineSchema.TimeoutError, TimeoutError, { _tag: "TimeoutError", operation: "open", timeout: Duration.seconds(1) }],
      [LifelineSchema.SendError, SendError, { _tag: "SendError", reason: "OutboxFull", payload: "hi" }],
      [LifelineSchema.Disconnected, Disconnected, { _tag: "Disconnected", code: 1000, reason: "bye", wasClean: true, initiator: "server" }],
      [LifelineSchema.CircuitOpenError, CircuitOpenError, { _tag: "CircuitOpenError", endpoint: "ws://h/", retryAt: new Date(0) }],
      [LifelineSchema.DecodeError, DecodeError, { _tag: "DecodeError", frame: "f", cause: "c" }],
      [LifelineSchema.OnOpenError, OnOpenError, { _tag: "OnOpenError", cause: "c" }]
    ] as const
    for (const [schema, Class, encoded] of cases) {
      const decoded = Schema.decodeUnknownSync(schema as Schema.Schema<unknown, unknown>)(encoded)
      expect(decoded).toBeInstanceOf(Class)
      expect(decoded).toMatchObject(encoded)
      expect(Schema.encodeSync(schema as Schema.Schema<unknown, unknown>)(decoded)).toEqual(encoded)
      expect(Schema.is(schema as Schema.Schema<unknown, unknown>)(decoded)).toBe(true)
    }
  })

  it("a bad reason does not decode; the ClientError union picks the member by _tag", () => {
    const bad = Schema.decodeUnknownEither(LifelineSchema.ConnectError)({ _tag: "ConnectError", reason: "Nope", url: "u", detail: "d" })
    expect(Either.isLeft(bad)).toBe(true)
    const disconnected = Schema.decodeUnknownSync(LifelineSchema.ClientError)({ _tag: "Disconnected", code: 1006, reason: "", wasClean: false, initiator: "transport" })
    expect(disconnected).toBeInstanceOf(Disconnected)
    expect(disconnected.message).toBe("disconnected by transport with code 1006 (not clean)")
  })

  it.effect("a decoded error is the core's: Effect.catchTag matches it", () =>
    Effect.gen(function*() {
      const error = Schema.decodeUnknownSync(LifelineSchema.SendError)({ _tag: "SendError", reason: "NotOpen", payload: 1 })
      const caught = yield* Effect.fail(error).pipe(Effect.catchTag("SendError", (e) => Effect.succeed(e.reason)))
      expect(caught).toBe("NotOpen")
    }))
})
