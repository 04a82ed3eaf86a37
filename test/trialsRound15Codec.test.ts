/**
 * Round 15 of trials: codecs and Schemas as an app writes them, against a TestServer on
 * 127.0.0.1. Hostile JSON (prototype keys, duplicate keys, a BOM, big numbers, `NaN` text, 10 MB
 * of nested arrays), Schema transformations that fail, throw or are asynchronous, `decodeErrors`
 * across a reconnect, encode failures in `send` / `enqueue` / `sink`, a tagged union, and frames
 * of the wrong kind. docs/trials.md, "round 15", has the table.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, ParseResult, Schema, Stream } from "effect"
import { Client, Codec } from "../src/index.js"
import type { DecodeError, SendError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitReceived, awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"

/** The first `count` DecodeFailed events' errors. */
const decodeFailures = (client: Client.Client<any, any, any>, count: number) =>
  client.events.pipe(
    Stream.filter((event) => event._tag === "DecodeFailed"),
    Stream.map((event) => (event as { readonly error: DecodeError }).error),
    Stream.take(count),
    Stream.runCollect,
    Effect.map(Chunk.toArray)
  )

const take = <A, E>(messages: Stream.Stream<A, E>, count: number) =>
  Effect.map(Stream.runCollect(Stream.take(messages, count)), Chunk.toArray)

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

describe("round 15: hostile JSON through Codec.json", () => {
  it.live(`"constructor"/"prototype" keys, duplicate keys, big numbers, NaN text: through a Struct and a Record; nothing gains "admin"`, () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const Struct = Schema.Struct({ a: Schema.Number })
      const Bag = Schema.Record({ key: Schema.String, value: Schema.Unknown })
      const structs = yield* Client.make({ url: server.url, codec: Codec.json(Struct) })
      const bags = yield* Client.make({ url: server.url, codec: Codec.json(Bag) })
      yield* structs.awaitOpen
      yield* bags.awaitOpen
      const structFailures = yield* Effect.fork(decodeFailures(structs, 2))
      const bagFailures = yield* Effect.fork(decodeFailures(bags, 2))
      const frames = [
        `{"constructor":{"prototype":{"admin":true}},"a":1}`,
        `{"a":1,"a":2}`,
        `{"a":9007199254740993}`,
        `{"a":NaN}`,
        `NaN`,
        `{"a":3}`
      ]
      for (const frame of frames) yield* server.broadcast(frame)
      const fromStruct = yield* take(structs.messages, 4)
      const fromBag = yield* take(bags.messages, 4)
      // Schema.Struct drops the unknown key; the duplicate's last value wins; 2^53 + 1 reads as 2^53.
      expect(fromStruct).toEqual([{ a: 1 }, { a: 2 }, { a: 9007199254740992 }, { a: 3 }])
      // Schema.Record keeps "constructor" as an own key: a plain value, no prototype changed.
      expect(fromBag[0]).toEqual({ constructor: { prototype: { admin: true } }, a: 1 })
      expect(Object.keys(fromBag[0]!)).toEqual(["constructor", "a"])
      for (const value of [...fromStruct, ...fromBag]) {
        expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
        expect((value as { admin?: unknown }).admin).toBeUndefined()
      }
      expect(({} as { admin?: unknown }).admin).toBeUndefined()
      expect(Object.prototype.hasOwnProperty.call(Object.prototype, "admin")).toBe(false)
      for (const errors of [yield* structFailures, yield* bagFailures]) {
        expect(errors.map((error) => error.frame)).toEqual([`{"a":NaN}`, `NaN`])
        for (const error of errors) expect(error.cause).toBeInstanceOf(SyntaxError)
      }
      expect((yield* structs.state.get)._tag).toBe("Open")
      expect((yield* bags.state.get)._tag).toBe("Open")
    })).pipe(provideNode))

  it.live("a BOM before the JSON: a text frame and a binary frame of the same text decode alike", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Schema.Struct({ a: Schema.Number })) })
      yield* client.awaitOpen
      yield* server.broadcast(`\uFEFF{"a":1}`)
      yield* server.broadcast(utf8(`\uFEFF{"a":2}`))
      yield* server.broadcast(`{"a":3}`)
      const values = yield* client.messages.pipe(Stream.takeUntil((value) => value.a === 3), Stream.runCollect)
      expect(Chunk.toArray(values)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }])
    })).pipe(provideNode))

  it.live("10 MB of nested arrays: decoded by Schema.Unknown; a recursive Schema refuses it (stack) and the next frame decodes", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      type Nested = ReadonlyArray<Nested>
      const Nested: Schema.Schema<Nested> = Schema.Array(Schema.suspend(() => Nested))
      const depth = 5_000_000
      const deep = "[".repeat(depth) + "]".repeat(depth)
      const loose = yield* Client.make({ url: server.url, codec: Codec.json(Schema.Unknown) })
      const strict = yield* Client.make({ url: server.url, codec: Codec.json(Nested) })
      yield* loose.awaitOpen
      yield* strict.awaitOpen
      const refused = yield* Effect.fork(decodeFailures(strict, 1))
      yield* server.broadcast(deep)
      yield* server.broadcast(`[[]]`)
      const [first, second] = yield* take(loose.messages, 2)
      let level: unknown = first
      let count = 0
      while (Array.isArray(level) && level.length === 1 && count < depth) {
        level = level[0]
        count++
      }
      expect(count).toBe(depth - 1)
      expect(second).toEqual([[]])
      expect(yield* take(strict.messages, 1)).toEqual([[[]]])
      const [error] = yield* refused
      expect(error!.frame).toBe(deep)
      expect(error!.cause).toBeInstanceOf(RangeError)
      expect((yield* strict.state.get)._tag).toBe("Open")
    })).pipe(provideNode), 15_000)
})
