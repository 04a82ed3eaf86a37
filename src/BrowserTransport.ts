/**
 * The Transport on the WHATWG `WebSocket` (browsers; also Deno, Bun, Node >= 22 or 20 with
 * `--experimental-websocket`, where `NodeTransport` does more: docs/guide.md, "Deno and Bun").
 * Browsers hide why a handshake failed, cannot pause reading and have no protocol ping, so this
 * transport reports less: every pre-open failure is `ClosedBeforeOpen`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { CLOSED_BEFORE_OPEN_HINT, INVALID_URL_HINT, NO_SUBPROTOCOL_DETAIL } from "./internal/classifyHandshakeError.js"
import type { HandshakeFailure } from "./internal/classifyHandshakeError.js"
import type { ReadyState } from "./internal/protocol.js"
import { CLOSED, CLOSING, CONNECTING } from "./internal/protocol.js"
import type { Network, OpenRequest, SocketListener, TransportSocket } from "./Transport.js"
import { Transport } from "./Transport.js"

/**
 * The constructor this transport needs: the standard `WebSocket`.
 *
 * @since 0.1.0
 * @category models
 */
export type WebSocketConstructor = new(url: string, protocols?: string | Array<string>) => WebSocket

/** What `terminate` reaches of Node's own WebSocket (undici 6): the TCP socket, under a symbol. */
type Undici = Record<symbol, { readonly socket?: { readonly destroy?: () => void } } | undefined>

/** Whether a view's buffer was detached: a typed array over a detached buffer cannot be made. */
const isDetached = (view: Uint8Array): boolean => {
  try {
    new Uint8Array(view.buffer, 0, 0)
    return false
  } catch {
    return true
  }
}

const open = (
  constructor: WebSocketConstructor | undefined,
  request: OpenRequest,
  listener: SocketListener
): Either.Either<TransportSocket, HandshakeFailure> => {
  if (constructor === undefined) {
    return Either.left({
      reason: "InvalidOptions",
      detail:
        "this runtime has no global WebSocket; use NodeTransport.layer, or BrowserTransport.layerWith(constructor)"
    })
  }
  let socket: WebSocket
  try {
    socket = new constructor(request.url.href, [...request.protocols])
  } catch (error) {
    // The constructor throws a SyntaxError DOMException for a URL or subprotocol it rejects.
    const detail = error instanceof Error ? error.message : String(error)
    return Either.left({ reason: "InvalidUrl", detail: `${detail}; ${INVALID_URL_HINT}`, cause: error })
  }
  socket.binaryType = "arraybuffer"
  let opened = false
  let failed = false
  let closeReported = false
  /** Closed by us, or the peer's close frame seen (`giveUp` then runs). */
  let closing = false
  let giveUp: ReturnType<typeof setTimeout> | undefined
  /** Bytes handed to `send` (text in UTF-8, as `bufferedAmount` counts it). */
  let handed = 0
  // Browsers give no write completion. A frame counts as written once no more than the high-water
  // mark is buffered up to its end (at once, while the buffer is below the mark): the callbacks
  // of frames past it wait here, with where each ends in `handed`, so that a burst is held by the
  // Client's outbox (OutboxFull, a sink waiting) as on Node, not piled up in `bufferedAmount`.
  const mark = request.writeHighWaterMark ?? 1024 * 1024
  const waiting: Array<[end: number, callback: (error?: Error) => void]> = []
  let poll: ReturnType<typeof setTimeout> | undefined
  /** What had left at the last look: never more than has left since. */
  let left = 0
  /** Open: calls back the frames within the mark of what left. Closed: those that left, the rest with an error. */
  const settle = (closed: boolean, clean = true): void => {
    clearTimeout(poll)
    poll = undefined
    const now = handed - socket.bufferedAmount
    // Node's own WebSocket takes what its destroyed TCP socket held out of `bufferedAmount`: after
    // a close that was not clean, what left is what the last look saw (a clean one sent it all).
    const limit = (clean ? now : left) + (closed ? 0 : mark)
    left = now
    // One at a time, each left in `waiting` until its turn: a frame sent from a callback (or a
    // close) comes after the frames before it, whose callbacks have not run yet.
    for (let count = closed ? waiting.length : Infinity; count > 0 && waiting.length > 0; count--) {
      const [end, callback] = waiting[0]!
      if (end > limit && !closed) break
      waiting.shift()
      if (end <= limit) callback()
      else callback(new Error("closed before it was sent"))
    }
    if (waiting.length > 0) poll ??= setTimeout(settle, 5, false)
  }
  const reportClose = (code: number, reason: string, wasClean: boolean): void => {
    if (closeReported) return
    closeReported = true
    clearTimeout(giveUp)
    // The frames still waiting: those the browser sent are written.
    settle(true, wasClean)
    listener.onClose(code, reason, wasClean)
  }
  // Permanent sinks of invariant 1, never removed. The browser reports no cause for a failed
  // handshake: an 'error' event with no detail, then 'close' with 1006.
  socket.onerror = () => {
    if (opened || failed || closeReported) return
    failed = true
    listener.onHandshakeFailure({
      reason: "ClosedBeforeOpen",
      detail: `the WebSocket failed before it opened (browsers do not tell why); ${CLOSED_BEFORE_OPEN_HINT}`
    })
    // Node 20's WebSocket (undici) fires no 'close' after a failed handshake and stays CONNECTING;
    // the standard says 'close' follows 'error', so report it if it has not come by the next turn.
    setTimeout(() => reportClose(1006, "", false), 0)
  }
  socket.onopen = () => {
    // Firefox and WebKit open a socket whose server accepted none of the subprotocols offered (no
    // Sec-WebSocket-Protocol; Chromium fails the handshake): a ProtocolViolation, as on Node.
    if (request.protocols.length > 0 && socket.protocol === "") {
      failed = true
      listener.onHandshakeFailure({ reason: "ProtocolViolation", detail: NO_SUBPROTOCOL_DETAIL })
      terminate()
      return
    }
    opened = true
    listener.onOpen()
  }
  socket.onmessage = (event: MessageEvent) => {
    const data: unknown = event.data
    // binaryType is "arraybuffer", set above: binary frames arrive as ArrayBuffer, never Blob.
    listener.onMessage(
      typeof data === "string" ? data : new Uint8Array(data instanceof ArrayBuffer ? data : new ArrayBuffer(0))
    )
  }
  socket.onclose = (event: CloseEvent) => {
    // Deno's WebSocket says code 0 for a connection that dropped (the standard, and the others: 1006).
    reportClose(event.code < 1000 ? 1006 : event.code, event.reason, event.wasClean)
    // Nothing for a standard socket (closed already); a reconnecting one given as the constructor
    // (partysocket's) would open again, unseen, and stay open for good.
    socket.close()
  }
  // Closing a CONNECTING browser socket aborts the handshake; there is no other terminate. An
  // OPEN or CLOSING one would wait for a close frame a dead peer never sends (the release then
  // waited 2 x closeTimeout): it is given up, reported closed (1006) on the next turn, as ws'.
  const terminate = () => {
    // Before it is destroyed: Node's own WebSocket then counts the bytes it had as gone.
    settle(true)
    if (socket.readyState !== CLOSED) socket.close()
    // Node's own WebSocket (undici) waits for the close frame without a timeout: a dead peer's
    // TCP connection stayed open (and kept the process alive) until the kernel gave up. Its
    // socket is destroyed, where undici 6 (Node 20, 22) lets it be reached.
    for (const key of Object.getOwnPropertySymbols(socket)) (socket as unknown as Undici)[key]?.socket?.destroy?.()
    // Bun's WebSocket waits about 36 s for the close frame, and has a terminate of its own.
    const withTerminate = socket as WebSocket & { terminate?: () => void }
    withTerminate.terminate?.()
    setTimeout(() => reportClose(1006, "", false), 0)
  }
  const readyState = (): ReadyState => {
    if (closeReported) return CLOSED
    const state = socket.readyState
    // CLOSING, and not by us: the peer's close frame came. undici then waits for the peer to end
    // TCP, with no timeout (Chromium: 2 s), and fires no event: a peer that never did left the
    // Client Open on it for good, its heartbeat too (no probe goes out while CLOSING). Seen (by a
    // probe, a send), the socket is given up 3 s later if it has not closed by then.
    if (state === CLOSING && !closing) {
      closing = true
      giveUp = setTimeout(terminate, 3000)
    }
    return state === CONNECTING || state === CLOSING || state === CLOSED ? state : 1
  }
  return Either.right({
    readyState,
    protocol: () => socket.protocol,
    extensions: () => socket.extensions,
    bufferedAmount: () => socket.bufferedAmount,
    // `bufferedAmount` falls as the browser sends (Chromium: as its network service takes the
    // bytes), so what was handed less what is still buffered is what left.
    sentBytes: () => handed - socket.bufferedAmount,
    send: (data, callback) => {
      // What `send` adds to `bufferedAmount` (at once, by the standard): the frame's bytes as it
      // counts them (text in UTF-8), with no pass over the text.
      const before = socket.bufferedAmount
      // A payload it refuses (a view over a SharedArrayBuffer) throws, as the Transport says: no
      // callback, so no write, and no completion taken for the frames before it. Chromium sends a
      // view whose buffer was transferred (detached) as an empty frame, where Node's own WebSocket
      // and ws throw: refused here too (only an empty view can be detached: the check is cheap).
      if (typeof data !== "string" && data.byteLength === 0 && isDetached(data)) {
        throw new TypeError("the frame's ArrayBuffer is detached (transferred to another thread)")
      }
      socket.send(data)
      handed += Math.max(0, socket.bufferedAmount - before)
      if (callback === undefined) return
      if (waiting.length === 0 && socket.bufferedAmount <= mark) return callback()
      waiting.push([handed, callback])
      poll ??= setTimeout(settle, 5, false)
    },
    close: (code, reason) => {
      closing = true
      if (socket.readyState === CLOSED) return
      // Browsers accept only 1000 and 3000-4999 from scripts (1001 throws InvalidAccessError).
      socket.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000, reason)
    },
    terminate,
    pause: () => false,
    resume: () => {},
    ping: () => false
  })
}

/**
 * The network as the global scope tells it: `navigator.onLine` and the `online` event, looked up
 * at each call. Where there is no `navigator.onLine` (Node, workers without it) it is always online.
 *
 * @since 0.1.0
 * @category constructors
 */
export const network: Network = {
  isOnline: () => {
    const navigator: unknown = Reflect.get(globalThis, "navigator")
    return typeof navigator !== "object" || navigator === null || Reflect.get(navigator, "onLine") !== false
  },
  onOnline: (callback) => {
    if (typeof globalThis.addEventListener !== "function") return () => {}
    const listener = () => callback()
    globalThis.addEventListener("online", listener)
    return () => globalThis.removeEventListener("online", listener)
  }
}

/**
 * A browser transport over the given constructor (a polyfill, or a test double of the standard).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWith = (constructor: WebSocketConstructor): Transport => ({
  platform: "browser",
  network,
  open: (request, listener) => open(constructor, request, listener)
})

/**
 * The browser transport over `globalThis.WebSocket`, looked up at each open.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Transport = {
  platform: "browser",
  network,
  open: (request, listener) => open(globalThis.WebSocket, request, listener)
}

/**
 * Provides `Transport` over the global `WebSocket`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Transport> = Layer.succeed(Transport, make)

/**
 * Provides `Transport` over the given `WebSocket` constructor.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (constructor: WebSocketConstructor): Layer.Layer<Transport> =>
  Layer.succeed(Transport, makeWith(constructor))
