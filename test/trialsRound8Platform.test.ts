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
const withSocket = <A, E>(options: LifelinePlatform.Options, body: (socket: Socket.Socket) => Effect.Effect<A, E>) =>
  Effect.flatMap(Socket.Socket, body).pipe(
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
