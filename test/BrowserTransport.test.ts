import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { BrowserTransport, Connection } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { expectLargeFrameBurst } from "./support/burst.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { interruptWhileConnecting } from "./support/recordingTransport.js"

// Node 20 has the WHATWG WebSocket behind --experimental-websocket (set in vitest.config.ts).
const provideBrowser = Effect.provide(BrowserTransport.layer)

const connectError = (url: string, options?: Connection.Options) =>
  Connection.connect(url, options).pipe(
    Effect.flip,
    Effect.scoped,
    provideBrowser,
    Effect.map((error) => error as ConnectError)
  )

describe("BrowserTransport (global WebSocket)", () => {
  it("the global WebSocket is there", () => {
    expect(typeof globalThis.WebSocket).toBe("function")
  })

  it.live("echoes text and binary, and closes with 1000", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url)
      yield* connection.send("text")
      yield* connection.send(new Uint8Array([7, 8]))
      const received = yield* connection.messages.pipe(Stream.take(2), Stream.runCollect)
      expect(Chunk.toArray(received).map((m) => (typeof m === "string" ? m : Array.from(m)))).toEqual(["text", [7, 8]])
      expect(yield* connection.close()).toMatchObject({ code: 1000, initiator: "client", wasClean: true })
    })).pipe(provideBrowser))

  it.live("nothing listening: ConnectError ClosedBeforeOpen (browsers do not tell why)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const error = yield* connectError(server.url)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "ClosedBeforeOpen" })
    })))

  it.live("HTTP 401: ConnectError ClosedBeforeOpen, without a status", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(401)
      const error = yield* connectError(server.url)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "ClosedBeforeOpen" })
      expect(error.status).toBeUndefined()
    })))

  it.effect("malformed URL: ConnectError InvalidUrl", () =>
    Effect.gen(function*() {
      expect(yield* connectError("ws://[::1")).toMatchObject({ reason: "InvalidUrl" })
      expect(yield* connectError("ftp://127.0.0.1:1")).toMatchObject({ reason: "InvalidUrl" })
    }))

  // Node 20's experimental WebSocket (undici) keeps the handshake's TCP socket open when closed
  // while CONNECTING, so these two cannot check handles; browsers and Node >= 22 do not leak it.
  it.live("TCP accepted, no HTTP answer: TimeoutError open", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.hangHandshake
      const error = yield* Connection.connect(server.url, { openTimeout: "100 millis" }).pipe(
        Effect.scoped,
        Effect.flip
      )
      expect(error).toMatchObject({ _tag: "TimeoutError", operation: "open" })
    })).pipe(provideBrowser))

  it.live.each([1000, 1008, 4001])(
    "server closes with %d: Disconnected with that code",
    (code) =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        yield* server.closeAll(code, "bye")
        expect(yield* connection.closed).toMatchObject({ code, reason: "bye", initiator: "server", wasClean: true })
      })).pipe(provideBrowser)
  )

  it.live("interrupting while CONNECTING releases without an error event and ends CLOSED", () =>
    Effect.map(interruptWhileConnecting(BrowserTransport.make, false), (states) => expect(states).toEqual([3])))

  it.live("a scope that fails closes with 1000 (browsers may not send 1001)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      let opened: Connection.Connection | undefined
      yield* Effect.scoped(
        Connection.connect(server.url).pipe(
          Effect.tap((connection) => Effect.sync(() => (opened = connection))),
          Effect.zipRight(Effect.fail("boom" as const))
        )
      ).pipe(Effect.ignore)
      expect(opened && (yield* opened.closed)).toMatchObject({ code: 1000, initiator: "client" })
    })).pipe(provideBrowser))

  it.live("cannot pause: a consumer that falls behind capacity ends the connection with 1008", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url, { inboundCapacity: 4 })
      yield* server.flood(50, 16)
      expect(yield* connection.closed).toMatchObject({
        code: 1008,
        reason: "inbound queue overflow",
        initiator: "client",
        wasClean: false
      })
      // What arrived before the overflow is still delivered.
      expect(yield* Stream.runCount(connection.messages)).toBeGreaterThanOrEqual(4)
    })).pipe(provideBrowser))

  it.live("cannot pause, yet a burst of large frames through a small inbound capacity arrives whole, in order, and open", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      // Wakes are batched per event-loop turn; a batch held back past half the capacity would
      // overflow a socket that cannot pause (1008) instead.
      yield* expectLargeFrameBurst(40, 8)
    })).pipe(provideBrowser))

  it.live("has no protocol ping: ping is false", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const connection = yield* Connection.connect(server.url)
      expect(yield* connection.ping).toBe(false)
    })).pipe(provideBrowser))
})
