/**
 * Review of round 21 (docs/trials.md, "review of round 21"): the two src changes on Node, with no
 * peer of round 21 needed (TestServer on 127.0.0.1):
 * - NodeTransport: the hint of a hang-up after subprotocols were offered (libwebsockets refuses so)
 *   rides on the socket's own field now, not a module WeakSet; offered or not, each gets its hint;
 * - BrowserTransport: the open whose server accepted none of the offered subprotocols (Firefox and
 *   WebKit open it with protocol ""). Node's WebSocket (undici) fails that handshake itself, so the
 *   socket here is Node's WebSocket not told of the subprotocols (a real socket, its real events):
 *   the listener sees the failure, then one close, and nothing else, whatever the server sends.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { BrowserTransport, Connection, NodeTransport } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { NO_SUBPROTOCOL_DETAIL } from "../src/internal/classifyHandshakeError.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"

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
