/**
 * Round 8 trials: `effect-lifeline/platform`'s Socket and `@effect/rpc` over it, as their users
 * write them (Socket.toChannelString piped through a Stream, the writer from several fibers and
 * after the end, rpc under load across a restart, a stream cut short, options that are wrong),
 * against real servers on 127.0.0.1, with the exact outcome of each.
 */
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Deferred, Effect, Exit, Fiber, Layer, Option, Queue, Schedule, Scope, Stream } from "effect"
import { Client } from "effect-lifeline"
import * as LifelinePlatform from "effect-lifeline/platform"
import { TestServer } from "effect-lifeline/testing"
import { WebSocketServer } from "ws"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"

const fast = { retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis", heartbeat: false } as const

/** The Socket of `LifelinePlatform.layer(options)`, for `body`; the layer (and its Client) ends with it. */
const withSocket = <A, E>(
  options: LifelinePlatform.Options,
  body: (socket: Socket.Socket) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.flatMap(Socket.Socket, (socket) => Effect.scoped(body(socket))).pipe(
    Effect.provide(LifelinePlatform.layer(options).pipe(Layer.provide(quietNode)))
  )

/** A SocketError as plain data, lifeline's error inside (`cause`) as its tag, reason and code. */
const plainSocketError = (error: unknown) => {
  const e = error as { _tag: string; reason: string; cause: any }
  return {
    _tag: e._tag,
    reason: e.reason,
    cause: { _tag: e.cause?._tag, reason: e.cause?.reason, code: e.cause?.code, initiator: e.cause?.initiator }
  }
}

describe("Socket.toChannelString piped through a Stream, the server killed and restarted", () => {
  it.live("default: the channel reads on across the restart; what was written while down arrives after it; a CloseEvent written ends the stream cleanly", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.gen(function*() {
          const input = yield* Queue.unbounded<string | Socket.CloseEvent>()
          const received: Array<string> = []
          const running = yield* Effect.fork(
            Stream.fromQueue(input).pipe(
              Stream.pipeThroughChannel(Socket.toChannelString(socket)),
              Stream.runForEach((text) => Effect.sync(() => received.push(text)))
            )
          )
          yield* Queue.offer(input, "one")
          yield* awaitTrue(Effect.sync(() => received.length === 1), "one echoed")
          yield* server.kill
          yield* Queue.offer(input, "two")
          yield* server.restart
          yield* awaitTrue(Effect.sync(() => received.length === 2), "two echoed")
          yield* Queue.offer(input, new Socket.CloseEvent(1000, "done"))
          const exit = yield* Fiber.await(running)
          expect(exit).toEqual(Exit.void)
          expect(received).toEqual(["one", "two"])
          expect(yield* server.received).toEqual(["one", "two"])
        })
      )
    })))

  it.live("perConnection: the kill fails the stream with SocketGenericError Read, lifeline's Disconnected 1006 as cause; a new pipe after the restart reads the new connection", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* withSocket({ url: server.url, ...fast, perConnection: true }, (socket) =>
        Effect.gen(function*() {
          const input = yield* Queue.unbounded<string | Socket.CloseEvent>()
          const received: Array<string> = []
          const pipe = Stream.fromQueue(input).pipe(
            Stream.pipeThroughChannel(Socket.toChannelString(socket)),
            Stream.runForEach((text) => Effect.sync(() => received.push(text)))
          )
          const first = yield* Effect.fork(pipe)
          yield* Queue.offer(input, "one")
          yield* awaitTrue(Effect.sync(() => received.length === 1), "one echoed")
          yield* server.kill
          const exit = yield* Fiber.await(first)
          expect(Exit.isFailure(exit)).toBe(true)
          const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
          expect(plainSocketError(error)).toEqual({
            _tag: "SocketError",
            reason: "Read",
            cause: { _tag: "Disconnected", reason: "", code: 1006, initiator: "transport" }
          })
          yield* server.restart
          const second = yield* Effect.fork(pipe)
          yield* Queue.offer(input, "two")
          yield* awaitTrue(Effect.sync(() => received.length === 2), "two echoed")
          yield* Queue.offer(input, new Socket.CloseEvent(1000, "done"))
          expect(yield* Fiber.await(second)).toEqual(Exit.void)
          expect(received).toEqual(["one", "two"])
        })
      )
    })))
})

/** A bare `ws` server on 127.0.0.1 that records the close code and reason of each connection. */
const closeRecorder = Effect.acquireRelease(
  Effect.async<{
    readonly url: string
    readonly closes: Array<{ code: number; reason: string }>
    readonly wss: WebSocketServer
  }>((resume) => {
    const closes: Array<{ code: number; reason: string }> = []
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () => {
      const address = wss.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({ url: `ws://127.0.0.1:${port}`, closes, wss }))
    })
    wss.on("connection", (ws) => ws.on("close", (code, reason) => closes.push({ code, reason: reason.toString() })))
  }),
  ({ wss }) =>
    Effect.async<void>((resume) => {
      for (const ws of wss.clients) ws.terminate()
      wss.close(() => resume(Effect.void))
    })
)

describe("Socket.writer, as users call it", () => {
  it.live("used after the layer's scope closed: each write fails at once with SocketGenericError Write, lifeline's SendError Closed as cause; no hang, no throw", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const write = yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          yield* write("inside")
          return write
        }))
      const late = yield* Effect.exit(Effect.timeout(write("late"), "2 seconds"))
      expect(Exit.isFailure(late)).toBe(true)
      const error = Exit.isFailure(late) ? Cause.squash(late.cause) : undefined
      expect(plainSocketError(error)).toEqual({
        _tag: "SocketError",
        reason: "Write",
        cause: { _tag: "SendError", reason: "Closed", code: undefined, initiator: undefined }
      })
      // A typed failure (not a defect, not an interruption).
      expect(Exit.isFailure(late) && Option.isSome(Cause.failureOption(late.cause))).toBe(true)
      // A CloseEvent written after the end: the Client's close is idempotent, the write succeeds.
      expect(yield* Effect.exit(Effect.timeout(write(new Socket.CloseEvent(1000, "again")), "2 seconds"))).toEqual(Exit.void)
      expect(yield* server.received).toEqual(["inside"])
    })))

  it.live("one writer from two fibers at once, 100 writes each: the server gets all 200, each fiber's in its order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          const writes = (name: string) => Effect.forEach(Array.from({ length: 100 }, (_, i) => `${name}${i}`), write, { discard: true })
          yield* Effect.all([writes("a"), writes("b")], { concurrency: 2, discard: true })
          yield* awaitTrue(Effect.map(server.received, (r) => r.length === 200), "200 received")
        }))
      const received = (yield* server.received) as ReadonlyArray<string>
      expect(received.length).toBe(200)
      expect(received.filter((m) => m.startsWith("a"))).toEqual(Array.from({ length: 100 }, (_, i) => `a${i}`))
      expect(received.filter((m) => m.startsWith("b"))).toEqual(Array.from({ length: 100 }, (_, i) => `b${i}`))
    })))

  it.live("a CloseEvent written through the writer: the server sees its code and reason; a run under way ends cleanly; writes after it fail SendError Closed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const recorder = yield* closeRecorder
      yield* withSocket({ url: recorder.url, ...fast }, (socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          const reader = yield* Effect.fork(socket.runRaw(() => {}))
          yield* write("x")
          yield* write(new Socket.CloseEvent(4000, "bye"))
          expect(yield* Fiber.await(reader)).toEqual(Exit.void)
          const after = yield* Effect.exit(write("after"))
          const error = Exit.isFailure(after) ? Cause.squash(after.cause) : undefined
          expect(plainSocketError(error)).toMatchObject({ reason: "Write", cause: { _tag: "SendError", reason: "Closed" } })
        }))
      yield* awaitTrue(Effect.sync(() => recorder.closes.length === 1), "the close seen")
      expect(recorder.closes).toEqual([{ code: 4000, reason: "bye" }])
    }).pipe(Effect.scoped)))

  it.live("a CloseEvent the wire cannot carry (code 1005, a 200-byte reason): the write succeeds, the server sees 1000 and the reason cut to 123 bytes", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const recorder = yield* closeRecorder
      yield* withSocket({ url: recorder.url, ...fast }, (socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          yield* write("x")
          expect(yield* Effect.exit(write(new Socket.CloseEvent(1005, "r".repeat(200))))).toEqual(Exit.void)
        }))
      yield* awaitTrue(Effect.sync(() => recorder.closes.length === 1), "the close seen")
      expect(recorder.closes).toEqual([{ code: 1000, reason: "r".repeat(123) }])
    }).pipe(Effect.scoped)))
})
