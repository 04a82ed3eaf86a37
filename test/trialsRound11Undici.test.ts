/**
 * Round 11 trials: lifeline over Node's own WebSocket (undici's: the global one on Node 22; on
 * Node 20 behind --experimental-websocket, set in vitest.config.ts), as a Node user gets it through
 * `BrowserTransport.layer` or `effect-lifeline/compat` without `WebSocket: WS`. Real TestServer,
 * FaultProxy and raw `ws` servers on 127.0.0.1, child processes for the process's life; exact
 * outcomes. Loopback only; every loop bounded. What was found: docs/trials.md, round 11.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Schedule } from "effect"
import { BrowserTransport, Client } from "../src/index.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { awaitReceived, awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"

const provideBrowser = Effect.provide(Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger)))
const fast = { retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis" } as const
const appHeartbeat = {
  interval: "200 millis",
  timeout: "200 millis",
  message: "ping",
  isPong: (message: unknown) => message === "pong"
} as const
const answersPings = (message: unknown, reply: (data: string) => void) => {
  if (message === "ping") reply("pong")
}

describe("a Client over Node's global WebSocket: outages", () => {
  it.live("server killed and restarted: Disconnected 1006, then Open again, the outbox flushed once, in order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ record: true, handler: "ignore" })
      const client = yield* Client.make({ url: server.url, ...fast })
      yield* client.awaitOpen
      yield* server.kill
      expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
        error: { _tag: "Disconnected", code: 1006, wasClean: false, initiator: "transport" }
      })
      for (let index = 0; index < 5; index++) yield* client.enqueue(`m${index}`)
      yield* server.restart
      yield* awaitState(client, isTag("Open"))
      yield* awaitReceived(server, 5)
      expect(yield* server.received).toEqual(["m0", "m1", "m2", "m3", "m4"])
      expect(yield* client.failed).toBe(0)
    })).pipe(provideBrowser))

  it.live("a half-open peer (blackhole) with an app-level heartbeat: TimeoutError heartbeat, Open again once restored", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: answersPings })
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* Client.make({ url: proxy.url, ...fast, heartbeat: appHeartbeat })
      yield* client.awaitOpen
      yield* proxy.blackhole
      expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
        error: { _tag: "TimeoutError", operation: "heartbeat" }
      })
      yield* proxy.restore
      yield* awaitState(client, isTag("Open"))
    })).pipe(provideBrowser))

  // undici sends its close frame and waits for the peer's, with no timeout: a dead peer never
  // answers, so the TCP connection stayed open (CLOSING) for as long as the path stayed silent,
  // and kept the process alive. The heartbeat gives the socket up: its TCP connection goes too.
  it.live("the socket the heartbeat gave up is gone at once, not left CLOSING on the dead peer", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: answersPings })
      const proxy = yield* FaultProxy.make(server.port)
      // No retry before the test ends: the only connection is the one given up.
      const client = yield* Client.make({ url: proxy.url, retry: Schedule.spaced("1 hour"), heartbeat: appHeartbeat })
      yield* client.awaitOpen
      yield* proxy.blackhole
      expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
        error: { _tag: "TimeoutError", operation: "heartbeat" }
      })
      // Still blackholed: only the client itself can end its TCP connection.
      yield* awaitTrue(Effect.map(proxy.connections, (open) => open === 0), "the proxy sees the client's connection closed")
    })).pipe(provideBrowser))
})
