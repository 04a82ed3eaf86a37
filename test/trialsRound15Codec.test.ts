/**
 * Round 15 of trials: codecs and Schemas as an app writes them, against a TestServer on
 * 127.0.0.1. Hostile JSON (prototype keys, duplicate keys, a BOM, big numbers, `NaN` text, 10 MB
 * of nested arrays), Schema transformations that fail, throw or are asynchronous, `decodeErrors`
 * across a reconnect, encode failures in `send` / `enqueue` / `sink`, a tagged union, and frames
 * of the wrong kind. docs/trials.md, "round 15", has the table.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, ParseResult, Schedule, Schema, Stream } from "effect"
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

/** awaitState reads only `state`, which a typed Client has as an untyped one does. */
const untyped = (client: Client.Client<any, any, any>): Client.Client => client as unknown as Client.Client

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

  it.live(
    "10 MB of nested arrays: decoded by Schema.Unknown; a recursive Schema refuses it (stack) and the next frame decodes",
    () =>
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
      })).pipe(provideNode),
    // A hang guard: 15 s ran out once in a fresh-clone run on a slow machine.
    45_000
  )
})

/** A string Schema whose decoding does `step` to each value. */
const transformed = (
  decode: (value: string, ast: Schema.Schema.Any["ast"]) => Effect.Effect<string, ParseResult.ParseIssue>
) =>
  Schema.transformOrFail(Schema.String, Schema.String, {
    strict: true,
    decode: (value, _options, ast) => decode(value, ast),
    encode: ParseResult.succeed
  })

describe("round 15: Schema transformations in a codec", () => {
  it.live("a transformOrFail that fails and one that throws: DecodeFailed events with the frames, the rest in order, the link kept", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const Checked = transformed((value, ast) =>
        value === "refused" ? ParseResult.fail(new ParseResult.Type(ast, value, "refused")) : ParseResult.succeed(value)
      )
      const Throwing = transformed((value) => {
        if (value === "thrown") throw new Error("boom")
        return ParseResult.succeed(value)
      })
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Schema.Union(Checked, Throwing)) })
      const checked = yield* Client.make({ url: server.url, codec: Codec.json(Checked) })
      const throwing = yield* Client.make({ url: server.url, codec: Codec.json(Throwing) })
      for (const each of [client, checked, throwing]) yield* each.awaitOpen
      const checkedFailures = yield* Effect.fork(decodeFailures(checked, 1))
      const throwingFailures = yield* Effect.fork(decodeFailures(throwing, 1))
      for (const frame of [`"a"`, `"refused"`, `"b"`, `"thrown"`, `"c"`]) yield* server.broadcast(frame)
      expect(yield* take(checked.messages, 4)).toEqual(["a", "b", "thrown", "c"])
      expect(yield* take(throwing.messages, 4)).toEqual(["a", "refused", "b", "c"])
      const [refused] = yield* checkedFailures
      expect(refused!.frame).toBe(`"refused"`)
      expect(ParseResult.isParseError(refused!.cause)).toBe(true)
      const [thrown] = yield* throwingFailures
      expect(thrown!.frame).toBe(`"thrown"`)
      expect(thrown!.cause).toBeInstanceOf(Error)
      expect((thrown!.cause as Error).message).toBe("boom")
      for (const each of [checked, throwing]) expect((yield* each.state.get)._tag).toBe("Open")
      yield* client.close()
    })).pipe(provideNode))

  it.live("an asynchronous transformOrFail (sleeps 50 ms): every frame a DecodeFailed event, in order, the link kept; encode unaffected", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const Slow = transformed((value) => Effect.as(Effect.sleep("50 millis"), value))
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Slow) })
      yield* client.awaitOpen
      const failures = yield* Effect.fork(decodeFailures(client, 5))
      // Frames are decoded as `messages` is read: a reader that never gets a value.
      const reader = yield* Effect.fork(Stream.runCount(client.messages))
      const frames = [`"1"`, `"2"`, `"3"`, `"4"`, `"5"`]
      for (const frame of frames) yield* server.broadcast(frame)
      const errors = yield* failures
      expect(errors.map((error) => error.frame)).toEqual(frames)
      for (const error of errors) {
        expect(ParseResult.isParseError(error.cause)).toBe(true)
        expect(String(error.cause)).toContain("cannot be be resolved synchronously")
      }
      expect((yield* client.state.get)._tag).toBe("Open")
      yield* Fiber.interrupt(reader)
      // Its encoding is synchronous here, so values still go out.
      yield* client.send("out")
      yield* awaitReceived(server, 1)
      expect(yield* server.received).toEqual([`"out"`])
      // Schema's synchronous decoding (ParseResult's runSync) forks the effect and, finding it
      // asynchronous, returns Forbidden without interrupting it: each frame's 50 ms sleep runs to
      // its end. Outwait them (a wait, not an assertion) so that no timer is left behind.
      yield* Effect.sleep("120 millis")
    })).pipe(provideNode))
})

describe("round 15: decodeErrors across a reconnect", () => {
  const Item = Schema.Struct({ n: Schema.Number })

  it.live(`"fail": the values before the bad frame, then its DecodeError; after a reconnect the next run has the frame after it, then the new link's`, () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({
        url: server.url,
        codec: Codec.json(Item),
        decodeErrors: "fail",
        retry: Schedule.spaced("10 millis"),
        minRetryDelay: "10 millis"
      })
      yield* client.awaitOpen
      const events = yield* Effect.fork(client.events.pipe(
        Stream.filter((event) => event._tag === "DecodeFailed"),
        Stream.runCount
      ))
      yield* server.broadcast(`{"n":1}`)
      yield* server.broadcast(`{"n":"bad"}`)
      yield* server.broadcast(`{"n":2}`)
      const first = yield* take(Stream.either(client.messages), 2)
      expect(first[0]).toEqual(Either.right({ n: 1 }))
      expect(Either.isLeft(first[1]!)).toBe(true)
      const error = (first[1] as Either.Left<DecodeError, unknown>).left
      expect(error._tag).toBe("DecodeError")
      expect(error.frame).toBe(`{"n":"bad"}`)
      yield* server.closeAll(4000, "again")
      yield* awaitState(untyped(client), isTag("Backoff"))
      yield* awaitState(untyped(client), isTag("Open"))
      yield* server.broadcast(`{"n":3}`)
      expect(yield* take(client.messages, 2)).toEqual([{ n: 2 }, { n: 3 }])
      expect(yield* server.accepted).toBe(2)
      yield* client.close()
      expect(yield* events).toBe(0)
    })).pipe(provideNode))

  it.live(`"event": one DecodeFailed { error } with the frame, messages never fails and reads on across the reconnect`, () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({
        url: server.url,
        codec: Codec.json(Item),
        retry: Schedule.spaced("10 millis"),
        minRetryDelay: "10 millis"
      })
      yield* client.awaitOpen
      const events = yield* Effect.fork(client.events.pipe(
        Stream.filter((event) => event._tag === "DecodeFailed"),
        Stream.runCollect,
        Effect.map(Chunk.toArray)
      ))
      yield* server.broadcast(`{"n":1}`)
      yield* server.broadcast(`{"n":"bad"}`)
      yield* server.broadcast(`{"n":2}`)
      expect(yield* take(client.messages, 2)).toEqual([{ n: 1 }, { n: 2 }])
      yield* server.closeAll(4000, "again")
      yield* awaitState(untyped(client), isTag("Backoff"))
      yield* awaitState(untyped(client), isTag("Open"))
      yield* server.broadcast(`not json`)
      yield* server.broadcast(`{"n":3}`)
      expect(yield* take(client.messages, 1)).toEqual([{ n: 3 }])
      yield* client.close()
      const seen = yield* events
      expect(seen.map((event) => (event as { readonly error: DecodeError }).error.frame)).toEqual([
        `{"n":"bad"}`,
        `not json`
      ])
      expect((seen[1] as { readonly error: DecodeError }).error.cause).toBeInstanceOf(SyntaxError)
    })).pipe(provideNode))
})

describe("round 15: encode failures", () => {
  const Item = Schema.Struct({ n: Schema.Number.pipe(Schema.int(), Schema.nonNegative()) })
  type Item = typeof Item.Type
  const bad = { n: -1 } as Item

  it.live("send and enqueue of a refused value: SendError EncodeFailed with the value; nothing written or queued, the outbox count unchanged", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const client = yield* Client.make({
        url: server.url,
        codec: Codec.json(Item),
        retry: Schedule.spaced("10 millis"),
        minRetryDelay: "10 millis"
      })
      yield* client.awaitOpen
      for (const operation of [client.send, client.enqueue]) {
        const error = (yield* Effect.flip(operation(bad))) as SendError
        expect(error).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
        expect(ParseResult.isParseError(error.cause)).toBe(true)
      }
      expect(yield* client.outboxSize).toBe(0)
      // While the server is down: a good value is queued, the refused one is not.
      yield* server.kill
      yield* awaitState(untyped(client), isTag("Backoff"))
      yield* client.enqueue({ n: 1 })
      expect(yield* client.outboxSize).toBe(1)
      const error = (yield* Effect.flip(client.enqueue(bad))) as SendError
      expect(error).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
      expect(yield* client.outboxSize).toBe(1)
      yield* server.restart
      yield* awaitReceived(server, 1)
      expect(yield* server.received).toEqual([`{"n":1}`])
      expect(yield* client.outboxSize).toBe(0)
      expect(yield* client.failed).toBe(0)
    })).pipe(provideNode))

  it.live("sink mid-stream: the values before the refused one are written, in order; the sink fails with it; nothing after it", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Item) })
      yield* client.awaitOpen
      const values: Array<Item> = [{ n: 0 }, { n: 1 }, { n: 2 }, bad, { n: 4 }]
      // One chunk, and one value per chunk: the same outcome.
      for (const stream of [Stream.fromIterable(values), Stream.rechunk(Stream.fromIterable(values), 1)]) {
        const error = (yield* Effect.flip(Stream.run(stream, client.sink))) as SendError
        expect(error).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
      }
      yield* awaitReceived(server, 6)
      const once = [`{"n":0}`, `{"n":1}`, `{"n":2}`]
      expect(yield* server.received).toEqual([...once, ...once])
      expect(yield* client.outboxSize).toBe(0)
      expect(yield* client.failed).toBe(0)
      expect((yield* client.state.get)._tag).toBe("Open")
    })).pipe(provideNode))

  it.live("sink mid-stream while the server is down: the values before the refused one are queued (outbox 2), sent on reconnect", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const client = yield* Client.make({
        url: server.url,
        codec: Codec.json(Item),
        retry: Schedule.spaced("10 millis"),
        minRetryDelay: "10 millis"
      })
      yield* client.awaitOpen
      yield* server.kill
      yield* awaitState(untyped(client), isTag("Backoff"))
      const error =
        (yield* Effect.flip(Stream.run(Stream.make({ n: 1 }, { n: 2 }, bad, { n: 3 }), client.sink))) as SendError
      expect(error).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
      expect(yield* client.outboxSize).toBe(2)
      yield* server.restart
      yield* awaitReceived(server, 2)
      expect(yield* server.received).toEqual([`{"n":1}`, `{"n":2}`])
      expect(yield* client.outboxSize).toBe(0)
      expect(yield* client.failed).toBe(0)
    })).pipe(provideNode))

  it.live("an invalid Date (which JSON.stringify writes as null, as it does NaN) is refused; a valid one and a real null still go", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Schema.Unknown) })
      yield* client.awaitOpen
      for (const value of [{ at: new Date(Number.NaN) }, new Date(Number.NaN), [new Date("not a date")]]) {
        const error = (yield* Effect.flip(client.send(value))) as SendError
        expect(error).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: value })
        expect(error.cause).toBeInstanceOf(TypeError)
      }
      yield* client.send({ at: new Date(0), none: null })
      yield* awaitReceived(server, 1)
      expect(yield* server.received).toEqual([`{"at":"1970-01-01T00:00:00.000Z","none":null}`])
      expect(yield* client.failed).toBe(0)
    })).pipe(provideNode))
})

describe("round 15: unions and frames of the wrong kind", () => {
  it.live("a tagged union: each member decoded, an unknown tag and a bad member refused with the frame", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const Event = Schema.Union(
        Schema.TaggedStruct("Tick", { price: Schema.Number }),
        Schema.TaggedStruct("Halt", { reason: Schema.String })
      )
      const client = yield* Client.make({ url: server.url, codec: Codec.json(Event) })
      yield* client.awaitOpen
      const failures = yield* Effect.fork(decodeFailures(client, 2))
      for (
        const frame of [
          `{"_tag":"Tick","price":1}`,
          `{"_tag":"Resume"}`,
          `{"_tag":"Halt","reason":5}`,
          `{"_tag":"Halt","reason":"news"}`
        ]
      ) yield* server.broadcast(frame)
      expect(yield* take(client.messages, 2)).toEqual([{ _tag: "Tick", price: 1 }, { _tag: "Halt", reason: "news" }])
      const errors = yield* failures
      expect(errors.map((error) => error.frame)).toEqual([`{"_tag":"Resume"}`, `{"_tag":"Halt","reason":5}`])
      for (const error of errors) expect(ParseResult.isParseError(error.cause)).toBe(true)
      // Encoding checks the member too.
      const refused = (yield* Effect.flip(client.send({ _tag: "Halt", reason: 5 } as never))) as SendError
      expect(refused.reason).toBe("EncodeFailed")
    })).pipe(provideNode))

  it.live("binary frames to a JSON codec (UTF-8 read, bytes that are not UTF-8 refused); text frames to a binary codec refused", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const json = yield* Client.make({ url: server.url, codec: Codec.json(Schema.Struct({ a: Schema.Number })) })
      const Bytes = Schema.Uint8ArrayFromSelf
      const binary = yield* Client.make({ url: server.url, codec: Codec.fromSchema(Bytes) })
      yield* json.awaitOpen
      yield* binary.awaitOpen
      const jsonFailures = yield* Effect.fork(decodeFailures(json, 2))
      const binaryFailures = yield* Effect.fork(decodeFailures(binary, 2))
      const notUtf8 = new Uint8Array([0x7B, 0xFF, 0x7D])
      yield* server.broadcast(utf8(`{"a":1}`))
      yield* server.broadcast(notUtf8)
      yield* server.broadcast(`{"a":2}`)
      yield* server.broadcast(utf8(`{"a":3}`))
      yield* server.broadcast(`text`)
      yield* server.broadcast(utf8(`{"a":4}`))
      expect(yield* take(json.messages, 4)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4 }])
      const binaryValues = yield* take(binary.messages, 4)
      expect(binaryValues.map((bytes) => Array.from(bytes))).toEqual(
        [utf8(`{"a":1}`), notUtf8, utf8(`{"a":3}`), utf8(`{"a":4}`)].map((bytes) => Array.from(bytes))
      )
      const jsonErrors = yield* jsonFailures
      // The frame as received: a Node Buffer of the bytes.
      expect(Array.from(jsonErrors[0]!.frame as Uint8Array)).toEqual(Array.from(notUtf8))
      expect(jsonErrors[1]!.frame).toBe(`text`)
      expect(jsonErrors[0]!.cause).toBeInstanceOf(TypeError)
      expect(jsonErrors[1]!.cause).toBeInstanceOf(SyntaxError)
      const binaryErrors = yield* binaryFailures
      expect(binaryErrors.map((error) => error.frame)).toEqual([`{"a":2}`, `text`])
      for (const error of binaryErrors) expect(ParseResult.isParseError(error.cause)).toBe(true)
    })).pipe(provideNode))
})
