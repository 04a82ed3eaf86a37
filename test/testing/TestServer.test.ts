import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, Queue } from "effect"
import * as Net from "node:net"
import { TestServer } from "../../src/testing/index.js"
import { expectNothingLeftBehind } from "./leakCheck.js"
import * as RawClient from "./rawClient.js"

const bytes = (...values: ReadonlyArray<number>) => new Uint8Array(values)

describe("TestServer", () => {
  it.scoped("listens on 127.0.0.1 with an ephemeral port and echoes text as text, binary as binary", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      expect(server.port).toBeGreaterThan(0)
      expect(server.url).toBe(`ws://127.0.0.1:${server.port}`)
      const client = yield* RawClient.open(server.url)
      client.ws.send("hello")
      client.ws.send(bytes(1, 2, 3))
      expect(yield* Queue.take(client.messages)).toBe("hello")
      expect(yield* Queue.take(client.messages)).toEqual(bytes(1, 2, 3))
      expect(yield* server.received).toEqual(["hello", bytes(1, 2, 3)])
      expect(yield* server.connections).toBe(1)
      expect(yield* server.accepted).toBe(1)
    }))

  it.scoped("handler ignore records messages without answering", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const client = yield* RawClient.open(server.url)
      client.ws.send("unanswered")
      expect(yield* RawClient.eventually(server.received, (received) => received.length === 1)).toEqual([
        "unanswered"
      ])
      expect(yield* RawClient.within(30, Queue.take(client.messages))).toEqual(Option.none())
    }))

  it.scoped("a scripted handler replies through reply, and one that throws closes with 1011", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({
        handler: (message, reply) => {
          if (message === "boom") throw new Error("scripted failure")
          reply(typeof message === "string" ? message.toUpperCase() : bytes(message.length))
        }
      })
      const client = yield* RawClient.open(server.url)
      client.ws.send("shout")
      client.ws.send(bytes(9, 9))
      expect(yield* Queue.take(client.messages)).toBe("SHOUT")
      expect(yield* Queue.take(client.messages)).toEqual(bytes(2))
      client.ws.send("boom")
      expect(yield* client.closed).toEqual({ code: 1011, reason: "test handler threw" })
    }))

  it.scoped("subprotocols: picks the first offered one it accepts, and none without a match", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["chat.v2", "chat.v1"] })
      const matching = yield* RawClient.open(server.url, { protocols: ["chat.v1", "chat.v2"] })
      expect(matching.ws.protocol).toBe("chat.v1")
      const unmatched = yield* RawClient.start(server.url, { protocols: ["other"] })
      expect(yield* unmatched.handshake).toEqual({ _tag: "Failed", message: "Server sent no subprotocol" })
    }))

  it.scoped("maxPayload: a larger message closes the connection with 1009", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ maxPayload: 4 })
      const client = yield* RawClient.open(server.url)
      client.ws.send(bytes(1, 2, 3, 4, 5))
      expect((yield* client.closed).code).toBe(1009)
      expect(yield* server.received).toEqual([])
    }))

  it.scoped("lastRequestHeaders holds the last upgrade request's headers", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* RawClient.open(server.url, { headers: { "X-Token": "abc" } })
      const headers = yield* server.lastRequestHeaders
      expect(headers["x-token"]).toBe("abc")
      expect(headers["upgrade"]).toBe("websocket")
    }))

  it.scoped("rejectNext answers the next count upgrades with the status and headers, then accepts again", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, { "retry-after": "2" }, 2)
      for (let attempt = 0; attempt < 2; attempt++) {
        const outcome = yield* (yield* RawClient.start(server.url)).handshake
        expect(outcome).toMatchObject({ _tag: "Rejected", status: 503, headers: { "retry-after": "2" } })
      }
      yield* server.rejectNext(401)
      const unauthorized = yield* (yield* RawClient.start(server.url)).handshake
      expect(unauthorized).toMatchObject({ _tag: "Rejected", status: 401 })
      expect((yield* (yield* RawClient.start(server.url)).handshake)._tag).toBe("Open")
      expect(yield* server.accepted).toBe(1)
    }))

  it.scoped("hangHandshake: the TCP connection is accepted and the request read, but never answered", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.hangHandshake
      const client = yield* RawClient.start(server.url, {
        headers: { "X-Attempt": "hung" },
        handshakeTimeout: 60
      })
      expect(yield* client.handshake).toEqual({ _tag: "Failed", message: "Opening handshake has timed out" })
      expect((yield* server.lastRequestHeaders)["x-attempt"]).toBe("hung")
      expect(yield* server.accepted).toBe(0)
      yield* server.behave
      expect((yield* (yield* RawClient.start(server.url)).handshake)._tag).toBe("Open")
    }))

  it.scoped("resetDuringHandshake: the socket is destroyed when the upgrade request arrives", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.resetDuringHandshake
      const client = yield* RawClient.start(server.url)
      expect(yield* client.handshake).toEqual({ _tag: "Failed", message: "socket hang up" })
      expect(yield* server.accepted).toBe(0)
    }))

  it.scoped("badAcceptKey: the client refuses the 101 for its Sec-WebSocket-Accept", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.badAcceptKey
      const client = yield* RawClient.start(server.url)
      expect(yield* client.handshake).toEqual({
        _tag: "Failed",
        message: "Invalid Sec-WebSocket-Accept header"
      })
    }))

  it.scoped("wrongSubprotocol: the client refuses a subprotocol it did not offer, offered some or not", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["chat"] })
      yield* server.wrongSubprotocol
      const offering = yield* RawClient.start(server.url, { protocols: ["chat"] })
      expect(yield* offering.handshake).toEqual({
        _tag: "Failed",
        message: "Server sent an invalid subprotocol"
      })
      const offeringNone = yield* RawClient.start(server.url)
      expect(yield* offeringNone.handshake).toEqual({
        _tag: "Failed",
        message: "Server sent a subprotocol but none was requested"
      })
      expect(yield* server.accepted).toBe(0)
    }))

  it.scoped("noUpgradeHeader: a 101 without Upgrade is a plain response to Node's http client, not an upgrade", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.noUpgradeHeader
      const client = yield* RawClient.start(server.url)
      const outcome = yield* client.handshake
      expect(outcome).toMatchObject({ _tag: "Rejected", status: 101 })
      const headers = outcome._tag === "Rejected" ? outcome.headers : {}
      expect(headers["upgrade"]).toBeUndefined()
      expect(headers["connection"]).toBe("Upgrade")
      expect(typeof headers["sec-websocket-accept"]).toBe("string")
      expect(yield* server.accepted).toBe(0)
      // behave restores normal handshakes
      yield* server.behave
      yield* RawClient.open(server.url)
      expect(yield* server.accepted).toBe(1)
    }))

  it.scoped("kill drops every connection without a close frame and frees the port; restart reuses it", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* RawClient.open(server.url)
      client.ws.send("before")
      yield* Queue.take(client.messages)
      yield* server.kill
      expect(yield* client.closed).toEqual({ code: 1006, reason: "" })
      expect(yield* server.connections).toBe(0)
      const refused = yield* (yield* RawClient.start(server.url)).handshake
      expect(refused).toEqual({ _tag: "Failed", message: `connect ECONNREFUSED 127.0.0.1:${server.port}` })
      yield* server.restart
      yield* server.restart
      const again = yield* RawClient.open(server.url)
      again.ws.send("after")
      expect(yield* Queue.take(again.messages)).toBe("after")
      expect(yield* server.accepted).toBe(2)
      expect(yield* server.received).toEqual(["before", "after"])
    }))

  it.scoped("restart retries while its port is still taken, and listens once it is free", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const closeSquatter = (squatter: Net.Server) =>
        Effect.async<void>((resume) => {
          if (!squatter.listening) return resume(Effect.void)
          squatter.close(() => resume(Effect.void))
        })
      const squatter = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const squatter = Net.createServer()
          squatter.listen(server.port, "127.0.0.1", () => resume(Effect.succeed(squatter)))
        }),
        closeSquatter
      )
      const restarting = yield* Effect.fork(server.restart)
      yield* RawClient.pause(60)
      expect(yield* Fiber.poll(restarting)).toEqual(Option.none())
      yield* closeSquatter(squatter)
      yield* Fiber.join(restarting)
      const client = yield* RawClient.open(server.url)
      client.ws.send("back")
      expect(yield* Queue.take(client.messages)).toBe("back")
    }))

  it.scoped("closeAll sends a close frame with the code and reason to every connection", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const first = yield* RawClient.open(server.url)
      const second = yield* RawClient.open(server.url)
      yield* server.closeAll(4001, "go away")
      expect(yield* first.closed).toEqual({ code: 4001, reason: "go away" })
      expect(yield* second.closed).toEqual({ code: 4001, reason: "go away" })
      expect(yield* RawClient.eventually(server.connections, (open) => open === 0)).toBe(0)
    }))

  it.scoped("counts pings and answers them until stopPonging, again after startPonging", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* RawClient.open(server.url)
      client.ws.ping("one")
      expect(yield* Queue.take(client.pongs)).toBe("one")
      yield* server.stopPonging
      client.ws.ping("two")
      expect(yield* RawClient.within(30, Queue.take(client.pongs))).toEqual(Option.none())
      expect(yield* server.pings).toBe(2)
      yield* server.startPonging
      client.ws.ping("three")
      expect(yield* Queue.take(client.pongs)).toBe("three")
      expect(yield* server.pings).toBe(3)
    }))

  it.scoped("flood sends count messages of size bytes to every connection, binary or text", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const first = yield* RawClient.open(server.url)
      const second = yield* RawClient.open(server.url)
      yield* server.flood(50, 1024)
      yield* server.flood(2, 3, { text: true })
      // Compared as strings: a deep equality over 100 000 array elements is slow.
      const kindAndContent = (message: RawClient.Received) =>
        typeof message === "string" ? `text ${message}` : `binary ${Buffer.from(message).toString("latin1")}`
      const expected = [
        ...Array.from({ length: 50 }, () => `binary ${"x".repeat(1024)}`),
        "text xxx",
        "text xxx"
      ]
      for (const client of [first, second]) {
        const received = yield* Effect.forEach(expected, () => Queue.take(client.messages))
        expect(received.map(kindAndContent)).toEqual(expected)
      }
    }))

  it.scoped("broadcast sends one message to every open connection", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const first = yield* RawClient.open(server.url)
      const second = yield* RawClient.open(server.url)
      yield* server.broadcast("news")
      yield* server.broadcast(bytes(7))
      for (const client of [first, second]) {
        expect(yield* Effect.all([Queue.take(client.messages), Queue.take(client.messages)])).toEqual([
          "news",
          bytes(7)
        ])
      }
    }))

  it.effect("closing the scope leaves no handle or timer behind, even with a hung handshake open", () =>
    Effect.gen(function*() {
      yield* expectNothingLeftBehind(Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* RawClient.open(server.url)
        yield* server.hangHandshake
        yield* RawClient.start(server.url, { headers: { "X-Attempt": "hung" } })
        yield* RawClient.eventually(server.lastRequestHeaders, (headers) => headers["x-attempt"] === "hung")
        yield* server.stopPonging
      }))
    }))
})
