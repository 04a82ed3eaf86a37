import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Context,
  Duration,
  Effect,
  Exit,
  FastCheck,
  Fiber,
  Layer,
  Option,
  Schedule,
  Stream,
  TestClock
} from "effect"
import { Client, Connection, NodeTransport, Reconnect } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { expectLargeFrameBurst } from "./support/burst.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"
import { interruptWhileConnecting, recordingSockets } from "./support/recordingTransport.js"
import { awaitSleeper } from "./support/testClock.js"

const provideNode = Effect.provide(NodeTransport.layer)

const connectError = (url: string | URL, options?: Connection.Options) =>
  Connection.connect(url, options).pipe(Effect.flip, Effect.scoped, provideNode)

const expectConnectError = (error: unknown): ConnectError => {
  expect(error).toMatchObject({ _tag: "ConnectError" })
  return error as ConnectError
}

describe("Connection: open and exchange", () => {
  it.live("echoes text and binary in order, then closes with 1000", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url)
      expect(connection.readyState.pipe(Effect.runSync)).toBe(1)
      yield* connection.send("one")
      yield* connection.send(new Uint8Array([1, 2, 3]))
      yield* connection.write("three")
      const received = yield* connection.messages.pipe(Stream.take(3), Stream.runCollect)
      expect(Chunk.toArray(received).map((m) => (typeof m === "string" ? m : Array.from(m)))).toEqual([
        "one",
        [1, 2, 3],
        "three"
      ])
      const ended = yield* connection.close()
      expect(ended).toMatchObject({ _tag: "Disconnected", code: 1000, initiator: "client", wasClean: true })
      expect(yield* connection.readyState).toBe(3)
    })).pipe(provideNode))

  it.live("an http:// URL is dialled as ws:// (as the WHATWG WebSocket and ws do); a Client opens on one too", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const url = server.url.replace(/^ws:/, "http:")
      const connection = yield* Connection.connect(url)
      expect(connection.url).toBe(new URL(server.url).href)
      yield* connection.send("over http:")
      expect(Chunk.toArray(yield* connection.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual(["over http:"])
      yield* connection.close()
      const client = yield* Client.make({ url })
      yield* client.awaitOpen
      yield* client.send("client")
      expect(Chunk.toArray(yield* client.messages.pipe(Stream.take(1), Stream.runCollect))).toEqual(["client"])
      yield* client.close()
      expect(yield* server.accepted).toBe(2)
    })).pipe(provideNode))

  it.live("send, write and close work point-free", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const { send, write, close } = yield* Connection.connect(server.url)
      yield* Effect.forEach(["a", "b"], send)
      yield* Stream.runForEach(Stream.make("c", "d"), write)
      expect(yield* close(4000)).toMatchObject({ code: 4000 })
      expect(yield* server.received).toEqual(["a", "b", "c", "d"])
    })).pipe(provideNode))

  it.live("send after close fails with SendError NotOpen carrying the payload", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url)
      yield* connection.close(4000, "done")
      const error = yield* Effect.flip(connection.send("late"))
      expect(error).toMatchObject({ _tag: "SendError", reason: "NotOpen", payload: "late" })
      const writeError = yield* Effect.flip(connection.write("later"))
      expect(writeError).toMatchObject({ _tag: "SendError", reason: "NotOpen", payload: "later" })
    })).pipe(provideNode))

  it.live("a consumer of messages interrupted while it waits leaves no waiter behind: the next consumer is woken", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url)
      const turns = Effect.promise(async () => {
        for (let turn = 0; turn < 5; turn++) await new Promise<void>((resolve) => setImmediate(resolve))
      })
      // The first consumer reaches its wait on the empty buffer and is interrupted there.
      const first = yield* Effect.fork(Stream.runCollect(connection.messages))
      yield* turns
      yield* Fiber.interrupt(first)
      // The next one waits too; a single message must wake it, not the interrupted one's waiter.
      const next = yield* Effect.fork(connection.messages.pipe(Stream.take(1), Stream.runCollect))
      yield* turns
      yield* connection.send("a")
      const read = yield* Fiber.join(next).pipe(
        Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "the wake went to the interrupted consumer" })
      )
      expect(Chunk.toArray(read)).toEqual(["a"])
    })).pipe(provideNode))

  it.live("sink writes a stream in order with backpressure", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const connection = yield* Connection.connect(server.url, { writeHighWaterMark: 16 * 1024 })
      const frames = Array.from({ length: 500 }, (_, index) => `frame-${index}-${"x".repeat(1000)}`)
      yield* Stream.fromIterable(frames).pipe(Stream.rechunk(50), Stream.run(connection.sink))
      yield* connection.close()
      // The close handshake completes after every frame before it reached the server.
      expect(yield* server.received).toEqual(frames)
    })).pipe(provideNode))

  it.live("negotiates a subprotocol", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["chat.v2"] })
      const connection = yield* Connection.connect(server.url, { protocols: ["chat.v1", "chat.v2"] })
      expect(connection.protocol).toBe("chat.v2")
    })).pipe(provideNode))

  it.live("sends handshake headers, Redacted values included", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const { Redacted } = yield* Effect.promise(() => import("effect"))
      yield* Connection.connect(server.url, {
        headers: { authorization: Redacted.make("Bearer s3cret"), "x-app": "demo" }
      })
      const headers = yield* server.lastRequestHeaders
      expect(headers["authorization"]).toBe("Bearer s3cret")
      expect(headers["x-app"]).toBe("demo")
    })).pipe(provideNode))
})

describe("Connection: fault matrix", () => {
  it.live("nothing listening: ConnectError ConnectionRefused", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const port = yield* closedPort
      const error = expectConnectError(yield* connectError(`ws://127.0.0.1:${port}`))
      expect(error.reason).toBe("ConnectionRefused")
      expect(error.url).toBe(`ws://127.0.0.1:${port}/`)
    })))

  it.live("unknown host (.invalid): ConnectError DnsLookupFailed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const error = expectConnectError(yield* connectError("ws://lifeline-test.invalid/"))
      expect(error.reason).toBe("DnsLookupFailed")
    })))

  it.effect.each(
    [
      ["a malformed URL", "ws://[::1"],
      ["an ftp:// scheme", "ftp://127.0.0.1:1/"],
      ["an empty string", ""],
      ["blanks only", "   "],
      ["a fragment", "ws://127.0.0.1:1/#part"],
      ["a relative path", "/socket"]
    ] as const
  )("%s: ConnectError InvalidUrl, never a defect", ([_, url]) =>
    Effect.gen(function*() {
      const error = expectConnectError(yield* connectError(url))
      expect(error.reason).toBe("InvalidUrl")
    }))

  it.effect.each(
    [
      ["an invalid subprotocol name", { protocols: ["bad name"] }],
      ["a duplicated subprotocol", { protocols: ["a", "a"] }],
      ["a negative open timeout", { openTimeout: Duration.millis(-1) }],
      ["a zero inbound capacity", { inboundCapacity: 0 }],
      ["a header with a newline", { headers: { "x-bad": "a\r\nb" } }]
    ] as const
  )("%s: ConnectError InvalidOptions", ([_, options]) =>
    Effect.gen(function*() {
      const error = expectConnectError(yield* connectError("ws://127.0.0.1:1/", options))
      expect(error.reason).toBe("InvalidOptions")
    }))

  it.effect("redacts userinfo and query values in errors", () =>
    Effect.gen(function*() {
      const error = expectConnectError(yield* connectError("ftp://user:pw@127.0.0.1:1/path?token=s3cret"))
      expect(error.url).toBe("ftp://redacted@127.0.0.1:1/path?token=redacted")
      expect(error.message).not.toContain("s3cret")
      expect(error.message).not.toContain("pw")
    }))

  it.effect("TCP accepted, no HTTP answer: TimeoutError open after openTimeout (TestClock)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.hangHandshake
      const fiber = yield* Effect.fork(Connection.connect(server.url, { openTimeout: "3 seconds" }).pipe(Effect.scoped))
      yield* awaitSleeper
      yield* TestClock.adjust("2999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber).pipe(Effect.flip)
      expect(error).toMatchObject({ _tag: "TimeoutError", operation: "open" })
      expect(Duration.toMillis((error as { timeout: Duration.Duration }).timeout)).toBe(3000)
    })).pipe(provideNode))

  it.live.each([401, 404, 500])(
    "HTTP %d: ConnectError HandshakeRejected with the status",
    (status) =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* server.rejectNext(status)
        const error = expectConnectError(yield* connectError(server.url))
        expect(error.reason).toBe("HandshakeRejected")
        expect(error.status).toBe(status)
        expect(error.retryAfter).toBeUndefined()
      }))
  )

  it.live("HTTP 503 + Retry-After seconds: retryAfter is that Duration", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, { "retry-after": "7" })
      const error = expectConnectError(yield* connectError(server.url))
      expect(error).toMatchObject({ reason: "HandshakeRejected", status: 503 })
      expect(error.retryAfter && Duration.toMillis(error.retryAfter)).toBe(7000)
    })))

  it.live("HTTP 429 + Retry-After HTTP-date: retryAfter is the time until then", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 60_000)
      yield* server.rejectNext(429, { "retry-after": at.toUTCString() })
      const error = expectConnectError(yield* connectError(server.url))
      expect(error).toMatchObject({ reason: "HandshakeRejected", status: 429 })
      const millis = error.retryAfter ? Duration.toMillis(error.retryAfter) : -1
      expect(millis).toBeGreaterThan(55_000)
      expect(millis).toBeLessThanOrEqual(61_000)
    })))

  it.live("socket destroyed mid-handshake: ConnectError ConnectionReset", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.resetDuringHandshake
      const error = expectConnectError(yield* connectError(server.url))
      expect(error.reason).toBe("ConnectionReset")
    })))

  it.live("wrong Sec-WebSocket-Accept: ConnectError ProtocolViolation", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.badAcceptKey
      const error = expectConnectError(yield* connectError(server.url))
      expect(error.reason).toBe("ProtocolViolation")
      expect(error.detail).toContain("Sec-WebSocket-Accept")
    })))

  it.live("subprotocol mismatch: ConnectError ProtocolViolation", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.wrongSubprotocol
      const error = expectConnectError(yield* connectError(server.url, { protocols: ["chat.v1"] }))
      expect(error.reason).toBe("ProtocolViolation")
    })))

  it.live("a server that accepts none of the offered subprotocols: ProtocolViolation in its own words", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["chat.v2"] })
      const error = expectConnectError(yield* connectError(server.url, { protocols: ["chat.v1"] }))
      expect(error.reason).toBe("ProtocolViolation")
      expect(error.detail).toBe(
        "the server accepted none of the offered subprotocols (it answered without Sec-WebSocket-Protocol, " +
          "which RFC 6455 allows); offer one the server supports, or none"
      )
      expect(Reconnect.isRetryable(error)).toBe(false)
    })))

  it.live("101 without an Upgrade header: ConnectError ProtocolViolation, not a rejection with status 101", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.noUpgradeHeader
      const error = expectConnectError(yield* connectError(server.url))
      expect(error.reason).toBe("ProtocolViolation")
      expect(error.detail).toBe(
        "the server answered 101 without an Upgrade: websocket header; the server is not a compliant WebSocket endpoint"
      )
      expect(error.status).toBeUndefined()
      expect(Reconnect.isRetryable(error)).toBe(false)
      expect(yield* server.accepted).toBe(0)
    })))

  it.live("wss:// to a plain TCP server: ConnectError TlsFailed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const error = expectConnectError(yield* connectError(`wss://127.0.0.1:${server.port}`))
      expect(error.reason).toBe("TlsFailed")
    })))

  it.live.each([1000, 1008, 4001])(
    "server closes with %d: Disconnected with that code",
    (code) =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        yield* server.closeAll(code, "bye")
        const ended = yield* connection.closed
        expect(ended).toMatchObject({ _tag: "Disconnected", code, reason: "bye", wasClean: true, initiator: "server" })
        // The messages stream ends with the connection.
        expect(Chunk.size(yield* Stream.runCollect(connection.messages))).toBe(0)
      })).pipe(provideNode)
  )

  it.live("server killed while OPEN: Disconnected 1006 by transport", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url)
      yield* server.kill
      expect(yield* connection.closed).toMatchObject({ code: 1006, wasClean: false, initiator: "transport" })
    })).pipe(provideNode))

  it.live("a message over maxPayload closes with 1009", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url, { maxPayload: 1024 })
      yield* server.broadcast("x".repeat(2048))
      expect(yield* connection.closed).toMatchObject({ code: 1009 })
    })).pipe(provideNode))

  it.live("server floods, consumer does not read: the socket pauses, memory stays bounded, nothing is lost", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const capacity = 16
      const connection = yield* Connection.connect(server.url, { inboundCapacity: capacity })
      const count = 3000
      yield* server.flood(count, 1024)
      yield* Effect.sleep("300 millis")
      // Without the pause all 3000 frames would be parsed by now; with it, at most one more read
      // chunk (64 KiB = 64 frames here) arrives after the buffer fills.
      const received = yield* connection.activity
      expect(received).toBeGreaterThanOrEqual(capacity)
      expect(received).toBeLessThanOrEqual(capacity + 64)
      const all = yield* connection.messages.pipe(Stream.take(count), Stream.runCount)
      expect(all).toBe(count)
    })).pipe(provideNode))

  it.live("a burst of large frames (one per socket read) through a small inbound capacity arrives whole and in order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      yield* expectLargeFrameBurst(40, 8)
    })).pipe(provideNode))
})

describe("Connection: release in each readyState", () => {
  it.live("interrupting while CONNECTING releases without an error event and ends CLOSED", () =>
    Effect.map(interruptWhileConnecting(NodeTransport.make, true), (states) => expect(states).toEqual([3])))

  it.live("closing the scope while CLOSING waits for the close handshake", () =>
    Effect.gen(function*() {
      const states = yield* recordingSockets(() =>
        Effect.gen(function*() {
          const server = yield* TestServer.make()
          const connection = yield* Connection.connect(server.url)
          yield* Effect.fork(connection.close(4002, "closing"))
          yield* Effect.yieldNow()
          expect(yield* connection.readyState).toBe(2)
        })
      )
      expect(states).toEqual([3])
    }))

  it.live("the close code comes from the scope's Exit: 1000 on success, 1001 on failure", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const closedWith = (fail: boolean) =>
        Effect.gen(function*() {
          let opened: Connection.Connection | undefined
          const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
            opened = yield* Connection.connect(server.url)
            if (fail) yield* Effect.fail("boom" as const)
          })))
          expect(Exit.isFailure(exit)).toBe(fail)
          return opened === undefined ? undefined : yield* opened.closed
        })
      expect(yield* closedWith(false)).toMatchObject({ code: 1000, initiator: "client" })
      expect(yield* closedWith(true)).toMatchObject({ code: 1001, initiator: "client" })
    })).pipe(provideNode))

  const releaseAtRandomMoment = (phase: "connecting" | "open" | "closing") =>
    it.live.prop(
      `interrupting at 200 random moments while ${phase.toUpperCase()} never lets an error escape and ends CLOSED`,
      [FastCheck.integer({ min: 0, max: 40 })],
      ([turns]) =>
        Effect.gen(function*() {
          const states = yield* recordingSockets(() =>
            Effect.gen(function*() {
              const server = yield* TestServer.make()
              if (phase === "connecting") yield* server.hangHandshake
              const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
                const connection = yield* Connection.connect(server.url)
                yield* connection.write("ping")
                if (phase === "closing") yield* connection.close(4003)
                yield* Effect.never
              })))
              for (let turn = 0; turn < turns; turn++) {
                yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
              }
              yield* Fiber.interrupt(fiber)
            })
          )
          // After one turn of the event loop the fork has opened its socket: exactly one, CLOSED.
          // Interrupted at once, connect may not have begun: no socket, or that one, CLOSED.
          if (turns > 0 || states.length > 0) expect(states).toEqual([3])
        }),
      { fastCheck: { numRuns: 200 } }
    )

  releaseAtRandomMoment("connecting")
  releaseAtRandomMoment("open")
  releaseAtRandomMoment("closing")
})

describe("Connection: retry and layers", () => {
  it.effect("Effect.retry(Schedule) succeeds once a TestServer comes up late (TestClock)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      let attempts = 0
      const url = Effect.sync(() => {
        attempts++
        return server.url
      })
      const fiber = yield* Effect.fork(
        Connection.connect(url).pipe(
          Effect.flatMap((connection) => connection.send("hello")),
          Effect.scoped,
          Effect.retry({
            schedule: Schedule.spaced("1 second"),
            while: (error) => error._tag === "ConnectError" && error.reason === "ConnectionRefused"
          })
        )
      )
      for (let second = 0; second < 3; second++) {
        yield* awaitSleeper
        yield* TestClock.adjust("1 second")
      }
      yield* awaitSleeper
      yield* server.restart
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(attempts).toBe(5)
      expect(yield* server.received).toEqual(["hello"])
    })).pipe(provideNode))

  it.live("Connection.layer provides one connection under a user tag, and composes with Layer.retry", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      class Feed extends Context.Tag("Feed")<Feed, Connection.Connection>() {}
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 2)
      const live = Connection.layer(Feed, server.url).pipe(
        Layer.retry(Schedule.recurs(3)),
        Layer.provide(NodeTransport.layer)
      )
      const echoed = yield* Effect.gen(function*() {
        const feed = yield* Feed
        yield* feed.send("via layer")
        return yield* feed.messages.pipe(Stream.take(1), Stream.runHead)
      }).pipe(Effect.provide(live))
      expect(echoed).toEqual(Option.some("via layer"))
      expect(yield* server.accepted).toBe(1)
    })))
})

// Imports of the block below, kept with it.
import { Either } from "effect"
import { Transport } from "../src/index.js"
import { closedPort } from "./support/ports.js"

/** The Node transport, with a record of the largest `bufferedAmount` right after any send. */
const measuringTransport = () => {
  const stats = { sends: 0, peak: 0 }
  const transport: Transport.Transport = {
    platform: "node",
    open: (request, listener) =>
      Either.map(NodeTransport.make.open(request, listener), (socket): Transport.TransportSocket => ({
        readyState: () => socket.readyState(),
        protocol: () => socket.protocol(),
        bufferedAmount: () => socket.bufferedAmount(),
        send: (data, callback) => {
          socket.send(data, callback)
          stats.sends++
          stats.peak = Math.max(stats.peak, socket.bufferedAmount())
        },
        close: (code, reason) => socket.close(code, reason),
        terminate: () => socket.terminate(),
        pause: () => socket.pause(),
        resume: () => socket.resume(),
        ping: () => socket.ping()
      }))
  }
  return { stats, layer: Layer.succeed(Transport.Transport, transport) }
}

/** Polls `read` every 10 ms until it gave the same value 10 times running (at most 5 s). */
const awaitSteady = (read: () => number) =>
  Effect.gen(function*() {
    let last = read()
    let same = 0
    for (let poll = 0; poll < 500 && same < 10; poll++) {
      yield* Effect.sleep("10 millis")
      const now = read()
      same = now === last ? same + 1 : 0
      last = now
    }
    return last
  })

/** Internals: the connection's inbound buffer. */
const inboundOf = (connection: Connection.Connection) =>
  (connection as unknown as { listener: { inbound: { readonly isPaused: boolean; readonly size: number } } }).listener
    .inbound

describe("Connection: bounds on sink and on the inbound bytes", () => {
  it.live("sink: one chunk of 800 x 64 KiB to a server that does not read never buffers more than the high-water mark and one frame", () => {
    const measured = measuringTransport()
    return withNoHandlesLeft(Effect.gen(function*() {
      let received = 0
      const server = yield* TestServer.make({ record: false, handler: () => void received++ })
      yield* server.pauseReading
      const mark = 1024 * 1024
      const frameSize = 64 * 1024
      const count = 800
      const connection = yield* Connection.connect(server.url, { writeHighWaterMark: mark })
      const frame = new Uint8Array(frameSize).fill(7)
      const chunk = Chunk.fromIterable(Array.from({ length: count }, () => frame))
      const writing = yield* Effect.fork(Stream.run(Stream.fromChunk(chunk), connection.sink))
      // The kernel's buffers fill, then the sink waits for a drain that does not come.
      const sent = yield* awaitSteady(() => measured.stats.sends)
      // A client frame of 64 KiB has a 14-byte header (64-bit length, mask); the frame that
      // crosses the mark may follow one written right up to it, header included.
      const bound = mark + frameSize + 2 * 14
      expect(measured.stats.peak).toBeLessThanOrEqual(bound)
      expect(sent).toBeLessThan(count)
      yield* server.resumeReading
      yield* Fiber.join(writing)
      yield* awaitTrue(Effect.sync(() => received === count), `the server received ${count} frames`)
      expect(measured.stats.sends).toBe(count)
      expect(measured.stats.peak).toBeLessThanOrEqual(bound)
    })).pipe(Effect.provide(measured.layer))
  })

  it.live("inboundBytes 4 MiB, server floods 40 x 1 MiB, nobody reads: the socket pauses with 4 frames taken, then all 40 arrive in order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url, { inboundBytes: 4 * 1024 * 1024 })
      const frameSize = 1024 * 1024
      const count = 40
      const frame = (index: number) => {
        const bytes = new Uint8Array(frameSize).fill(index)
        return bytes
      }
      yield* Effect.forEach(
        Array.from({ length: count }, (_, index) => index),
        (index) => server.broadcast(frame(index)),
        { discard: true }
      )
      const inbound = inboundOf(connection)
      // Paused: what the client does not read backs up in the server's send buffer.
      yield* awaitTrue(
        Effect.map(server.bufferedAmount, (buffered) => buffered > 0 && inbound.isPaused),
        "paused with the server backed up"
      )
      expect(yield* awaitSteady(() => inbound.size)).toBe(4)
      expect(yield* connection.activity).toBe(4)
      const all = Chunk.toArray(yield* connection.messages.pipe(Stream.take(count), Stream.runCollect))
      expect(all.map((message) => typeof message === "string" ? -1 : message[0])).toEqual(
        Array.from({ length: count }, (_, index) => index)
      )
      expect(all.every((message) => message.length === frameSize)).toBe(true)
    })).pipe(provideNode))

  it.effect("inboundBytes that is not a positive integer: ConnectError InvalidOptions naming it", () =>
    Effect.gen(function*() {
      for (const inboundBytes of [0, -1, 1.5, Number.NaN]) {
        const error = expectConnectError(yield* connectError("ws://127.0.0.1:1", { inboundBytes }))
        expect(error.reason).toBe("InvalidOptions")
        expect(error.detail).toContain("inboundBytes")
      }
    }))
})
