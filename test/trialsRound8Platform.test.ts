/**
 * Round 8 trials: `effect-lifeline/platform`'s Socket and `@effect/rpc` over it, as their users
 * write them (Socket.toChannelString piped through a Stream, the writer from several fibers and
 * after the end, rpc under load across a restart, a stream cut short, options that are wrong),
 * against real servers on 127.0.0.1, with the exact outcome of each.
 */
import * as Socket from "@effect/platform/Socket"
import * as RpcClient from "@effect/rpc/RpcClient"
import { describe, expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import {
  Cause,
  Chunk,
  Deferred,
  Effect,
  Exit,
  Fiber,
  FiberId,
  HashSet,
  Layer,
  Logger,
  Option,
  Queue,
  Schedule,
  Stream
} from "effect"
import { Client } from "effect-lifeline"
import * as LifelinePlatform from "effect-lifeline/platform"
import { FaultProxy, TestServer } from "effect-lifeline/testing"
import { WebSocketServer } from "ws"
import * as Example from "../examples/rpc.js"
import { awaitState } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { fast as rpcFast, rpcClient, startRpcServer } from "./support/rpcKit.js"

const fast = { retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis", heartbeat: false } as const

/** The Socket of `LifelinePlatform.layer(options)`, for `body`; the layer (and its Client) ends with it. */
const withSocket = <A, E>(
  options: LifelinePlatform.Options,
  body: (socket: Socket.Socket) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.flatMap(Socket.Socket, (socket) => Effect.scoped(body(socket))).pipe(
    Effect.provide(LifelinePlatform.layer(options).pipe(Layer.provide(quietNode)))
  )

/** A fiber's exit, within 5 s (a test that fails instead of hanging when it never ends). */
const awaitBounded = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.timeoutFail(Fiber.await(fiber), { duration: "5 seconds", onTimeout: () => new Error("the fiber never ended") })

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
          const exit = yield* awaitBounded(running)
          expect(exit).toEqual(Exit.void)
          expect(received).toEqual(["one", "two"])
          expect(yield* server.received).toEqual(["one", "two"])
        }))
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
          const exit = yield* awaitBounded(first)
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
          expect(yield* awaitBounded(second)).toEqual(Exit.void)
          expect(received).toEqual(["one", "two"])
        }))
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
      expect(yield* Effect.exit(Effect.timeout(write(new Socket.CloseEvent(1000, "again")), "2 seconds"))).toEqual(
        Exit.void
      )
      expect(yield* server.received).toEqual(["inside"])
    })))

  it.live("one writer from two fibers at once, 100 writes each: the server gets all 200, each fiber's in its order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          const writes = (name: string) =>
            Effect.forEach(Array.from({ length: 100 }, (_, i) => `${name}${i}`), write, { discard: true })
          yield* Effect.all([writes("a"), writes("b")], { concurrency: 2, discard: true })
          yield* awaitTrue(Effect.map(server.received, (r) => r.length === 200), "200 received")
        }))
      const received = (yield* server.received) as ReadonlyArray<string>
      expect(received.length).toBe(200)
      expect(received.filter((m) => m.startsWith("a"))).toEqual(Array.from({ length: 100 }, (_, i) => `a${i}`))
      expect(received.filter((m) => m.startsWith("b"))).toEqual(Array.from({ length: 100 }, (_, i) => `b${i}`))
    })))

  it.live("a CloseEvent written through the writer: the server sees its code and reason; a run under way ends cleanly; writes after it fail SendError Closed", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const recorder = yield* closeRecorder
        yield* withSocket({ url: recorder.url, ...fast }, (socket) =>
          Effect.gen(function*() {
            const write = yield* socket.writer
            const reader = yield* Effect.fork(socket.runRaw(() => {}))
            yield* write("x")
            yield* write(new Socket.CloseEvent(4000, "bye"))
            expect(yield* awaitBounded(reader)).toEqual(Exit.void)
            const after = yield* Effect.exit(write("after"))
            const error = Exit.isFailure(after) ? Cause.squash(after.cause) : undefined
            expect(plainSocketError(error)).toMatchObject({
              reason: "Write",
              cause: { _tag: "SendError", reason: "Closed" }
            })
          }))
        yield* awaitTrue(Effect.sync(() => recorder.closes.length === 1), "the close seen")
        expect(recorder.closes).toEqual([{ code: 4000, reason: "bye" }])
      }).pipe(Effect.scoped)
    ))

  it.live("a CloseEvent the wire cannot carry (code 1005, a 200-byte reason): the write succeeds, the server sees 1000 and the reason cut to 123 bytes", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const recorder = yield* closeRecorder
        yield* withSocket({ url: recorder.url, ...fast }, (socket) =>
          Effect.gen(function*() {
            const write = yield* socket.writer
            yield* write("x")
            expect(yield* Effect.exit(write(new Socket.CloseEvent(1005, "r".repeat(200))))).toEqual(Exit.void)
          }))
        yield* awaitTrue(Effect.sync(() => recorder.closes.length === 1), "the close seen")
        expect(recorder.closes).toEqual([{ code: 1000, reason: "r".repeat(123) }])
      }).pipe(Effect.scoped)
    ))
})

/** What the rpc server saw: the Waits under way, the Count streams that ended. */
interface Seen {
  readonly waits: Queue.Queue<number>
  readonly echoed: Array<string>
  readonly countEnded: Deferred.Deferred<void>
}

/** The example's API with handlers that tell the test what arrived; Count counts on forever, 1 ms apart, and says when it ends. */
const startServer = (port: number) =>
  Effect.gen(function*() {
    const seen: Seen = { waits: yield* Queue.unbounded<number>(), echoed: [], countEnded: yield* Deferred.make<void>() }
    const handlers = Example.Rpcs.toLayer({
      Echo: ({ text }) => Effect.sync(() => seen.echoed.push(text)).pipe(Effect.as(text)),
      Add: ({ a, b }) => Effect.succeed(a + b),
      Wait: ({ millis }) =>
        Queue.offer(seen.waits, millis).pipe(Effect.zipRight(Effect.sleep(millis)), Effect.as(millis)),
      Count: () =>
        Stream.iterate(1, (n) => n + 1).pipe(
          Stream.tap(() => Effect.sleep("1 millis")),
          Stream.ensuring(Deferred.succeed(seen.countEnded, undefined))
        )
    })
    return { ...(yield* startRpcServer(port, handlers)), seen }
  })

/** Takes `count` items of `queue` (the server's record), bounded in time. */
const takeN = <A>(queue: Queue.Queue<A>, count: number) =>
  Effect.timeoutFail(Effect.replicateEffect(Queue.take(queue), count), {
    duration: "5 seconds",
    onTimeout: () => new Error(`the server never saw ${count}`)
  })

/** How a call ended, counted: answered, interrupted by the server's shutdown (fiber -503), RpcClientError by reason, past the bound, or else. */
const tally = (exits: ReadonlyArray<Exit.Exit<unknown, unknown>>) => {
  const counts: Record<string, number> = {}
  for (const exit of exits) {
    let key: string
    if (Exit.isSuccess(exit)) key = "answered"
    else if (
      Cause.isInterruptedOnly(exit.cause) &&
      [...Cause.interruptors(exit.cause)].every((id) => HashSet.has(FiberId.ids(id), -503))
    ) key = "interruptedByTheServer"
    else {
      const failure = Option.getOrUndefined(Cause.failureOption(exit.cause)) as any
      if (failure?._tag === "TimeoutException") key = "hung"
      else if (failure?._tag === "RpcClientError") {
        key = `RpcClientError ${failure.reason} (${failure.cause?.cause?._tag} ${failure.cause?.cause?.code})`
      } else key = `other: ${Cause.pretty(exit.cause)}`
    }
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

/**
 * A server that dies without a word (as rpc.test.ts's): the proxy swallows everything, the server
 * stops, the proxy resets the Client's connection (1006) and forwards again, to nothing.
 */
const killBehind = (proxy: FaultProxy.FaultProxy, server: { readonly stop: Effect.Effect<void> }) =>
  Effect.gen(function*() {
    yield* proxy.blackhole
    yield* server.stop
    yield* proxy.reset
    yield* proxy.restore
  })

/**
 * 200 calls over one RpcClient: 100 Waits of a minute in flight (the server saw all 100), the
 * server then stopped (on purpose, or killed behind a proxy), 100 Echos made while it is down, the
 * server restarted on the same port; each call under a bound of 10 s: a hang is the minute-long
 * Wait. (It was 2 s, counted from before the server had seen all 100; in one full run on a loaded
 * 2-core machine 26 of the 100 in flight reached it, which no run alone reproduced.) Returns how
 * they ended.
 */
const twoHundredAcrossARestart = (perConnection: boolean, how: "stop" | "kill") =>
  Effect.gen(function*() {
    const first = yield* startServer(0)
    const proxy = yield* FaultProxy.make(first.port)
    const client = yield* Client.make({ url: proxy.url, ...rpcFast })
    const rpc = yield* rpcClient(client, perConnection)
    const bounded = <A, E>(call: Effect.Effect<A, E>) => Effect.exit(Effect.timeout(call, "10 seconds"))
    const inFlight = yield* Effect.forEach(
      Array.from({ length: 100 }),
      () => Effect.fork(bounded(rpc.Wait({ millis: 60_000 }))),
      { concurrency: "unbounded" }
    )
    yield* takeN(first.seen.waits, 100)
    if (how === "stop") yield* first.stop
    else yield* killBehind(proxy, first)
    yield* awaitState(client, (state) => state._tag === "Backoff")
    const whileDown = yield* Effect.forEach(
      Array.from({ length: 100 }, (_, i) => `down${i}`),
      (text) => Effect.fork(bounded(rpc.Echo({ text }))),
      { concurrency: "unbounded" }
    )
    const second = yield* startServer(first.port)
    const ended = {
      inFlight: tally(yield* Effect.forEach(inFlight, Fiber.join)),
      whileDown: tally(yield* Effect.forEach(whileDown, Fiber.join))
    }
    const echoedAfter = second.seen.echoed.length
    yield* second.stop
    return { ...ended, echoedAfter }
  }).pipe(Effect.scoped, Effect.provide(quietNode), Effect.provide(Logger.remove(Logger.defaultLogger)))

describe("@effect/rpc: 200 calls, the server restarted in the middle", () => {
  it.live("perConnection, stopped on purpose: the 100 in flight end interrupted by the server, the 100 made while down fail at once with RpcClientError Protocol (Disconnected 1001); none hangs", () =>
    Effect.gen(function*() {
      expect(yield* twoHundredAcrossARestart(true, "stop")).toEqual({
        inFlight: { interruptedByTheServer: 100 },
        whileDown: { "RpcClientError Protocol (Disconnected 1001)": 100 },
        echoedAfter: 0
      })
    }))

  it.live("perConnection, killed: the 100 in flight and the 100 made while down fail with RpcClientError Protocol (Disconnected 1006); none hangs", () =>
    Effect.gen(function*() {
      expect(yield* twoHundredAcrossARestart(true, "kill")).toEqual({
        inFlight: { "RpcClientError Protocol (Disconnected 1006)": 100 },
        whileDown: { "RpcClientError Protocol (Disconnected 1006)": 100 },
        echoedAfter: 0
      })
    }))

  it.live("default, stopped on purpose: the 100 in flight end interrupted by the server, the 100 made while down wait in the outbox and are answered after the restart", () =>
    Effect.gen(function*() {
      expect(yield* twoHundredAcrossARestart(false, "stop")).toEqual({
        inFlight: { interruptedByTheServer: 100 },
        whileDown: { answered: 100 },
        echoedAfter: 100
      })
    }))

  it.live("default, killed: the 100 made while down are answered after the restart; the 100 in flight are never answered (past the bound: the reason perConnection exists)", () =>
    Effect.gen(function*() {
      expect(yield* twoHundredAcrossARestart(false, "kill")).toEqual({
        inFlight: { hung: 100 },
        whileDown: { answered: 100 },
        echoedAfter: 100
      })
    }))
})

describe("@effect/rpc: a stream cut short, a request too large", () => {
  it.live("a streaming rpc consumed with Stream.take(3), then the client's scope closed: the take gets 1, 2, 3 and the server's stream ends", () =>
    Effect.gen(function*() {
      const server = yield* startServer(0)
      const taken = yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, ...rpcFast })
        const rpc = yield* rpcClient(client, true)
        return Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(rpc.Count({ to: -1 }), 3)))
      }).pipe(Effect.scoped)
      expect(taken).toEqual([1, 2, 3])
      const ended = yield* Effect.exit(Effect.timeout(Deferred.await(server.seen.countEnded), "5 seconds"))
      expect(ended).toEqual(Exit.void)
      yield* server.stop
    }).pipe(Effect.provide(quietNode)))

  it.live("Stream.take(3) alone, the client kept open: the server's stream ends too (the rpc client interrupts it)", () =>
    Effect.gen(function*() {
      const server = yield* startServer(0)
      yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, ...rpcFast })
        const rpc = yield* rpcClient(client, true)
        expect(Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(rpc.Count({ to: -1 }), 3)))).toEqual([
          1,
          2,
          3
        ])
        const ended = yield* Effect.exit(Effect.timeout(Deferred.await(server.seen.countEnded), "5 seconds"))
        expect(ended).toEqual(Exit.void)
        // The link is still good for the next call.
        expect(yield* rpc.Echo({ text: "after" })).toBe("after")
      }).pipe(Effect.scoped)
      yield* server.stop
    }).pipe(Effect.provide(quietNode)))

  it.live("a request larger than connection.maxMessageSize, given to LifelinePlatform.layer through examples/rpc.ts's ProtocolLive: the call dies (RpcClient's orDie) with SocketGenericError Write, SendError TooLarge inside; never sent; the next call is answered", () =>
    Effect.gen(function*() {
      const server = yield* startServer(0)
      const outcome = yield* Effect.gen(function*() {
        const rpc = yield* RpcClient.make(Example.Rpcs)
        const big = yield* Effect.exit(Effect.timeout(rpc.Echo({ text: "x".repeat(1000) }), "2 seconds"))
        const small = yield* rpc.Echo({ text: "small" })
        return { big, small }
      }).pipe(
        Effect.scoped,
        Effect.provide(Example.ProtocolLive(server.url, { connection: { maxMessageSize: 200 }, heartbeat: false })),
        Effect.provide(Logger.remove(Logger.defaultLogger))
      )
      expect(Exit.isFailure(outcome.big) && Cause.isDie(outcome.big.cause)).toBe(true)
      const defect = Exit.isFailure(outcome.big) ? Cause.squash(outcome.big.cause) : undefined
      expect(plainSocketError(defect)).toEqual({
        _tag: "SocketError",
        reason: "Write",
        cause: { _tag: "SendError", reason: "TooLarge", code: undefined, initiator: undefined }
      })
      expect(outcome.small).toBe("small")
      expect(server.seen.echoed).toEqual(["small"])
      yield* server.stop
    }))
})

describe("LifelinePlatform.layer given bad options", () => {
  const runOf = (options: unknown) =>
    withSocket(
      options as LifelinePlatform.Options,
      (socket) => Effect.exit(Effect.timeout(socket.runRaw(() => {}), "2 seconds"))
    )

  it.live("a malformed URL with a password: run fails with SocketGenericError Open, lifeline's ConnectError InvalidUrl as cause; the password in no message", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const exit = yield* runOf({ url: "ws://user:hunter2secret@[::1/x", heartbeat: false })
      expect(Exit.isFailure(exit) && Option.isSome(Cause.failureOption(exit.cause))).toBe(true)
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Socket.SocketError : undefined
      expect(plainSocketError(error)).toEqual({
        _tag: "SocketError",
        reason: "Open",
        cause: { _tag: "ConnectError", reason: "InvalidUrl", code: undefined, initiator: undefined }
      })
      const texts = [
        String(error),
        error?.message,
        String((error as any)?.cause),
        (error as any)?.cause?.message,
        JSON.stringify(error),
        JSON.stringify((error as any)?.cause),
        String((error as any)?.cause?.url),
        String((error as any)?.cause?.detail),
        Cause.pretty(Exit.isFailure(exit) ? exit.cause : Cause.empty)
      ].join("\n")
      expect(texts).not.toContain("hunter2secret")
    })))

  it.live("outbox.capacity 0: run fails with SocketGenericError Open, lifeline's ConnectError InvalidOptions naming outbox.capacity; the writer fails each write with SendError Closed; no request reaches the server", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const exit = yield* runOf({ url: server.url, heartbeat: false, outbox: { capacity: 0 } })
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as Socket.SocketError : undefined
      expect(plainSocketError(error)).toEqual({
        _tag: "SocketError",
        reason: "Open",
        cause: { _tag: "ConnectError", reason: "InvalidOptions", code: undefined, initiator: undefined }
      })
      expect(String((error as any).cause.message)).toContain("outbox.capacity")
      expect(yield* server.requests).toBe(0)
      // The writer of that Socket: each write fails at once, typed.
      const written = yield* withSocket(
        { url: server.url, heartbeat: false, outbox: { capacity: 0 } } as unknown as LifelinePlatform.Options,
        (socket) => Effect.flatMap(socket.writer, (write) => Effect.exit(Effect.timeout(write("x"), "2 seconds")))
      )
      expect(plainSocketError(Exit.isFailure(written) ? Cause.squash(written.cause) : undefined)).toEqual({
        _tag: "SocketError",
        reason: "Write",
        cause: { _tag: "SendError", reason: "Closed", code: undefined, initiator: undefined }
      })
    })))
})
