/**
 * The small Client (`effect-lifeline/LiteClient`) where it is not the full Client's contract
 * (test/clientContract.test.ts runs that against both): the options it refuses, its layer, its
 * logs, and the cases where user code or the transport throws.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, LogLevel, Option, Schedule, Schema, Stream } from "effect"
import type { ConnectError, SendError } from "../src/index.js"
import { Client, Codec, LiteClient, NodeTransport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { captureLogs } from "./support/logs.js"
import { provideNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { hasWebsockets, pythonEcho } from "./support/python.js"

const closedWith = (client: Client.Client<any, any, any>) =>
  Effect.map(
    awaitState(client as Client.Client, isTag("Closed")),
    (state) => Option.getOrThrow((state as Extract<Client.ClientState, { _tag: "Closed" }>).error)
  )

const NOT_HERE = "not in LiteClient: use effect-lifeline/Client"

describe("LiteClient: what only the full Client has is refused, never ignored", () => {
  const cases = [
    ["several URLs", { url: ["ws://127.0.0.1:1", "ws://127.0.0.1:2"] }, `url: one URL, ${NOT_HERE}`],
    ["strategy", { strategy: "ordered" }, `strategy: ${NOT_HERE}`],
    ["returnToPrimary", { returnToPrimary: "1 minute" }, `returnToPrimary: ${NOT_HERE}`],
    ["whenSuspended", { whenSuspended: "failFast" }, `whenSuspended: ${NOT_HERE}`]
  ] as const
  for (const [name, options, detail] of cases) {
    it.live(`${name}: Closed with ConnectError InvalidOptions naming it, no request to the server`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* LiteClient.make({ url: server.url, ...options } as unknown as LiteClient.LiteOptions)
        const error = yield* closedWith(client)
        expect(error).toMatchObject({ _tag: "ConnectError", reason: "InvalidOptions", detail })
        expect(yield* server.requests).toBe(0)
      })).pipe(provideNode))
  }

  it.live("a bad option the full Client refuses is named first, as there (the checks are shared)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const client = yield* LiteClient.make(
        { url: "ws://127.0.0.1:1", outbox: { capacity: 0 }, strategy: "ordered" } as never
      )
      const error = yield* closedWith(client)
      expect((error as ConnectError).detail).toMatch(/^outbox\.capacity: must be a positive integer/)
    })).pipe(provideNode))
})

describe("LiteClient: as an app holds it", () => {
  class Feed extends Client.Tag("test/Feed")<Feed, { readonly n: number }, { readonly n: number }>() {}
  const Frame = Schema.Struct({ n: Schema.Number })

  it.live("a layer under a Client.Tag, with a codec: typed values both ways through a real server", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const FeedLive = LiteClient.layer(Feed, { url: server.url, codec: Codec.json(Frame, Frame) })
      const echoed = yield* Effect.gen(function*() {
        const feed = yield* Feed
        yield* feed.send({ n: 1 })
        yield* feed.send({ n: 2 })
        return yield* feed.messages.pipe(Stream.take(2), Stream.runCollect)
      }).pipe(Effect.provide(Layer.provide(FeedLive, NodeTransport.layer)))
      expect(Chunk.toArray(echoed)).toEqual([{ n: 1 }, { n: 2 }])
      expect(yield* server.received).toEqual([JSON.stringify({ n: 1 }), JSON.stringify({ n: 2 })])
    })))

  it.live("headers from an Effect are read at each attempt (Node)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      let reads = 0
      const client = yield* LiteClient.make({
        url: server.url,
        retry: Schedule.spaced("10 millis"),
        headers: Effect.sync(() => ({ authorization: `Bearer token-${++reads}` }))
      })
      yield* client.awaitOpen
      expect((yield* server.lastRequestHeaders).authorization).toBe("Bearer token-1")
      yield* server.closeAll(4000)
      yield* awaitState(client, (state) => state._tag === "Open" && state.attempt === 2)
      expect((yield* server.lastRequestHeaders).authorization).toBe("Bearer token-2")
    })).pipe(provideNode))

  it.live("released by its scope with 3 messages queued while down: one WARN with their count", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const capture = captureLogs(LogLevel.Info)
      yield* Effect.gen(function*() {
        const client = yield* LiteClient.make({ url: server.url, retry: Schedule.spaced("1 hour") })
        yield* client.awaitOpen
        yield* server.kill
        yield* awaitState(client, isTag("Backoff"))
        for (let i = 0; i < 3; i++) yield* client.enqueue(`note ${i}`)
      }).pipe(Effect.scoped, Effect.provide(capture.layer))
      expect(capture.lines.map((line) => [line.level, line.message, line.url])).toEqual([
        [
          "WARN",
          "lifeline: link down: disconnected by transport with code 1006 (not clean); retrying in 1h",
          `${server.url}/`
        ],
        ["WARN", "lifeline: closed with 3 messages never sent", `${server.url}/`]
      ])
    })).pipe(provideNode))
})

describe("LiteClient: user code and the transport that throw", () => {
  it.live("its own send in its onOpen: OnOpenError at once saying to use the connection, not after onOpenTimeout", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const holder: { client?: Client.Client } = {}
      const client = yield* LiteClient.make({
        url: server.url,
        retry: Schedule.spaced("1 hour"),
        onOpenTimeout: "1 hour",
        onOpen: () => holder.client!.send("hello")
      })
      holder.client = client
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({ _tag: "Backoff", attempt: 1, error: { _tag: "OnOpenError" } })
      expect((backoff as Extract<Client.ClientState, { _tag: "Backoff" }>).error.message).toBe(
        "onOpen failed: the Client's send in its own onOpen waits for onOpen: use the connection onOpen gets"
      )
    })).pipe(provideNode))

  it.live("a frame the transport throws on: send fails WriteFailed; enqueue's is a MessageFailed event; the frames around it go out", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* LiteClient.make({ url: server.url, heartbeat: false })
      yield* client.awaitOpen
      // A view over a detached ArrayBuffer: ws throws when asked to send it.
      const detached = new Uint8Array(8)
      structuredClone(detached.buffer, { transfer: [detached.buffer] })
      const failed = yield* client.events.pipe(
        Stream.filterMap((event) => event._tag === "MessageFailed" ? Option.some(event.error) : Option.none()),
        Stream.runHead,
        Effect.fork
      )
      yield* client.enqueue("ok-1")
      yield* client.enqueue(detached)
      const sent = (yield* Effect.flip(client.send(detached))) as SendError
      yield* client.send("ok-2")
      const event = Option.getOrThrow(yield* Fiber.join(failed))
      // Compared by identity: a matcher would iterate the detached view, which throws.
      for (const error of [event, sent]) {
        expect([error._tag, error.reason, error.payload === detached]).toEqual(["SendError", "WriteFailed", true])
      }
      expect(yield* client.failed).toBe(2)
      expect(yield* server.awaitReceived(2)).toEqual(["ok-1", "ok-2"])
    })).pipe(provideNode))
})

describe("LiteClient: a burst as users write it, to a real peer", () => {
  it.scopedLive.skipIf(!hasWebsockets)(
    "Stream.run(client.sink) of 3 000 values to Python websockets' echo, read a chunk at a time, a 64-byte write high-water mark (frames held back in the outbox, handed on as writes complete): every value back once, in order; nothing failed",
    () =>
      Effect.gen(function*() {
        const url = yield* pythonEcho
        const client = yield* LiteClient.make({ url, connection: { writeHighWaterMark: 64 } })
        const echoes: Array<number> = []
        yield* Effect.forkScoped(Stream.runForEachChunk(client.messages, (chunk) =>
          Effect.sync(() => {
            for (const message of chunk) echoes.push(Number(message))
          })))
        yield* client.awaitOpen
        yield* Stream.range(1, 3_000).pipe(Stream.map(String), Stream.run(client.sink))
        yield* awaitTrue(Effect.sync(() => echoes.length >= 3_000), "every echo", 1_500)
        expect(echoes).toEqual(Array.from({ length: 3_000 }, (_, index) => index + 1))
        expect(yield* client.failed).toBe(0)
        expect(yield* client.outboxSize).toBe(0)
      }).pipe(provideNode)
  )
})

describe("LiteClient: the socket's buffer", () => {
  // The small Client's own way (docs/browser.md, "The small Client"): the full Client writes while
  // its outbox has room, whatever the socket holds; both bound what is accepted and not written by
  // the outbox (test/clientHardening.test.ts).
  it.live(
    "to a peer that does not read, the outbox hands the socket no more than writeHighWaterMark and one frame; the rest waits in the outbox, and all of it goes once the peer reads",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const mark = 64 * 1024
        let opened: { readonly bufferedAmount: Effect.Effect<number> } | undefined
        const client = yield* LiteClient.make({
          url: server.url,
          heartbeat: false,
          connection: { writeHighWaterMark: mark },
          onOpen: (connection) => Effect.sync(() => opened = connection)
        })
        yield* client.awaitOpen
        yield* server.pauseReading
        // 12 MiB: more than loopback's kernel buffers take from a peer that does not read.
        const frame = new Uint8Array(64 * 1024)
        for (let index = 0; index < 192; index++) yield* client.enqueue(frame)
        // The kernel takes what it can, then the socket's own buffer fills to the mark.
        yield* awaitTrue(Effect.map(opened!.bufferedAmount, (buffered) => buffered > 0), "the socket buffering")
        yield* Effect.sleep("200 millis")
        expect(yield* opened!.bufferedAmount).toBeLessThanOrEqual(mark + frame.byteLength)
        expect(yield* client.outboxSize).toBeGreaterThan(0)
        yield* server.resumeReading
        yield* awaitTrue(Effect.map(client.outboxSize, (size) => size === 0), "the outbox written", 4_000)
        expect(yield* client.failed).toBe(0)
        expect(yield* server.awaitReceived(192, "10 seconds")).toHaveLength(192)
      })).pipe(provideNode)
  )
})
