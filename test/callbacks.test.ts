/**
 * The Client's attempts on callbacks (`src/internal/client/callbacks.ts`): a Client whose attempts
 * run no user code (the default retry and shouldRetry, static URL, no onOpen, no breakers) connects,
 * fails, backs off and reconnects with no supervisor fiber. What it does must be what the fiber
 * path does: the same delays, states, logs, releases and handles.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Logger, LogLevel, Option, Random, ScheduleIntervals } from "effect"
import { Client, Reconnect, Transport } from "../src/index.js"
import { defaultDelay } from "../src/internal/client/callbacks.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag, throughAnOutage } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { captureLogs } from "./support/logs.js"
import { provideNode } from "./support/node.js"
import { tcpServer } from "./support/tcpServer.js"
import { breakingClock } from "./support/throwing.js"

/** A TCP server on 127.0.0.1 that accepts and never answers: a handshake that hangs. */
const silentServer = tcpServer()

describe("Client attempts on callbacks", () => {
  it.effect("the default schedule's arithmetic gives the delays Reconnect.defaultSchedule gives, step for step", () =>
    Effect.gen(function*() {
      const randoms = [0, 0.999, 0.5, 0.25, 0.75, 0.1, 0.9, 0.33, 0.66, 0.01, 0.42, 0.87] as const
      let state: unknown = Reconnect.defaultSchedule.initial
      const now = 1_000_000
      for (let step = 0; step < 12; step++) {
        const [next, , decision] = yield* Reconnect.defaultSchedule.step(now, undefined as never, state).pipe(
          Effect.withRandom(Random.fixed([randoms[step]!]))
        )
        state = next
        expect(decision._tag).toBe("Continue")
        const delay = ScheduleIntervals.start((decision as { intervals: ScheduleIntervals.Intervals }).intervals) - now
        expect(defaultDelay(step, randoms[step]!)).toBe(delay)
      }
    }))

  it.live("with the default retry: refused, Backoff with the default's first delay; reconnect wakes it; Open once the server is back", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const client = yield* Client.make({ url: server.url })
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({
        _tag: "Backoff",
        attempt: 1,
        error: { _tag: "ConnectError", reason: "ConnectionRefused" }
      })
      // Uniform in [0.1, 1.9] x 1.1 s.
      const millis = (backoff as { delay: { value: { millis: number } } }).delay.value.millis
      expect(millis).toBeGreaterThanOrEqual(110)
      expect(millis).toBeLessThanOrEqual(2090)
      // Woken: a new series (attempt 1 again), refused again.
      yield* client.reconnect
      yield* awaitState(client, (state) => state._tag === "Connecting")
      yield* awaitState(client, isTag("Backoff"))
      yield* server.restart
      yield* client.reconnect
      const open = yield* awaitState(client, isTag("Open"))
      expect(open).toMatchObject({ _tag: "Open", attempt: 1 })
      yield* client.send("after")
      expect(yield* client.close()).toEqual([])
      expect(yield* server.accepted).toBe(1)
    })).pipe(provideNode))

  it.live("logs as the fiber path does: one WARN when it cannot connect, one INFO when it is back; DEBUG lines only at Debug", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const run = (minimum: LogLevel.LogLevel) =>
        Effect.gen(function*() {
          const capture = captureLogs(minimum)
          const server = yield* TestServer.make()
          yield* server.kill
          yield* Effect.gen(function*() {
            const client = yield* Client.make({ url: server.url })
            yield* throughAnOutage(client, server)
            // The log lines run on fibers of their own: let them.
            for (let turn = 0; turn < 50 && capture.lines.length < (minimum === LogLevel.Info ? 2 : 7); turn++) {
              yield* Effect.sleep("2 millis")
            }
          }).pipe(Effect.scoped, Effect.provide(capture.layer))
          return capture.lines.map((line) => [line.level, line.message.split(":")[1]?.trim().split(" ")[0]])
        })
      expect(yield* run(LogLevel.Info)).toEqual([["WARN", "cannot"], ["INFO", "link"]])
      expect(yield* run(LogLevel.Debug)).toEqual([
        ["DEBUG", "Connecting"],
        ["WARN", "cannot"],
        ["DEBUG", "Connecting"],
        ["DEBUG", "Backoff"],
        ["DEBUG", "Connecting"],
        ["INFO", "link"],
        ["DEBUG", "Closed"]
      ])
    })).pipe(provideNode))

  it.live("a handshake that never answers: TimeoutError open after openTimeout, the socket aborted; close in Backoff leaves no handle", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const silent = yield* silentServer
      const client = yield* Client.make({ url: silent.url, connection: { openTimeout: "100 millis" } })
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({ error: { _tag: "TimeoutError", operation: "open" } })
      expect(yield* client.close()).toEqual([])
      expect(yield* client.state.get).toMatchObject({ _tag: "Closed" })
    })).pipe(provideNode))

  it.live("close while the handshake is under way: the socket is released before close returns, nothing left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.hangHandshake
      const client = yield* Client.make({ url: server.url, outbox: { capacity: 4 } })
      yield* awaitState(client, isTag("Connecting"))
      yield* client.enqueue("queued")
      // Waits until the server saw the request: the socket is CONNECTING.
      for (let turn = 0; turn < 200 && (yield* server.requests) === 0; turn++) yield* Effect.sleep("2 millis")
      expect(yield* client.close()).toEqual(["queued"])
      expect(yield* client.state.get).toMatchObject({ _tag: "Closed" })
      expect(yield* server.accepted).toBe(0)
    })).pipe(provideNode))

  it.live("a fatal answer (401) closes the Client with it, typed, from the socket's callback", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(401)
      const client = yield* Client.make({ url: server.url })
      const error = yield* Effect.flip(client.awaitOpen)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 401 })
      expect(yield* client.state.get).toMatchObject({ _tag: "Closed", error: { _tag: "Some" } })
    })).pipe(provideNode))

  it.live("a session that ends: the supervisor releases it, then backs off on callbacks; it reconnects when woken", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url })
      yield* client.awaitOpen
      yield* server.closeAll(1011, "restarting")
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({ error: { _tag: "Disconnected", code: 1011, initiator: "server" } })
      yield* client.reconnect
      yield* awaitState(client, isTag("Open"))
      expect(yield* server.accepted).toBe(2)
    })).pipe(provideNode))

  it.live("a failed handshake whose socket never reports its close: decided after closeTimeout, the socket terminated", () => {
    const counts = { opened: 0, terminated: 0 }
    // Refuses every handshake, then never reports CLOSED: a transport that loses its close event.
    const transport: Transport.Transport = {
      platform: "node",
      open: (_request, listener) => {
        counts.opened++
        setTimeout(() => listener.onHandshakeFailure({ reason: "ConnectionRefused", detail: "refused" }), 1)
        return Either.right({
          readyState: () => 0,
          protocol: () => "",
          bufferedAmount: () => 0,
          send: () => {},
          close: () => {},
          terminate: () => {
            counts.terminated++
          },
          pause: () => false,
          resume: () => {},
          ping: () => false
        })
      }
    }
    return Effect.gen(function*() {
      const client = yield* Client.make({ url: "ws://127.0.0.1:1", connection: { closeTimeout: "50 millis" } })
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({ attempt: 1, error: { _tag: "ConnectError", reason: "ConnectionRefused" } })
      // Aborted when the failure came (still CONNECTING), and again when its close never came.
      expect(counts).toEqual({ opened: 1, terminated: 2 })
      expect(yield* client.close()).toEqual([])
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(Layer.succeed(Transport.Transport, transport), Logger.remove(Logger.defaultLogger)))
    )
  })

  it.live("a transport that reports the open and the close at once: never Open, Backoff with the Disconnected, as on the fiber path", () => {
    // An in-memory or replaying transport: OPEN then CLOSED before `open` returns.
    const transport: Transport.Transport = {
      platform: "node",
      open: (_request, listener) => {
        listener.onOpen()
        listener.onClose(1006, "", false)
        return Either.right({
          readyState: () => 3,
          protocol: () => "",
          bufferedAmount: () => 0,
          send: () => {},
          close: () => {},
          terminate: () => {},
          pause: () => false,
          resume: () => {},
          ping: () => false
        })
      }
    }
    return Effect.gen(function*() {
      const client = yield* Client.make({ url: "ws://127.0.0.1:1" })
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({ attempt: 1, error: { _tag: "Disconnected", code: 1006 } })
      expect(yield* client.close()).toEqual([])
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(Layer.succeed(Transport.Transport, transport), Logger.remove(Logger.defaultLogger)))
    )
  })

  it.live("a throw in the socket's open callback (a Clock that throws once): Closed with the defect, the socket gone; no uncaught exception", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      // The next call of the Clock after `make` returns is the open's, in the socket's callback.
      const clock = breakingClock()
      const client = yield* Client.make({ url: server.url }).pipe(Effect.withClock(clock))
      expect((yield* client.state.get)._tag).toBe("Connecting")
      clock.armed = true
      const closed = yield* awaitState(client, isTag("Closed"))
      expect(clock.armed).toBe(false)
      expect(closed).toMatchObject({
        _tag: "Closed",
        error: { _tag: "Some", value: { _tag: "ConnectError", reason: "InvalidOptions" } }
      })
      const error = (closed as { error: Option.Option<{ detail: string }> }).error
      expect(Option.getOrThrow(error).detail).toContain("the client failed: the clock broke")
      expect(yield* Effect.either(client.awaitOpen)).toMatchObject({
        _tag: "Left",
        left: { _tag: "ConnectError", reason: "InvalidOptions" }
      })
      // The attempt's socket was terminated: the server saw it open and go.
      expect(yield* server.accepted).toBe(1)
      expect(yield* client.close()).toEqual([])
    })).pipe(provideNode))

  it.live("a throw in the heartbeat's timer (a Clock that throws once): the session ends, Closed with the defect; no uncaught exception", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      // Open and quiet: the next call of the Clock is the heartbeat's sample, in its timer's callback.
      const clock = breakingClock()
      const client = yield* Client.make({ url: server.url, heartbeat: { interval: "100 millis", timeout: "1 second" } })
        .pipe(Effect.withClock(clock))
      yield* client.awaitOpen
      clock.armed = true
      const closed = yield* awaitState(client, isTag("Closed"))
      expect(clock.armed).toBe(false)
      const error = Option.getOrThrow(
        (closed as { error: Option.Option<{ _tag: string; reason: string; detail: string }> }).error
      )
      expect([error._tag, error.reason]).toEqual(["ConnectError", "InvalidOptions"])
      expect(error.detail).toContain("the heartbeat failed: the clock broke")
      // The session's connection was released: one connection, closed.
      expect(yield* server.accepted).toBe(1)
      expect(yield* client.close()).toEqual([])
    })).pipe(provideNode))
})
