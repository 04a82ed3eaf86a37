/**
 * Review of round 21 (docs/trials.md, "review of round 21"): the two src changes on Node, with no
 * peer of round 21 needed (TestServer on 127.0.0.1):
 * - NodeTransport: the hint of a hang-up after subprotocols were offered (libwebsockets refuses so)
 *   (a module WeakSet of the sockets that offered some); offered or not, each gets its hint;
 * - BrowserTransport: the open whose server accepted none of the offered subprotocols (Firefox and
 *   WebKit open it with protocol ""). Node's WebSocket (undici) fails that handshake itself, so the
 *   socket here is Node's WebSocket not told of the subprotocols (a real socket, its real events):
 *   the listener sees the failure, then one close, and nothing else, whatever the server sends.
 * And what the guide says of Apache's idle tunnels: the larger of `Timeout` and `ProxyTimeout` ends
 * one (round 21 measured `Timeout` alone, and `ProxyTimeout` below it); skipped without Apache.
 * And the polled browser kit's end when its runner died first: Xvfb and WebKit's processes, left in
 * the runner's process group, are killed too (they ran on before); skipped without WebKit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schedule } from "effect"
import { CloseEvent, ReconnectingWebSocket } from "effect-lifeline/compat"
import * as Fs from "node:fs"
import { BrowserTransport, Client, Connection, NodeTransport } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { NO_SUBPROTOCOL_DETAIL } from "../src/internal/classifyHandshakeError.js"
import { TestServer } from "../src/testing/index.js"
import { apache, describeApache } from "./support/apache.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { alive, runningWith } from "./support/portPeer.js"
import { closedPort } from "./support/ports.js"
import { describeWebKit, startWebKit } from "./support/webkit.js"

const LWS_HINT = "a server that supports none of the offered subprotocols may refuse so (libwebsockets does)"

/** Node's own WebSocket, the subprotocols dropped: the server is offered none and answers none. */
class Unoffered extends globalThis.WebSocket {
  constructor(url: string | URL, _protocols?: string | Array<string>) {
    super(url)
  }
}

const connectError = (url: string, protocols: ReadonlyArray<string>) =>
  Connection.connect(url, { protocols }).pipe(
    Effect.flip,
    Effect.scoped,
    Effect.map((error) => error as ConnectError)
  )

describe("review of round 21", () => {
  it.live("NodeTransport: a handshake the server hangs up on names the subprotocols in its hint only when some were offered", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.resetDuringHandshake
      const offered = yield* connectError(server.url, ["chat"])
      const none = yield* connectError(server.url, [])
      expect(offered).toMatchObject({ _tag: "ConnectError", reason: "ConnectionReset" })
      expect(offered.detail).toContain(LWS_HINT)
      expect(none).toMatchObject({ _tag: "ConnectError", reason: "ConnectionReset" })
      expect(none.detail).not.toContain("subprotocols")
    })).pipe(Effect.provide(NodeTransport.layer)))

  it.live("BrowserTransport: an open with none of the offered subprotocols accepted: onHandshakeFailure ProtocolViolation, then one onClose 1006; the server's first messages never reach the listener", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({
        protocols: ["chat"],
        onConnect: (peer) => Effect.forEach(["one", "two", "three"], (text) => peer.send(text))
      })
      const events: Array<string> = []
      const opened = BrowserTransport.makeWith(Unoffered).open(
        { url: new URL(server.url), protocols: ["chat"], headers: {}, maxPayload: 1024 * 1024 },
        {
          onOpen: () => events.push("open"),
          onMessage: (data) => events.push(`message ${String(data)}`),
          onPong: () => events.push("pong"),
          onHandshakeFailure: (failure) => events.push(`failure ${failure.reason} ${failure.detail}`),
          onProtocolError: (code) => events.push(`protocolError ${code}`),
          onClose: (code, _reason, wasClean) => events.push(`close ${code} ${wasClean}`)
        }
      )
      expect(Either.isRight(opened)).toBe(true)
      yield* server.awaitConnections(1)
      // Long enough for the close frame's answer and a late close event (none comes).
      yield* Effect.sleep("300 millis")
      expect(events).toEqual([`failure ProtocolViolation ${NO_SUBPROTOCOL_DETAIL}`, "close 1006 false"])
      expect(Either.getOrThrow(opened).readyState()).toBe(3)
    })))

  it.live("BrowserTransport: Connection.connect through it: ConnectError ProtocolViolation, no handle left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["chat"] })
      const error = yield* connectError(server.url, ["chat"])
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "ProtocolViolation" })
      expect(error.detail).toContain(NO_SUBPROTOCOL_DETAIL)
    })).pipe(Effect.provide(BrowserTransport.layerWith(Unoffered))))
})

describeApache("review of round 21: Apache's idle tunnel", () => {
  it.scopedLive(
    "Timeout 1 with ProxyTimeout 3: an idle link is cut after about 3 s, not 1 s (the larger of the two; so too ProxyPass timeout=3, and Timeout 3 with ProxyTimeout 1, measured once)",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const port = yield* closedPort
        yield* apache({ body: `Timeout 1\nProxyTimeout 3\nProxyPass /ws ws://127.0.0.1:${server.port}/ws\n` }, port)
        const idle = yield* Client.make({
          url: `ws://127.0.0.1:${port}/ws`,
          heartbeat: false,
          retry: Schedule.spaced("10 seconds")
        })
        yield* idle.awaitOpen
        const opened = Date.now()
        const backoff = yield* awaitState(idle, isTag("Backoff"), "20 seconds")
        const idleFor = Date.now() - opened
        expect(backoff).toMatchObject({ error: { _tag: "Disconnected", code: 1006, initiator: "transport" } })
        // Timeout alone: 1.0 to 1.3 s (round 21); here 3.03 to 3.06 s
        expect(idleFor).toBeGreaterThan(2500)
        expect(idleFor).toBeLessThan(6000)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )
})

/** The names of the live (not zombie) processes in process group `pgid` (from /proc). */
const groupOf = (pgid: number): Array<string> => {
  const names: Array<string> = []
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      // pid (comm) state ppid pgrp ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (Number(pgrp) === pgid && state !== "Z") names.push(stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")))
    } catch {
      // gone meanwhile
    }
  }
  return names
}

const waitUntil = async (done: () => boolean, millis: number) => {
  for (const until = Date.now() + millis; !done() && Date.now() < until;) await new Promise((r) => setTimeout(r, 20))
}

describeWebKit("review of round 21: the polled browser kit", () => {
  it(
    "the runner (the group's leader) killed first: closing the kit still ends Xvfb and WebKit's processes",
    async () => {
      const kit = await startWebKit([])
      const [leader] = runningWith(`${kit.origin}/runner.html`)
      expect(leader).toBeTypeOf("number")
      try {
        expect(groupOf(leader!)).toContain("Xvfb")
        process.kill(leader!, "SIGKILL")
        await waitUntil(() => !alive(leader!), 2000)
        await kit.close()
        await waitUntil(() => groupOf(leader!).length === 0, 2000)
        // before the fix: ["Xvfb", "WebKitNetworkPr", "WebKitWebProces"], still there after close
        expect(groupOf(leader!)).toEqual([])
      } finally {
        try {
          process.kill(-leader!, "SIGKILL")
        } catch {
          // none left
        }
      }
    },
    60_000
  )
})

/** Every event of a compat socket, in order, as `type` or `close:code:reason`. */
const compatEvents = (socket: ReconnectingWebSocket) => {
  const events: Array<string> = []
  for (const type of ["open", "error", "close"] as const) {
    socket.addEventListener(type, (event) => {
      events.push(event instanceof CloseEvent ? `close:${event.code}:${event.reason}` : type)
    })
  }
  return events
}

describe("review of round 21: the subprotocol refusal as partysocket users write it (compat, Node transport)", () => {
  // protocols as a function (partysocket's `ProtocolsProvider`) evaluated at each attempt
  it.scopedLive("a server that accepts none of the offered: error, close 1006 'ProtocolViolation; not retrying', one handshake; one in common: open with it", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["v1"] })
      const outcome = (offered: ReadonlyArray<string>) =>
        Effect.acquireUseRelease(
          Effect.sync(() =>
            new ReconnectingWebSocket(server.url, () => [...offered], {
              minReconnectionDelay: 10,
              maxReconnectionDelay: 10
            })
          ),
          (socket) =>
            Effect.gen(function*() {
              const events = compatEvents(socket)
              const before = yield* server.requests
              // Twenty reconnection delays: a retried refusal would show many handshakes.
              yield* Effect.sleep("300 millis")
              return {
                events: [...events],
                readyState: socket.readyState,
                protocol: socket.protocol,
                handshakes: (yield* server.requests) - before
              }
            }),
          (socket) => Effect.sync(() => socket.close())
        )
      expect(yield* outcome(["v2"])).toEqual({
        events: ["error", "close:1006:ProtocolViolation; not retrying"],
        readyState: 3,
        protocol: "",
        handshakes: 1
      })
      expect(yield* outcome(["v2", "v1"])).toEqual({ events: ["open"], readyState: 1, protocol: "v1", handshakes: 1 })
    }).pipe(Effect.provide(quietNode)))
})
