/**
 * @effect/rpc over lifeline: a real RpcServer (examples/rpcServer.ts, a SocketServer over ws) on
 * 127.0.0.1, an RpcClient over `effect-lifeline/platform`'s Socket; the server stopped and started
 * again on the same port, and exactly what the rpc calls see: in flight, made while it is down,
 * and after it is back.
 */
import type * as Socket from "@effect/platform/Socket"
import type * as RpcClientError from "@effect/rpc/RpcClientError"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, FiberId, HashSet, Logger, Option, Queue, Schedule, Scope, Stream } from "effect"
import { Client, Connection } from "effect-lifeline"
import { FaultProxy } from "effect-lifeline/testing"
import * as Example from "../examples/rpc.js"
import { makeWebSocketServer } from "../examples/rpcServer.js"
import { awaitState } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { fast, rpcClient, startRpcServer } from "./support/rpcKit.js"

const quiet = Effect.provide(Logger.remove(Logger.defaultLogger))

/** What a test server saw: the texts it echoed, the Waits that arrived. */
interface Seen {
  readonly echoed: Array<string>
  readonly waits: Queue.Queue<number>
}

/** The example's handlers, with a record of what arrived. */
const handlers = (seen: Seen) =>
  Example.Rpcs.toLayer({
    Echo: ({ text }) => Effect.sync(() => seen.echoed.push(text)).pipe(Effect.as(text)),
    Add: ({ a, b }) => Effect.succeed(a + b),
    Wait: ({ millis }) =>
      Queue.offer(seen.waits, millis).pipe(Effect.zipRight(Effect.sleep(millis)), Effect.as(millis)),
    // A negative `to`: 1, then (once it is under way, told through `waits`) nothing more, ever.
    Count: ({ to }) =>
      to >= 0 ? Stream.range(1, to) : Stream.make(1).pipe(
        Stream.concat(Stream.drain(Stream.fromEffect(Queue.offer(seen.waits, to)))),
        Stream.concat(Stream.never)
      )
  })

/**
 * Starts an rpc server on `port` (0: any) in a scope of its own; `stop` closes it as an app's
 * shutdown does: the RpcServer ends the calls under way, every client gets a close 1001 (100 ms
 * for the handshake), then the listener closes. A port just freed may take a moment to bind
 * again: up to 50 tries, 10 ms apart.
 */
const startServer = (port: number) =>
  Effect.gen(function*() {
    const seen: Seen = { echoed: [], waits: yield* Queue.unbounded<number>() }
    return { ...(yield* startRpcServer(port, handlers(seen))), seen }
  })

/**
 * A Client and its RpcClient (perConnection as given) on a server stopped on purpose while a Wait
 * was in flight: that call ends interrupted by the server, and the Client is in Backoff.
 */
const stopWithACallInFlight = (perConnection: boolean) =>
  Effect.gen(function*() {
    const first = yield* startServer(0)
    const client = yield* Client.make({ url: first.url, ...fast })
    const rpc = yield* rpcClient(client, perConnection)
    const inFlight = yield* Effect.fork(rpc.Wait({ millis: 60_000 }))
    expect(yield* Queue.take(first.seen.waits)).toBe(60_000)
    yield* first.stop
    expect(interruptedByTheServer(yield* Fiber.await(inFlight))).toBe(true)
    yield* awaitState(client, (state) => state._tag === "Backoff")
    return { first, client, rpc }
  })

/**
 * Retries `call` while it fails, at most 200 times, 10 ms apart: once the link is back, the rpc
 * client reads again after its own `retrySchedule` pause, and calls fail until it does.
 */
const untilItSucceeds = <A, E>(call: Effect.Effect<A, E>) =>
  Effect.retry(call, Schedule.spaced("10 millis").pipe(Schedule.intersect(Schedule.recurs(200))))

/** Waits (bounded, real time) until the Client's outbox holds `size` messages. */
const awaitOutbox = (client: Client.Client, size: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 400; turn++) {
      if ((yield* client.outboxSize) === size) return
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`the outbox never held ${size}`)
  })

/**
 * A server that dies without a word: the proxy in front of it swallows everything (the
 * RpcServer's last answers and its close frame are lost), the server stops, the proxy resets
 * the Client's connection (no close frame: 1006) and forwards again, to nothing until a new
 * server listens on the port.
 */
const kill = (proxy: FaultProxy.FaultProxy, server: { readonly stop: Effect.Effect<void> }) =>
  Effect.gen(function*() {
    yield* proxy.blackhole
    yield* server.stop
    yield* proxy.reset
    yield* proxy.restore
  })

/**
 * An RpcClientError as plain data, three levels down (its cause, a SocketError, and lifeline's
 * error inside): the error itself carries the rpc client's span, which `toMatchObject` cannot walk.
 */
const plain = (error: RpcClientError.RpcClientError) => {
  const socketError = error.cause as {
    readonly _tag: string
    readonly reason: string
    readonly code?: number
    readonly cause: any
  }
  const lifeline = socketError.cause
  return {
    _tag: error._tag,
    reason: error.reason,
    message: error.message,
    cause: {
      _tag: socketError._tag,
      reason: socketError.reason,
      ...(socketError.code === undefined ? {} : { code: socketError.code }),
      cause: { _tag: lifeline._tag, code: lifeline.code, initiator: lifeline.initiator, wasClean: lifeline.wasClean }
    }
  }
}

/** The in-flight call's end when the server stops on purpose: interrupted, by the RpcServer's shutdown. */
const interruptedByTheServer = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) &&
  [...Cause.interruptors(exit.cause)].every((id) => HashSet.has(FiberId.ids(id), -503))

describe("@effect/rpc over effect-lifeline/platform", () => {
  it.scopedLive("examples/rpc.ts main: Echo, Add and the Count stream over a real rpc server", () =>
    Effect.gen(function*() {
      const server = yield* startServer(0)
      expect(yield* Example.main(server.url)).toEqual({ echo: "hello", sum: 3, counted: [1, 2, 3] })
      expect(server.seen.echoed).toEqual(["hello"])
      yield* server.stop
    }).pipe(quiet))

  it.scopedLive("killed and restarted on the same port, perConnection: the call and the stream in flight fail with RpcClientError Protocol (lifeline's Disconnected 1006 inside), calls while it is down fail at once and never reach a server, calls after the restart succeed", () =>
    Effect.gen(function*() {
      const first = yield* startServer(0)
      const proxy = yield* FaultProxy.make(first.port)
      const client = yield* Client.make({ url: proxy.url, ...fast })
      const rpc = yield* rpcClient(client, true)

      expect(yield* rpc.Echo({ text: "before" })).toBe("before")
      const inFlight = yield* Effect.fork(rpc.Wait({ millis: 60_000 }))
      expect(yield* Queue.take(first.seen.waits)).toBe(60_000)
      const streamed: Array<number> = []
      const streaming = yield* Effect.fork(
        Stream.runForEach(rpc.Count({ to: -1 }), (n) => Effect.sync(() => streamed.push(n)))
      )
      expect(yield* Queue.take(first.seen.waits)).toBe(-1)

      yield* kill(proxy, first)
      // Bounded: without perConnection the call would wait forever.
      const error = yield* Effect.flip(Fiber.join(inFlight)).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the call in flight never ended" })
      )
      expect(plain(error)).toEqual({
        _tag: "RpcClientError",
        reason: "Protocol",
        message: "Error in socket",
        cause: {
          _tag: "SocketError",
          reason: "Read",
          cause: { _tag: "Disconnected", code: 1006, initiator: "transport", wasClean: false }
        }
      })
      // The stream under way fails with the same error, after what it had received.
      const streamError = yield* Effect.flip(Fiber.join(streaming)).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the stream in flight never ended" })
      )
      expect(plain(streamError)).toEqual(plain(error))
      expect(streamed).toEqual([1])

      // Down: a call fails at once with that same error, and is not queued.
      yield* awaitState(client, (state) => state._tag === "Backoff")
      expect(plain(yield* Effect.flip(rpc.Echo({ text: "while down" })))).toEqual(plain(error))
      expect(yield* client.outboxSize).toBe(0)

      const second = yield* startServer(first.port)
      yield* awaitState(client, (state) => state._tag === "Open")
      expect(yield* untilItSucceeds(rpc.Echo({ text: "after" }))).toBe("after")
      expect(yield* rpc.Add({ a: 2, b: 3 })).toBe(5)
      expect(yield* Stream.runCollect(rpc.Count({ to: 3 })).pipe(Effect.map((chunk) => [...chunk]))).toEqual([1, 2, 3])
      // Nothing sent while down reached a server; the lost Wait was not sent again.
      expect(first.seen.echoed).toEqual(["before"])
      expect(second.seen.echoed).toEqual(["after"])
      expect(yield* Queue.size(second.seen.waits)).toBe(0)
      yield* second.stop
    }).pipe(Effect.provide(quietNode)))

  it.scopedLive("killed and restarted, default (a run spans reconnects): a call made while it is down waits in lifeline's outbox and is answered after the restart; the call in flight is never answered", () =>
    Effect.gen(function*() {
      const first = yield* startServer(0)
      const proxy = yield* FaultProxy.make(first.port)
      const client = yield* Client.make({ url: proxy.url, ...fast })
      const rpc = yield* rpcClient(client, false)

      expect(yield* rpc.Echo({ text: "before" })).toBe("before")
      const inFlight = yield* Effect.fork(rpc.Wait({ millis: 60_000 }))
      expect(yield* Queue.take(first.seen.waits)).toBe(60_000)

      yield* kill(proxy, first)
      yield* awaitState(client, (state) => state._tag === "Backoff")
      const queued = yield* Effect.fork(rpc.Echo({ text: "while down" }))
      yield* awaitOutbox(client, 1)

      const second = yield* startServer(first.port)
      expect(yield* Fiber.join(queued)).toBe("while down")
      expect(yield* rpc.Echo({ text: "after" })).toBe("after")
      expect(second.seen.echoed).toEqual(["while down", "after"])
      // The new server never heard of the Wait, and nothing tells the rpc client that its answer is lost.
      expect(yield* Queue.size(second.seen.waits)).toBe(0)
      expect(Option.isNone(yield* Fiber.poll(inFlight))).toBe(true)
      yield* Fiber.interrupt(inFlight)
      yield* second.stop
    }).pipe(Effect.provide(quietNode)))

  it.scopedLive("stopped on purpose (RpcServer shut down, close 1001) and restarted, perConnection: the call in flight ends interrupted by the server (fiber id -503), calls while it is down fail at once with RpcClientError Protocol (SocketCloseError 1001, Disconnected 1001 inside), calls after the restart succeed", () =>
    Effect.gen(function*() {
      const { first, rpc } = yield* stopWithACallInFlight(true)
      expect(plain(yield* Effect.flip(rpc.Echo({ text: "while down" })))).toEqual({
        _tag: "RpcClientError",
        reason: "Protocol",
        message: "Error in socket",
        cause: {
          _tag: "SocketError",
          reason: "Close",
          code: 1001,
          cause: { _tag: "Disconnected", code: 1001, initiator: "server", wasClean: true }
        }
      })

      const second = yield* startServer(first.port)
      expect(yield* untilItSucceeds(rpc.Echo({ text: "after" }))).toBe("after")
      expect(second.seen.echoed).toEqual(["after"])
      yield* second.stop
    }).pipe(Effect.provide(quietNode)))

  it.scopedLive("stopped on purpose and restarted, default: the call in flight ends interrupted by the server; a call while it is down waits in the outbox and is answered after the restart", () =>
    Effect.gen(function*() {
      const { client, first, rpc } = yield* stopWithACallInFlight(false)
      const queued = yield* Effect.fork(rpc.Echo({ text: "while down" }))
      yield* awaitOutbox(client, 1)
      const second = yield* startServer(first.port)
      expect(yield* Fiber.join(queued)).toBe("while down")
      expect(second.seen.echoed).toEqual(["while down"])
      yield* second.stop
    }).pipe(Effect.provide(quietNode)))
  it.scopedLive("killed, default, an outbox of 1: the second call made while it is down dies (RpcClient's orDie over lifeline's SendError OutboxFull); the first is answered after the restart", () =>
    Effect.gen(function*() {
      const first = yield* startServer(0)
      const proxy = yield* FaultProxy.make(first.port)
      const client = yield* Client.make({ url: proxy.url, ...fast, outbox: { capacity: 1 } })
      const rpc = yield* rpcClient(client, false)

      expect(yield* rpc.Echo({ text: "before" })).toBe("before")
      yield* kill(proxy, first)
      yield* awaitState(client, (state) => state._tag === "Backoff")
      const queued = yield* Effect.fork(rpc.Echo({ text: "queued" }))
      yield* awaitOutbox(client, 1)
      const refused = yield* Effect.exit(rpc.Echo({ text: "refused" }))
      expect(Exit.isFailure(refused) && Cause.isDie(refused.cause)).toBe(true)
      const defect = Exit.isFailure(refused) ? Cause.squash(refused.cause) as Socket.SocketError : undefined
      expect(defect).toMatchObject({
        _tag: "SocketError",
        reason: "Write",
        cause: { _tag: "SendError", reason: "OutboxFull" }
      })

      const second = yield* startServer(first.port)
      expect(yield* Fiber.join(queued)).toBe("queued")
      expect(second.seen.echoed).toEqual(["queued"])
      yield* second.stop
    }).pipe(Effect.provide(quietNode)))
})

describe("examples/rpcServer.ts: a SocketServer over ws", () => {
  it.live("a connection made before run waits for it and is served; the stop closes it with 1001 and leaves no handle", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const serverScope = yield* Scope.make()
        const server = yield* Scope.extend(makeWebSocketServer({ port: 0 }), serverScope)
        if (server.address._tag !== "TcpAddress") return yield* Effect.dieMessage("not a TCP address")
        const connection = yield* Connection.connect(`ws://127.0.0.1:${server.address.port}`)
        yield* connection.send("early")
        // Served only now: an echo per frame.
        yield* Effect.forkIn(
          server.run((socket) => Effect.flatMap(socket.writer, (write) => socket.runRaw((data) => write(data)))),
          serverScope
        )
        const echoed = yield* Stream.runHead(connection.messages).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the early connection was never served" })
        )
        expect(echoed).toEqual(Option.some("early"))
        yield* Scope.close(serverScope, Exit.void)
        expect(yield* connection.closed).toMatchObject({ code: 1001, initiator: "server", wasClean: true })
      }).pipe(Effect.provide(quietNode))
    ))

  it.live("main over a server that stops afterwards: no handle left", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* startServer(0)
        expect(yield* Example.main(server.url)).toEqual({ echo: "hello", sum: 3, counted: [1, 2, 3] })
        yield* server.stop
      }).pipe(quiet)
    ))
})
