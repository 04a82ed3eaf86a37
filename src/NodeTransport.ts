/**
 * The Transport on Node.js, over the `ws` library: handshake headers, `maxPayload`, HTTP status
 * and Retry-After of a rejected handshake, `terminate()`, `pause()`/`resume()`, protocol ping.
 *
 * Like ws itself, the event handlers are module-level functions that find their state through
 * the socket, so an idle connection costs fields, not a dozen closures.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ClientRequest, IncomingMessage } from "node:http"
import * as Net from "node:net"
import * as Tls from "node:tls"
import WebSocket from "ws"
import type { HandshakeFailure } from "./internal/classifyHandshakeError.js"
import { classifyHandshakeError, hintFor } from "./internal/classifyHandshakeError.js"
import { parseRetryAfter } from "./internal/parseRetryAfter.js"
import type { ReadyState } from "./internal/protocol.js"
import { ABNORMAL_CLOSURE, approximateBytes, CLOSED, CONNECTING, OPEN } from "./internal/protocol.js"
import type { Message, OpenRequest, SocketListener, TransportSocket } from "./Transport.js"
import { Transport } from "./Transport.js"

const kSocket = Symbol("lifeline/NodeSocket")

/** Frames smaller than this that are written in one tick leave together, in writevs of about 16 KiB. */
const CORK_BELOW_BYTES = 16 * 1024

/**
 * At most about this much is held in one cork. A write loop in one fiber runs in microtasks, and
 * the next tick comes only after the whole loop: without a bound, every frame of the loop left in
 * one writev once it was over, and the peer sat idle until then. A writev that the kernel does not
 * take whole stays pending until the event loop turns, and Node buffers every later write behind
 * it; so each flush stays small enough for the kernel to take at once (Linux starts a socket's
 * send buffer at 16 KiB), and the loop's frames keep leaving as it runs.
 */
const CORK_FLUSH_BYTES = 16 * 1024

/** The TransportSocket over one ws WebSocket; also the state its event handlers reach. */
class NodeSocket implements TransportSocket {
  opened = false
  failed = false
  corked = false
  /** Bytes written under the current cork. */
  corkedBytes = 0

  constructor(readonly ws: WebSocket, readonly listener: SocketListener) {}

  readyState(): ReadyState {
    return this.ws.readyState
  }
  protocol(): string {
    return this.ws.protocol
  }
  bufferedAmount(): number {
    return this.ws.bufferedAmount
  }
  /**
   * What the kernel took of this socket's bytes. ws's `bufferedAmount` drops only when a whole
   * write completes, and Node hands everything queued behind a pending write to the kernel as one
   * writev: a backlog of megabytes counts as stuck until its last byte is taken. libuv's counters
   * move as the kernel takes bytes: `bytesWritten` (what was handed to libuv) less
   * `writeQueueSize` (what libuv still holds), on Node's internal `_handle` (under TLS, the TCP
   * handle below the TLS one, so the bytes are TLS records'). Without them, the public counters
   * give the bytes of completed writes: coarser, never ahead.
   */
  sentBytes(): number {
    const tcp = this.tcp
    if (tcp === undefined) return 0
    const handle: unknown = Reflect.get(tcp, "_handle")
    if (typeof handle === "object" && handle !== null) {
      const parent: unknown = Reflect.get(handle, "_parent")
      const stream = typeof parent === "object" && parent !== null ? parent : handle
      const handed: unknown = Reflect.get(stream, "bytesWritten")
      const held: unknown = Reflect.get(stream, "writeQueueSize")
      if (typeof handed === "number" && typeof held === "number") return handed - held
    }
    const written = tcp.bytesWritten
    return typeof written === "number" ? written - tcp.writableLength : 0
  }
  send(data: Message, callback?: (error?: Error) => void): void {
    // Only small frames are batched: a large frame is a full write by itself, and holding it
    // back to the next tick would keep the peer idle while a burst of them is written.
    const bytes = approximateBytes(data)
    if (this.corked) {
      if (this.corkedBytes >= CORK_FLUSH_BYTES) this.flushCork()
      this.corkedBytes += bytes
    } else if (bytes < CORK_BELOW_BYTES) this.corkUntilNextTick(bytes)
    if (callback === undefined) return this.ws.send(data)
    const writes = this.writes ??= new WriteCallbacks(this)
    writes.callbacks.push(callback)
    try {
      this.ws.send(data, writes.completion)
    } catch (error) {
      writes.callbacks.pop()
      throw error
    }
  }

  /** The senders' callbacks, made on the first send that has one (an idle socket has none). */
  private writes: WriteCallbacks | undefined = undefined
  /** The TCP socket under ws, once open. */
  tcp: Net.Socket | undefined = undefined

  /**
   * Frames written in the same tick go out in one writev instead of one write each: cork the TCP
   * socket now, uncork on the next tick (Node's documented pattern for batching writes). ws 8.x
   * keeps that socket in the undocumented `_socket` field; without it, frames go out one by one.
   */
  private corkUntilNextTick(bytes: number): void {
    const tcp: unknown = Reflect.get(this.ws, "_socket")
    if (!(tcp instanceof Net.Socket) || tcp.destroyed) return
    tcp.cork()
    this.corked = true
    this.corkedBytes = bytes
    process.nextTick(uncork, this, tcp)
  }

  /** Writes what the cork holds (the frames before this one), and corks again until the next tick. */
  private flushCork(): void {
    const tcp = this.tcp
    this.corkedBytes = 0
    if (tcp === undefined || tcp.destroyed) return
    tcp.uncork()
    tcp.cork()
  }
  close(code: number, reason: string): void {
    if (this.ws.readyState !== CLOSED) this.ws.close(code, reason)
  }
  terminate(): void {
    if (this.ws.readyState !== CLOSED) this.ws.terminate()
  }
  pause(): boolean {
    if (this.ws.readyState === CONNECTING) return false
    this.ws.pause()
    return true
  }
  resume(): void {
    if (this.ws.readyState !== CONNECTING) this.ws.resume()
  }
  ping(): boolean {
    if (this.ws.readyState !== OPEN) return false
    this.ws.ping()
    return true
  }

  /** Reports the first pre-open failure; later ones (ws's own abort error) are the same story. */
  fail(failure: HandshakeFailure): void {
    if (this.opened || this.failed) return
    this.failed = true
    this.listener.onHandshakeFailure(failure)
  }
}

const writeLost = new Error("the connection ended before the frame was written")

/**
 * The senders' callbacks of one socket, oldest first: ws calls one shared completion per frame,
 * in order. Node calls a write's callback with no error when its socket was destroyed before the
 * write finished (a reset, `terminate`): such a frame was not written, and its sender hears so.
 */
class WriteCallbacks {
  readonly callbacks: Array<((error?: Error) => void) | undefined> = []
  private head = 0
  readonly completion = (error?: Error | null): void => this.completed(error)

  constructor(private readonly socket: NodeSocket) {}

  private completed(error: Error | null | undefined): void {
    const callbacks = this.callbacks
    if (this.head >= callbacks.length) return
    const callback = callbacks[this.head]!
    callbacks[this.head++] = undefined
    if (this.head === callbacks.length) {
      callbacks.length = 0
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > callbacks.length) {
      callbacks.splice(0, this.head)
      this.head = 0
    }
    if (error !== undefined && error !== null) return callback(error)
    if (this.socket.tcp?.destroyed === true) return callback(writeLost)
    callback()
  }
}

type Tagged = WebSocket & { [kSocket]: NodeSocket }

function uncork(socket: NodeSocket, tcp: Net.Socket): void {
  socket.corked = false
  tcp.uncork()
}

const stateOf = (ws: WebSocket): NodeSocket => (ws as Tagged)[kSocket]

// The permanent error sink of invariant 1. ws 8.x emits 'error' on the next tick after an abort
// while CONNECTING ("WebSocket was closed before the connection was established"); this listener
// is never removed, so that event always finds it and Node never throws it.
function socketOnError(this: WebSocket, error: Error): void {
  const state = stateOf(this)
  if (state.opened) state.listener.onProtocolError(closeCodeOfProtocolError(error), error.message)
  else state.fail(classifyHandshakeError(error))
}

// With a listener here ws does not abort by itself: read the status and Retry-After, then abort.
function socketOnUnexpectedResponse(this: WebSocket, _request: ClientRequest, response: IncomingMessage): void {
  const status = response.statusCode ?? 0
  // Node's http parser upgrades only a 101 with both headers; without one it is a plain response.
  if (status === 101) {
    const missing = response.headers.upgrade === undefined
      ? "an Upgrade: websocket header"
      : "a Connection: Upgrade header"
    stateOf(this).fail({
      reason: "ProtocolViolation",
      detail: `the server answered 101 without ${missing}; ${hintFor("ProtocolViolation")}`
    })
    this.terminate()
    return
  }
  const header = response.headers["retry-after"]
  const retryAfter = parseRetryAfter(Array.isArray(header) ? header[0] : header, Date.now())
  stateOf(this).fail({
    reason: "HandshakeRejected",
    detail: `the server answered HTTP ${status} instead of 101; ${hintFor("HandshakeRejected")}`,
    status,
    ...(Option.isSome(retryAfter) ? { retryAfter: retryAfter.value } : {})
  })
  this.terminate()
}

function socketOnOpen(this: WebSocket): void {
  const state = stateOf(this)
  state.opened = true
  // The handshake's listeners give way to the open socket's (ws emits no message, ping or pong
  // before 'open'): at most five at a time keep ws's listener table (a dictionary) at its small
  // size, about 190 B less per idle connection than seven.
  this.removeListener("unexpected-response", socketOnUnexpectedResponse)
  this.removeListener("open", socketOnOpen)
  this.on("message", socketOnMessage)
  this.on("pong", socketOnPong)
  this.on("ping", socketOnPong)
  const tcp: unknown = Reflect.get(this, "_socket")
  if (tcp instanceof Net.Socket) state.tcp = tcp
  state.listener.onOpen()
}

function socketOnMessage(this: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
  stateOf(this).listener.onMessage(toMessage(data, isBinary))
}

function socketOnPong(this: WebSocket): void {
  stateOf(this).listener.onPong()
}

function socketOnClose(this: WebSocket, code: number, reason: Buffer): void {
  stateOf(this).listener.onClose(code, reason.toString(), code !== ABNORMAL_CLOSURE)
}

/**
 * The ws options for `request.tls`. The secure context is made here, not by tls.connect, so that
 * a certificate or key Node cannot use is an InvalidOptions before any socket exists. Its error
 * is OpenSSL's (e.g. "PEM routines::no start line"), which never quotes the material.
 */
const tlsOptionsOf = (request: OpenRequest): Either.Either<Tls.ConnectionOptions, HandshakeFailure> => {
  if (request.tls === undefined) return Either.right({})
  const { ca, cert, key, rejectUnauthorized, servername } = Redacted.value(request.tls)
  const options: Tls.ConnectionOptions = {
    ...(servername === undefined ? {} : { servername }),
    ...(rejectUnauthorized === undefined ? {} : { rejectUnauthorized })
  }
  if (ca === undefined && cert === undefined && key === undefined) return Either.right(options)
  try {
    // Node takes any ArrayBufferView (not only a Buffer) and reads the arrays without changing them.
    const material = { ca, cert, key } as Tls.SecureContextOptions
    return Either.right({ ...options, secureContext: Tls.createSecureContext(material) })
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return Either.left({
      reason: "InvalidOptions",
      detail: `tls: Node cannot use the ca, cert or key given (${message}); ${hintFor("InvalidOptions")}`
    })
  }
}

const open = (request: OpenRequest, listener: SocketListener): Either.Either<TransportSocket, HandshakeFailure> => {
  const tls = tlsOptionsOf(request)
  if (Either.isLeft(tls)) return Either.left(tls.left)
  let ws: WebSocket
  try {
    ws = new WebSocket(request.url, [...request.protocols], {
      headers: request.headers,
      maxPayload: request.maxPayload,
      followRedirects: false,
      // ws hands these to https.request and tls.connect (for wss://; unused for ws://).
      ...tls.right
    })
  } catch (error) {
    // ws 8.x throws synchronously for a URL or subprotocol it rejects (SyntaxError).
    return Either.left(classifyHandshakeError(error))
  }
  const socket = new NodeSocket(ws, listener)
  ;(ws as Tagged)[kSocket] = socket
  ws.on("error", socketOnError)
  ws.on("unexpected-response", socketOnUnexpectedResponse)
  ws.on("open", socketOnOpen)
  ws.on("close", socketOnClose)
  return Either.right(socket)
}

// ws 8.x tags receiver errors with a WS_ERR_* code and closes with the matching status code.
const closeCodeOfProtocolError = (error: Error): number => {
  const code = "code" in error ? error.code : undefined
  if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") return 1009
  if (code === "WS_ERR_INVALID_UTF8") return 1007
  return typeof code === "string" && code.startsWith("WS_ERR_") ? 1002 : ABNORMAL_CLOSURE
}

// ws 8.x with the default binaryType "nodebuffer" hands a Buffer (a Uint8Array) to 'message'.
const toMessage = (data: WebSocket.RawData, isBinary: boolean): Message => {
  const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
  return isBinary ? bytes : bytes.toString("utf8")
}

/**
 * The Node.js transport as a service value.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Transport = { platform: "node", open }

/**
 * Provides `Transport` on Node.js, over `ws`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Transport> = Layer.succeed(Transport, make)
