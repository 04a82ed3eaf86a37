/**
 * `effect-lifeline/compat` in Node: every portable scenario of test/compat/scenarios.ts over a real
 * TestServer, with exact assertions, on both transports a user can get: the ws class as partysocket
 * users pass it (`WebSocket: WS`: lifeline's Node transport; also what no `WebSocket` option gets
 * in Node), and the standard WebSocket given as the option (Node's global, the browser transport:
 * what a browser gives, which cannot see an HTTP status).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import CompatDefault, { CloseEvent, ErrorEvent, ReconnectingWebSocket, WebSocket } from "effect-lifeline/compat"
import type { Options } from "effect-lifeline/compat"
import WS from "ws"
import { TestServer } from "../src/testing/index.js"
import { serverControl } from "./compat/nodeServer.js"
import type { Scenario } from "./compat/scenarios.js"
import * as Scenarios from "./compat/scenarios.js"
import { awaitReceived } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"

const transports = [
  // The ws class: lifeline's Node transport, which reads the HTTP status and the socket errors.
  {
    name: "WebSocket: WS (Node transport)",
    options: { WebSocket: WS } as Options,
    refused: "ConnectionRefused",
    sees401: true
  },
  // The global standard WebSocket, given: the browser transport (what no option gets in a browser).
  {
    name: "the global WebSocket (browser transport)",
    options: { WebSocket: globalThis.WebSocket } as Options,
    refused: "ClosedBeforeOpen",
    sees401: false
  }
] as const

const on = <A>(options: Options, scenario: Scenario<A>, serverOptions: TestServer.Options = {}) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make(serverOptions)
    return yield* Effect.promise(() =>
      scenario({
        url: server.url,
        server: serverControl(server),
        WebSocket: ReconnectingWebSocket,
        options,
        platform: "node"
      })
    )
  })

/** console.error while `effect` runs, captured: what a listener that throws is reported with. */
const capturingConsoleError = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const reported: Array<unknown> = []
    const original = console.error
    console.error = (...args: Array<unknown>) => reported.push(args[1])
    const result = yield* Effect.ensuring(
      effect,
      Effect.sync(() => {
        console.error = original
      })
    )
    return [result, reported] as const
  })

describe("effect-lifeline/compat exports", () => {
  it("the class as ReconnectingWebSocket, WebSocket and default, with the event classes", () => {
    expect(WebSocket).toBe(ReconnectingWebSocket)
    expect(CompatDefault).toBe(ReconnectingWebSocket)
    const close = new CloseEvent(4000, "why", false)
    expect([close.type, close.code, close.reason, close.wasClean]).toEqual(["close", 4000, "why", false])
    const error = new ErrorEvent(new Error("boom"))
    expect([error.type, error.message, error.error.message]).toEqual(["error", "boom", "boom"])
    expect(close).toBeInstanceOf(Event)
    expect(new ReconnectingWebSocket("ws://127.0.0.1:1", undefined, { startClosed: true })).toBeInstanceOf(EventTarget)
  })
})

for (const transport of transports) {
  const run = <A>(scenario: Scenario<A>, serverOptions: TestServer.Options = {}) =>
    on(transport.options, scenario, serverOptions)

  describe(`partysocket's API, over ${transport.name}`, () => {
    it.scopedLive("open, message, a server's close with its code, reconnect; on* handlers see the same events", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.lifecycle)
        const events = ["open", "message:hello", "close:4000:bye:clean", "open", "close:1000:done:clean"]
        expect(seen.events).toEqual(events)
        expect(seen.handlers).toEqual(events)
        expect(seen.readyStates).toEqual([0, 1, 3, 1, 3])
        expect(seen.urlAsGiven).toBe(true)
        expect(seen.sendWhileOpen).toBe(true)
        expect(seen.constants).toEqual([0, 1, 2, 3, 0, 1, 2, 3])
      }))

    it.scopedLive("messages sent while the server is down are kept and go out in order, before what onopen sends", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.queueWhileDown)
        expect(seen.returned).toEqual([false, false, false])
        expect(seen.readyStateDown).toBe(3)
        expect(seen.bufferedWhileDown).toBe(6)
        expect(seen.received.map((frame) => typeof frame === "string" ? frame : [...frame])).toEqual(["a", "bb", [
          1,
          2,
          3
        ], "after-open"])
      }))

    it.scopedLive("frames sent just before a close frame are all dispatched, in order, before the close event", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.messagesBeforeClose)
        expect(seen.events).toEqual([
          "open",
          ...Array.from({ length: 50 }, (_, index) => `message:m${index}`),
          "close:4005:after the burst:clean"
        ])
      }))

    it.scopedLive("startClosed: CLOSED and no connection until reconnect(), then what was sent first goes first", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.startClosed)
        expect(seen).toEqual({
          readyState: 3,
          requestsBefore: 0,
          events: ["open", "message:early", "message:late", "close:1000::clean"],
          received: ["early", "late"],
          retryCount: 0
        })
      }))

    it.scopedLive("close() dispatches its close event at once and stops reconnecting", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.closeStops)
        expect(seen).toEqual({
          events: ["open", "close:4001:leaving:clean"],
          readyState: 3,
          accepted: 1,
          shouldReconnect: false
        })
      }))

    it.scopedLive("reconnect(code, reason): a close event with them, a new connection, the retry count at 0", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.reconnectMethod)
        expect(seen).toEqual({
          events: ["open", "message:ping", "close:4002:again:clean", "open", "close:1000::clean"],
          accepted: 2,
          retryCount: 0,
          readyStatesInClose: [0, 3]
        })
      }))

    it.scopedLive("maxRetries: 1 + maxRetries attempts, each a typed error then close 1006 (not 1000), then nothing", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.maxRetries)
        expect(seen.events).toEqual([
          `error:ConnectError:${transport.refused}`,
          "close:1006::unclean",
          `error:ConnectError:${transport.refused}`,
          "close:1006::unclean",
          `error:ConnectError:${transport.refused}`,
          `close:1006:${transport.refused}; not retrying:unclean`
        ])
        expect(seen.retryCount).toBe(2)
        expect(seen.readyState).toBe(3)
        expect(seen.requestsAfter).toBe(0)
      }))

    it.scopedLive("connectionTimeout: a hung handshake is a TimeoutError (open), then close 1006", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.connectionTimeout)
        expect(seen.events).toEqual(["error:TimeoutError:open", "close:1006:TimeoutError (open); not retrying:unclean"])
      }))

    it.scopedLive("URL and protocols providers (async and sync) are called before every attempt", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.providers, { protocols: ["p1", "p2"] })
        expect(seen.urlCalls).toBe(2)
        expect(seen.protocolCalls).toBe(2)
        expect(seen.protocols).toEqual(["p1", "p2"])
        expect(seen.offered).toEqual(["p1", "p2"])
        expect(seen.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/\?attempt=2$/)
      }))

    it.scopedLive("binaryType: blob by default, ArrayBuffer or Blob as set; a Blob sent keeps its place", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.binaryType)
        expect(seen).toEqual({
          initial: "blob",
          kinds: ["ArrayBuffer", "Blob"],
          bytes: [[7, 8, 9], [7, 8, 9]],
          order: ["before", [1, 2], "after"]
        })
      }))

    it.scopedLive("a Blob among sends, then close(): the Blob and what follows go out before the close (each send true), counted in bufferedAmount until then", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.blobThenClose)
        expect(seen).toEqual({
          returned: [true, true, true],
          bufferedAfterClose: 2,
          received: ["a", [1], "c"],
          drained: 0
        })
      }))

    it.scopedLive("a Blob and a message from the open listener, then close(4000): both written, then the close the server gets", () =>
      Effect.gen(function*() {
        const closes: Array<Promise<{ code: number; reason: string }>> = []
        const seen = yield* run(Scenarios.blobInOpenThenClose, {
          onConnect: (peer) => {
            closes.push(Effect.runPromise(peer.awaitClosed()))
          }
        })
        expect(seen).toEqual({ received: [[1, 2, 3, 4, 5], "bye"], drained: 0 })
        const closed = yield* Effect.promise(() => Promise.all(closes))
        expect(closed.map(({ code, reason }) => [code, reason])).toEqual([[4000, "done"]])
      }))
  })

  describe(`where lifeline differs from partysocket, over ${transport.name}`, () => {
    it.scopedLive("past maxEnqueuedMessages: send returns false and an error event carries the message", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.overflow)
        expect(seen.returned).toEqual([false, false, false])
        expect(seen.errors).toEqual([{ tag: "SendError", reason: "OutboxFull", payload: "c" }])
        expect(seen.received).toEqual(["a", "b"])
      }))

    it.scopedLive(
      transport.sees401
        ? "a 401 is final: a typed error with the status, a close that says why, no retry"
        : "a 401 cannot be seen (as in browsers): retried as any failed connect, each a close 1006",
      () =>
        Effect.gen(function*() {
          const seen = yield* run(Scenarios.unauthorized)
          if (transport.sees401) {
            expect(seen.events).toEqual([
              "error:ConnectError:HandshakeRejected",
              "close:1006:HandshakeRejected (HTTP 401); not retrying:unclean"
            ])
            expect(seen.requests).toBe(1)
          } else {
            expect(seen.events).toEqual([
              "error:ConnectError:ClosedBeforeOpen",
              "close:1006::unclean",
              "error:ConnectError:ClosedBeforeOpen",
              "close:1006::unclean",
              "error:ConnectError:ClosedBeforeOpen",
              "close:1006:ClosedBeforeOpen; not retrying:unclean"
            ])
            expect(seen.requests).toBe(3)
          }
          expect(seen.readyState).toBe(3)
        })
    )

    it.scopedLive("a server close 1008 is final; shouldReconnectOnClose can override", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.fatalClose)
        expect(seen.events).toEqual(["open", "close:1008:policy:clean"])
        expect(seen.accepted).toBe(1)
        expect(seen.acceptedWithOverride).toBe(3)
      }))

    it.scopedLive("a listener that throws does not crash the process nor stop the other listeners", () =>
      Effect.gen(function*() {
        const [seen, reported] = yield* capturingConsoleError(run(Scenarios.throwingListener))
        expect(seen.events).toEqual(["open", "message:one", "message:two", "close:1000::clean"])
        expect(reported.map((error) => (error as Error).message)).toEqual([
          "a bug in the app",
          "another bug in the app",
          "a bug in the app",
          "another bug in the app"
        ])
      }))

    it.scopedLive("messages kept at close() are handed back by drainQueuedMessages()", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.drainAfterClose)
        expect(seen).toEqual({ drained: ["x", "y"], afterDrain: 0 })
      }))

    it.scopedLive("reconnect() and close() while connecting: close events at once, no stray error, nothing escapes", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.abortWhileConnecting)
        expect(seen).toEqual({ events: ["close:4003:retry now:clean", "close:4004:give up:clean"], readyState: 3 })
      }))

    it.scopedLive("a URL that cannot work is final: InvalidUrl, then a close that says why", () =>
      Effect.gen(function*() {
        const seen = yield* run(Scenarios.invalidUrl)
        expect(seen).toEqual({
          events: ["error:ConnectError:InvalidUrl", "close:1006:InvalidUrl; not retrying:unclean"],
          readyState: 3
        })
      }))
  })
}

describe("effect-lifeline/compat in Node", () => {
  // Node 22 has a global WebSocket (undici's), without protocol ping or HTTP status: with no
  // WebSocket option, Node users get lifeline's Node transport (a half-open peer is found by the
  // heartbeat's ping; a 401 is seen), not the global one.
  it.scopedLive("no WebSocket option (a global WebSocket there): the Node transport, which sees a 401 and does not retry it", () =>
    Effect.gen(function*() {
      expect(typeof globalThis.WebSocket).toBe("function")
      const seen = yield* on({}, Scenarios.unauthorized)
      expect(seen.events).toEqual([
        "error:ConnectError:HandshakeRejected",
        "close:1006:HandshakeRejected (HTTP 401); not retrying:unclean"
      ])
      expect(seen.requests).toBe(1)
    }))

  // What a user passes to add options ws takes only in its constructor (an agent, a CA, headers):
  // a Proxy whose construct trap adds them, a subclass, a plain function. Each is constructed as
  // given, so the header reaches the server; a Proxy of ws was taken for ws itself, given the Node
  // transport, and its trap never ran (the header silently missing).
  const withHeader = (url: string, protocols?: string | Array<string>) =>
    Reflect.construct(WS, [url, protocols, { headers: { "x-added-by": "the app" } }]) as WS
  const wrappers: ReadonlyArray<readonly [string, () => unknown]> = [
    [
      "a Proxy of ws with a construct trap",
      () => new Proxy(WS, { construct: (_, [url, protocols]) => withHeader(url, protocols) })
    ],
    ["a subclass of ws", () =>
      class extends WS {
        constructor(url: string | URL, protocols?: string | Array<string>) {
          super(url, protocols, { headers: { "x-added-by": "the app" } })
        }
      }],
    ["a plain function that returns a ws", () =>
      function Wrapped(url: string, protocols?: string | Array<string>) {
        return withHeader(url, protocols)
      }]
  ]
  for (const [name, make] of wrappers) {
    it.scopedLive(`WebSocket: ${name}: constructed as given, its options apply (the server sees its header)`, () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const echoed = yield* Effect.promise(async () => {
          const socket = new ReconnectingWebSocket(server.url, undefined, {
            WebSocket: make() as Options["WebSocket"],
            maxRetries: 0
          })
          await Scenarios.next(socket, "open")
          socket.send("hi")
          const message = await Scenarios.next<MessageEvent>(socket, "message")
          socket.close()
          return String(message.data)
        })
        expect(echoed).toBe("hi")
        expect((yield* server.lastRequestHeaders)["x-added-by"]).toBe("the app")
      }))
  }

  it.scopedLive("a URL function whose first answer cannot work (\"\"): an error, then asked again and open, as partysocket", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const seen = yield* Effect.promise(async () => {
        let calls = 0
        const socket = new ReconnectingWebSocket(() => calls++ === 0 ? "" : server.url, undefined, {
          WebSocket: WS,
          minReconnectionDelay: 20,
          maxReconnectionDelay: 40,
          reconnectionDelayJitter: 0
        })
        const events = Scenarios.record(socket)
        await Scenarios.next(socket, "open")
        socket.close()
        return { events: events.slice(0, 3), calls }
      })
      expect(seen).toEqual({
        events: ["error:ConnectError:InvalidUrl", "close:1006::unclean", "open"],
        calls: 2
      })
    }))

  it.scopedLive("shouldReconnectOnClose saying no: shouldReconnect false (as partysocket's) until reconnect()", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const socket = new ReconnectingWebSocket(server.url, undefined, {
        WebSocket: WS,
        shouldReconnectOnClose: () => false
      })
      yield* Effect.promise(() => Scenarios.next(socket, "open"))
      const before = socket.shouldReconnect
      const closed = Scenarios.next(socket, "close")
      yield* server.closeAll(4000, "bye")
      yield* Effect.promise(() => closed)
      const after = [socket.readyState, socket.shouldReconnect]
      socket.reconnect()
      const again = socket.shouldReconnect
      yield* Effect.promise(() => Scenarios.next(socket, "open"))
      socket.close()
      expect({ before, after, again }).toEqual({ before: true, after: [3, false], again: true })
    }))

  // Sends behind a Blob are sized once, when sent: `null` (a browser sends "null") threw there, out
  // of the Blob's read (an unhandled rejection), and every send after it stayed queued.
  it.scopedLive("behind a Blob: send(null), send(123), send(\"after\"), then close(): all written in order as a browser converts them, bufferedAmount a number, the close sent", () =>
    Effect.gen(function*() {
      const closes: Array<Promise<{ code: number; reason: string }>> = []
      const server = yield* TestServer.make({
        onConnect: (peer) => {
          closes.push(Effect.runPromise(peer.awaitClosed()))
        }
      })
      const seen = yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
        await Scenarios.next(socket, "open")
        socket.send(new Blob([new Uint8Array([9])]))
        socket.send(null as unknown as string)
        socket.send(123 as unknown as string)
        socket.send("after")
        const buffered = socket.bufferedAmount
        socket.close(4000, "done")
        return { buffered }
      })
      yield* awaitReceived(server, 4)
      const closed = yield* Effect.promise(() => Promise.all(closes))
      expect(seen).toEqual({ buffered: 6 })
      expect((yield* server.received).map((frame) => typeof frame === "string" ? frame : [...frame])).toEqual([
        [9],
        "null",
        "123",
        "after"
      ])
      expect(closed.map(({ code, reason }) => [code, reason])).toEqual([[4000, "done"]])
    }))

  // Both ended the same life: the second end waited on the first's one slot, and the next life
  // never started (CONNECTING for good).
  it.scopedLive("close() with a Blob being read, and reconnect() from its close listener: the Blob goes out, the next connection opens", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const seen = yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
        await Scenarios.next(socket, "open")
        socket.send(new Blob([new Uint8Array([1, 2])]))
        socket.send("a")
        socket.addEventListener("close", () => socket.reconnect(), { once: true })
        socket.close()
        await Scenarios.next(socket, "open")
        const readyState = socket.readyState
        socket.close()
        return { readyState }
      })
      expect(seen).toEqual({ readyState: 1 })
      expect((yield* server.received).map((frame) => typeof frame === "string" ? frame : [...frame])).toEqual([
        [1, 2],
        "a"
      ])
      expect(yield* server.accepted).toBe(2)
    }))

  // Round 33: the close listener's reconnect() ended the life first, alone, and closed the Client
  // at once, the connection still opening: nothing sent went out, and the peer got no 4001.
  it.scopedLive("close() in the open listener, and reconnect() from its close listener: what was sent before it goes out, then the close asked for; the next connection opens", () =>
    Effect.gen(function*() {
      const peers: Array<TestServer.Peer> = []
      const server = yield* TestServer.make({ onConnect: (peer) => void peers.push(peer) })
      yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
        socket.addEventListener("open", () => {
          socket.send(new Blob([new Uint8Array([1, 2])]))
          socket.send("a")
          socket.addEventListener("close", () => socket.reconnect(), { once: true })
          socket.close(4001, "bye")
        }, { once: true })
        await Scenarios.next(socket, "open")
        await Scenarios.next(socket, "open")
        socket.close()
      })
      expect((yield* server.received).map((frame) => typeof frame === "string" ? frame : [...frame])).toEqual([
        [1, 2],
        "a"
      ])
      expect(yield* server.accepted).toBe(2)
      expect(yield* peers[0]!.awaitClosed()).toEqual({ code: 4001, reason: "bye" })
    }))

  // A review of round 33: the fix above first ended the life before dispatching its close event,
  // and the Client, Closed by then, read retryCount as its last attempt's.
  it.scopedLive("retryCount in close()'s close event, the link open longer than minUptime after a reconnect: 0, as before close()", () =>
    Effect.gen(function*() {
      const peers: Array<TestServer.Peer> = []
      const server = yield* TestServer.make({ onConnect: (peer) => void peers.push(peer) })
      const seen = yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, {
          WebSocket: WS,
          minUptime: 50,
          minReconnectionDelay: 1,
          maxReconnectionDelay: 2
        })
        await Scenarios.next(socket, "open")
        // The server drops the first link: the second attempt opens.
        await Effect.runPromise(peers[0]!.close(4000, "drop"))
        await Scenarios.next(socket, "open")
        await new Promise((resolve) => setTimeout(resolve, 200))
        const before = socket.retryCount
        let inClose = -1
        let stateInClose = -1
        socket.addEventListener("close", () => {
          inClose = socket.retryCount
          stateInClose = socket.readyState
        }, { once: true })
        socket.close(4001, "bye")
        return { before, inClose, stateInClose }
      })
      expect(seen).toEqual({ before: 0, inClose: 0, stateInClose: 3 })
    }))
  // The same, counting the close events: the listener's reconnect() dispatched a second close
  // event (1000) for the same connection (partysocket dispatches one), before round 33 too.
  it.scopedLive("close() in the open listener, reconnect() in its close listener: one close event for that connection (the 1000 is the last close())", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const closes = yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
        const closes: Array<string> = []
        socket.addEventListener("close", (event) => closes.push(`${(event as CloseEvent).code}`))
        socket.addEventListener("open", () => {
          socket.addEventListener("close", () => socket.reconnect(), { once: true })
          socket.close(4001, "bye")
        }, { once: true })
        await Scenarios.next(socket, "open")
        await Scenarios.next(socket, "open")
        socket.close()
        return closes
      })
      expect(closes).toEqual(["4001", "1000"])
    }))

  // Round 33 (a CI run's flaky `abortWhileConnecting`): a close() right after reconnect(), before
  // the next Client had started, read CONNECTING and dispatched no close event.
  it.scopedLive("reconnect() then close() at once: a close event for each, CONNECTING between them, CLOSED after", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const seen = yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
        const events: Array<string> = []
        socket.addEventListener("close", (event) => events.push(`close:${event.code}:${event.reason}`))
        await Scenarios.next(socket, "open")
        socket.reconnect(4003, "retry now")
        const between = socket.readyState
        socket.close(4004, "give up")
        await Scenarios.sleep(100)
        return { events, between, readyState: socket.readyState }
      })
      expect(seen).toEqual({ events: ["close:4003:retry now", "close:4004:give up"], between: 0, readyState: 3 })
      expect(yield* server.accepted).toBe(1)
    }))

  it.scopedLive("leaves no handle behind once closed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, { WebSocket: WS })
        await Scenarios.next(socket, "open")
        socket.close()
        await Scenarios.sleep(50)
      })
    })))

  it.scopedLive("debug: lifeline's log lines go to debugLogger; without it, nothing is logged", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const lines: Array<string> = []
      yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, {
          WebSocket: WS,
          debug: true,
          debugLogger: (...args) => lines.push(args.map(String).join(" "))
        })
        await Scenarios.next(socket, "open")
        await Scenarios.sleep(20)
        socket.close()
        await Scenarios.sleep(20)
      })
      expect(lines).toEqual([
        "RWS> DEBUG lifeline: Connecting",
        "RWS> DEBUG lifeline: Open",
        "RWS> DEBUG lifeline: Closed"
      ])
    }))
})

describe("effect-lifeline/compat: no message lost without a word (Node transport)", () => {
  it.scopedLive("frames accepted while open and never written (the peer stopped reading, then died) each come back in an error event", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const size = 1024 * 1024
      const outcome = yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, {
          WebSocket: WS,
          minReconnectionDelay: 20,
          maxRetries: 0
        })
        const failed: Array<unknown> = []
        socket.addEventListener("error", (event) => {
          const error = event.error as Error & { _tag?: string; reason?: string; payload?: Uint8Array }
          if (error._tag === "SendError") failed.push([error.reason, error.payload?.[0]])
        })
        await Scenarios.next(socket, "open")
        await Effect.runPromise(server.pauseReading)
        const accepted = Array.from({ length: 15 }, (_, index) => socket.send(new Uint8Array(size).fill(index)))
        await Scenarios.sleep(100)
        const closed = Scenarios.next(socket, "close")
        await Effect.runPromise(server.kill)
        await closed
        await Scenarios.sleep(50)
        socket.close()
        return { accepted, failed }
      })
      // 15 MiB (within the 16 MiB bound) cannot all sit in the socket buffers of a peer that stopped
      // reading: some were not written.
      expect(outcome.accepted.every((accepted) => accepted)).toBe(true)
      expect(outcome.failed.length).toBeGreaterThan(0)
      // Each is one of the frames sent, the latest ones, in order, once.
      const firsts = outcome.failed.map((entry) => (entry as [string, number])[1])
      expect(outcome.failed.every((entry) => (entry as [string, number])[0] === "WriteFailed")).toBe(true)
      expect(firsts).toEqual(Array.from({ length: firsts.length }, (_, index) => 15 - firsts.length + index))
    }))

  it.scopedLive("maxEnqueuedMessages: 0 keeps nothing while not open: each send is an error event with the message", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const outcome = yield* Effect.promise(async () => {
        const socket = new ReconnectingWebSocket(server.url, undefined, {
          WebSocket: WS,
          maxEnqueuedMessages: 0,
          startClosed: true
        })
        const errors: Array<unknown> = []
        socket.addEventListener(
          "error",
          (event) =>
            errors.push([
              (event.error as Error & { reason?: string }).reason,
              (event.error as Error & { payload?: unknown }).payload
            ])
        )
        const returned = socket.send("lost?")
        socket.reconnect()
        await Scenarios.next(socket, "open")
        const whileOpen = socket.send("sent")
        await Scenarios.next(socket, "message")
        socket.close()
        return { returned, whileOpen, errors }
      })
      expect(outcome).toEqual({ returned: false, whileOpen: true, errors: [["OutboxFull", "lost?"]] })
      expect(yield* server.received).toEqual(["sent"])
    }))
})
