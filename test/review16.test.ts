/**
 * Review of round 16's source changes, on real sockets (127.0.0.1): the browser transport's
 * write callbacks past the high-water mark (Node's own WebSocket, behind --experimental-websocket),
 * and the supervisor's guarded schedule step and Suspended wait. What was found: docs/trials.md,
 * "review of round 16".
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option } from "effect"
import { WebSocketServer } from "ws"
import { BrowserTransport, Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import type { SocketListener, TransportSocket } from "../src/Transport.js"
import { withNoHandlesLeft } from "./support/handles.js"

const provideBrowser = Effect.provide(Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger)))

/** A raw echo-less `ws` server on 127.0.0.1 that counts the text frames it gets. */
const rawServer = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly received: Array<string>; readonly server: WebSocketServer }>(
    (resume) => {
      const server = new WebSocketServer({ port: 0, host: "127.0.0.1" })
      const received: Array<string> = []
      server.on("connection", (socket) => socket.on("message", (data) => received.push(String(data))))
      server.on("listening", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ url: `ws://127.0.0.1:${port}`, received, server }))
      })
    }
  ),
  ({ server }) =>
    Effect.async<void>((resume) => {
      for (const client of server.clients) client.terminate()
      server.close(() => resume(Effect.void))
    })
)

/** Opens one socket of the browser transport with the given mark; resolves once OPEN. */
const openSocket = (url: string, writeHighWaterMark: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly socket: TransportSocket; readonly closed: Promise<number> }>((resume) => {
      let onClose: (code: number) => void = () => {}
      const closed = new Promise<number>((resolve) => (onClose = resolve))
      const listener: SocketListener = {
        onOpen: () => resume(Effect.succeed({ socket: created, closed })),
        onMessage: () => {},
        onPong: () => {},
        onHandshakeFailure: () => {},
        onProtocolError: () => {},
        onClose: (code) => onClose(code)
      }
      const opened = BrowserTransport.make.open(
        { url: new URL(url), protocols: [], headers: {}, maxPayload: 1 << 20, writeHighWaterMark },
        listener
      )
      if (opened._tag === "Left") throw new Error(opened.left.detail)
      const created = opened.right
    }),
    ({ closed, socket }) =>
      Effect.promise(() => {
        socket.terminate()
        return closed
      })
  )

describe("browser transport: write callbacks past the high-water mark", () => {
  // The Transport contract: callbacks run in the order of the sends. A frame sent from the callback
  // of a frame that waited, while frames after that one still wait for theirs, was called back at
  // once (the list of waiting frames was emptied before their callbacks ran): before them.
  it.live("a frame sent from a waiting frame's callback is called back after the frames sent before it", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* rawServer
      const { socket } = yield* openSocket(server.url, 50)
      const order: Array<string> = []
      const done = yield* Effect.promise(() =>
        new Promise<void>((resolve) => {
          socket.send("a".repeat(100), () => {
            order.push("a")
            socket.send("c", () => {
              order.push("c")
              if (order.length === 3) resolve()
            })
          })
          socket.send("b", () => {
            order.push("b")
            if (order.length === 3) resolve()
          })
        })
      )
      expect(done).toBeUndefined()
      expect(order).toEqual(["a", "b", "c"])
    })).pipe(provideBrowser))
})

describe("browser transport: text beyond ASCII at the close", () => {
  // `bufferedAmount` counts UTF-8 bytes, `handed` counted UTF-16 units: with two-byte characters,
  // what left (`handed - bufferedAmount`) was undercounted by what was still buffered, and frames
  // the browser had sent came back from `close()` as unsent (sent twice by a caller that resends).
  it.live("frames of 'é' enqueued to a peer that stopped reading, then close: what close returns never reached the server", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      yield* server.pauseReading
      const client = yield* Client.make({ url: server.url, connection: { closeTimeout: "300 millis" } })
      yield* client.awaitOpen
      const frame = (index: number) => `${index}:${"é".repeat(64 * 1024)}`
      const taken: Array<string> = []
      for (let index = 0; index < 500; index++) {
        const refused = yield* Effect.flip(client.enqueue(frame(index))).pipe(Effect.option)
        if (Option.isNone(refused)) taken.push(frame(index))
      }
      expect(taken.length).toBeLessThan(500)
      const [peer] = yield* server.peers
      const unsent = yield* client.close()
      yield* server.resumeReading
      yield* peer!.awaitClosed()
      const received = yield* server.received
      expect(unsent.length).toBeGreaterThan(0)
      expect(unsent).toEqual(taken.slice(taken.length - unsent.length))
      expect(received).toEqual(taken.slice(0, received.length))
      expect({ received: received.length, unsent: unsent.length, both: received.length + unsent.length <= taken.length })
        .toMatchObject({ both: true })
      expect(yield* client.failed).toBe(unsent.length)
    })).pipe(provideBrowser))
})
