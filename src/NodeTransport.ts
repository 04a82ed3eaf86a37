/**
 * The Transport on Node.js, over the `ws` library: handshake headers, `maxPayload`, HTTP status
 * and Retry-After of a rejected handshake, `terminate()`, `pause()`/`resume()`, protocol ping.
 *
 * The ws object is a subclass whose `emit` hands ws's events to the connection's state (a field
 * of the socket), and the handlers are module-level functions: an idle connection costs fields,
 * not a dozen closures and listeners.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Agent, ClientRequest, type IncomingMessage } from "node:http"
import * as Net from "node:net"
import * as Tls from "node:tls"
import WebSocket from "ws"
import type { HandshakeFailure } from "./internal/classifyHandshakeError.js"
import {
  classifyHandshakeError,
  errorMessage,
  hintFor,
  quotedLocation,
  rejectionDetail
} from "./internal/classifyHandshakeError.js"
import { install as installCallbacks } from "./internal/client/callbacks.js"
import { install as installNodeInspect } from "./internal/nodeInspect.js"
import { install as installUncheckedNode, nodeOptionChecks } from "./internal/nodeOptions.js"
import { heldByWs, tcpCounters, WriteCallbacks, wsHolds } from "./internal/nodeWriteCallbacks.js"
import { parseRetryAfter } from "./internal/parseRetryAfter.js"
import { install as installNodeTimers } from "./internal/primitives/nodeTimers.js"
import type { ReadyState } from "./internal/protocol.js"
import { ABNORMAL_CLOSURE, approximateBytes, CLOSED, CONNECTING, OPEN } from "./internal/protocol.js"
import { ownPhrase, secretsOf, tidyPhrase } from "./internal/reasonPhrase.js"
import { install as installUrlOnlySettings } from "./internal/urlOnlySettings.js"
import type { Message, OpenRequest, SocketListener, TransportSocket } from "./Transport.js"
import { Transport } from "./Transport.js"

const kSocket = Symbol("lifeline/NodeSocket")

/**
 * Frames smaller than this that are written in one tick leave together, in writevs of about
 * 16 KiB: the first at once (a lone frame, a request, leaves with one plain write, without waiting
 * for the tick), the next ones corked until the tick ends.
 */
const CORK_BELOW_BYTES = 16 * 1024

/** `NodeSocket.corkedBytes` when not corked: no small frame written this tick, or one. */
const NONE_THIS_TICK = -1
const ONE_THIS_TICK = -2

/**
 * At most about this much is held in one cork. A write loop in one fiber runs in microtasks, and
 * the next tick comes only after the whole loop: without a bound, every frame of the loop left in
 * one writev once it was over, and the peer sat idle until then. A writev that the kernel does not
 * take whole stays pending until the event loop turns, and Node buffers every later write behind
 * it; so each flush stays small enough for the kernel to take at once (Linux starts a socket's
 * send buffer at 16 KiB), and the loop's frames keep leaving as it runs.
 */
const CORK_FLUSH_BYTES = 16 * 1024

/**
 * How long the TCP connection may stay up once a close the peer started was answered. RFC 6455
 * lets the client end it at any time after sending and receiving a close frame; ws waits 30 s for
 * the server to end it, and the connection stays CLOSING meanwhile (a Client Open, its sends
 * waiting). A peer that sends a close frame and never ends TCP is cut after this instead.
 */
const PEER_CLOSE_GRACE_MS = 1000

/** `NodeSocket.phase`: before the outcome of the handshake, open, or failed before open. */
const CONNECTING_PHASE = 0
const OPENED_PHASE = 1
const FAILED_PHASE = 2

/**
 * The TransportSocket over one ws WebSocket; also the state its event handlers reach. Few fields
 * (idle memory per connection is a benchmark target): the phase is one number, and "corked" is
 * `corkedBytes >= 0`.
 */
class NodeSocket implements TransportSocket {
  phase = CONNECTING_PHASE
  /** Bytes written under the current cork; when not corked, NONE_THIS_TICK or ONE_THIS_TICK. */
  corkedBytes = NONE_THIS_TICK

  constructor(readonly ws: WebSocket, readonly listener: SocketListener) {}

  readyState(): ReadyState {
    return this.ws.readyState
  }
  protocol(): string {
    return this.ws.protocol
  }
  // ws names them ("permessage-deflate"), without their parameters.
  extensions(): string {
    return this.ws.extensions
  }
  bufferedAmount(): number {
    const amount = this.ws.bufferedAmount
    // An empty frame ws holds to compress counts nothing: not written yet, so not 0 (Transport;
    // the write completions read it too, to tell what the kernel took).
    return amount === 0 && wsHolds(this.ws) ? 1 : amount
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
    if (tcp === undefined) return this.drained === undefined ? 0 : this.drain(this.drained)
    const counters = tcpCounters(tcp)
    if (counters !== undefined) return counters.bytesWritten - counters.writeQueueSize
    const written = tcp.bytesWritten
    return typeof written === "number" ? written - tcp.writableLength : 0
  }
  /**
   * On Bun (its own ws, whose socket has no byte counts): the bytes the network took, counted as
   * `bufferedAmount` falls between two reads. Bun's counts the bytes on the wire (compressed,
   * headers included) and falls only as the kernel takes them; it is read again after each send,
   * so a frame's own bytes never count, and what Bun queues unseen (a ping, a close frame) only
   * hides as much progress: it may lag, never run ahead. Declared, not a field: only a socket on
   * Bun has it (idle memory per connection is a benchmark target).
   */
  declare drained: { total: number; last: number } | undefined

  drain(drained: { total: number; last: number }): number {
    const now = this.ws.bufferedAmount
    if (now < drained.last) drained.total += drained.last - now
    drained.last = now
    return drained.total
  }
  send(data: Message, callback?: (error?: Error) => void): void {
    const drained = this.drained
    if (drained === undefined) return this.write(data, callback)
    this.drain(drained)
    try {
      this.write(data, callback)
    } finally {
      drained.last = this.ws.bufferedAmount
    }
  }
  private write(data: Message, callback?: (error?: Error) => void): void {
    // Only small frames are batched: a large frame is a full write by itself, and holding it
    // back to the next tick would keep the peer idle while a burst of them is written.
    const bytes = approximateBytes(data)
    const corked = this.corkedBytes
    if (corked >= 0) {
      if (corked >= CORK_FLUSH_BYTES) this.flushCork()
      this.corkedBytes += bytes
    } else if (bytes < CORK_BELOW_BYTES) {
      if (corked === ONE_THIS_TICK) this.cork(bytes)
      else this.markTick()
    }
    if (callback === undefined) return this.ws.send(data)
    const writes = this.writes ??= new WriteCallbacks(this)
    writes.callbacks.push(callback)
    const handed = writes.handedBefore()
    try {
      this.ws.send(data, writes.completion)
    } catch (error) {
      writes.callbacks.pop()
      throw error
    }
    writes.takenIfFlushed(handed)
  }

  /** The senders' callbacks, made on the first send that has one (an idle socket has none). */
  writes: WriteCallbacks | undefined = undefined
  /** The TCP socket under ws, once open. */
  tcp: Net.Socket | undefined = undefined

  /**
   * The first small frame of a tick leaves at once; the tick's end is marked, so that the frames
   * that follow in the same tick are corked (`cork`) and go out in one writev instead of one write
   * each (Node's documented pattern for batching writes). The TCP socket is ws's undocumented
   * `_socket` (ws 8.x), taken at open; without it, frames go out one by one.
   */
  private markTick(): void {
    const tcp = this.tcp
    if (tcp === undefined || tcp.destroyed) return
    this.corkedBytes = ONE_THIS_TICK
    process.nextTick(endTick, this, tcp)
  }

  /** The second small frame of a tick: cork the TCP socket until the tick ends (`endTick`). */
  private cork(bytes: number): void {
    const tcp = this.tcp
    if (tcp === undefined || tcp.destroyed) return
    tcp.cork()
    this.corkedBytes = bytes
  }

  /** Writes what the cork holds (the frames before this one), and corks again until the next tick. */
  private flushCork(): void {
    const tcp = this.tcp
    this.corkedBytes = 0
    if (tcp === undefined || tcp.destroyed) return
    const writes = this.writes
    const handed = writes?.handedBefore()
    tcp.uncork()
    writes?.takenIfFlushed(handed)
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
    if (this.phase !== CONNECTING_PHASE) return
    this.phase = FAILED_PHASE
    this.listener.onHandshakeFailure(failure)
  }
}

/**
 * A ws WebSocket that hands its events straight to its NodeSocket: `emit` is overridden, so the
 * connection's events need no listener each on the ws object (ws keeps them in a dictionary:
 * 256 B per connection for five) and a message skips EventEmitter's dispatch. The one listener
 * it has is the permanent error sink of invariant 1. The NodeSocket is a field declared here,
 * part of the object from its construction: a property added afterwards (`ws[kSocket] = ...`)
 * would go to a separate property array.
 */
class LifelineWebSocket extends WebSocket {
  [kSocket]: NodeSocket | undefined = undefined

  // ws answers a peer's close frame by calling close(), and then waits 30 s for the peer to end
  // TCP (its `_closeTimer`, cleared when the socket closes): shorten that wait. So too when ws
  // closes because the peer broke the protocol (its receiver failed: an invalid frame): the
  // connection stayed CLOSING for 30 s, a Client Open meanwhile, if that peer never ended TCP.
  override close(code?: number, data?: string | Buffer): void {
    const answering = this.readyState === OPEN &&
      (Reflect.get(this, "_closeFrameReceived") === true || receiverFailed(this))
    super.close(code, data)
    if (!answering) return
    const timer: unknown = Reflect.get(this, "_closeTimer")
    const tcp: unknown = Reflect.get(this, "_socket")
    if (timer === null || timer === undefined || !(tcp instanceof Net.Socket)) return
    clearTimeout(timer as ReturnType<typeof setTimeout>)
    Reflect.set(this, "_closeTimer", setTimeout(destroyTcp, PEER_CLOSE_GRACE_MS, tcp))
  }

  // ws emits with two arguments at most ('message': data, isBinary; 'close': code, reason).
  override emit(event: string | symbol, first?: unknown, second?: unknown): boolean {
    const state = this[kSocket]
    if (state !== undefined) {
      switch (event) {
        case "message":
          state.listener.onMessage(toMessage(first as WebSocket.RawData, second as boolean))
          return true
        case "ping":
          answerPing(state, first as Buffer)
          state.listener.onPong()
          return true
        case "pong":
          state.listener.onPong()
          return true
        case "open":
          socketOnOpen(this, state)
          return true
        case "close":
          // What ws still holds to compress is reported not written now, before the close is.
          if (state.writes !== undefined) state.writes.heldAtClose(heldByWs(this, state.writes.completion))
          state.listener.onClose(first as number, String(second), first !== ABNORMAL_CLOSURE)
          return true
        case "unexpected-response":
          // Handled (true): ws then does not abort by itself.
          socketOnUnexpectedResponse(this, state, first as ClientRequest, second as IncomingMessage)
          return true
      }
    }
    // 'error' goes to the permanent sink; ws's 'upgrade' and 'redirect' find no listener.
    return super.emit(event, first, second)
  }
}

/**
 * The sockets with a pong being written (ws's `autoPong` is off): null, or the latest ping that
 * came meanwhile, answered once that pong is written. RFC 6455 (5.5.3) lets an endpoint answer
 * only the most recent of several pings: a peer that flooded pings and did not read had one pong
 * each held in memory (100 000 pings of 125 bytes: 7 MB); now one pong and one ping at most. A
 * map, not a field: an idle connection pays nothing (its fields are a benchmark target).
 */
const pongsInFlight = new WeakMap<NodeSocket, Buffer | null>()

function answerPing(socket: NodeSocket, data: Buffer): void {
  if (socket.ws.readyState !== OPEN) return
  if (pongsInFlight.has(socket)) {
    pongsInFlight.set(socket, data)
    return
  }
  pongsInFlight.set(socket, null)
  socket.ws.pong(data, true, () => pongWritten(socket))
}

function pongWritten(socket: NodeSocket): void {
  const next = pongsInFlight.get(socket)
  pongsInFlight.delete(socket)
  if (next !== null && next !== undefined) answerPing(socket, next)
}

/** ws's receiver (a Writable) failed on the peer's bytes; ws reads the same flag (ws 8.x). */
function receiverFailed(ws: WebSocket): boolean {
  const receiver: unknown = Reflect.get(ws, "_receiver")
  if (typeof receiver !== "object" || receiver === null) return false
  const state: unknown = Reflect.get(receiver, "_writableState")
  return typeof state === "object" && state !== null && Reflect.get(state, "errorEmitted") === true
}

type InflateCallback = (error: Error | null, data?: Buffer) => void
type Inflate = (this: unknown, data: Buffer, fin: boolean, callback: InflateCallback) => void

/**
 * ws 8.x (8.18.3, and 8.23's code is the same) can throw out of a zlib callback, past every
 * listener, when a peer breaks the protocol while a compressed message arrives (round 23): its
 * receiver fails (e.g. RSV1 on a pong) but is fed the next read before its 'error' comes, starts
 * inflating it, and ws's `emitClose` then runs `PerMessageDeflate#cleanup()`, which closes and
 * nulls the inflater under that inflate: the flush's callback reads `this._inflate[kError]` of
 * null, an uncaught TypeError. So the negotiated extension's cleanup waits here for the inflates
 * asked of it (queued or running), and what they give after it is dropped: the connection is
 * closed and its receiver has no listener left. Nothing else changes; where ws's `decompress` and
 * `cleanup` are not functions, nothing is installed.
 */
function guardInflater(ws: WebSocket): void {
  const extensions: unknown = Reflect.get(ws, "_extensions")
  if (typeof extensions !== "object" || extensions === null) return
  const deflate: unknown = Reflect.get(extensions, "permessage-deflate")
  if (typeof deflate !== "object" || deflate === null) return
  const cleanup: unknown = Reflect.get(deflate, "cleanup")
  const decompress: unknown = Reflect.get(deflate, "decompress")
  if (typeof cleanup !== "function" || typeof decompress !== "function") return
  let inflating = 0
  let closed = false
  Reflect.set(deflate, "decompress", function(this: unknown, data: Buffer, fin: boolean, callback: InflateCallback) {
    inflating++
    ;(decompress as Inflate).call(this, data, fin, (error, result) => {
      inflating--
      if (!closed) return callback(error, result)
      if (inflating === 0) cleanup.call(deflate)
    })
  })
  Reflect.set(deflate, "cleanup", () => {
    closed = true
    if (inflating === 0) cleanup.call(deflate)
  })
}

function destroyTcp(tcp: Net.Socket): void {
  tcp.destroy()
}

function endTick(socket: NodeSocket, tcp: Net.Socket): void {
  const corked = socket.corkedBytes >= 0
  socket.corkedBytes = NONE_THIS_TICK
  if (!corked) return
  const writes = socket.writes
  const handed = writes?.handedBefore()
  tcp.uncork()
  writes?.takenIfFlushed(handed)
}

// The permanent error sink of invariant 1. ws 8.x emits 'error' on the next tick after an abort
// while CONNECTING ("WebSocket was closed before the connection was established"); this listener
// is never removed, so that event always finds it and Node never throws it.
function socketOnError(this: WebSocket, error: Error): void {
  const state = (this as LifelineWebSocket)[kSocket]!
  if (state.phase === OPENED_PHASE) state.listener.onProtocolError(closeCodeOfProtocolError(error), error.message)
  else {
    const failure = classifyHandshakeError(error, {
      afterTls: tlsCompleted(state),
      offeredProtocols: offeredProtocols.has(state)
    })
    const proxy = proxies.get(state)
    state.fail(proxy === undefined ? failure : beforeTunnel(failure, error, proxy))
  }
}

/**
 * An attempt through an agent (`layerWith`): the target as CONNECT names it, and the proxy's
 * answer once the agent reports it. https-proxy-agent (and agents built like it) emit
 * 'proxyConnect' on the request with the proxy's answer to CONNECT, before handing the request a
 * socket; a non-200 answer is then replayed to the request as its response, so ws reports the
 * proxy's status as if the server had answered. A map, not a field: a direct connection pays nothing.
 */
interface ProxyWatch {
  readonly target: string
  answer: { readonly status: number; readonly text: string; readonly location: string | undefined } | undefined
  /** The agent handed the request a socket (the tunnel, or the proxy's refusal to replay). */
  socket: boolean
  /**
   * The agent names a proxy (its `proxy`, as https-proxy-agent, http-proxy-agent and
   * socks-proxy-agent keep it): only then is a failure before the socket its proxy's. Another agent
   * may dial the server itself and fail before handing over a socket (an agent-base `connect` that
   * awaits TLS, a `createConnection` that calls back with an error).
   */
  readonly proxied: boolean
}

const proxies = new WeakMap<NodeSocket, ProxyWatch>()

const defaultPort = (url: URL): string => url.port !== "" ? url.port : url.protocol === "wss:" ? "443" : "80"

function watchProxy(socket: NodeSocket, handshake: ClientRequest, url: URL, agent: Agent): void {
  let named: unknown
  try {
    named = Reflect.get(agent, "proxy")
  } catch {
    // a getter of the user's agent that throws: no proxy named, nothing thrown here
  }
  const watch: ProxyWatch = {
    target: `${url.hostname}:${defaultPort(url)}`,
    answer: undefined,
    socket: false,
    proxied: typeof named === "string" || (typeof named === "object" && named !== null)
  }
  proxies.set(socket, watch)
  handshake.once("socket", () => {
    watch.socket = true
  })
  handshake.once("proxyConnect", (connect: unknown) => {
    const status: unknown = typeof connect === "object" && connect !== null ? Reflect.get(connect, "statusCode") : 0
    const text: unknown = typeof connect === "object" && connect !== null ? Reflect.get(connect, "statusText") : ""
    const headers: unknown = typeof connect === "object" && connect !== null
      ? Reflect.get(connect, "headers")
      : undefined
    const location: unknown = typeof headers === "object" && headers !== null
      ? Reflect.get(headers, "location")
      : undefined
    watch.answer = {
      status: typeof status === "number" ? status : 0,
      text: typeof text === "string" ? tidyPhrase(text) : "",
      location: typeof location === "string" ? location : undefined
    }
  })
}

/**
 * A failure before the proxy answered CONNECT, at an address that is not the target's, or before
 * an agent that names a proxy handed the request a socket: the agent's connection to its proxy
 * failed (nothing listens there, it hung up, it reset, its TLS). Says so, with the proxy's hint;
 * an agent that dials the target itself reports the target's address, left as it is.
 */
const beforeTunnel = (failure: HandshakeFailure, error: unknown, proxy: ProxyWatch): HandshakeFailure => {
  const answer = proxy.answer
  if (answer !== undefined) {
    // The proxy refused, and Node's HTTP parser then refused its answer (a header name with a
    // space, a control character): still the proxy's status, not a server's protocol violation.
    if (answer.status === 200 || !(answer.status >= 100 && answer.status <= 599)) return failure
    const refused = {
      reason: "HandshakeRejected",
      detail: proxyRefused(proxy, answer.status, answer.text, answer.location)
    } as const
    return { ...refused, status: answer.status, ...(failure.cause === undefined ? {} : { cause: failure.cause }) }
  }
  const address: unknown = typeof error === "object" && error !== null ? Reflect.get(error, "address") : undefined
  const port: unknown = typeof error === "object" && error !== null ? Reflect.get(error, "port") : undefined
  const at = typeof address === "string" && typeof port === "number"
    ? (address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`)
    : undefined
  const where = at === undefined
    // No socket yet: the agent failed on its own connection, to the proxy (Squid's `deny_info
    // TCP_RESET` resets it after reading CONNECT: "read ECONNRESET").
    ? (error instanceof Error && error.message.startsWith("Proxy ")) || (proxy.proxied && !proxy.socket)
      ? "the proxy"
      : undefined
    : at !== proxy.target && !(byName(proxy.target) && port === portOf(proxy.target))
    ? `the proxy at ${at} (the agent's)`
    : undefined
  if (where === undefined) return failure
  const own = classifyHandshakeError(error, { toProxy: true })
  return { ...own, detail: `${where}, before the tunnel to ${proxy.target}: ${own.detail}` }
}

const portOf = (target: string): number => Number(target.slice(target.lastIndexOf(":") + 1))

/**
 * A target named by host name: an agent that dials it itself (a plain `http.Agent`) reports the
 * address the name resolved to, not the target's text; its port tells it from a proxy's.
 */
const byName = (target: string): boolean =>
  Net.isIP(target.slice(0, target.lastIndexOf(":")).replace(/^\[|\]$/g, "")) === 0

const CHECK_CREDENTIALS = "check the user and password of the proxy URL given to the agent (not shown here)"

const PROXY_HINTS: Readonly<Record<number, string>> = {
  407: `the proxy wants credentials, or refused those given: ${CHECK_CREDENTIALS}`,
  // tinyproxy 1.11 answers wrong credentials with 401 (and none with 407)
  401: `the proxy refused the credentials given: ${CHECK_CREDENTIALS}`,
  403: "the proxy does not tunnel to this host and port: ask for it to be allowed, or connect directly (NO_PROXY)",
  // tinyproxy's "500 Unable to connect", Squid's 503 (ERR_CONNECT_FAIL): the server, not the proxy
  500: "the proxy failed to open the tunnel (tinyproxy answers 500 when it could not reach the server); " +
    "retrying helps once it is back",
  502:
    "the proxy could not reach the server (down, refused or unreachable from the proxy); retrying helps once it is back",
  503: "the proxy could not reach the server (Squid answers 503 when it is down or refused), or the proxy itself " +
    "is unavailable; retrying helps once it is back",
  504: "the proxy timed out reaching the server; retrying helps once it is back"
}

/**
 * Squid's `deny_info <url>` (and captive portals) answer a refused CONNECT with a redirect to the
 * proxy's own page: where it points, when it is an absolute http(s) URL (as a server's redirect
 * is shown: redacted, at most 200 characters).
 */
const proxyRedirect = (location: string | undefined): string => {
  let page = ""
  try {
    const url = location === undefined ? undefined : new URL(location)
    if (url !== undefined && (url.protocol === "http:" || url.protocol === "https:")) page = `, ${quotedLocation(url)}`
  } catch {
    // relative, or not a URL: not shown
  }
  return `the proxy refused the tunnel and redirects to a page of its own${page} (a policy or login page, ` +
    "for a browser): ask for the host to be allowed, or connect directly (NO_PROXY)"
}

/** The proxy refused the tunnel: its status, said to be the proxy's. */
const proxyRefused = (proxy: ProxyWatch, status: number, text: string, location: string | undefined): string =>
  `the HTTP proxy answered CONNECT ${proxy.target} with ${status}${text === "" ? "" : ` ${text}`}, not 200: ` +
  `no tunnel, the server was not reached; ${
    PROXY_HINTS[status] ?? (status >= 300 && status < 400 ? proxyRedirect(location) : "the proxy refused the tunnel")
  }`

/**
 * The HTTP requests of wss:// handshakes, until open: when one fails, whether its TLS handshake
 * had completed tells a server that hung up on the client certificate (Python's `ssl` closes
 * without an alert: "socket hang up") from one that never spoke TLS. A map, not a field: a ws://
 * connection and an open one pay nothing.
 */
const tlsRequests = new WeakMap<NodeSocket, ClientRequest>()

/** The sockets whose handshake offered subprotocols (for the hint of a hang-up without an answer). */
const offeredProtocols = new WeakSet<NodeSocket>()

/** Node's TLSSocket sets `authorized`, or `authorizationError`, once its handshake completes. */
function tlsCompleted(state: NodeSocket): boolean {
  const tcp = tlsRequests.get(state)?.socket
  return tcp instanceof Tls.TLSSocket && (tcp.authorized || tcp.authorizationError !== null)
}

// Read the status and Retry-After, then abort.
function socketOnUnexpectedResponse(
  ws: WebSocket,
  state: NodeSocket,
  request: ClientRequest,
  response: IncomingMessage
): void {
  const status = response.statusCode ?? 0
  // Node's http parser upgrades only a 101 with both headers; without one it is a plain response.
  if (status === 101) {
    const missing = response.headers.upgrade === undefined
      ? "an Upgrade: websocket header"
      : "a Connection: Upgrade header"
    state.fail({
      reason: "ProtocolViolation",
      detail: `the server answered 101 without ${missing}; ${hintFor("ProtocolViolation")}`
    })
    ws.terminate()
    return
  }
  const header = response.headers["retry-after"]
  const retryAfter = parseRetryAfter(Array.isArray(header) ? header[0] : header, Date.now())
  const proxy = proxies.get(state)
  const answer = proxy?.answer
  state.fail({
    reason: "HandshakeRejected",
    detail: proxy !== undefined && answer !== undefined && answer.status !== 200
      ? proxyRefused(proxy, answer.status, answer.text, answer.location)
      : rejectionDetail(
        status,
        response.headers.location,
        ws.url,
        ownPhrase(status, response.statusMessage, () => secretsOf(request.getHeaders(), ws.url))
      ),
    status,
    ...(Option.isSome(retryAfter) ? { retryAfter: retryAfter.value } : {})
  })
  ws.terminate()
}

function socketOnOpen(ws: WebSocket, state: NodeSocket): void {
  state.phase = OPENED_PHASE
  tlsRequests.delete(state)
  proxies.delete(state)
  const tcp: unknown = Reflect.get(ws, "_socket")
  if (tcp instanceof Net.Socket) state.tcp = tcp
  else if (typeof process.versions.bun === "string") state.drained = { total: 0, last: ws.bufferedAmount }
  guardInflater(ws)
  state.listener.onOpen()
}

/**
 * The ws options for `request.tls`. The secure context is made here, not by tls.connect, so that
 * a certificate or key Node cannot use is an InvalidOptions before any socket exists. Its error
 * is OpenSSL's (e.g. "PEM routines::no start line"), which never quotes the material.
 */
const tlsOptionsOf = (request: OpenRequest): Either.Either<Tls.ConnectionOptions, HandshakeFailure> => {
  if (request.tls === undefined) return Either.right({})
  const { ca, cert, key, passphrase, rejectUnauthorized, servername } = Redacted.value(request.tls)
  const options: Tls.ConnectionOptions = {
    ...(servername === undefined ? {} : { servername }),
    ...(rejectUnauthorized === undefined ? {} : { rejectUnauthorized })
  }
  if (ca === undefined && cert === undefined && key === undefined) return Either.right(options)
  try {
    // Node takes any ArrayBufferView (not only a Buffer) and reads the arrays without changing them.
    const material = { ca, cert, key, passphrase } as Tls.SecureContextOptions
    return Either.right({ ...options, secureContext: Tls.createSecureContext(material) })
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    // OpenSSL found no PEM block where it wanted one: a file path or DER bytes given as cert or key.
    const notPem = message.includes("no start line")
      ? ", not PEM text: a file path or DER bytes? give the PEM text"
      : ""
    return Either.left({
      reason: "InvalidOptions",
      detail: `tls: Node cannot use the ca, cert or key given (${message})${notPem}; ${hintFor("InvalidOptions")}`
    })
  }
}

const open = (request: OpenRequest, listener: SocketListener): Either.Either<TransportSocket, HandshakeFailure> =>
  openThrough(request, listener, undefined)

const openThrough = (
  request: OpenRequest,
  listener: SocketListener,
  agent: Agent | undefined
): Either.Either<TransportSocket, HandshakeFailure> => {
  const tls = tlsOptionsOf(request)
  if (Either.isLeft(tls)) return Either.left(tls.left)
  let ws: LifelineWebSocket
  try {
    ws = new LifelineWebSocket(request.url, [...request.protocols], {
      ...(agent === undefined ? {} : { agent, ...identityThroughAgent(request.url, tls.right) }),
      headers: request.headers,
      maxPayload: request.maxPayload,
      perMessageDeflate: request.perMessageDeflate !== false,
      followRedirects: false,
      // Pings are answered by `answerPing`: only the latest one while a pong is being written.
      autoPong: false,
      // ws hands these to https.request and tls.connect (for wss://; unused for ws://).
      ...tls.right
    })
  } catch (error) {
    // ws 8.x throws synchronously for a URL or subprotocol it rejects (SyntaxError); with an agent,
    // what else throws here is the agent (its createConnection, or not an agent Node can use).
    if (agent !== undefined && !(error instanceof SyntaxError)) {
      return invalidAgent(`the agent threw when asked for a connection (${errorMessage(error)})`)
    }
    return Either.left(classifyHandshakeError(error))
  }
  const socket = new NodeSocket(ws, listener)
  ws[kSocket] = socket
  if (request.protocols.length > 0) offeredProtocols.add(socket)
  ws.on("error", socketOnError)
  if (request.url.protocol === "wss:" || agent !== undefined) {
    const handshake: unknown = Reflect.get(ws, "_req")
    if (handshake instanceof ClientRequest) {
      if (request.url.protocol === "wss:") tlsRequests.set(socket, handshake)
      if (agent !== undefined) watchProxy(socket, handshake, request.url, agent)
    }
  }
  return Either.right(socket)
}

// ws 8.x tags receiver errors with a WS_ERR_* code and closes with the matching status code: 1009
// for a message over maxPayload (inflated size included) or a length over 2^53 - 1, 1007 for
// invalid UTF-8 and for a compressed frame zlib cannot inflate (Node's Z_* codes), 1002 otherwise.
// The one error that only a close frame carries, a code that may not be sent (Deno's 1005 when its
// server is stopped by its AbortSignal, lighttpd's code in ASCII): the peer was closing anyway, so
// 1006, no valid close frame, as a browser reports it; retried (ws still answers 1002).
const closeCodeOfProtocolError = (error: Error): number => {
  const code = "code" in error ? error.code : undefined
  if (typeof code !== "string" || code === "WS_ERR_INVALID_CLOSE_CODE") return ABNORMAL_CLOSURE
  if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH" || code === "WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH") return 1009
  if (code === "WS_ERR_INVALID_UTF8" || code.startsWith("Z_")) return 1007
  return code.startsWith("WS_ERR_") ? 1002 : ABNORMAL_CLOSURE
}

// ws 8.x with the default binaryType "nodebuffer" hands a Buffer (a Uint8Array) to 'message'.
// That Buffer is often a view into a larger one: the socket's read (other frames, the 101 answer)
// or Node's pool. A binary frame is given its own ArrayBuffer, as a browser's WebSocket gives:
// posted to another thread it carries its bytes only, and transferring its `buffer` (a
// `postMessage` transfer list) cannot empty the frames that came in the same read.
const toMessage = (data: WebSocket.RawData, isBinary: boolean): Message => {
  const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
  if (!isBinary) return bytes.toString("utf8")
  if (bytes.byteLength > 0 && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes
  const own = Buffer.allocUnsafeSlow(bytes.byteLength)
  bytes.copy(own)
  return own
}

/**
 * The Node.js transport as a service value.
 *
 * @since 0.1.0
 * @category constructors
 */
// Where the Node transport is loaded, a Client whose attempts run no user code connects, backs
// off and reconnects on callbacks, with no fiber (`internal/client/callbacks.ts`: connect and
// reconnect cost when many clients reconnect at once); timers on setTimeout share one per 10 ms
// slot (`internal/primitives/nodeTimers.ts`) and Clients made with `{ url }` alone share their
// settings (`internal/urlOnlySettings.ts`): idle memory per Client. A browser bundle does without
// them: a page holds a Client or two, a Node process may hold thousands. A wrapper of this
// transport without its `checkOptions` has every header and any tls refused (`internal/nodeOptions.ts`),
// and `util.inspect` shows a ConnectError's redacted cause and a Connection's `toJSON` (`internal/nodeInspect.ts`).
installCallbacks()
installNodeTimers()
installUrlOnlySettings()
installUncheckedNode()
installNodeInspect()

export const make: Transport = { platform: "node", checkOptions: nodeOptionChecks, open }

/**
 * Provides `Transport` on Node.js, over `ws`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Transport> = Layer.succeed(Transport, make)

/**
 * The options of `makeWith` / `layerWith`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /**
   * The `http.Agent` every connection goes through, given to ws (its `agent` option) for ws://
   * and wss:// alike: an agent that tunnels through an HTTP proxy (CONNECT), such as
   * https-proxy-agent's `HttpsProxyAgent`. A function picks one per endpoint, with the URL
   * dialled (e.g. none for hosts in NO_PROXY): `undefined` connects directly. Absent: every
   * connection is direct, as with `layer`.
   */
  readonly agent?: Agent | ((url: URL) => Agent | undefined) | undefined
}

/**
 * The server's identity, checked against the host dialled, for a wss:// URL whose host is an IP
 * address (or with `tls.servername` "": no SNI), through an agent. https-proxy-agent 7 starts TLS in the tunnel without the host (and
 * without a servername for an IP, as RFC 6066 wants), and Node then checks the certificate against
 * "localhost": a certificate for the IP was refused (ERR_TLS_CERT_ALTNAME_INVALID, "Host: localhost").
 */
const identityThroughAgent = (url: URL, tls: Tls.ConnectionOptions): Tls.ConnectionOptions => {
  const host = url.hostname.replace(/^\[|\]$/g, "")
  // tls.servername "" (no SNI) is passed on as it is, and Node then checks "localhost" too; directly,
  // Node checks the host dialled (`servername || host`): so here.
  const named = tls.servername !== undefined && tls.servername !== ""
  if (url.protocol !== "wss:" || named || (tls.servername === undefined && Net.isIP(host) === 0)) return {}
  return {
    checkServerIdentity: (_: string, certificate: Tls.PeerCertificate) => Tls.checkServerIdentity(host, certificate)
  }
}

const isAgent = (agent: unknown): agent is Agent =>
  agent instanceof Agent ||
  (typeof agent === "object" && agent !== null && typeof Reflect.get(agent, "addRequest") === "function")

const describeValue = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : typeof value

const invalidAgent = (detail: string): Either.Either<never, HandshakeFailure> =>
  Either.left({ reason: "InvalidOptions", detail: `NodeTransport agent: ${detail}; ${hintFor("InvalidOptions")}` })

/** The agent for this URL: none, one, or InvalidOptions (never a throw: invariant 1). */
const agentFor = (
  agent: unknown,
  url: URL
): Either.Either<Agent | undefined, HandshakeFailure> => {
  if (agent === undefined) return Either.right(undefined)
  if (typeof agent === "function") {
    let picked: unknown
    try {
      picked = (agent as (url: URL) => unknown)(url)
    } catch (error) {
      return invalidAgent(`the function that picks the agent threw (${errorMessage(error)})`)
    }
    if (picked === undefined || isAgent(picked)) return Either.right(picked)
    return invalidAgent(
      `the function that picks the agent returned ${describeValue(picked)}, not an http.Agent or undefined`
    )
  }
  if (isAgent(agent)) return Either.right(agent)
  return invalidAgent(`${describeValue(agent)}, not an http.Agent nor a function of the URL`)
}

/**
 * The Node.js transport with options: every connection through `options.agent` (an HTTP proxy's
 * agent, e.g. `new HttpsProxyAgent(process.env.HTTPS_PROXY)`). The same transport as `make`
 * otherwise: the same option checks (`headers`, `tls`), Clients on callbacks, shared settings.
 * An agent that is not an `http.Agent`, or a function that throws or returns something else, is a
 * `ConnectError` InvalidOptions at the attempt (not retried), never a throw.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeWith = (options: Options): Transport => {
  const agent: unknown = options.agent
  if (agent === undefined) return make
  return {
    platform: "node",
    checkOptions: nodeOptionChecks,
    open: (request, listener) => {
      const picked = agentFor(agent, request.url)
      return Either.isLeft(picked) ? Either.left(picked.left) : openThrough(request, listener, picked.right)
    }
  }
}

/**
 * Provides `Transport` on Node.js, over `ws`, with options: every connection through
 * `options.agent` (see `makeWith`).
 *
 * @example
 * import { Client, NodeTransport } from "effect-lifeline"
 * import { Effect } from "effect"
 * import { HttpsProxyAgent } from "https-proxy-agent"
 *
 * const proxy = process.env.HTTPS_PROXY
 * const transport = NodeTransport.layerWith({
 *   agent: proxy === undefined ? undefined : new HttpsProxyAgent(proxy)
 * })
 *
 * const program = Effect.gen(function*() {
 *   const client = yield* Client.make({ url: "wss://example.com/feed" })
 *   yield* client.awaitOpen
 * })
 *
 * program.pipe(Effect.scoped, Effect.provide(transport))
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWith = (options: Options): Layer.Layer<Transport> => Layer.succeed(Transport, makeWith(options))

/**
 * Whether `NO_PROXY` (comma- or space-separated: `*`, host names, `.domain` or `domain` for a
 * domain and its subdomains, IP addresses (`[::1]` for IPv6 with a port), each with an optional
 * `:port`) says to connect to `url` directly: for `layerWith`'s `agent` as a function of the URL,
 * as curl and most tools read the variable. The host is compared as the URL gives it (lower case,
 * IPv6 without brackets); a URL without a port has its scheme's (443 for wss://, else 80).
 *
 * @example
 * import { NodeTransport } from "effect-lifeline"
 * import { HttpsProxyAgent } from "https-proxy-agent"
 *
 * const proxy = process.env.HTTPS_PROXY
 * const agent = proxy === undefined ? undefined : new HttpsProxyAgent(proxy)
 * const transport = NodeTransport.layerWith({
 *   agent: (url) => NodeTransport.bypassesProxy(process.env.NO_PROXY, url) ? undefined : agent
 * })
 *
 * @since 0.2.0
 * @category proxies
 */
export const bypassesProxy = (noProxy: string | undefined, url: URL): boolean => {
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase()
  const port = defaultPort(url)
  return (noProxy ?? "").split(/[\s,]+/).map((entry) => entry.trim().toLowerCase()).some((entry) => {
    if (entry === "*") return true
    // `[::1]:8080` and `::1` are IPv6 addresses; a single colon before digits is a port.
    const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(entry)
    const [name = "", entryPort] = bracketed !== null
      ? [bracketed[1], bracketed[2]]
      : entry.split(":").length > 2
      ? [entry, undefined]
      : entry.split(/:(?=\d+$)/)
    const domain = name.replace(/^\*?\./, "")
    return domain !== "" && (entryPort === undefined || entryPort === port) &&
      (host === domain || host.endsWith(`.${domain}`))
  })
}
