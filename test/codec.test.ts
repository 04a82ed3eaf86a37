/**
 * Typed messages over real sockets: `Codec.json` / `Codec.fromSchema` / `Codec.make` on a
 * Connection and on a Client against a TestServer on 127.0.0.1. A frame that does not decode is a
 * `DecodeError` with the exact frame (a Client's `DecodeFailed` event, or `messages`' failure) and
 * never drops the link; a value that does not encode is `SendError EncodeFailed` with the value.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  ConfigProvider,
  Context,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  Metric,
  Option,
  ParseResult,
  Schema,
  Stream
} from "effect"
import * as Example from "../examples/codec.js"
import { Client, Codec, Connection } from "../src/index.js"
import type { DecodeError, SendError } from "../src/index.js"
import { decodeFailures } from "../src/internal/codec.js"
import { TestServer } from "../src/testing/index.js"
import { awaitReceived } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode, quietNode } from "./support/node.js"

const Tick = Schema.Struct({ symbol: Schema.String, price: Schema.Number.pipe(Schema.nonNegative()) })
type Tick = typeof Tick.Type

const ticks = Codec.json(Tick)

type Message = Connection.Message

/** The state once Closed (bounded by the test's own timeout). */
const closedState = (client: Client.Client<unknown, never, unknown>) =>
  client.state.changes.pipe(
    Stream.filter((state) => state._tag === "Closed"),
    Stream.runHead,
    Effect.map(Option.getOrThrow)
  )

const decodeErrorOf = (error: unknown): DecodeError => {
  expect(error).toMatchObject({ _tag: "DecodeError" })
  return error as DecodeError
}

/** The values of `stream` until its failure: [values, error]. */
const untilFailure = <A, E>(stream: Stream.Stream<A, E>) =>
  Stream.runCollect(Stream.either(stream)).pipe(Effect.map((items) => {
    const all = Chunk.toArray(items)
    const values = all.flatMap((item) => Either.isRight(item) ? [item.right] : [])
    const failure = all.find(Either.isLeft)
    return [values, failure === undefined ? undefined : failure.left] as const
  }))

/** The first `count` events of a tag, bounded by the stream's own end. */
const eventsOf = <T extends Client.ClientEvent["_tag"]>(
  client: Client.Client<unknown, never, unknown>,
  tag: T,
  count: number
) =>
  client.events.pipe(
    Stream.filter((event): event is Extract<Client.ClientEvent, { _tag: T }> => event._tag === tag),
    Stream.take(count),
    Stream.runCollect,
    Effect.map(Chunk.toArray)
  )

/** Waits (bounded, real time) until `connection` has received `count` frames: they are all in its buffer. */
const awaitActivity = (connection: { readonly activity: Effect.Effect<number> }, count: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 500; turn++) {
      if ((yield* connection.activity) >= count) return
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`the connection never received ${count} frames`)
  })

/** Every event from now until the client is Closed: fork it first, `close` the client, then join. */
const eventsUntilClosed = (client: Client.Client<unknown, never, unknown>) =>
  client.events.pipe(
    Stream.takeUntil((event) => event._tag === "Transition" && event.to._tag === "Closed"),
    Stream.runCollect,
    Effect.map(Chunk.toArray),
    Effect.fork
  )

describe("Codec: the codecs themselves", () => {
  it("json: decode reads text, and binary frames as UTF-8; encode checks the value and writes JSON text", () => {
    expect(ticks.decode(`{"symbol":"A","price":1}`)).toEqual(Either.right({ symbol: "A", price: 1 }))
    expect(ticks.decode(new TextEncoder().encode(`{"symbol":"B","price":2,"extra":true}`))).toEqual(
      Either.right({ symbol: "B", price: 2 })
    )
    expect(ticks.encode({ symbol: "A", price: 1 })).toEqual(Either.right(`{"symbol":"A","price":1}`))
    const refused = ticks.encode({ symbol: "A", price: -1 })
    expect(Either.isLeft(refused) && refused.left).toMatchObject({
      _tag: "SendError",
      reason: "EncodeFailed",
      payload: { symbol: "A", price: -1 }
    })
    expect(Either.isLeft(refused) && ParseResult.isParseError(refused.left.cause)).toBe(true)
  })

  it("json: not JSON, the wrong shape and bytes that are not UTF-8 are DecodeErrors with the frame", () => {
    const notJson = ticks.decode("hello")
    expect(Either.isLeft(notJson) && notJson.left).toMatchObject({ _tag: "DecodeError", frame: "hello" })
    expect(Either.isLeft(notJson) && notJson.left.cause).toBeInstanceOf(SyntaxError)
    const wrong = ticks.decode(`{"symbol":1}`)
    expect(Either.isLeft(wrong) && ParseResult.isParseError(wrong.left.cause)).toBe(true)
    const bytes = new Uint8Array([0xff, 0xfe])
    const binary = ticks.decode(bytes)
    expect(Either.isLeft(binary) && binary.left.frame).toBe(bytes)
  })

  it("json: a value with no JSON form (undefined, a bigint) is refused, never sent as an empty frame", () => {
    const loose = Codec.json(Schema.Unknown)
    expect(loose.encode(undefined)).toEqual(
      Either.left(expect.objectContaining({ reason: "EncodeFailed", payload: undefined, cause: expect.any(TypeError) }))
    )
    expect(loose.encode(1n)).toEqual(
      Either.left(expect.objectContaining({ reason: "EncodeFailed", payload: 1n, cause: expect.any(TypeError) }))
    )
  })

  it("json with two schemas: the first reads, the second writes", () => {
    const codec = Codec.json(Tick, Schema.Struct({ subscribe: Schema.String }))
    expect(codec.encode({ subscribe: "A" })).toEqual(Either.right(`{"subscribe":"A"}`))
    expect(Either.isLeft(codec.decode(`{"subscribe":"A"}`))).toBe(true)
  })

  it("make: a Left or a throw becomes the error's cause", () => {
    const boom = new Error("boom")
    const codec = Codec.make<number>({
      decode: (frame) => frame === "x" ? Either.left("not a number") : Either.right(Number(frame)),
      encode: () => {
        throw boom
      }
    })
    expect(codec.decode("2")).toEqual(Either.right(2))
    expect(codec.decode("x")).toEqual(
      Either.left(expect.objectContaining({ _tag: "DecodeError", frame: "x", cause: "not a number" }))
    )
    expect(codec.encode(3)).toEqual(
      Either.left(expect.objectContaining({ reason: "EncodeFailed", payload: 3, cause: boom }))
    )
  })
})

describe("Codec: what an untyped caller can get wrong", () => {
  it("make: a function that returns its value bare, not an Either, is refused with a cause that says so", () => {
    // The usual slip: JSON.parse / JSON.stringify returned as they are. Before, every frame was a
    // DecodeError (and every send EncodeFailed) with `undefined` as its cause.
    const codec = Codec.make<unknown>({
      decode: ((frame: string) => JSON.parse(frame)) as never,
      encode: ((value: unknown) => JSON.stringify(value)) as never
    })
    const decoded = codec.decode("{\"a\":1}")
    expect(Either.isLeft(decoded) && decoded.left).toMatchObject({ _tag: "DecodeError", frame: "{\"a\":1}" })
    expect(Either.isLeft(decoded) && String(decoded.left.cause)).toBe(
      "TypeError: Codec.make: decode must return an Either (Either.right or Either.left), got object"
    )
    const encoded = codec.encode({ a: 1 })
    expect(Either.isLeft(encoded) && encoded.left).toMatchObject({ reason: "EncodeFailed", payload: { a: 1 } })
    expect(Either.isLeft(encoded) && String(encoded.left.cause)).toBe(
      "TypeError: Codec.make: encode must return an Either (Either.right or Either.left), got string"
    )
  })

  it("json and fromSchema given anything but a Schema throw a TypeError that names it, at once", () => {
    expect(() => Codec.json(3 as never)).toThrow(new TypeError("Codec.json: expected a Schema, got number"))
    expect(() => Codec.json(Schema.String, {} as never)).toThrow(
      new TypeError("Codec.json: expected a Schema, got object")
    )
    expect(() => Codec.fromSchema(undefined as never)).toThrow(
      new TypeError("Codec.fromSchema: expected a Schema, got undefined")
    )
  })
})

/** A binary protocol with no dependency: two little-endian float64s in 16 bytes. */
const Point = Schema.Struct({ x: Schema.Number, y: Schema.Number })
const PointBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Point, {
  strict: true,
  decode: (bytes, _, ast) => {
    if (bytes.length !== 16) {
      return ParseResult.fail(new ParseResult.Type(ast, bytes, `expected 16 bytes, got ${bytes.length}`))
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, 16)
    return ParseResult.succeed({ x: view.getFloat64(0, true), y: view.getFloat64(8, true) })
  },
  encode: (point) => {
    const bytes = new Uint8Array(16)
    const view = new DataView(bytes.buffer)
    view.setFloat64(0, point.x, true)
    view.setFloat64(8, point.y, true)
    return ParseResult.succeed(bytes)
  }
})

describe("Codec on a Connection", () => {
  it.live("a typed round trip: values in, JSON text on the wire, values out", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url, { codec: ticks })
      yield* connection.send({ symbol: "A", price: 1 })
      yield* connection.write({ symbol: "B", price: 2 })
      yield* Stream.run(Stream.make({ symbol: "C", price: 3 }), connection.sink)
      const received: ReadonlyArray<Tick> = Chunk.toArray(
        yield* connection.messages.pipe(Stream.take(3), Stream.runCollect)
      )
      expect(received).toEqual([{ symbol: "A", price: 1 }, { symbol: "B", price: 2 }, { symbol: "C", price: 3 }])
      expect(yield* server.received).toEqual([
        `{"symbol":"A","price":1}`,
        `{"symbol":"B","price":2}`,
        `{"symbol":"C","price":3}`
      ])
    })).pipe(provideNode))

  it.live("a bad frame fails messages with DecodeError and the exact frame; the connection stays open and the next run reads on", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url, { codec: ticks })
      yield* server.broadcast(`{"symbol":"A","price":1}`)
      yield* server.broadcast(`{"symbol":7}`)
      yield* server.broadcast(`{"symbol":"B","price":2}`)
      // All three wait in the buffer: one pull takes them together, the frame after the bad one included.
      yield* awaitActivity(connection, 3)
      const [before, error] = yield* untilFailure(connection.messages)
      expect(before).toEqual([{ symbol: "A", price: 1 }])
      const decodeError = decodeErrorOf(error)
      expect(decodeError.frame).toBe(`{"symbol":7}`)
      expect(ParseResult.isParseError(decodeError.cause)).toBe(true)
      expect(yield* connection.readyState).toBe(1)
      const after = yield* connection.messages.pipe(Stream.take(1), Stream.runCollect)
      expect(Chunk.toArray(after)).toEqual([{ symbol: "B", price: 2 }])
      // Still the same link, both ways.
      yield* connection.send({ symbol: "C", price: 3 })
      expect(Chunk.toArray(yield* connection.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual([{
        symbol: "C",
        price: 3
      }])
      expect(yield* server.accepted).toBe(1)
    })).pipe(provideNode))

  it.live("reading on after each DecodeError (docs/guide.md's readOn): every good frame, in order, none twice", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url, { codec: ticks })
      const readOn = <A, Out>(connection: Connection.Connection<A, Out, DecodeError>): Stream.Stream<A> =>
        connection.messages.pipe(
          Stream.catchTag(
            "DecodeError",
            (error) => Stream.unwrap(Effect.as(Effect.logWarning("skipped", error.frame), readOn(connection)))
          )
        )
      const frames = ["A", "bad", "B", "worse", "C"].map((name) =>
        name.length === 1 ? `{"symbol":"${name}","price":1}` : name
      )
      yield* Effect.forEach(frames, (frame) => server.broadcast(frame), { discard: true })
      yield* awaitActivity(connection, frames.length)
      const read = yield* readOn(connection).pipe(Stream.take(3), Stream.runCollect)
      expect(Chunk.toArray(read).map((tick) => tick.symbol)).toEqual(["A", "B", "C"])
    })).pipe(provideNode))

  it.live("encode failure: send, write and sink fail with SendError EncodeFailed carrying the value; nothing of it is written", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const connection = yield* Connection.connect(server.url, { codec: ticks })
      const bad = { symbol: "X", price: -1 }
      const sent = yield* Effect.flip(connection.send(bad))
      expect(sent).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
      expect(ParseResult.isParseError(sent.cause)).toBe(true)
      expect(yield* Effect.flip(connection.write(bad))).toMatchObject({ reason: "EncodeFailed", payload: bad })
      // The sink writes the values before the bad one, then fails with it.
      const sunk = yield* Effect.flip(
        Stream.run(Stream.make({ symbol: "A", price: 1 }, bad, { symbol: "B", price: 2 }), connection.sink)
      )
      expect(sunk).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
      yield* connection.send({ symbol: "C", price: 3 })
      yield* awaitReceived(server, 2)
      expect(yield* server.received).toEqual([`{"symbol":"A","price":1}`, `{"symbol":"C","price":3}`])
    })).pipe(provideNode))

  it.live("fromSchema: a binary protocol (16 bytes) round trips; a text frame is a DecodeError", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url, { codec: Codec.fromSchema(PointBytes) })
      yield* connection.send({ x: 1.5, y: -2 })
      expect(Chunk.toArray(yield* connection.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual([{
        x: 1.5,
        y: -2
      }])
      const received = yield* server.received
      expect(received[0]).toBeInstanceOf(Uint8Array)
      expect((received[0] as Uint8Array).length).toBe(16)
      yield* server.broadcast("text")
      const [, error] = yield* untilFailure(connection.messages)
      expect(decodeErrorOf(error).frame).toBe("text")
    })).pipe(provideNode))

  it.live("Connection.layer with a codec provides the typed connection", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      class Feed extends Context.Tag("Feed")<Feed, Connection.Connection<Tick, Tick, DecodeError>>() {}
      const value = yield* Effect.gen(function*() {
        const feed = yield* Feed
        yield* feed.send({ symbol: "L", price: 4 })
        return Chunk.toArray(yield* feed.messages.pipe(Stream.take(1), Stream.runCollect))
      }).pipe(Effect.provide(Connection.layer(Feed, server.url, { codec: ticks })))
      expect(value).toEqual([{ symbol: "L", price: 4 }])
    }).pipe(Effect.scoped, provideNode))
})

describe("Codec on a Client", () => {
  it.live("a typed round trip through send, enqueue and sink", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, codec: ticks })
      yield* client.awaitOpen
      yield* client.send({ symbol: "A", price: 1 })
      yield* client.enqueue({ symbol: "B", price: 2 })
      yield* Stream.run(Stream.make({ symbol: "C", price: 3 }), client.sink)
      // The default (`decodeErrors: "event"`) keeps `messages` without an error type.
      const messages: Stream.Stream<Tick> = client.messages
      expect(Chunk.toArray(yield* messages.pipe(Stream.take(3), Stream.runCollect))).toEqual([
        { symbol: "A", price: 1 },
        { symbol: "B", price: 2 },
        { symbol: "C", price: 3 }
      ])
      expect(yield* server.received).toEqual([
        `{"symbol":"A","price":1}`,
        `{"symbol":"B","price":2}`,
        `{"symbol":"C","price":3}`
      ])
    })).pipe(provideNode))

  it.live("a bad frame is a DecodeFailed event with the exact frame and is skipped; the next frame arrives, the link never drops", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const decodeFailuresBefore = (yield* Metric.value(decodeFailures)).count
      const client = yield* Client.make({ url: server.url, codec: ticks })
      yield* client.awaitOpen
      const all = yield* eventsUntilClosed(client)
      const failed = yield* Effect.fork(eventsOf(client, "DecodeFailed", 2))
      const bad = new Uint8Array([0x7b, 0xff])
      yield* server.broadcast("not json")
      yield* server.broadcast(bad)
      yield* server.broadcast(`{"symbol":"A","price":1}`)
      expect(Chunk.toArray(yield* client.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual([{
        symbol: "A",
        price: 1
      }])
      const events = yield* failed
      expect(events.map((event) => event.error.frame)).toEqual(["not json", expect.any(Uint8Array)])
      expect(Array.from(events[1]!.error.frame as Uint8Array)).toEqual(Array.from(bad))
      expect(events[0]!.error.cause).toBeInstanceOf(SyntaxError)
      expect(events[1]!.error.cause).toBeInstanceOf(TypeError)
      // Counted too (lifeline_decode_failures).
      expect((yield* Metric.value(decodeFailures)).count - decodeFailuresBefore).toBe(2)
      // Never dropped: one upgrade, still Open, and no transition since the first Open.
      expect(yield* server.accepted).toBe(1)
      expect((yield* client.state.get)._tag).toBe("Open")
      expect(yield* client.failed).toBe(0)
      yield* client.close()
      const seen = yield* Fiber.join(all)
      expect(seen.map((event) => event._tag === "Transition" ? event.to._tag : event._tag)).toEqual([
        "Connecting",
        "Open",
        "DecodeFailed",
        "DecodeFailed",
        "Closed"
      ])
    })).pipe(provideNode))

  it.live(`decodeErrors: "fail" fails messages with the DecodeError; no event, the link stays up and the next run reads on`, () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      let raw: Connection.Connection | undefined
      const client = yield* Client.make({
        url: server.url,
        codec: ticks,
        decodeErrors: "fail",
        onOpen: (connection) =>
          Effect.sync(() => {
            raw = connection
          })
      })
      yield* client.awaitOpen
      const all = yield* eventsUntilClosed(client)
      yield* server.broadcast(`{"symbol":"A","price":1}`)
      yield* server.broadcast(`{"symbol":"A","price":-5}`)
      yield* server.broadcast(`{"symbol":"B","price":2}`)
      yield* awaitActivity(raw!, 3)
      const messages: Stream.Stream<Tick, DecodeError> = client.messages
      const [before, error] = yield* untilFailure(messages)
      expect(before).toEqual([{ symbol: "A", price: 1 }])
      expect(decodeErrorOf(error).frame).toBe(`{"symbol":"A","price":-5}`)
      expect(Chunk.toArray(yield* client.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual([{
        symbol: "B",
        price: 2
      }])
      expect(yield* server.accepted).toBe(1)
      expect((yield* client.state.get)._tag).toBe("Open")
      yield* client.close()
      const seen = yield* Fiber.join(all)
      expect(seen.map((event) => event._tag === "Transition" ? event.to._tag : event._tag)).toEqual([
        "Connecting",
        "Open",
        "Closed"
      ])
    })).pipe(provideNode))

  it.live("encode failure: send and enqueue fail at once with SendError EncodeFailed and the value; never queued, never counted", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const client = yield* Client.make({ url: server.url, codec: ticks })
      const bad = { symbol: "X", price: -1 }
      // Not yet open: the refusal does not wait for the link.
      const errors: Array<SendError> = []
      errors.push(yield* Effect.flip(client.send(bad)) as SendError)
      errors.push(yield* Effect.flip(client.enqueue(bad)) as SendError)
      errors.push(yield* Effect.flip(Stream.run(Stream.make(bad), client.sink)) as SendError)
      for (const error of errors) {
        expect(error).toMatchObject({ _tag: "SendError", reason: "EncodeFailed", payload: bad })
      }
      expect(yield* client.outboxSize).toBe(0)
      expect(yield* client.failed).toBe(0)
      yield* client.awaitOpen
      yield* client.send({ symbol: "A", price: 1 })
      yield* awaitReceived(server, 1)
      expect(yield* server.received).toEqual([`{"symbol":"A","price":1}`])
    })).pipe(provideNode))

  it.live("close returns the encoded frames of what was still queued", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const client = yield* Client.make({ url: server.url, codec: ticks })
      yield* client.enqueue({ symbol: "Q", price: 9 })
      expect(yield* client.close()).toEqual([`{"symbol":"Q","price":9}`])
    })).pipe(provideNode))

  it.live("heartbeat: isPong sees the raw frames, before decoding, so answers are neither values nor DecodeFailed events", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const seen: Array<Message> = []
      const client = yield* Client.make({
        url: server.url,
        codec: ticks,
        heartbeat: {
          message: "ping",
          isPong: (message) => {
            seen.push(message)
            return message === "pong"
          }
        }
      })
      yield* client.awaitOpen
      const all = yield* eventsUntilClosed(client)
      yield* server.broadcast("pong")
      yield* server.broadcast(`{"symbol":"A","price":1}`)
      expect(Chunk.toArray(yield* client.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual([{
        symbol: "A",
        price: 1
      }])
      expect(seen).toEqual(["pong", `{"symbol":"A","price":1}`])
      yield* client.close()
      const events = yield* Fiber.join(all)
      expect(events.map((event) => event._tag === "Transition" ? event.to._tag : event._tag)).toEqual([
        "Connecting",
        "Open",
        "Closed"
      ])
    })).pipe(provideNode))

  it.live("a codec that throws (made by hand) is a DecodeFailed event, not a defect", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const boom = new Error("decoder bug")
      // Made by hand over Codec.make's, so its decode can throw past Codec.make's own guard.
      const codec: Codec.Codec<string> = {
        ...Codec.make<string>({ decode: (frame) => Either.right(String(frame)), encode: Either.right }),
        decode: (frame) => {
          if (frame === "boom") throw boom
          return Either.right(String(frame))
        },
        encode: (value) => Either.right(value)
      }
      const client = yield* Client.make({ url: server.url, codec })
      yield* client.awaitOpen
      const failed = yield* Effect.fork(eventsOf(client, "DecodeFailed", 1))
      yield* server.broadcast("boom")
      yield* client.send("after")
      expect(Chunk.toArray(yield* client.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual(["after"])
      expect((yield* failed).map((event) => [event.error.frame, event.error.cause])).toEqual([["boom", boom]])
    })).pipe(provideNode))

  it.live("a codec or decodeErrors that cannot work (untyped code) leaves the client Closed with InvalidOptions", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const options = { url: server.url, codec: ticks, decodeErrors: "skip" } as unknown as Client.CodecOptions<
        Tick,
        Tick
      >
      const client = yield* Client.make(options)
      const closed = yield* closedState(client)
      expect(closed).toMatchObject({
        error: Option.some(
          expect.objectContaining({
            _tag: "ConnectError",
            reason: "InvalidOptions",
            detail: expect.stringContaining("decodeErrors")
          })
        )
      })
      const noCodec = yield* Client.make({ url: server.url, codec: {} } as unknown as Client.CodecOptions<Tick, Tick>)
      const closedToo = yield* closedState(noCodec)
      expect(closedToo).toMatchObject({
        error: Option.some(
          expect.objectContaining({ reason: "InvalidOptions", detail: expect.stringContaining("codec") })
        )
      })
      // Two functions without Codec.make: no wrappers to make the client typed with.
      const bare = { decode: Either.right, encode: Either.right }
      const bareCodec = yield* Client.make(
        { url: server.url, codec: bare } as unknown as Client.CodecOptions<Tick, Tick>
      )
      expect(yield* closedState(bareCodec)).toMatchObject({
        error: Option.some(
          expect.objectContaining({
            reason: "InvalidOptions",
            detail: "codec: expected a Codec made by Codec.json, Codec.fromSchema or Codec.make"
          })
        )
      })
      expect(yield* server.accepted).toBe(0)
    })).pipe(provideNode))

  it.live("Client.Tag and Client.layer carry the codec's types", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      class Ticks extends Client.Tag("Ticks")<Ticks, Tick, Tick>() {}
      const got = yield* Effect.gen(function*() {
        const ticker = yield* Ticks
        yield* ticker.send({ symbol: "T", price: 5 })
        return Chunk.toArray(yield* ticker.messages.pipe(Stream.take(1), Stream.runCollect))
      }).pipe(Effect.provide(Client.layer(Ticks, { url: server.url, codec: ticks }).pipe(Layer.provide(quietNode))))
      expect(got).toEqual([{ symbol: "T", price: 5 }])
    }).pipe(Effect.scoped))

  it.live("Client.layerConfig with a codec in its extra options: the Tag's types, the options from Config", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      class Ticks extends Client.Tag("Ticks")<Ticks, Tick, Tick>() {}
      const config = Client.config("FEED")
      const got = yield* Effect.gen(function*() {
        const ticker = yield* Ticks
        yield* ticker.send({ symbol: "T", price: 5 })
        return Chunk.toArray(yield* ticker.messages.pipe(Stream.take(1), Stream.runCollect))
      }).pipe(
        Effect.provide(Client.layerConfig(Ticks, config, { codec: ticks }).pipe(Layer.provide(quietNode))),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["FEED.URL", server.url]])))
      )
      expect(got).toEqual([{ symbol: "T", price: 5 }])
      expect(yield* server.received).toEqual([`{"symbol":"T","price":5}`])
      // A codec whose types are not the Tag's, and a raw Tag given a codec, do not compile.
      class Raw extends Client.Tag("Raw")<Raw>() {}
      const Order = Schema.Struct({ id: Schema.Number })
      // @ts-expect-error: the codec's In and Out are not the Tag's
      Client.layerConfig(Ticks, config, { codec: Codec.json(Order) })
      // @ts-expect-error: a raw Tag's Client takes no codec
      Client.layerConfig(Raw, config, { codec: ticks })
      // @ts-expect-error: decodeErrors "fail" makes messages fail with DecodeError: not the Tag's type
      Client.layerConfig(Ticks, config, { codec: ticks, decodeErrors: "fail" })
      Client.layerConfig(Raw, config, { connection: { protocols: ["v1"] } })
    }).pipe(Effect.scoped))

  it("types: send takes Out, messages yields In; a raw Client is unchanged", () => {
    const typed = Client.make({
      url: "ws://127.0.0.1:1",
      codec: Codec.json(Tick, Schema.Struct({ subscribe: Schema.String }))
    })
    const failing = Client.make({ url: "ws://127.0.0.1:1", codec: ticks, decodeErrors: "fail" })
    const raw = Client.make({ url: "ws://127.0.0.1:1" })
    const checks = Effect.gen(function*() {
      const client = yield* typed
      yield* client.send({ subscribe: "A" })
      // @ts-expect-error: a Tick is what the peer sends, not what this side sends
      yield* client.send({ symbol: "A", price: 1 })
      const values: Stream.Stream<Tick> = client.messages
      // @ts-expect-error: under decodeErrors "fail", messages can fail
      const never: Stream.Stream<Tick> = (yield* failing).messages
      const frames: Stream.Stream<Message> = (yield* raw).messages
      return [values, never, frames]
    })
    expect(Exit.isExit(checks)).toBe(false)
  })
})

describe("examples/codec.ts", () => {
  it.scopedLive("a typed price feed: two ticks, and the frame that is no Tick (a negative price) refused, not delivered", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: Example.feed })
      expect(yield* Example.main(server.url)).toEqual({
        ticks: [{ symbol: "ACME", price: 101.5 }, { symbol: "ACME", price: 102 }],
        refused: [`{"symbol":"ACME","price":-1}`]
      })
      expect(yield* server.received).toEqual([`{"type":"subscribe","symbol":"ACME"}`])
      expect(yield* server.accepted).toBe(1)
    }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))))
})

describe("Connection.connect with a codec that cannot work", () => {
  const bare = { decode: Either.right, encode: Either.right }
  it.live.each([["two functions without Codec.make", bare], ["null", null], ["an empty object", {}]] as const)(
    "%s: ConnectError InvalidOptions naming the codec, before any socket (as a Client)",
    ([_, codec]) =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const error = yield* Connection.connect(server.url, { codec } as unknown as Connection.CodecOptions<Tick, Tick>)
          .pipe(
            Effect.flip,
            Effect.scoped
          )
        expect(error).toMatchObject({
          _tag: "ConnectError",
          reason: "InvalidOptions",
          url: new URL(server.url).href,
          detail:
            "codec: expected a Codec made by Codec.json, Codec.fromSchema or Codec.make; fix the option named above"
        })
        expect(yield* server.accepted).toBe(0)
      })).pipe(provideNode)
  )

  it.live("a bad URL is still reported first, and a URL Effect runs once", () =>
    Effect.gen(function*() {
      let runs = 0
      const url = Effect.sync(() => {
        runs++
        return "ftp://127.0.0.1:1/"
      })
      const error = yield* Connection.connect(url, { codec: bare } as unknown as Connection.CodecOptions<Tick, Tick>)
        .pipe(Effect.flip, Effect.scoped)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "InvalidUrl" })
      expect(runs).toBe(1)
    }).pipe(provideNode))
})

describe("Client.make with a codec: the options as given", () => {
  it.live("options from a settings class (url read by a getter) and a codec: the client connects and is typed, as without a codec", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        class Settings {
          readonly codec = ticks
          readonly heartbeat = false
          get url(): string {
            return server.url
          }
        }
        const client = yield* Client.make(new Settings() as Client.CodecOptions<Tick, Tick>)
        yield* client.send({ symbol: "S", price: 1 })
        const got = yield* Stream.runHead(client.messages).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "no echo" })
        )
        expect(got).toEqual(Option.some({ symbol: "S", price: 1 }))
        expect(yield* server.accepted).toBe(1)
      }).pipe(Effect.scoped, provideNode)
    ))
})
