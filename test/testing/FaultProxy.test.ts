import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Option, Queue } from "effect"
import type { Scope } from "effect"
import * as Net from "node:net"
import { FaultProxy, TestServer } from "../../src/testing/index.js"
import { expectNothingLeftBehind } from "./leakCheck.js"
import * as RawClient from "./rawClient.js"

const elapsedMillis = <A>(effect: Effect.Effect<A>): Effect.Effect<readonly [A, number]> =>
  Effect.suspend(() => {
    const startedAt = performance.now()
    return Effect.map(effect, (value) => [value, performance.now() - startedAt] as const)
  })

/** A plain TCP client, for what ws hides: it reports a reset as a 1006 close, not as an error. */
const connectTcp = (
  port: number
): Effect.Effect<{ readonly errorCode: Effect.Effect<string | undefined> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connected = yield* Deferred.make<void>()
    const failed = yield* Deferred.make<string | undefined>()
    const closed = yield* Deferred.make<void>()
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const socket = Net.connect({ host: "127.0.0.1", port })
        socket.on("connect", () => Deferred.unsafeDone(connected, Exit.void))
        // Reading, so that an incoming RST surfaces as a read error.
        socket.on("data", () => {})
        socket.on("error", (error: NodeJS.ErrnoException) => Deferred.unsafeDone(failed, Exit.succeed(error.code)))
        socket.on("close", () => Deferred.unsafeDone(closed, Exit.void))
        return socket
      }),
      (socket) => Effect.sync(() => socket.destroy()).pipe(Effect.zipRight(Deferred.await(closed)))
    )
    const connectFailed = Effect.flatMap(Deferred.await(failed), (code) => Effect.dieMessage(`TCP connect: ${code}`))
    yield* Effect.raceFirst(Deferred.await(connected), connectFailed)
    return { errorCode: Deferred.await(failed) }
  })

describe("FaultProxy", () => {
  it.scoped("forwards both ways to its target, and an orderly close ends both sides", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      expect(proxy.port).not.toBe(server.port)
      expect(proxy.url).toBe(`ws://127.0.0.1:${proxy.port}`)
      const client = yield* RawClient.open(proxy.url)
      client.ws.send("through")
      client.ws.send(new Uint8Array([1, 2]))
      expect(yield* Queue.take(client.messages)).toBe("through")
      expect(yield* Queue.take(client.messages)).toEqual(new Uint8Array([1, 2]))
      expect(yield* proxy.connections).toBe(1)
      expect(yield* server.connections).toBe(1)
      client.ws.close(1000, "done")
      expect(yield* client.closed).toEqual({ code: 1000, reason: "done" })
      expect(yield* RawClient.eventually(proxy.connections, (open) => open === 0)).toBe(0)
      expect(yield* RawClient.eventually(server.connections, (open) => open === 0)).toBe(0)
    }))

  it.scoped("blackhole: nothing crosses either way, every connection stays open; restore forwards again", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* RawClient.open(proxy.url)
      yield* proxy.blackhole
      client.ws.send("lost upstream")
      client.ws.ping("lost ping")
      yield* server.broadcast("lost downstream")
      const late = yield* RawClient.start(proxy.url)
      expect(yield* RawClient.within(40, Queue.take(client.messages))).toEqual(Option.none())
      expect(yield* RawClient.within(0, late.handshake)).toEqual(Option.none())
      expect(yield* Queue.size(client.pongs)).toBe(0)
      expect(yield* server.received).toEqual([])
      expect(yield* server.pings).toBe(0)
      expect(client.ws.readyState).toBe(client.ws.OPEN)
      expect(yield* proxy.connections).toBe(2)
      yield* proxy.restore
      client.ws.send("after restore")
      expect(yield* Queue.take(client.messages)).toBe("after restore")
      expect(yield* server.received).toEqual(["after restore"])
      expect(late.errors).toEqual([])
    }))

  it.scoped("latency delays each direction and keeps the order; latency 0 removes it", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* RawClient.open(proxy.url)
      yield* proxy.latency(40)
      const [echoed, slowMillis] = yield* elapsedMillis(Effect.suspend(() => {
        for (let index = 0; index < 5; index++) client.ws.send(`message ${index}`)
        return Effect.forEach([0, 1, 2, 3, 4], () => Queue.take(client.messages))
      }))
      expect(echoed).toEqual(["message 0", "message 1", "message 2", "message 3", "message 4"])
      expect(slowMillis).toBeGreaterThanOrEqual(75)
      yield* proxy.latency(0)
      client.ws.send("prompt")
      expect(yield* RawClient.within(35, Queue.take(client.messages))).toEqual(Option.some("prompt"))
    }))

  it.scoped("reset: the ws client closes with 1006, the server loses the connection, new ones are proxied", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* RawClient.open(proxy.url)
      yield* proxy.reset
      expect(yield* proxy.connections).toBe(0)
      expect(yield* client.closed).toEqual({ code: 1006, reason: "" })
      // ws turns a reset into a 1006 close without an error event.
      expect(client.errors).toEqual([])
      expect(yield* RawClient.eventually(server.connections, (open) => open === 0)).toBe(0)
      const again = yield* RawClient.open(proxy.url)
      again.ws.send("reconnected")
      expect(yield* Queue.take(again.messages)).toBe("reconnected")
    }))

  it.scoped("reset: a plain TCP client reads ECONNRESET, a RST and not a FIN", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const tcp = yield* connectTcp(proxy.port)
      yield* RawClient.eventually(proxy.connections, (open) => open === 1)
      yield* proxy.reset
      expect(yield* tcp.errorCode).toBe("ECONNRESET")
    }))

  it.scoped("throttle paces each direction to about the given rate; undefined lifts it", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* RawClient.open(proxy.url)
      const payload = new Uint8Array(2000).fill(7)
      // 20 000 B/s goes out in 1000-byte slices every 50 ms: about 2 KB each way takes 100 ms.
      yield* proxy.throttle(20_000)
      const [echoed, throttledMillis] = yield* elapsedMillis(Effect.suspend(() => {
        client.ws.send(payload)
        return Queue.take(client.messages)
      }))
      expect(echoed).toEqual(payload)
      expect(throttledMillis).toBeGreaterThanOrEqual(190)
      yield* proxy.throttle(undefined)
      client.ws.send(payload)
      expect(yield* RawClient.within(45, Queue.take(client.messages))).toEqual(Option.some(payload))
    }))

  it.scoped("backpressure: a client that stops reading loses nothing, and gets everything in order on resume", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* RawClient.open(proxy.url)
      client.ws.pause()
      // 8 MiB: far more than the socket buffers on both sides of the proxy hold.
      const messageCount = 128
      for (let index = 0; index < messageCount; index++) {
        yield* server.broadcast(new Uint8Array(64 * 1024).fill(index))
      }
      yield* RawClient.pause(20)
      expect(yield* Queue.size(client.messages)).toBe(0)
      client.ws.resume()
      const firstBytes = yield* Effect.forEach(
        Array.from({ length: messageCount }),
        () => Effect.map(Queue.take(client.messages), (message) => typeof message === "string" ? -1 : message[0])
      )
      expect(firstBytes).toEqual(Array.from({ length: messageCount }, (_, index) => index))
    }))

  it.scoped("an upstream that refuses the connection closes the client's socket", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      yield* server.kill
      const client = yield* RawClient.start(proxy.url)
      expect(yield* client.handshake).toEqual({ _tag: "Failed", message: "socket hang up" })
      expect(yield* RawClient.eventually(proxy.connections, (open) => open === 0)).toBe(0)
    }))

  it.effect("closing the scope leaves no handle or timer behind, with delayed and throttled data in flight", () =>
    Effect.gen(function*() {
      yield* expectNothingLeftBehind(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const proxy = yield* FaultProxy.make(server.port)
        const delayed = yield* RawClient.open(proxy.url)
        yield* proxy.latency(500)
        delayed.ws.send("still in flight")
        yield* proxy.throttle(100)
        delayed.ws.send(new Uint8Array(1000))
        yield* RawClient.start(proxy.url)
        yield* RawClient.eventually(proxy.connections, (open) => open === 2)
      }))
    }))
})
