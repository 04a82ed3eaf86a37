/**
 * `effect-lifeline/compat` used as partysocket users use it, over a TestServer on 127.0.0.1: a
 * synchronous burst of sends while open (partysocket hands each to the socket; none may be
 * refused), `maxEnqueuedMessages` bounding only what is kept while not open (as in partysocket),
 * and ws's `binaryType` "nodebuffer" / "fragments" giving Node Buffers as ws does.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import WS from "ws"
import { TestServer } from "../src/testing/index.js"
import { awaitReceived } from "./support/clientKit.js"

/** Resolves with the next event of `type` (the test's own timeout bounds it). */
const next = (socket: ReconnectingWebSocket, type: "open" | "close" | "message") =>
  new Promise<Event>((resolve) => socket.addEventListener(type, resolve, { once: true }))

/** Closes the socket and lets its Client end. */
const closeAndSettle = (socket: ReconnectingWebSocket) =>
  Effect.promise(async () => {
    socket.close()
    await new Promise((resolve) => setTimeout(resolve, 20))
  })

/** The `_tag`/`reason` of every error event from now on. */
const errorsOf = (socket: ReconnectingWebSocket) => {
  const errors: Array<string> = []
  socket.addEventListener("error", (event) => {
    const error = event.error as Error & { _tag?: string; reason?: string }
    errors.push(`${error._tag}:${error.reason}`)
  })
  return errors
}

describe("compat: partysocket users' patterns", () => {
  it.scopedLive("a burst of 10,000 sends in a synchronous loop while open: every one returns true and arrives, in order, no error event", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
      const errors = errorsOf(socket)
      yield* Effect.promise(() => next(socket, "open"))
      const count = 10_000
      const returned = new Set<boolean>()
      for (let index = 0; index < count; index++) returned.add(socket.send(`m${index}`))
      expect([...returned]).toEqual([true])
      yield* awaitReceived(server, count)
      const received = yield* server.received
      expect(received.length).toBe(count)
      expect(received.every((frame, index) => frame === `m${index}`)).toBe(true)
      expect(errors).toEqual([])
      yield* closeAndSettle(socket)
    }))

  it.scopedLive("maxEnqueuedMessages bounds what is kept while not open only: 50 sends while open with a bound of 5 all go; the 6th kept is refused", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS, maxEnqueuedMessages: 5 })
      const errors = errorsOf(socket)
      yield* Effect.promise(() => next(socket, "open"))
      for (let index = 0; index < 50; index++) expect(socket.send(`open${index}`)).toBe(true)
      yield* awaitReceived(server, 50)
      expect(errors).toEqual([])
      socket.close()
      const kept = Array.from({ length: 6 }, (_, index) => socket.send(`kept${index}`))
      expect(kept).toEqual([false, false, false, false, false, false])
      expect(errors).toEqual(["SendError:OutboxFull"])
      expect(socket.drainQueuedMessages()).toEqual(["kept0", "kept1", "kept2", "kept3", "kept4"])
      yield* closeAndSettle(socket)
    }))

  it.scopedLive("send then close(4001) from an open listener, or right after awaiting open: the message is written, not kept (it was kept and the peer saw 1001)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      // In the open listener.
      const first = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
      first.addEventListener("open", () => {
        first.send("bye from onopen")
        first.close(4001, "done")
      }, { once: true })
      yield* awaitReceived(server, 1)
      expect(first.drainQueuedMessages()).toEqual([])
      // After `await` of the open event: a microtask later, still before the Client is Open.
      const second = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
      yield* Effect.promise(() => next(second, "open"))
      second.send("a")
      second.send("b")
      second.close(4002, "done")
      yield* awaitReceived(server, 3)
      expect(yield* server.received).toEqual(["bye from onopen", "a", "b"])
      expect(second.drainQueuedMessages()).toEqual([])
      expect(yield* server.accepted).toBe(2)
      yield* closeAndSettle(first)
      yield* closeAndSettle(second)
    }))

  it.scopedLive("a URL provider that never settles: after connectionTimeout an error event and a close 1006, then the next attempt opens (it stayed CONNECTING for ever)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      let calls = 0
      const provider = () => ++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve(server.url)
      const socket = new ReconnectingWebSocket(provider, undefined, {
        WebSocket: WS,
        connectionTimeout: 200,
        minReconnectionDelay: 10,
        reconnectionDelayJitter: 0
      })
      const events: Array<string> = []
      socket.addEventListener("error", (event) => {
        const error = event.error as Error & { _tag?: string; operation?: string }
        events.push(`error:${error._tag}:${error.operation}`)
      })
      socket.addEventListener("close", (event) => events.push(`close:${event.code}`))
      yield* Effect.promise(() => next(socket, "open"))
      expect(events).toEqual([
        "error:TimeoutError:open",
        "close:1006"
      ])
      expect(calls).toBe(2)
      expect(socket.readyState).toBe(ReconnectingWebSocket.OPEN)
      yield* closeAndSettle(socket)
    }))

  for (const [name, options] of [["WebSocket: WS", { WebSocket: WS }], ["the global WebSocket", {}]] as const) {
    it.scopedLive(`binaryType "nodebuffer" gives a Buffer (data.toString() is the text) and "fragments" an array of Buffers, as ws does, over ${name}`, () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const socket = new ReconnectingWebSocket(server.url, undefined, options)
        yield* Effect.promise(() => next(socket, "open"))
        const data: Array<unknown> = []
        for (const type of ["nodebuffer", "fragments"] as const) {
          socket.binaryType = type as BinaryType
          const message = next(socket, "message")
          yield* server.broadcast(new TextEncoder().encode("héllo"))
          data.push(((yield* Effect.promise(() => message)) as MessageEvent).data)
        }
        const [buffer, fragments] = data as [Buffer, Array<Buffer>]
        expect(Buffer.isBuffer(buffer)).toBe(true)
        expect(buffer.toString()).toBe("héllo")
        expect(Array.isArray(fragments) && fragments.length === 1 && Buffer.isBuffer(fragments[0])).toBe(true)
        expect(fragments[0]!.toString()).toBe("héllo")
        yield* closeAndSettle(socket)
      }))
  }
})
