/**
 * `Connection.extensions` (and compat's `extensions`): what the server accepted, read from the
 * platform's socket. A `ws` server with permessage-deflate accepts it; a TestServer (ws without it)
 * and a client that offers none (`perMessageDeflate: false`) give "". The outsider of round 36 had
 * no way to tell whether a server compressed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import WS, { WebSocketServer } from "ws"
import * as BrowserTransport from "../src/BrowserTransport.js"
import { Client, Connection } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { provideNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { hasWebsockets, pythonEcho } from "./support/python.js"

/** A ws echo server on 127.0.0.1 that accepts permessage-deflate. */
const deflating = Effect.acquireRelease(
  Effect.async<WebSocketServer>((resume) => {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: true })
    server.on(
      "connection",
      (socket) => socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }))
    )
    server.once("listening", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      for (const client of server.clients) client.terminate()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => `ws://127.0.0.1:${(server.address() as { port: number }).port}/`))

describe("Connection.extensions", () => {
  it.scopedLive("Node transport: \"permessage-deflate\" when the server accepts it; \"\" without it, and when not offered", () =>
    Effect.gen(function*() {
      const url = yield* deflating
      const plain = yield* TestServer.make()
      const compressed = yield* Connection.connect(url)
      expect(compressed.extensions).toBe("permessage-deflate")
      expect(compressed.protocol).toBe("")
      expect((yield* Connection.connect(plain.url)).extensions).toBe("")
      expect((yield* Connection.connect(url, { perMessageDeflate: false })).extensions).toBe("")
      // A Client's onOpen sees each link's.
      const seen: Array<string> = []
      const client = yield* Client.make({
        url,
        onOpen: (connection) => Effect.sync(() => void seen.push(connection.extensions))
      })
      yield* client.awaitOpen
      expect(seen).toEqual(["permessage-deflate"])
    }).pipe(provideNode))

  it.scopedLive("browser transport over a WHATWG-shaped socket (ws's class): the socket's own extensions", () =>
    Effect.gen(function*() {
      const url = yield* deflating
      const connection = yield* Connection.connect(url).pipe(
        Effect.provide(BrowserTransport.layerWith(WS as unknown as typeof globalThis.WebSocket))
      )
      expect(connection.extensions).toBe("permessage-deflate")
    }))

  it.scopedLive("compat: \"\" before the first open, then the server's, kept after the close (as partysocket's)", () =>
    Effect.gen(function*() {
      const url = yield* deflating
      const socket = new ReconnectingWebSocket(url, [], { WebSocket: WS })
      yield* Effect.addFinalizer(() => Effect.sync(() => socket.close()))
      expect(socket.extensions).toBe("")
      yield* awaitTrue(Effect.sync(() => socket.readyState === 1), "open")
      expect(socket.extensions).toBe("permessage-deflate")
      socket.close(1000)
      yield* awaitTrue(Effect.sync(() => socket.readyState === 3), "closed")
      expect(socket.extensions).toBe("permessage-deflate")
    }))
})

describe.skipIf(!hasWebsockets)(
  "Connection.extensions against a real peer (Python websockets, which compresses by default)",
  () => {
    it.scopedLive("Node transport: \"permessage-deflate\", and \"\" when not offered; the browser transport (Node's own WebSocket): the header's value with its parameters", () =>
      Effect.gen(function*() {
        const url = yield* pythonEcho
        expect((yield* Connection.connect(url)).extensions).toBe("permessage-deflate")
        expect((yield* Connection.connect(url, { perMessageDeflate: false })).extensions).toBe("")
        const browser = yield* Connection.connect(url).pipe(Effect.provide(BrowserTransport.layer))
        // The header's value, parameters and all (Python answers Node 20's undici with 12-bit windows).
        expect(browser.extensions).toBe("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
      }).pipe(provideNode))
  }
)
