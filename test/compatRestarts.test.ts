/**
 * `effect-lifeline/compat` through server restarts, used as partysocket users use it
 * (`new WebSocket(url, [], { WebSocket: WS })`), over a TestServer on 127.0.0.1 that is killed
 * (no close frame) and restarted on the same port. Where useful the same calls are made on
 * partysocket 1.3.0 (`partysocket/ws`) and both event sequences asserted, so each difference is
 * visible (each one documented in docs/compat.md).
 *
 * Every retry delay is fixed (no jitter) and long enough that the server is back before the next
 * attempt, so the number of failed attempts, and with it every sequence, is exact.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import PartySocket from "partysocket/ws"
import WS from "ws"
import { TestServer } from "../src/testing/index.js"
import * as Scenarios from "./compat/scenarios.js"
import { withNoHandlesLeft } from "./support/handles.js"

/** What both classes have, as the tests use it. */
interface Socket {
  readonly readyState: number
  readonly retryCount: number
  readonly bufferedAmount: number
  readonly shouldReconnect: boolean
  binaryType: string
  onopen: ((event: Event) => void) | null
  onclose: ((event: Event & { code: number }) => void) | null
  send(data: string): boolean
  close(code?: number, reason?: string): void
  reconnect(code?: number, reason?: string): void
  addEventListener(type: string, listener: (event: Event) => void, options?: AddEventListenerOptions): void
  removeEventListener(type: string, listener: (event: Event) => void): void
}

type Constructor = new(url: string, protocols: Array<string>, options: Record<string, unknown>) => Socket

const LIFELINE = ReconnectingWebSocket as unknown as Constructor
const PARTYSOCKET = PartySocket as unknown as Constructor

const run = <A>(effect: Effect.Effect<A>): Promise<A> => Effect.runPromise(effect)

/** Every event as a line with the readyState and retryCount seen in it; the on* handlers too. */
const trace = (socket: Socket): Array<string> => {
  const lines: Array<string> = []
  socket.onopen = () => lines.push(`onopen@${socket.readyState}`)
  socket.onclose = (event) => lines.push(`onclose:${event.code}@${socket.readyState}`)
  for (const type of ["open", "message", "close", "error"]) {
    socket.addEventListener(
      type,
      (event) => lines.push(`${Scenarios.describeEvent(event)}@${socket.readyState}/r${socket.retryCount}`)
    )
  }
  return lines
}

/** Fixed delays: `delay` ms before each retry, as partysocket computes them (no jitter). */
const fixed = (delay: number) => ({
  WebSocket: WS,
  minReconnectionDelay: delay,
  maxReconnectionDelay: delay,
  reconnectionDelayJitter: 0
})

const onServer = <A>(body: (server: TestServer.TestServer) => Promise<A>) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    return yield* Effect.promise(() => body(server))
  })

/** Until the server has received `count` messages. */
const receivedAtLeast = (server: TestServer.TestServer, count: number) =>
  Scenarios.until(async () => (await run(server.received)).length >= count)

/**
 * Three outages: each a kill (the open connection drops), two sends, the first retry refused, a
 * third send while waiting, the restart, the next retry opens; the three messages arrive (echoed)
 * before the next kill.
 */
const threeRestarts = (Class: Constructor) =>
  onServer(async (server) => {
    const socket = new Class(server.url, [], fixed(200))
    const lines = trace(socket)
    await Scenarios.next(socket as never, "open")
    for (let outage = 0; outage < 3; outage++) {
      lines.push(`kill ${outage}`)
      const dropped = Scenarios.next(socket as never, "close")
      await run(server.kill)
      await dropped
      const sent = [socket.send(`m${outage}a`), socket.send(`m${outage}b`)]
      lines.push(`sent ${sent.join(",")} buffered ${socket.bufferedAmount}`)
      await Scenarios.next(socket as never, "close")
      const third = socket.send(`m${outage}c`)
      lines.push(`waiting ${socket.readyState}/r${socket.retryCount} sent ${third} buffered ${socket.bufferedAmount}`)
      lines.push(`restart ${outage}`)
      const opened = Scenarios.next(socket as never, "open")
      await run(server.restart)
      await opened
      await receivedAtLeast(server, 3 * (outage + 1))
      await Scenarios.until(() => lines.includes(`message:m${outage}c@1/r${2 * outage + 2}`))
    }
    socket.close()
    await Scenarios.sleep(50)
    return {
      lines,
      received: await run(server.received),
      requests: await run(server.requests),
      readyState: socket.readyState
    }
  })

const everyMessage = ["m0a", "m0b", "m0c", "m1a", "m1b", "m1c", "m2a", "m2b", "m2c"]

describe("compat through server restarts (WebSocket: WS)", () => {
  it.scopedLive("killed and restarted 3 times: the exact events, readyState and retryCount at each, the close codes; every message sent while down arrives once, in order; as partysocket, but for the error and the 1006", () =>
    Effect.gen(function*() {
      const outage = (index: number) => {
        const retry = 2 * index + 1
        const messages = ["a", "b", "c"].map((suffix) => `message:m${index}${suffix}@1/r${retry + 1}`)
        return {
          lifeline: [
            `kill ${index}`,
            // The error first (a WebSocket is CLOSED by then), then the close as it happened.
            `error:Disconnected@3/r${retry}`,
            "onclose:1006@3",
            `close:1006::unclean@3/r${retry}`,
            "sent false,false buffered 6",
            `error:ConnectError:ConnectionRefused@3/r${retry + 1}`,
            "onclose:1006@3",
            `close:1006::unclean@3/r${retry + 1}`,
            `waiting 3/r${retry + 1} sent false buffered 9`,
            `restart ${index}`,
            "onopen@1",
            `open@1/r${retry + 1}`,
            ...messages
          ],
          partysocket: [
            `kill ${index}`,
            // ws's close event copied for the listeners: "unknown reason", wasClean true.
            "onclose:1006@3",
            `close:1006:unknown reason:clean@3/r${retry}`,
            "sent false,false buffered 6",
            // A refused connect: a close 1000 (CLOSING), then an error with no type.
            "onclose:1000@2",
            `close:1000:unknown reason:clean@2/r${retry + 1}`,
            `error:?:ECONNREFUSED@2/r${retry + 1}`,
            `waiting 3/r${retry + 1} sent false buffered 9`,
            `restart ${index}`,
            "onopen@1",
            `open@1/r${retry + 1}`,
            ...messages
          ]
        }
      }
      const lifeline = yield* withNoHandlesLeft(threeRestarts(LIFELINE))
      expect(lifeline.lines).toEqual([
        "onopen@1",
        "open@1/r0",
        ...[0, 1, 2].flatMap((index) => outage(index).lifeline),
        "onclose:1000@3",
        "close:1000::clean@3/r6"
      ])
      expect(lifeline.received).toEqual(everyMessage)
      // The first handshake and one per restart (the refused attempts never reach the server).
      expect(lifeline.requests).toBe(4)
      expect(lifeline.readyState).toBe(3)

      const partysocket = yield* threeRestarts(PARTYSOCKET)
      expect(partysocket.lines).toEqual([
        "onopen@1",
        "open@1/r0",
        ...[0, 1, 2].flatMap((index) => outage(index).partysocket),
        "onclose:1000@3",
        "close:1000:unknown reason:clean@3/r6"
      ])
      expect(partysocket.received).toEqual(everyMessage)
      expect(partysocket.requests).toBe(4)
    }))

  it.scopedLive("the server gone, 30 refused retries with no delay: each close event's retryCount is the retry that follows it, 1 to 30 in order, as partysocket's; every close CLOSED (partysocket's: CLOSING)", () =>
    Effect.gen(function*() {
      const trial = (Class: Constructor) =>
        onServer(async (server) => {
          const socket = new Class(server.url, [], { ...fixed(0), maxRetries: 40 })
          const closes: Array<string> = []
          socket.addEventListener("close", () => closes.push(`r${socket.retryCount}@${socket.readyState}`))
          await Scenarios.next(socket as never, "open")
          await run(server.kill)
          await Scenarios.until(() => closes.length >= 30)
          socket.close()
          return closes.slice(0, 30)
        })
      expect(yield* withNoHandlesLeft(trial(LIFELINE))).toEqual(Array.from({ length: 30 }, (_, k) => `r${k + 1}@3`))
      // partysocket's refused attempt closes while its ws is CLOSING (2): the retry counts alone.
      expect((yield* trial(PARTYSOCKET)).map((line) => line.split("@")[0])).toEqual(
        Array.from({ length: 30 }, (_, k) => `r${k + 1}`)
      )
    }))

  it.scopedLive("a burst through a kill: bufferedAmount read at the close event is the bytes that arrive after the restart (a send in the turn the link dropped stayed out of it, said 0), as partysocket's; each of them was sent with send returning false (kept)", () =>
    Effect.gen(function*() {
      // A send every turn until the close event; the server killed under it, then restarted.
      const trial = (Class: Constructor) =>
        onServer(async (server) => {
          const socket = new Class(server.url, [], fixed(300))
          // The sends the kill cut short: error events (lifeline's MessageFailed; partysocket: none).
          socket.addEventListener("error", () => {})
          await Scenarios.next(socket as never, "open")
          let sent = 0
          let dropped = false
          // What send returned for each message (partysocket's returns nothing).
          const returned = new Map<string, unknown>()
          const closed = Scenarios.next(socket as never, "close").then(() => (dropped = true))
          const tick = () => {
            if (dropped || sent >= 100_000) return
            const message = `m${sent++}`
            returned.set(message, socket.send(message))
            setImmediate(tick)
          }
          tick()
          await receivedAtLeast(server, 20)
          await run(server.kill)
          await closed
          const buffered = socket.bufferedAmount
          const before = (await run(server.received)).length
          const opened = Scenarios.next(socket as never, "open")
          await run(server.restart)
          await opened
          const bytesAfter = async () =>
            (await run(server.received)).slice(before).reduce((sum, message) => sum + String(message).length, 0)
          await Scenarios.until(async () => (await bytesAfter()) >= buffered)
          await Scenarios.sleep(100)
          const after = await bytesAfter()
          const arrivedAfter = (await run(server.received)).slice(before).map(String)
          socket.close()
          return { buffered, after, returnedForArrivedAfter: arrivedAfter.map((message) => returned.get(message)) }
        })
      const lifeline = yield* withNoHandlesLeft(trial(LIFELINE))
      expect(lifeline.buffered).toBe(lifeline.after)
      // Each message that waited for the next connection was sent with `send` returning false
      // (kept), the one sent in the turn the link dropped too.
      expect(lifeline.returnedForArrivedAfter.filter((value) => value !== false)).toEqual([])
      expect(lifeline.returnedForArrivedAfter.length).toBeGreaterThan(0)
      const partysocket = yield* trial(PARTYSOCKET)
      expect(partysocket.buffered).toBe(partysocket.after)
    }))

  it.scopedLive("an error listener of a dropped connection sees CLOSED: what it sends returns false, is kept, and arrives first on the next connection (as with partysocket)", () =>
    Effect.gen(function*() {
      const trial = (Class: Constructor) =>
        onServer(async (server) => {
          const socket = new Class(server.url, [], fixed(50))
          const seen: Array<string> = []
          socket.addEventListener("error", () => {
            const sent = socket.send("from the error listener")
            seen.push(`error ${socket.readyState} ${sent}`)
          }, { once: true })
          await Scenarios.next(socket as never, "open")
          const dropped = Scenarios.next(socket as never, "close")
          await run(server.kill)
          await dropped
          seen.push(`buffered ${socket.bufferedAmount}`)
          const opened = Scenarios.next(socket as never, "open")
          await run(server.restart)
          await opened
          socket.addEventListener("message", (event) => seen.push(`echo ${String((event as MessageEvent).data)}`))
          socket.send("after open")
          await Scenarios.until(() => seen.includes("echo after open"))
          socket.close()
          await Scenarios.sleep(50)
          return { seen, received: await run(server.received) }
        })
      const lifeline = yield* withNoHandlesLeft(trial(LIFELINE))
      // It was OPEN (1) there before, and the send returned true (taken by the Client, with no connection).
      expect(lifeline).toEqual({
        seen: ["error 3 false", "buffered 23", "echo from the error listener", "echo after open"],
        received: ["from the error listener", "after open"]
      })
      // partysocket dispatches no error for a dropped connection (a close 1006 only).
      const partysocket = yield* trial(PARTYSOCKET)
      expect(partysocket).toEqual({ seen: ["buffered 0", "echo after open"], received: ["after open"] })
    }))

  describe("reconnect() and close() in each phase", () => {
    type Phase = "connecting" | "open" | "waiting"
    /**
     * Brings a socket to `phase` (the handshake hung; open; the connection dropped and the next
     * attempt not due for 250 ms), calls `action`, then lets the retry delay pass twice.
     */
    const inPhase = (Class: Constructor, phase: Phase, action: "reconnect" | "close") =>
      onServer(async (server) => {
        if (phase === "connecting") await run(server.hangHandshake)
        const socket = new Class(server.url, [], fixed(phase === "waiting" ? 250 : 100))
        const lines = trace(socket)
        if (phase === "connecting") {
          await Scenarios.until(async () => (await run(server.requests)) === 1)
          await run(server.behave)
        } else {
          await Scenarios.next(socket as never, "open")
        }
        if (phase === "waiting") {
          const dropped = Scenarios.next(socket as never, "close")
          await run(server.kill)
          await dropped
          await run(server.restart)
        }
        lines.push(`${action} in ${socket.readyState}`)
        const opened = action === "reconnect" ? Scenarios.next(socket as never, "open") : undefined
        socket[action](action === "reconnect" ? 4000 : 4001, action)
        lines.push(`then ${socket.readyState} shouldReconnect ${socket.shouldReconnect}`)
        await opened
        if (action === "close") await Scenarios.sleep(phase === "waiting" ? 500 : 200)
        const outcome = {
          lines: [...lines],
          requests: await run(server.requests),
          accepted: await run(server.accepted)
        }
        socket.close()
        await Scenarios.sleep(50)
        return outcome
      })

    const dropped = ["error:Disconnected@3/r1", "onclose:1006@3", "close:1006::unclean@3/r1"]
    const partyDropped = ["onclose:1006@3", "close:1006:unknown reason:clean@3/r1"]
    const cases: ReadonlyArray<{
      readonly phase: Phase
      readonly action: "reconnect" | "close"
      readonly lifeline: ReadonlyArray<string>
      readonly partysocket: ReadonlyArray<string>
      readonly counts: readonly [requests: number, accepted: number]
    }> = [
      {
        phase: "connecting",
        action: "reconnect",
        // lifeline: CONNECTING during the close event (partysocket: its old socket's CLOSING).
        lifeline: [
          "reconnect in 0",
          "onclose:4000@0",
          "close:4000:reconnect:clean@0/r0",
          "then 0 shouldReconnect true",
          "onopen@1",
          "open@1/r0"
        ],
        partysocket: [
          "reconnect in 0",
          "onclose:4000@2",
          "close:4000:reconnect:clean@2/r0",
          "then 2 shouldReconnect true",
          "onopen@1",
          "open@1/r0"
        ],
        counts: [2, 1]
      },
      {
        phase: "connecting",
        action: "close",
        lifeline: ["close in 0", "onclose:4001@3", "close:4001:close:clean@3/r0", "then 3 shouldReconnect false"],
        partysocket: ["close in 0", "onclose:4001@3", "close:4001:close:clean@3/r0", "then 3 shouldReconnect false"],
        counts: [1, 0]
      },
      {
        phase: "open",
        action: "reconnect",
        lifeline: [
          "onopen@1",
          "open@1/r0",
          "reconnect in 1",
          "onclose:4000@0",
          "close:4000:reconnect:clean@0/r0",
          "then 0 shouldReconnect true",
          "onopen@1",
          "open@1/r0"
        ],
        partysocket: [
          "onopen@1",
          "open@1/r0",
          "reconnect in 1",
          "onclose:4000@2",
          "close:4000:reconnect:clean@2/r0",
          "then 2 shouldReconnect true",
          "onopen@1",
          "open@1/r0"
        ],
        counts: [2, 2]
      },
      {
        phase: "open",
        action: "close",
        lifeline: [
          "onopen@1",
          "open@1/r0",
          "close in 1",
          "onclose:4001@3",
          "close:4001:close:clean@3/r0",
          "then 3 shouldReconnect false"
        ],
        partysocket: [
          "onopen@1",
          "open@1/r0",
          "close in 1",
          "onclose:4001@3",
          "close:4001:close:clean@3/r0",
          "then 3 shouldReconnect false"
        ],
        counts: [1, 1]
      },
      {
        // No connection to close: no close event. lifeline connects at once, retry count 0;
        // partysocket's pending delay still runs first.
        phase: "waiting",
        action: "reconnect",
        lifeline: [
          "onopen@1",
          "open@1/r0",
          ...dropped,
          "reconnect in 3",
          "then 0 shouldReconnect true",
          "onopen@1",
          "open@1/r0"
        ],
        partysocket: [
          "onopen@1",
          "open@1/r0",
          ...partyDropped,
          "reconnect in 3",
          "then 3 shouldReconnect true",
          "onopen@1",
          "open@1/r0"
        ],
        counts: [2, 2]
      },
      {
        // No close event, and the retry that was due never comes.
        phase: "waiting",
        action: "close",
        lifeline: ["onopen@1", "open@1/r0", ...dropped, "close in 3", "then 3 shouldReconnect false"],
        partysocket: ["onopen@1", "open@1/r0", ...partyDropped, "close in 3", "then 3 shouldReconnect false"],
        counts: [1, 1]
      }
    ]
    for (const { action, counts, lifeline, partysocket, phase } of cases) {
      it.scopedLive(`${action}() while ${phase}: ${lifeline.length} exact events, then nothing; no handle left`, () =>
        Effect.gen(function*() {
          const ours = yield* withNoHandlesLeft(inPhase(LIFELINE, phase, action))
          expect(ours.lines).toEqual(lifeline)
          expect([ours.requests, ours.accepted]).toEqual(counts)
          const theirs = yield* inPhase(PARTYSOCKET, phase, action)
          expect(theirs.lines).toEqual(partysocket)
          expect([theirs.requests, theirs.accepted]).toEqual(counts)
        }))
    }
  })

  it.scopedLive("binaryType set while down applies after each reconnect (ArrayBuffer, Blob, ArrayBuffer); one message listener, added once, receives on every connection", () =>
    Effect.gen(function*() {
      const kinds = yield* withNoHandlesLeft(onServer(async (server) => {
        const socket = new LIFELINE(server.url, [], fixed(50))
        const seen: Array<string> = []
        socket.addEventListener("message", (event) => {
          const data: unknown = (event as MessageEvent).data
          seen.push(typeof data === "string" ? data : Object.prototype.toString.call(data))
        })
        await Scenarios.next(socket as never, "open")
        for (const [index, type] of ["arraybuffer", "blob", "arraybuffer"].entries()) {
          const dropped = Scenarios.next(socket as never, "close")
          await run(server.kill)
          await dropped
          socket.binaryType = type
          const opened = Scenarios.next(socket as never, "open")
          await run(server.restart)
          await opened
          const binary = Scenarios.next(socket as never, "message")
          await run(server.broadcast(new Uint8Array([1, 2])))
          await binary
          socket.send(`after ${index}`)
          await Scenarios.until(() => seen.includes(`after ${index}`))
        }
        socket.close()
        await Scenarios.sleep(50)
        return seen
      }))
      expect(kinds).toEqual([
        "[object ArrayBuffer]",
        "after 0",
        "[object Blob]",
        "after 1",
        "[object ArrayBuffer]",
        "after 2"
      ])
    }))

  it.scopedLive("503 with Retry-After: 1, then 101: the facade waits (no request in the next 300 ms, its own delay 20 ms) and opens; partysocket retries at once", () =>
    Effect.gen(function*() {
      const trial = (Class: Constructor) =>
        onServer(async (server) => {
          await run(server.rejectNext(503, { "retry-after": "1" }))
          const socket = new Class(server.url, [], fixed(20))
          const lines = trace(socket)
          const opened = Scenarios.next(socket as never, "open")
          await Scenarios.next(socket as never, "close")
          await Scenarios.sleep(300)
          lines.push(`after 300 ms: ${await run(server.requests)} requests`)
          await opened
          const outcome = { lines: [...lines], requests: await run(server.requests) }
          socket.close()
          await Scenarios.sleep(50)
          return outcome
        })
      const lifeline = yield* withNoHandlesLeft(trial(LIFELINE))
      expect(lifeline).toEqual({
        lines: [
          "error:ConnectError:HandshakeRejected@3/r1",
          "onclose:1006@3",
          "close:1006::unclean@3/r1",
          "after 300 ms: 1 requests",
          "onopen@1",
          "open@1/r1"
        ],
        requests: 2
      })
      const partysocket = yield* trial(PARTYSOCKET)
      expect(partysocket).toEqual({
        lines: [
          "onclose:1000@2",
          "close:1000:unknown reason:clean@2/r1",
          "error:?@2/r1",
          "onopen@1",
          "open@1/r1",
          "after 300 ms: 2 requests"
        ],
        requests: 2
      })
    }))

  it.scopedLive("401: the facade stops after one attempt (a typed error, a close 1006 that says why, CLOSED); partysocket retries it (here maxRetries 2: 3 requests)", () =>
    Effect.gen(function*() {
      const trial = (Class: Constructor) =>
        onServer(async (server) => {
          await run(server.rejectNext(401, {}, 3))
          const socket = new Class(server.url, [], { ...fixed(20), maxRetries: 2 })
          const lines = trace(socket)
          await Scenarios.next(socket as never, "close")
          await Scenarios.sleep(300)
          const outcome = { lines: [...lines], requests: await run(server.requests), readyState: socket.readyState }
          socket.close()
          await Scenarios.sleep(50)
          return outcome
        })
      const lifeline = yield* withNoHandlesLeft(trial(LIFELINE))
      expect(lifeline).toEqual({
        lines: [
          "error:ConnectError:HandshakeRejected@3/r0",
          "onclose:1006@3",
          "close:1006:HandshakeRejected (HTTP 401); not retrying:unclean@3/r0"
        ],
        requests: 1,
        readyState: 3
      })
      const partysocket = yield* trial(PARTYSOCKET)
      // Its retryCount is counted up when a retry is scheduled: the first attempt's events say 1.
      const attempt = (retry: number) => [
        "onclose:1000@2",
        `close:1000:unknown reason:clean@2/r${retry}`,
        `error:?@2/r${retry}`
      ]
      expect(partysocket).toEqual({ lines: [1, 2, 2].flatMap(attempt), requests: 3, readyState: 3 })
    }))
})
