/**
 * Readers that stop early, as users write them: the answer to a handshake read with
 * `Stream.runHead` in `onOpen`, a first message awaited before a subscription, `Stream.take(n)`.
 * Each run of `messages` is handed its first 64 messages one at a time, so a run that stops within
 * them leaves the frames after it in the buffer, for the next run (or the Client's `messages`).
 * Before round 31 a run took every frame waiting as one chunk, and Effect's `take` / `Sink.head`
 * dropped the rest of it: an `onOpen` that read its handshake's answer lost every frame that came
 * with it. Each test waits until every frame has arrived before the read, so that they all wait
 * together (as when they come in one socket read). Real sockets on 127.0.0.1.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Logger, Option, Schedule, Schema, Stream } from "effect"
import { Client, Codec, Connection, NodeTransport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"

const provided = Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))

/** Answers "auth" with "ok" and `data` frames right behind it; anything else with "echo <it>". */
const handshakeServer = (data: number) =>
  TestServer.make({
    handler: (message, reply) => {
      if (String(message) !== "auth") return reply(`echo ${String(message)}`)
      reply("ok")
      for (let index = 0; index < data; index++) reply(`data${index}`)
    }
  })

/** What a run collects, cut after 5 s: a frame lost shows as a short array, not as a hang. */
const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.map(Stream.runCollect(Stream.interruptAfter(stream, "5 seconds")), Chunk.toArray)

describe("round 31: a reader that stops early leaves the frames after it", () => {
  it.live("onOpen sends its handshake and reads the answer with Stream.runHead(connection.messages): the 5 frames that came with the answer are the Client's first messages", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* handshakeServer(5)
        let answer: Option.Option<unknown> = Option.none()
        const client = yield* Client.make({
          url: server.url,
          heartbeat: false,
          onOpen: (connection) =>
            Effect.gen(function*() {
              yield* connection.send("auth")
              yield* awaitTrue(Effect.map(connection.activity, (count) => count === 6), "the answer and the data")
              answer = yield* Stream.runHead(connection.messages)
            })
        })
        expect(yield* collect(Stream.take(client.messages, 5))).toEqual(["data0", "data1", "data2", "data3", "data4"])
        expect(answer).toEqual(Option.some("ok"))
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))

  it.live("a Client with a codec: onOpen reads the raw answer, the decoded frames behind it are the Client's first messages", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({
          handler: (_message, reply) => {
            reply(JSON.stringify({ ok: true }))
            for (let index = 0; index < 3; index++) reply(JSON.stringify({ n: index }))
          }
        })
        const client = yield* Client.make({
          url: server.url,
          heartbeat: false,
          codec: Codec.json(Schema.Union(Schema.Struct({ ok: Schema.Boolean }), Schema.Struct({ n: Schema.Number }))),
          onOpen: (connection) =>
            Effect.gen(function*() {
              yield* connection.send("hello")
              yield* awaitTrue(Effect.map(connection.activity, (count) => count === 4), "the answer and the data")
              expect(yield* Stream.runHead(connection.messages)).toEqual(Option.some(JSON.stringify({ ok: true })))
            })
        })
        expect(yield* collect(Stream.take(client.messages, 3))).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }])
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))

  it.live("the first message awaited with Stream.runHead(client.messages), then a subscription: every frame once, in order", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* handshakeServer(20)
        const client = yield* Client.make({ url: server.url, heartbeat: false })
        yield* client.send("auth")
        const [peer] = yield* server.peers
        yield* awaitTrue(Effect.map(peer!.received, (received) => received.length === 1), "the server read auth")
        // Three short reads, as a request/response helper would make, then the rest in one run.
        expect(yield* Stream.runHead(client.messages)).toEqual(Option.some("ok"))
        expect(yield* collect(Stream.take(client.messages, 2))).toEqual(["data0", "data1"])
        expect(yield* collect(Stream.takeUntil(client.messages, (message) => message === "data4"))).toEqual([
          "data2",
          "data3",
          "data4"
        ])
        expect(yield* collect(Stream.take(client.messages, 15))).toEqual(
          Array.from({ length: 15 }, (_, index) => `data${index + 5}`)
        )
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))

  it.live("a Connection: request/response with Stream.take(messages, 1) while the answers to two requests wait unread: each answer in turn", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "echo" })
        const connection = yield* Connection.connect(server.url)
        yield* connection.send("a")
        yield* connection.send("b")
        yield* connection.send("c")
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 3), "three answers")
        const ask = Effect.map(collect(Stream.take(connection.messages, 1)), (answers) => answers[0])
        expect([yield* ask, yield* ask, yield* ask]).toEqual(["a", "b", "c"])
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))

  it.live("a Connection with a codec whose frame fails to decode while the run takes whole chunks: the frames after it, kept by the decoder, are handed one at a time by the next runs", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        // 70 frames, the 67th not a number: the first run takes 64 one at a time, then the rest as
        // one chunk, decodes 64-65, fails at "oops" and keeps 67-69 for the next runs.
        const frames = Array.from({ length: 70 }, (_, index) => index === 66 ? "oops" : String(index))
        const server = yield* TestServer.make({ handler: (_message, reply) => frames.forEach((frame) => reply(frame)) })
        const connection = yield* Connection.connect(server.url, { codec: Codec.json(Schema.Number) })
        yield* connection.send(0)
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 70), "70 frames")
        const decoded: Array<number> = []
        const failed = yield* Effect.flip(
          Stream.runForEach(connection.messages, (value) => Effect.sync(() => decoded.push(value)))
        )
        expect(decoded).toEqual(Array.from({ length: 66 }, (_, index) => index))
        expect(failed).toMatchObject({ _tag: "DecodeError", frame: "oops" })
        expect(yield* collect(Stream.take(connection.messages, 1))).toEqual([67])
        expect(yield* collect(Stream.take(connection.messages, 1))).toEqual([68])
        expect(yield* collect(Stream.take(connection.messages, 1))).toEqual([69])
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))

  it.live("a Client with an app-level heartbeat whose pongs come between the frames: pongs are taken out, and a short read still leaves the frames after it", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({
          handler: (message, reply) => {
            if (String(message) === "ping") return reply("pong")
            for (let index = 0; index < 6; index++) {
              reply(`data${index}`)
              reply("pong")
            }
          }
        })
        const client = yield* Client.make({
          url: server.url,
          heartbeat: { interval: "1 hour", timeout: "1 hour", message: "ping", isPong: (frame) => frame === "pong" }
        })
        yield* client.send("go")
        const [peer] = yield* server.peers
        yield* awaitTrue(Effect.map(peer!.received, (received) => received.includes("go")), "the server read go")
        // Its answers, sent at once, all arrive meanwhile (the Client has no frame count to wait on).
        yield* Effect.sleep("200 millis")
        expect(yield* Stream.runHead(client.messages)).toEqual(Option.some("data0"))
        expect(yield* collect(Stream.take(client.messages, 2))).toEqual(["data1", "data2"])
        expect(yield* collect(Stream.take(client.messages, 3))).toEqual(["data3", "data4", "data5"])
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))

  it.live("past its first 64 messages a run is handed every frame waiting as one chunk: Stream.take(64) of 100 waiting leaves the 65th on; Stream.take(80) of 100 drops what it pulled past the 80th", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({
          handler: (_message, reply) => {
            for (let index = 0; index < 100; index++) reply(`m${index}`)
          }
        })
        const connection = yield* Connection.connect(server.url)
        yield* connection.send("go")
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 100), "100 frames")
        expect(yield* collect(Stream.take(connection.messages, 64))).toEqual(
          Array.from({ length: 64 }, (_, index) => `m${index}`)
        )
        expect(yield* Stream.runHead(connection.messages)).toEqual(Option.some("m64"))
        // A new run is handed them one at a time again: all 35 taken, none dropped.
        expect(yield* collect(Stream.take(connection.messages, 35))).toEqual(
          Array.from({ length: 35 }, (_, index) => `m${index + 65}`)
        )
        yield* connection.send("go")
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 200), "100 more")
        const taken = yield* collect(Stream.take(connection.messages, 80))
        expect(taken.at(-1)).toBe("m79")
        // The 65th pull took m64 to m99 as one chunk; the take kept 16 of it and dropped 20.
        expect(yield* Stream.runHead(connection.messages.pipe(Stream.timeout("200 millis")))).toEqual(Option.none())
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))

  it.live("a Client reconnecting between two short reads: the reads go on across the connections, in order", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* handshakeServer(3)
        const client = yield* Client.make({ url: server.url, heartbeat: false, retry: Schedule.spaced("10 millis") })
        yield* client.send("auth")
        const [first] = yield* server.peers
        yield* awaitTrue(Effect.map(first!.received, (received) => received.length === 1), "the server read auth")
        expect(yield* Stream.runHead(client.messages)).toEqual(Option.some("ok"))
        yield* first!.terminate
        // On the next connection (a send before the Client saw the end would be written into the dead one).
        yield* awaitTrue(
          Effect.map(client.state.get, (state) => state._tag === "Open" && state.attempt === 2),
          "open again"
        )
        yield* client.send("auth")
        expect(yield* collect(Stream.take(client.messages, 7))).toEqual([
          "data0",
          "data1",
          "data2",
          "ok",
          "data0",
          "data1",
          "data2"
        ])
      }).pipe(Effect.scoped, Effect.provide(provided))
    ))
})
