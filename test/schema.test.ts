/**
 * `effect-lifeline/schema` (src/schema.ts): a Schema of each error, decoding to the very classes the
 * core exports (which are `Data.TaggedError`s, no Schema), and encoding them back.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Schema } from "effect"
import {
  CircuitOpenError,
  ConnectError,
  DecodeError,
  Disconnected,
  OnOpenError,
  SendError,
  TimeoutError
} from "../src/index.js"
import * as LifelineSchema from "../src/schema.js"

describe("error Schemas", () => {
  it("decode `{ _tag, ...fields }` to the core's classes and encode them back", () => {
    const cases = [
      [LifelineSchema.ConnectError, ConnectError, {
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        url: "ws://h/",
        detail: "d",
        status: 429,
        retryAfter: 3000
      }],
      [LifelineSchema.TimeoutError, TimeoutError, { _tag: "TimeoutError", operation: "open", timeout: 1000 }],
      [LifelineSchema.SendError, SendError, { _tag: "SendError", reason: "OutboxFull", payload: "hi" }],
      [LifelineSchema.Disconnected, Disconnected, {
        _tag: "Disconnected",
        code: 1000,
        reason: "bye",
        wasClean: true,
        initiator: "server"
      }],
      [LifelineSchema.CircuitOpenError, CircuitOpenError, {
        _tag: "CircuitOpenError",
        endpoint: "ws://h/",
        retryAt: "1970-01-01T00:00:00.000Z"
      }],
      [LifelineSchema.DecodeError, DecodeError, { _tag: "DecodeError", frame: "f", cause: "c" }],
      [LifelineSchema.OnOpenError, OnOpenError, { _tag: "OnOpenError", cause: "c" }]
    ] as const
    for (const [schema, Class, encoded] of cases) {
      const decoded = Schema.decodeUnknownSync(schema as Schema.Schema<unknown, unknown>)(encoded)
      expect(decoded).toBeInstanceOf(Class)
      expect(decoded).toMatchObject({ _tag: encoded._tag })
      expect(Schema.encodeSync(schema as Schema.Schema<unknown, unknown>)(decoded)).toEqual(encoded)
      expect(Schema.is(schema as Schema.Schema<unknown, unknown>)(decoded)).toBe(true)
    }
  })

  it("the encoded side survives JSON: durations as milliseconds, dates as ISO strings, the ClientError union too", () => {
    const errors = [
      new ConnectError({
        reason: "HandshakeRejected",
        url: "ws://h/",
        detail: "d",
        status: 429,
        retryAfter: Duration.seconds(3)
      }),
      new TimeoutError({ operation: "heartbeat", timeout: Duration.millis(1500), url: "ws://h/" }),
      new CircuitOpenError({ endpoint: "ws://h/", retryAt: new Date(0) }),
      // An Isolated breaker's retryAt: the largest Date.
      new CircuitOpenError({ endpoint: "ws://h/", retryAt: new Date(8_640_000_000_000_000) }),
      new Disconnected({ code: 1006, reason: "", wasClean: false, initiator: "transport" }),
      new OnOpenError({ cause: "c" })
    ]
    const union = LifelineSchema.ClientError as Schema.Schema<unknown, unknown>
    for (const error of errors) {
      const wire: unknown = JSON.parse(JSON.stringify(Schema.encodeSync(union)(error)))
      const back = Schema.decodeUnknownSync(union)(wire)
      expect(back).toBeInstanceOf(error.constructor)
      expect(back).toEqual(error)
      expect(String(back)).toBe(String(error))
    }
    expect(Schema.encodeSync(LifelineSchema.TimeoutError)(errors[1] as TimeoutError)).toEqual({
      _tag: "TimeoutError",
      operation: "heartbeat",
      timeout: 1500,
      url: "ws://h/"
    })
    expect(Schema.encodeSync(LifelineSchema.CircuitOpenError)(errors[2] as CircuitOpenError).retryAt).toBe(
      "1970-01-01T00:00:00.000Z"
    )
  })

  it("a bad reason does not decode; the ClientError union picks the member by _tag", () => {
    const bad = Schema.decodeUnknownEither(LifelineSchema.ConnectError)({
      _tag: "ConnectError",
      reason: "Nope",
      url: "u",
      detail: "d"
    })
    expect(Either.isLeft(bad)).toBe(true)
    const disconnected = Schema.decodeUnknownSync(LifelineSchema.ClientError)({
      _tag: "Disconnected",
      code: 1006,
      reason: "",
      wasClean: false,
      initiator: "transport"
    })
    expect(disconnected).toBeInstanceOf(Disconnected)
    expect(disconnected.message).toBe("disconnected by transport with code 1006 (not clean)")
  })

  it.effect("a decoded error is the core's: Effect.catchTag matches it", () =>
    Effect.gen(function*() {
      const error = Schema.decodeUnknownSync(LifelineSchema.SendError)({
        _tag: "SendError",
        reason: "NotOpen",
        payload: 1
      })
      const caught = yield* Effect.fail(error).pipe(Effect.catchTag("SendError", (e) => Effect.succeed(e.reason)))
      expect(caught).toBe("NotOpen")
    }))
})
