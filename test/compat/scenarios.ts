/**
 * partysocket's documented behaviours (its README and typings) as portable scenarios for
 * `effect-lifeline/compat`. Each scenario is an async function of a `ScenarioContext` (a server it
 * can drive through `ServerControl`, and the class under test) that returns what it observed, as
 * plain data: the caller asserts. No Node import here, so the same scenarios run in Node
 * (test/compat.test.ts, over TestServer) and in a browser page (with `ServerControl` bridged to
 * the test process).
 *
 * Every wait is bounded (`within`), and every socket a scenario makes is closed before it returns.
 */
import type { Options, ReconnectingWebSocket } from "../../src/compat.js"

/** The server side, as a scenario drives it. Every method settles once the server has done it. */
export interface ServerControl {
  /** Drops every connection without a close frame and stops listening. */
  readonly kill: () => Promise<void>
  /** Listens again on the same port. */
  readonly restart: () => Promise<void>
  /** Sends a close frame with `code` and `reason` to every connection. */
  readonly closeWith: (code: number, reason: string) => Promise<void>
  /** Answers the next `count` (default 1) upgrades with HTTP `status` instead of 101. */
  readonly reject: (status: number, count?: number) => Promise<void>
  /** Accepts TCP and reads the upgrade request, but never answers it. */
  readonly hang: () => Promise<void>
  /** Back to normal handshakes. */
  readonly behave: () => Promise<void>
  /** Sends a frame to every connection. */
  readonly send: (frame: string | Uint8Array) => Promise<void>
  /** Sends these frames, then a close frame, to every connection, all at once (one turn of the server). */
  readonly sendThenClose: (frames: ReadonlyArray<string>, code: number, reason: string) => Promise<void>
  /** Every frame the server received, in order (binary as bytes). */
  readonly sent: () => Promise<ReadonlyArray<string | Uint8Array>>
  /** Upgrade requests seen, answered or not. */
  readonly requests: () => Promise<number>
  /** Upgrades accepted. */
  readonly accepted: () => Promise<number>
  /** The Sec-WebSocket-Protocol header of the latest upgrade request ("" when none). */
  readonly offeredProtocols: () => Promise<string>
}

export interface ScenarioContext {
  /** The server's URL. Its echo handler sends every frame back. */
  readonly url: string
  readonly server: ServerControl
  /** The class under test: `ReconnectingWebSocket` of `effect-lifeline/compat`. */
  readonly WebSocket: typeof ReconnectingWebSocket
  /** Options every socket gets on this platform (Node: `{ WebSocket: WS }`). */
  readonly options?: Options
  /**
   * Where it runs. The `providers` scenario needs a server that accepts the subprotocols "p1" and
   * "p2" only; the others, an echo server with no subprotocol.
   */
  readonly platform: "node" | "browser"
}

export type Scenario<A> = (context: ScenarioContext) => Promise<A>

// --- helpers ------------------------------------------------------------------------------

type Socket = InstanceType<typeof ReconnectingWebSocket>

/** Fast retries, so scenarios do not wait partysocket's seconds. */
const fast: Options = { minReconnectionDelay: 20, maxReconnectionDelay: 40, reconnectionDelayJitter: 0 }

const make = (
  context: ScenarioContext,
  options: Options = {},
  protocols?: ConstructorParameters<typeof ReconnectingWebSocket>[1]
): Socket => new context.WebSocket(context.url, protocols, { ...fast, ...context.options, ...options })

/** An event as a line: `open`, `message:text`, `close:1000:reason:clean`, `error:ConnectError:ConnectionRefused`. */
export const describeEvent = (event: Event): string => {
  switch (event.type) {
    case "message": {
      const data: unknown = (event as MessageEvent).data
      return typeof data === "string" ? `message:${data}` : `message:binary`
    }
    case "close": {
      const close = event as Event & { code: number; reason: string; wasClean: boolean }
      return `close:${close.code}:${close.reason}:${close.wasClean ? "clean" : "unclean"}`
    }
    case "error": {
      const error =
        (event as Event & { error?: { _tag?: string; reason?: string; operation?: string; code?: number } }).error
      const detail = error?.reason ?? error?.operation ?? error?.code
      return `error:${error?._tag ?? "?"}${detail === undefined || detail === "" ? "" : `:${String(detail)}`}`
    }
    default:
      return event.type
  }
}

/** Records every event of `socket` as a line, from now on. */
export const record = (socket: Socket): Array<string> => {
  const lines: Array<string> = []
  for (const type of ["open", "message", "close", "error"]) {
    socket.addEventListener(type, (event: Event) => lines.push(describeEvent(event)))
  }
  return lines
}

/** The next `type` event that `accept`s, or a rejection after `ms`. */
export const next = <E extends Event = Event>(
  socket: Socket,
  type: string,
  accept: (event: E) => boolean = () => true,
  ms = 5_000
): Promise<E> =>
  new Promise<E>((resolve, reject) => {
    const listener = (event: Event) => {
      if (!accept(event as E)) return
      done()
      resolve(event as E)
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`no ${type} event within ${ms} ms`))
    }, ms)
    const done = () => {
      clearTimeout(timer)
      socket.removeEventListener(type, listener)
    }
    socket.addEventListener(type, listener)
  })

/** The `n`-th `type` event from now. */
const nth = (socket: Socket, type: string, n: number, ms = 5_000): Promise<Event> => {
  let seen = 0
  return next(socket, type, () => ++seen === n, ms)
}

/** Waits until `check` holds (re-checked every 10 ms), or rejects after `ms`. */
export const until = async (check: () => Promise<boolean> | boolean, ms = 5_000): Promise<void> => {
  const deadline = Date.now() + ms
  for (let round = 0; round < 10_000; round++) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await sleep(10)
  }
}

/** A pause of `ms`: only to let something that must NOT happen have its chance. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const closeAndSettle = async (socket: Socket): Promise<void> => {
  socket.close()
  await sleep(20)
}

// --- scenarios ----------------------------------------------------------------------------

/** open, an echoed message, a server close (the real code), reconnect; the `on*` handlers see the same. */
export const lifecycle: Scenario<{
  events: Array<string>
  handlers: Array<string>
  readyStates: Array<number>
  urlAsGiven: boolean
  sendWhileOpen: boolean
  constants: Array<number>
}> = async (context) => {
  const socket = make(context)
  const events = record(socket)
  const handlers: Array<string> = []
  socket.onopen = (event) => handlers.push(describeEvent(event))
  socket.onmessage = (event) => handlers.push(describeEvent(event))
  socket.onclose = (event) => handlers.push(describeEvent(event))
  socket.onerror = (event) => handlers.push(describeEvent(event))
  const readyStates = [socket.readyState]
  await next(socket, "open")
  readyStates.push(socket.readyState)
  const sendWhileOpen = socket.send("hello")
  await next(socket, "message")
  // Each wait starts before what causes it: over a bridge, the event may come before the call returns.
  // Read while the close event is dispatched: once it is out, the next attempt may already have
  // begun (CONNECTING), as soon as the 20 ms delay has passed on a loaded machine.
  let atClose = -1
  const closed = next(socket, "close", () => {
    atClose = socket.readyState
    return true
  })
  const reopened = next(socket, "open")
  await context.server.closeWith(4000, "bye")
  await closed
  readyStates.push(atClose)
  await reopened
  readyStates.push(socket.readyState)
  socket.close(1000, "done")
  readyStates.push(socket.readyState)
  await sleep(20)
  const W = context.WebSocket
  return {
    events,
    handlers,
    readyStates,
    urlAsGiven: socket.url === context.url,
    sendWhileOpen,
    constants: [
      W.CONNECTING,
      W.OPEN,
      W.CLOSING,
      W.CLOSED,
      socket.CONNECTING,
      socket.OPEN,
      socket.CLOSING,
      socket.CLOSED
    ]
  }
}

/** Sent while the server is down: kept, then flushed in order once it is back, before `open`. */
export const queueWhileDown: Scenario<
  {
    returned: Array<boolean>
    readyStateDown: number
    received: ReadonlyArray<string | Uint8Array>
    bufferedWhileDown: number
  }
> = async (context) => {
  const socket = make(context)
  await next(socket, "open")
  // Read while the close event is dispatched, as `lifecycle` does: the kill's answer (a bridge
  // call from a page) may come after the 20 ms reconnect delay, and once the event is out the
  // facade reads the Client's state, which may be the next attempt's (CONNECTING).
  let readyStateDown = -1
  const closed = next(socket, "close", () => {
    readyStateDown = socket.readyState
    return true
  })
  await context.server.kill()
  await closed
  const returned = [socket.send("a"), socket.send("bb"), socket.send(new Uint8Array([1, 2, 3]))]
  const bufferedWhileDown = socket.bufferedAmount
  // What the open handler sends goes after what was kept.
  socket.onopen = () => socket.send("after-open")
  const reopened = next(socket, "open")
  await context.server.restart()
  await reopened
  await until(async () => (await context.server.sent()).length >= 4)
  const received = await context.server.sent()
  await closeAndSettle(socket)
  return { returned, readyStateDown, received, bufferedWhileDown }
}

/** `startClosed`: no connection until `reconnect()`; what was sent before goes first. */
export const startClosed: Scenario<
  {
    readyState: number
    requestsBefore: number
    events: Array<string>
    received: ReadonlyArray<string | Uint8Array>
    retryCount: number
  }
> = async (context) => {
  const socket = make(context, { startClosed: true })
  const events = record(socket)
  const readyState = socket.readyState
  socket.send("early")
  await sleep(100)
  const requestsBefore = await context.server.requests()
  socket.reconnect()
  await next(socket, "open")
  // Its echo too, before closing: over a bridge to a page, the server can report it before the echo is back.
  const echoed = next<MessageEvent>(socket, "message", (event) => event.data === "late")
  socket.send("late")
  await until(async () => (await context.server.sent()).length >= 2)
  await echoed
  const retryCount = socket.retryCount
  await closeAndSettle(socket)
  return { readyState, requestsBefore, events, received: await context.server.sent(), retryCount }
}

/** `close()` stops reconnecting: its close event at once, nothing after, the server sees no new attempt. */
export const closeStops: Scenario<
  { events: Array<string>; readyState: number; accepted: number; shouldReconnect: boolean }
> = async (context) => {
  const socket = make(context)
  const events = record(socket)
  await next(socket, "open")
  socket.close(4001, "leaving")
  const readyState = socket.readyState
  await context.server.closeWith(1001, "going away")
  await sleep(200)
  return { events, readyState, accepted: await context.server.accepted(), shouldReconnect: socket.shouldReconnect }
}

/** `reconnect(code, reason)`: a close event with them at once, then a new connection, retry count reset. */
export const reconnectMethod: Scenario<
  { events: Array<string>; accepted: number; retryCount: number; readyStatesInClose: Array<number> }
> = async (
  context
) => {
  const socket = make(context)
  const events = record(socket)
  // reconnect()'s own close event: CONNECTING (the next attempt begins at once); close()'s: CLOSED.
  const readyStatesInClose: Array<number> = []
  socket.addEventListener("close", () => readyStatesInClose.push(socket.readyState))
  await next(socket, "open")
  // Open for a while (an echo came back), not only in the open event's turn
  socket.send("ping")
  await next(socket, "message")
  socket.reconnect(4002, "again")
  await next(socket, "open")
  const retryCount = socket.retryCount
  const accepted = await context.server.accepted()
  await closeAndSettle(socket)
  return { events, accepted, retryCount, readyStatesInClose }
}

/** `maxRetries`: the first attempt and that many retries, each an error (typed) and a close 1006; then nothing. */
export const maxRetries: Scenario<
  { events: Array<string>; retryCount: number; readyState: number; requestsAfter: number }
> = async (context) => {
  await context.server.kill()
  const socket = make(context, { maxRetries: 2 })
  const events = record(socket)
  await nth(socket, "close", 3)
  await context.server.restart()
  await sleep(300)
  const requestsAfter = await context.server.requests()
  const result = { events, retryCount: socket.retryCount, readyState: socket.readyState, requestsAfter }
  await closeAndSettle(socket)
  return result
}

/** `connectionTimeout`: a handshake that never completes ends in a TimeoutError and a close 1006. */
export const connectionTimeout: Scenario<{ events: Array<string> }> = async (context) => {
  await context.server.hang()
  const socket = make(context, { connectionTimeout: 100, maxRetries: 0 })
  const events = record(socket)
  await next(socket, "close")
  await sleep(50)
  await closeAndSettle(socket)
  await context.server.behave()
  return { events }
}

/** URL and protocols providers, sync and async, are called before every attempt. */
export const providers: Scenario<
  { urlCalls: number; protocolCalls: number; protocols: Array<string>; offered: Array<string>; url: string }
> = async (context) => {
  let urlCalls = 0
  let protocolCalls = 0
  const choices = ["p1", "p2"]
  const socket = new context.WebSocket(
    async () => {
      urlCalls++
      await sleep(1)
      return `${context.url}/?attempt=${urlCalls}`
    },
    () => choices[protocolCalls++ % choices.length]!,
    { ...fast, ...context.options }
  )
  const protocols: Array<string> = []
  const offered: Array<string> = []
  const first = next(socket, "open")
  await first
  protocols.push(socket.protocol)
  offered.push(await context.server.offeredProtocols())
  const second = next(socket, "open")
  await context.server.closeWith(4000, "next")
  await second
  protocols.push(socket.protocol)
  offered.push(await context.server.offeredProtocols())
  const url = socket.url
  await closeAndSettle(socket)
  return { urlCalls, protocolCalls, protocols, offered, url }
}

/** binaryType: "arraybuffer" gives ArrayBuffers, "blob" (the default) Blobs, with the bytes sent. */
export const binaryType: Scenario<
  { initial: string; kinds: Array<string>; bytes: Array<Array<number>>; order: Array<unknown> }
> = async (context) => {
  const socket = make(context)
  const initial = socket.binaryType
  await next(socket, "open")
  const kinds: Array<string> = []
  const bytes: Array<Array<number>> = []
  for (const type of ["arraybuffer", "blob"] as const) {
    socket.binaryType = type
    const arrived = next<MessageEvent>(socket, "message")
    socket.send(new Uint8Array([7, 8, 9]))
    const data: unknown = (await arrived).data
    if (data instanceof ArrayBuffer) {
      kinds.push("ArrayBuffer")
      bytes.push([...new Uint8Array(data)])
    } else if (typeof Blob !== "undefined" && data instanceof Blob) {
      kinds.push("Blob")
      bytes.push([...new Uint8Array(await data.arrayBuffer())])
    } else kinds.push(typeof data)
  }
  // A Blob sent keeps its place among the sends around it.
  socket.send("before")
  socket.send(new Blob([new Uint8Array([1, 2])]))
  socket.send("after")
  await until(async () => (await context.server.sent()).length >= 5)
  const order = (await context.server.sent()).slice(2).map((frame) => typeof frame === "string" ? frame : [...frame])
  await closeAndSettle(socket)
  return { initial, kinds, bytes, order }
}

/**
 * A Blob among sends, then `close()`: as partysocket over ws (and a browser's WebSocket), the Blob
 * and what follows it are written, then the close. Each send to the open socket returns true;
 * until the Blob is read, it and what waits behind it count in `bufferedAmount`; nothing is left
 * to drain.
 */
export const blobThenClose: Scenario<
  { returned: Array<boolean>; bufferedAfterClose: number; received: Array<unknown>; drained: number }
> = async (context) => {
  const socket = make(context)
  await next(socket, "open")
  const returned = [socket.send("a"), socket.send(new Blob([new Uint8Array([1])])), socket.send("c")]
  socket.close(4000, "done")
  const bufferedAfterClose = socket.bufferedAmount
  await until(async () => (await context.server.sent()).length >= 3)
  await sleep(20)
  const received = (await context.server.sent()).map((frame) => typeof frame === "string" ? frame : [...frame])
  return { returned, bufferedAfterClose, received, drained: socket.drainQueuedMessages().length }
}

/** The same from the `open` listener: a Blob and a message, then `close(4000, "done")`: both written first. */
export const blobInOpenThenClose: Scenario<{ received: Array<unknown>; drained: number }> = async (context) => {
  const socket = make(context)
  socket.addEventListener("open", () => {
    socket.send(new Blob([new Uint8Array([1, 2, 3, 4, 5])]))
    socket.send("bye")
    socket.close(4000, "done")
  })
  await next(socket, "close")
  await until(async () => (await context.server.sent()).length >= 2)
  await sleep(20)
  const received = (await context.server.sent()).map((frame) => typeof frame === "string" ? frame : [...frame])
  return { received, drained: socket.drainQueuedMessages().length }
}

// --- where lifeline differs from partysocket ----------------------------------------------

/** Over `maxEnqueuedMessages`: `send` returns false and an error event carries the message (partysocket drops it silently). */
export const overflow: Scenario<
  {
    returned: Array<boolean>
    errors: Array<{ tag: string; reason: string; payload: unknown }>
    received: ReadonlyArray<string | Uint8Array>
  }
> = async (context) => {
  const socket = make(context, { maxEnqueuedMessages: 2 })
  await next(socket, "open")
  const closed = next(socket, "close")
  await context.server.kill()
  await closed
  const errors: Array<{ tag: string; reason: string; payload: unknown }> = []
  socket.addEventListener("error", (event) => {
    const error = event.error as Error & { _tag?: string; reason?: string; payload?: unknown }
    if (error._tag === "SendError") errors.push({ tag: error._tag, reason: error.reason ?? "", payload: error.payload })
  })
  const returned = [socket.send("a"), socket.send("b"), socket.send("c")]
  const reopened = next(socket, "open")
  await context.server.restart()
  await reopened
  await until(async () => (await context.server.sent()).length >= 2)
  await sleep(50)
  const received = await context.server.sent()
  await closeAndSettle(socket)
  return { returned, errors, received }
}

/**
 * A 401 answer: Node sees the status and does not retry (a close event that says why); browsers
 * cannot see it (their close is 1006 with no status) and retry as for any failed connect.
 */
export const unauthorized: Scenario<{ events: Array<string>; requests: number; readyState: number }> = async (
  context
) => {
  await context.server.reject(401, 3)
  const socket = make(context, { maxRetries: 2 })
  const events = record(socket)
  await next(socket, "close")
  // The last close (the one that says it is not retrying): Firefox delays each handshake after a
  // failed one (300 ms and more by the third), which a wait for quiet alone took for the end.
  await until(() => events.some((line) => line.startsWith("close:") && line.includes("not retrying")))
  // Then until no request came for 300 ms (bounded): retries (browsers: a 401 is not seen) may come
  // late on a loaded machine; a request past maxRetries would still show.
  for (let round = 0, before = -1; round < 20; round++) {
    const now = await context.server.requests()
    if (now === before) break
    before = now
    await sleep(300)
  }
  const result = { events, requests: await context.server.requests(), readyState: socket.readyState }
  await closeAndSettle(socket)
  return result
}

/** A server close with 1008 (policy) is final under lifeline's policy; `shouldReconnectOnClose` can say otherwise. */
export const fatalClose: Scenario<{ events: Array<string>; accepted: number; acceptedWithOverride: number }> = async (
  context
) => {
  const socket = make(context)
  const events = record(socket)
  await next(socket, "open")
  const closed = next(socket, "close")
  await context.server.closeWith(1008, "policy")
  await closed
  await sleep(200)
  const accepted = await context.server.accepted()
  await closeAndSettle(socket)
  const again = make(context, { shouldReconnectOnClose: () => true })
  await next(again, "open")
  const reopened = next(again, "open")
  await context.server.closeWith(1008, "policy")
  await reopened
  const acceptedWithOverride = await context.server.accepted()
  await closeAndSettle(again)
  return { events, accepted, acceptedWithOverride }
}

/** A listener that throws: the other listeners still run, the socket goes on (partysocket lets it escape). */
export const throwingListener: Scenario<{ events: Array<string> }> = async (context) => {
  const socket = make(context)
  socket.onmessage = () => {
    throw new Error("a bug in the app")
  }
  socket.addEventListener("message", () => {
    throw new Error("another bug in the app")
  })
  const events = record(socket)
  await next(socket, "open")
  socket.send("one")
  await next(socket, "message")
  socket.send("two")
  await next(socket, "message")
  await closeAndSettle(socket)
  return { events }
}

/** Messages kept at `close()` are not lost: `drainQueuedMessages()` hands them back, `reconnect()` would send them. */
export const drainAfterClose: Scenario<{ drained: Array<unknown>; afterDrain: number }> = async (context) => {
  await context.server.kill()
  const socket = make(context)
  socket.send("x")
  socket.send("y")
  socket.close()
  await sleep(50)
  const drained = socket.drainQueuedMessages()
  const afterDrain = socket.drainQueuedMessages().length
  await context.server.restart()
  return { drained, afterDrain }
}

/**
 * `close()` and `reconnect()` while the handshake is under way: the aborted handshake's late
 * 'error' (what crashed processes under reconnecting wrappers) never escapes; close events at once.
 */
export const abortWhileConnecting: Scenario<{ events: Array<string>; readyState: number }> = async (context) => {
  await context.server.hang()
  const socket = make(context)
  const events = record(socket)
  await sleep(50)
  socket.reconnect(4003, "retry now")
  await sleep(50)
  socket.close(4004, "give up")
  await sleep(100)
  await context.server.behave()
  return { events, readyState: socket.readyState }
}

/** A URL that cannot work is final (partysocket retries it for ever): a typed error and a close that says why. */
export const invalidUrl: Scenario<{ events: Array<string>; readyState: number }> = async (context) => {
  const socket = new context.WebSocket("ftp://127.0.0.1:1/not-a-websocket", undefined, { ...fast, ...context.options })
  const events = record(socket)
  await next(socket, "close")
  await sleep(50)
  const readyState = socket.readyState
  socket.close()
  return { events, readyState }
}

/** Frames the server sends just before its close frame all arrive, in order, before the close event. */
export const messagesBeforeClose: Scenario<{ events: Array<string> }> = async (context) => {
  const socket = make(context)
  const events = record(socket)
  await next(socket, "open")
  const closed = next(socket, "close")
  await context.server.sendThenClose(Array.from({ length: 50 }, (_, index) => `m${index}`), 4005, "after the burst")
  await closed
  await closeAndSettle(socket)
  return { events: events.slice(0, 52) }
}
