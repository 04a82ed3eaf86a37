/**
 * Codec.json against a hostile or careless peer, over a TestServer on 127.0.0.1: a `"__proto__"`
 * key (which a Schema.Record would turn into the prototype of the value the app reads) is refused
 * as a DecodeError, and a value JSON cannot hold (NaN, Infinity, which `JSON.stringify` writes as
 * `null`) is refused as `SendError EncodeFailed` instead of being sent changed. A burst through
 * `sink` with a codec arrives whole and in order.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Schema, Stream } from "effect"
import { Client, Codec } from "../src/index.js"
import type { SendError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitReceived } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"

const Bag = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** The first `count` DecodeFailed events. */
const decodeFailures = (client: Client.Client<unknown, never, unknown>, count: number) =>
  client.events.pipe(
    Stream.filter((event) => event._tag === "DecodeFailed"),
    Stream.take(count),
    Stream.runCollect,
    Effect.map(Chunk.toArray)
  )

describe("Codec.json with hostile frames", () => {
  it.live(`a "__proto__" key (literal or \\u-escaped) is a DecodeFailed event; the value the app reads never has a foreign prototype`, () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Bag) })
      yield* client.awaitOpen
      const failed = yield* Effect.fork(decodeFailures(client, 2))
      const literal = `{"__proto__":{"isAdmin":true},"a":1}`
      const escaped = `{"\\u005f_proto__":{"isAdmin":true},"a":1}`
      yield* server.broadcast(literal)
      yield* server.broadcast(escaped)
      // "__proto__" as a value, not a key, is fine.
      yield* server.broadcast(`{"a":"__proto__","b":"\\u0041"}`)
      const [value] = Chunk.toArray(yield* client.messages.pipe(Stream.take(1), Stream.runCollect))
      expect(value).toEqual({ a: "__proto__", b: "A" })
      expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
      const events = yield* failed
      expect(events.map((event) => event.error.frame)).toEqual([literal, escaped])
      for (const event of events) expect(event.error.cause).toBeInstanceOf(SyntaxError)
      expect((yield* client.state.get)._tag).toBe("Open")
      yield* client.close()
    })).pipe(provideNode))

  it.live("NaN and Infinity are SendError EncodeFailed with the value, never sent as null; a real null still goes", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const Reading = Schema.Struct({ v: Schema.NullOr(Schema.Number) })
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Reading) })
      yield* client.awaitOpen
      for (const bad of [{ v: Number.POSITIVE_INFINITY }, { v: Number.NaN }, { v: Number.NEGATIVE_INFINITY }]) {
        const error = (yield* Effect.flip(client.send(bad))) as SendError
        expect(error).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
        expect(error.cause).toBeInstanceOf(TypeError)
      }
      yield* client.send({ v: null })
      yield* client.send({ v: 1 })
      yield* awaitReceived(server, 2)
      expect(yield* server.received).toEqual([`{"v":null}`, `{"v":1}`])
      expect(yield* client.failed).toBe(0)
      // The codec by itself, at the top level too.
      expect(Either.isLeft(Codec.json(Schema.Number).encode(Number.POSITIVE_INFINITY))).toBe(true)
    })).pipe(provideNode))

  it.live("a burst of 10,000 values through sink with a codec: every one on the wire, in order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const Item = Schema.Struct({ n: Schema.Number })
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Item) })
      const count = 10_000
      yield* Stream.range(0, count - 1).pipe(Stream.map((n) => ({ n })), Stream.run(client.sink))
      yield* awaitReceived(server, count)
      const received = yield* server.received
      expect(received.length).toBe(count)
      expect(received.every((frame, index) => frame === `{"n":${index}}`)).toBe(true)
      expect(yield* client.failed).toBe(0)
    })).pipe(provideNode))
})
