/**
 * The heartbeat over transports whose `bufferedAmount` falls only after the call that queued the
 * probe (browsers: the page's WebSocket hands the bytes to the network on a later turn). A probe
 * queued behind nothing is not "behind a backlog": its answer is awaited `timeout` after it was
 * sent, as before `sentBytes` existed. Real sockets on 127.0.0.1, the heartbeat on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { BrowserTransport, Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"
import { realUntil } from "./support/poll.js"
import { awaitSleeper } from "./support/testClock.js"
import { hasOpenssl, makeMaterial } from "./support/tlsMaterial.js"

// Node 20 has the WHATWG WebSocket behind --experimental-websocket (set in vitest.config.ts).
const provideBrowser = Effect.provide(BrowserTransport.layer)

const realTurns = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

/** Moves the clock a sample (a quarter interval) at a time, with real turns between for the I/O. */
const stepTo = (millis: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 100 && (yield* now) < millis; turn++) {
      yield* TestClock.adjust(Duration.millis(Math.min(125, millis - (yield* now))))
      yield* realTurns
    }
  })

/** Still Open a millisecond before `millis`, and at `millis` in Backoff with TimeoutError heartbeat (timeout 500 ms). */
const foundDeadAt = (client: Client.Client, millis: number) =>
  Effect.gen(function*() {
    yield* stepTo(millis - 1)
    expect((yield* client.state.get)._tag).toBe("Open")
    yield* stepTo(millis)
    yield* realUntil(Effect.map(client.state.get, isTag("Backoff")), "Backoff")
    expect(yield* client.state.get).toMatchObject({
      error: { _tag: "TimeoutError", operation: "heartbeat", timeout: Duration.millis(500) }
    })
  })

describe("Heartbeat: a probe behind nothing (global WebSocket, TestClock)", () => {
  it.effect("an app-level probe sent on an idle socket, never answered: found exactly interval + timeout after the last sign of life", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore", record: true })
      const client = yield* Client.make({
        url: server.url,
        heartbeat: { interval: "500 millis", timeout: "500 millis", message: "probe" }
      })
      yield* client.awaitOpen
      yield* awaitSleeper
      const start = yield* now
      yield* stepTo(start + 499)
      expect(yield* server.received).toEqual([])
      // The probe at 500 reaches the server (the socket had nothing queued before it).
      yield* stepTo(start + 500)
      yield* realUntil(Effect.map(server.received, (received) => received.length === 1), "the probe")
      expect(yield* server.received).toEqual(["probe"])
      // Unanswered: found at 1000, `timeout` after the probe, not `timeout` after the sample
      // that saw the browser hand it to the network (1125).
      yield* foundDeadAt(client, start + 1000)
    })).pipe(provideBrowser))
})

describe("Heartbeat: probe: false, a peer that pings by itself (global WebSocket, TestClock)", () => {
  // Round 33: with no protocol ping and no `message`, the heartbeat stopped ("cannot probe"), and
  // a browser app had to write its own rule (Engine.IO's: nothing for pingInterval + pingTimeout).
  it.effect("no probe sent; the peer's frames keep the link; found dead interval + timeout after the sample that saw its last frame", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore", record: true })
      const client = yield* Client.make({
        url: server.url,
        heartbeat: { interval: "500 millis", timeout: "500 millis", probe: false }
      })
      yield* client.awaitOpen
      yield* awaitSleeper
      const start = yield* now
      const [peer] = yield* server.peers
      for (const at of [250, 500]) {
        yield* stepTo(start + at)
        yield* peer!.send("2")
        yield* realTurns
      }
      // The frame at 500 is seen by the sample at 625 and dated there: dead at 625 + 500 + 500.
      yield* foundDeadAt(client, start + 1625)
      expect([yield* server.received, yield* server.pings]).toEqual([[], 0])
    })).pipe(provideBrowser))
})

const tlsDir = hasOpenssl ? mkdtempSync(join(tmpdir(), "lifeline-probe-")) : undefined
afterAll(() => {
  if (tlsDir !== undefined) rmSync(tlsDir, { recursive: true, force: true })
})

describe("Heartbeat: a probe behind nothing (Node, wss://, TestClock)", () => {
  it.effect.skipIf(tlsDir === undefined)(
    "a ping on an idle TLS socket, never answered: found exactly interval + timeout after the last pong",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const tls = makeMaterial(tlsDir!)
        const server = yield* TestServer.make({ tls: { cert: tls.serverCert, key: tls.serverKey } })
        yield* server.stopPonging
        const client = yield* Client.make({
          url: server.url,
          connection: { tls: { ca: tls.caCert } },
          heartbeat: { interval: "500 millis", timeout: "500 millis" }
        })
        yield* client.awaitOpen
        yield* awaitSleeper
        const start = yield* now
        yield* stepTo(start + 500)
        yield* realUntil(Effect.map(server.pings, (pings) => pings === 1), "the ping")
        yield* foundDeadAt(client, start + 1000)
      })).pipe(provideNode)
  )
})
