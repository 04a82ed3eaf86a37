/**
 * `effect-lifeline/compat`: partysocket's `ReconnectingWebSocket` API (the one of
 * `partysocket/ws` and reconnecting-websocket) on a lifeline Client, for code outside Effect.
 * Same constructor, options, methods, properties and events; underneath, a Client in its own
 * runtime and Scope, so the process cannot crash on a handshake aborted while connecting, no
 * message is dropped without an `error` event that carries it, a failed connect reports close code
 * 1006 with lifeline's typed error, and a 401/403 is not retried for ever.
 *
 * This module imports nothing from Node, so a browser bundle can take it. On Node the package's
 * `"node"` export condition loads `compatNode.js`, which adds the Node transport (`ws`) for
 * `WebSocket: WS`. See docs/compat.md for the option mapping and every difference from partysocket.
 *
 * @module effect-lifeline/compat
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as ClientModule from "./Client.js"
import { make as makeClient } from "./Client.js"
import type { Connection } from "./Connection.js"
import type { Disconnected } from "./Errors.js"
import { SendError } from "./Errors.js"
import { LiveClient } from "./internal/client/liveClient.js"
import { reconnectSchedule } from "./internal/compat/schedule.js"
import { transportFor } from "./internal/compat/transports.js"
import { DEFAULT_OUTBOX_BYTES, DEFAULT_OUTBOX_CAPACITY } from "./internal/options.js"
import { isStaticUrl } from "./internal/parseEndpoint.js"
import type { ClientError } from "./Reconnect.js"
import { isRetryable } from "./Reconnect.js"
import type { Message as LifelineMessage, Transport as TransportService } from "./Transport.js"
import { Transport } from "./Transport.js"

// --- events -------------------------------------------------------------------------------

/**
 * The `error` event: `error` is lifeline's typed error (`ConnectError`, `TimeoutError`,
 * `Disconnected`, `SendError` with the payload...), `message` its message.
 *
 * @since 0.1.0
 * @category events
 */
export class ErrorEvent extends Event {
  readonly message: string
  readonly error: Error

  constructor(error: Error, _target?: unknown) {
    super("error")
    this.message = error.message
    this.error = error
  }
}

/**
 * The `close` event: the real close code (1006 when no close frame came, as browsers report it).
 *
 * @since 0.1.0
 * @category events
 */
export class CloseEvent extends Event {
  readonly code: number
  readonly reason: string
  readonly wasClean: boolean

  constructor(code = 1000, reason = "", wasClean: unknown = true) {
    super("close")
    this.code = code
    this.reason = reason
    this.wasClean = wasClean !== false
  }
}

/**
 * @since 0.1.0
 * @category events
 */
export interface WebSocketEventMap {
  close: CloseEvent
  error: ErrorEvent
  message: MessageEvent
  open: Event
}

// --- options ------------------------------------------------------------------------------

/**
 * What `send` takes, as partysocket's.
 *
 * @since 0.1.0
 * @category models
 */
export type Message = string | ArrayBuffer | Blob | ArrayBufferView

/**
 * A URL, or a function (sync or async) called before every attempt.
 *
 * @since 0.1.0
 * @category models
 */
export type UrlProvider = string | URL | (() => string | URL) | (() => Promise<string | URL>)

/**
 * Subprotocols, or a function (sync or async) called before every attempt.
 *
 * @since 0.1.0
 * @category models
 */
export type ProtocolsProvider =
  | null
  | string
  | Array<string>
  | (() => string | Array<string> | null)
  | (() => Promise<string | Array<string> | null>)

/**
 * partysocket's options, with their names and defaults (see docs/compat.md for the mapping onto
 * the Client), and one of lifeline's: `reconnectionDelayJitter`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The WebSocket class: the `ws` class on Node (`WebSocket: WS`: lifeline's Node transport), any
   * standard constructor (lifeline's browser transport over it). Default: the global `WebSocket`
   * (on Node without one, `ws`).
   */
  readonly WebSocket?: unknown | undefined
  /** Largest delay between attempts, ms. Default 10000. */
  readonly maxReconnectionDelay?: number | undefined
  /** First delay after a failure, ms; each next one is `reconnectionDelayGrowFactor` times longer. Default 3000. */
  readonly minReconnectionDelay?: number | undefined
  /** Default 1.3. */
  readonly reconnectionDelayGrowFactor?: number | undefined
  /**
   * lifeline: each delay is uniform in [d, d x (1 + jitter)] (at most `maxReconnectionDelay`), so
   * clients that lost the same server do not all come back in the same instant. Default 0.5; 0
   * gives partysocket's exact delays.
   */
  readonly reconnectionDelayJitter?: number | undefined
  /** A connection up this long resets the retry count and the delays, ms. Default 5000. */
  readonly minUptime?: number | undefined
  /** The handshake's time limit, ms. Default 4000. */
  readonly connectionTimeout?: number | undefined
  /** Retries after the first attempt, per series (reset by `minUptime`). Default Infinity. */
  readonly maxRetries?: number | undefined
  /**
   * Messages kept while no connection is open (as in partysocket). Default: lifeline's bound,
   * 1024 messages and 16 MiB (partysocket: Infinity). Past it, `send` returns false and an
   * `error` event carries a `SendError OutboxFull` with the message. While open, what the socket
   * has not written yet is bounded by lifeline only (65,536 messages, 16 MiB), so a burst of
   * sends fits as it does with partysocket.
   */
  readonly maxEnqueuedMessages?: number | undefined
  /** Start CLOSED; `reconnect()` connects. Default false. */
  readonly startClosed?: boolean | undefined
  /** Whether to reconnect after a close event (overrides lifeline's policy for closes). */
  readonly shouldReconnectOnClose?: ((event: CloseEvent) => boolean) | undefined
  /** lifeline's log lines, to `debugLogger`. Default false. */
  readonly debug?: boolean | undefined
  /** Default `console.log`. */
  readonly debugLogger?: ((...args: Array<unknown>) => void) | undefined
}

const DEFAULTS = {
  maxReconnectionDelay: 10_000,
  minReconnectionDelay: 3_000,
  reconnectionDelayGrowFactor: 1.3,
  reconnectionDelayJitter: 0.5,
  minUptime: 5_000,
  connectionTimeout: 4_000,
  maxRetries: Number.POSITIVE_INFINITY
} as const

/** lifeline's own bounds, its outbox defaults: what `maxEnqueuedMessages` of Infinity (partysocket's default) becomes. */
const DEFAULT_CAPACITY = DEFAULT_OUTBOX_CAPACITY
const DEFAULT_MAX_BYTES = DEFAULT_OUTBOX_BYTES
/**
 * While open, messages the socket has not written yet (partysocket hands them to the socket,
 * unbounded): a synchronous burst of sends must fit, as it does with partysocket.
 * `maxEnqueuedMessages` bounds what is kept while not open only, as in partysocket.
 */
const OPEN_CAPACITY = 65_536

const CONNECTING = 0
const OPEN = 1
const CLOSING = 2
const CLOSED = 3

// --- helpers ------------------------------------------------------------------------------

/** A URL or protocols provider threw or rejected: retried (as partysocket does), with an error event. */
class ProviderFailed extends Error {
  constructor(readonly which: "url" | "protocols", readonly original: unknown) {
    super(`the ${which} provider failed: ${original instanceof Error ? original.message : String(original)}`)
    this.name = "ProviderFailed"
  }
}

const finiteOr = (value: number | undefined, fallback: number): number =>
  typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : fallback

const isBlob = (value: unknown): value is Blob => typeof Blob !== "undefined" && value instanceof Blob

/** What lifeline sends: text as is, bytes copied (the caller may reuse its buffer). */
const toLifeline = (data: Exclude<Message, Blob>): LifelineMessage => {
  if (typeof data === "string") return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0))
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
  }
  return String(data)
}

const sizeOf = (message: LifelineMessage): number => typeof message === "string" ? message.length : message.byteLength
/** What a send behind a Blob counts in `bufferedAmount`, read once: 0 for what is not bytes or text. */
const slowSize = (data: unknown): number => {
  const size = isBlob(data) ? data.size : typeof data === "string" ? data.length : isBytes(data) ? data.byteLength : 0
  return Number.isFinite(size) ? size : 0
}
const isBytes = (data: unknown): data is ArrayBuffer | ArrayBufferView =>
  data instanceof ArrayBuffer || ArrayBuffer.isView(data)

/** Node's `Buffer` (a view over the same bytes) where there is one; elsewhere the bytes as they are. */
const asNodeBuffer = (bytes: Uint8Array): Uint8Array => {
  const NodeBuffer = Reflect.get(globalThis, "Buffer") as
    | { from?: (buffer: ArrayBufferLike, offset: number, length: number) => Uint8Array }
    | undefined
  return typeof NodeBuffer?.from === "function"
    ? NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    : bytes
}

const toProtocols = (value: string | Array<string> | null | undefined): ReadonlyArray<string> =>
  value === null || value === undefined ? [] : typeof value === "string" ? [value] : value

/** A listener threw: report it as the platform reports listener errors, never as an uncaught exception. */
const reportListenerError = (error: unknown): void => {
  const report: unknown = Reflect.get(globalThis, "reportError")
  try {
    if (typeof report === "function") report(error)
    // eslint-disable-next-line no-console -- where a browser's reportError is missing (Node): as a WebSocket's listener error would show
    else console.error("effect-lifeline/compat: an event listener threw", error)
  } catch {
    // Reporting must never throw into lifeline.
  }
}

/** The close code and reason a failed connect is reported with: 1006, and why when it is final. */
const summary = (error: ClientError): string => {
  if (error._tag === "ConnectError") {
    return `${error.reason}${error.status === undefined ? "" : ` (HTTP ${error.status})`}`
  }
  if (error._tag === "TimeoutError") return `TimeoutError (${error.operation})`
  return error._tag
}

// --- one Client's life --------------------------------------------------------------------

/** One open connection as the facade sees it: its events go out in order (open, messages, close). */
class Session {
  closeDispatched = false
  /** The connection ended and every message it received was dispatched: how it closed. */
  drained: Disconnected | undefined = undefined
  /**
   * The Client left Open for this session: with which error (none: closed on purpose), and the
   * state it went to (see `ReconnectingWebSocket._dispatchingEnd`).
   */
  ended: { readonly error: ClientError | undefined; readonly state: ClientModule.ClientState } | undefined = undefined
  readonly done = Deferred.unsafeMake<void>(FiberId.none)

  /** `attempt`: the Client's attempt whose `onOpen` made this session. */
  constructor(readonly connection: Connection, readonly attempt: number) {}
}

/** One Client, from `start` (or `reconnect`) to `close` (or the next `reconnect`). */
class Life {
  closing = false
  /** Sends behind a Blob made while this life was current, not yet handed to it. */
  slowLeft = 0
  /**
   * Set by `close()` or `reconnect()` while open with sends of it behind a Blob: they still go to
   * this connection, before its close (as ws writes a Blob and what follows, then the close).
   */
  flushing = false
  /** Told once `slowLeft` is 0 (the close waits for it). */
  slowFlushed: (() => void) | undefined = undefined
  /** Sessions whose close is not dispatched yet, oldest first. */
  readonly sessions: Array<Session> = []
  openSession: Session | undefined = undefined
  lastRetry = 0
  /** How the first `close()` or `reconnect()` that left it decided it ends (see `_leaveLife`). */
  leaving: { readonly code: number; readonly reason: string; readonly opening: boolean } | undefined = undefined

  constructor(readonly client: ClientModule.Client, readonly scope: Scope.CloseableScope) {}

  /** Its connection is open and it is not being left: a send goes to it. */
  get takesSends(): boolean {
    return !this.closing && this.openSession !== undefined
  }
}

/**
 * An `on*` property's value: a function of the event, or null (as on a WebSocket).
 *
 * @since 0.1.0
 * @category models
 */
export type Handler<E> = ((event: E) => void) | null

// The three types below are the DOM's, named here: this module's declarations must type-check in a
// Node app whose `lib` has no "DOM" (@types/node declares Event, EventTarget and
// EventListenerOptions, not these), with `skipLibCheck: false` (round 24).

/**
 * A listener for `addEventListener`: a function of the event, or an object with `handleEvent` (the
 * DOM's `EventListenerOrEventListenerObject`).
 *
 * @since 0.1.0
 * @category models
 */
export type Listener = ((event: Event) => void) | { handleEvent(event: Event): void }

/**
 * The options of `addEventListener` (the DOM's `AddEventListenerOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenerOptions extends EventListenerOptions {
  once?: boolean
  passive?: boolean
  signal?: AbortSignal
}

/**
 * What `binaryType` takes, as on a WebSocket (the DOM's `BinaryType`).
 *
 * @since 0.1.0
 * @category models
 */
export type BinaryType = "arraybuffer" | "blob"

// The base: the platform's EventTarget, typed with the WebSocket event map.
interface TypedEventTarget {
  addEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (event: WebSocketEventMap[K]) => void,
    options?: boolean | ListenerOptions
  ): void
  addEventListener(
    type: string,
    listener: Listener | null,
    options?: boolean | ListenerOptions
  ): void
  removeEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (event: WebSocketEventMap[K]) => void,
    options?: boolean | EventListenerOptions
  ): void
  removeEventListener(
    type: string,
    listener: Listener | null,
    options?: boolean | EventListenerOptions
  ): void
  dispatchEvent(event: Event): boolean
}

const TypedEventTarget = EventTarget as unknown as { new(): TypedEventTarget; prototype: TypedEventTarget }

/**
 * partysocket's `ReconnectingWebSocket` on a lifeline Client. Also exported as `WebSocket` and as
 * the default export, as `partysocket/ws` does.
 *
 * @since 0.1.0
 * @category constructors
 */
export class ReconnectingWebSocket extends TypedEventTarget {
  static readonly CONNECTING = CONNECTING
  static readonly OPEN = OPEN
  static readonly CLOSING = CLOSING
  static readonly CLOSED = CLOSED
  readonly CONNECTING = CONNECTING
  readonly OPEN = OPEN
  readonly CLOSING = CLOSING
  readonly CLOSED = CLOSED

  /** Called with each event before the listeners added with `addEventListener`. */
  onopen: Handler<Event> = null
  onmessage: Handler<MessageEvent> = null
  onclose: Handler<CloseEvent> = null
  onerror: Handler<ErrorEvent> = null

  private readonly _options: Options
  private _runtime: ManagedRuntime.ManagedRuntime<TransportService, never> | undefined = undefined
  private _life: Life | undefined = undefined
  /**
   * While the error and close events of a link that ended by itself (or of a failed attempt) are
   * dispatched: its Life and the state the Client went to then. `readyState` is CLOSED and
   * `retryCount` that state's meanwhile, not the Client's state now: the facade hears of
   * transitions a little late (and a link's close waits for its messages), so under load the
   * Client may already be a retry further on.
   */
  private _dispatchingEnd: { readonly life: Life; readonly state: ClientModule.ClientState } | undefined = undefined
  /** A life being closed: the next one starts once it has given back what it did not write. */
  private _ending: Promise<void> = Promise.resolve()
  private _generation = 0
  private _closeCalled: boolean
  /**
   * While `reconnect()` dispatches its own close event: CONNECTING (the next attempt begins at
   * once). The life is still current there, so that the event's `retryCount` is its own.
   */
  private _reconnecting = false
  /** A `reconnect()` left a connection, and the next Client has not started yet. */
  private _startPending = false
  /** `shouldReconnectOnClose` returned false (until `reconnect`). */
  private _declined = false
  private _binaryType: string = "blob"
  private _url = ""
  private _protocol = ""
  private _extensions = ""
  /** Messages kept while no connection is open, oldest first. */
  private _pending: Array<LifelineMessage> = []
  private _pendingBytes = 0
  /** Sends behind a Blob being read, in order, each with the life current when it was sent. */
  private _slow: Array<{ readonly data: Message; readonly life: Life | undefined; readonly size: number }> = []
  private _slowBytes = 0
  /** The subprotocols resolved for the attempt under way (a protocols function). */
  private _nextProtocols: ReadonlyArray<string> | undefined = undefined
  private readonly _guards = new WeakMap<object, EventListener>()

  constructor(
    protected readonly _urlProvider: UrlProvider,
    protected readonly _protocolsProvider?: ProtocolsProvider,
    options: Options = {}
  ) {
    super()
    this._options = options
    this._closeCalled = options.startClosed === true
    for (const type of ["open", "message", "close", "error"] as const) {
      super.addEventListener(type, (event: Event) => this._callHandler(type, event))
    }
    if (isStaticUrl(_urlProvider)) this._url = String(_urlProvider)
    if (!this._closeCalled) this._startLife()
  }

  // --- properties -------------------------------------------------------------------------

  /** "blob" (default) or "arraybuffer"; on Node also "nodebuffer" and "fragments", as ws takes them. */
  get binaryType(): BinaryType {
    return this._binaryType as BinaryType
  }

  set binaryType(value: BinaryType) {
    this._binaryType = value
  }

  /** Attempts since the last stable connection: 0 on the first attempt, n on the n-th retry. */
  get retryCount(): number {
    const life = this._life
    if (life === undefined) return 0
    const ending = this._dispatchingEnd
    const state = ending?.life === life ? ending.state : this._runtimeOrThrow.runSync(life.client.state.get)
    switch (state._tag) {
      case "Connecting":
        return state.attempt - 1
      case "Open": {
        const minUptime = finiteOr(this._options.minUptime, DEFAULTS.minUptime)
        return Date.now() - state.since >= minUptime ? 0 : state.attempt - 1
      }
      case "Backoff":
        return state.attempt
      default:
        return life.lastRetry
    }
  }

  /**
   * Bytes not written yet: kept here while not open, queued in the Client's outbox, and handed to
   * the open socket. The Client's outbox holds what was sent after its link dropped and before
   * this facade heard of it (a send in that turn still goes to the Client, which keeps it for the
   * next connection): it was left out, and `bufferedAmount` said 0 with a message waiting.
   */
  get bufferedAmount(): number {
    const life = this._life
    const session = life?.openSession
    const socket = session === undefined ? 0 : this._runtimeOrThrow.runSync(session.connection.bufferedAmount)
    const queued = life !== undefined && life.client instanceof LiveClient ? life.client.outbound.bytesQueued : 0
    return this._pendingBytes + this._slowBytes + queued + socket
  }

  /** The extensions the server accepted on the latest connection (`Connection.extensions`), or "". */
  get extensions(): string {
    return this._extensions
  }

  /** The subprotocol the server selected on the latest connection. */
  get protocol(): string {
    return this._protocol
  }

  get readyState(): number {
    if (this._closeCalled) return CLOSED
    if (this._reconnecting) return CONNECTING
    const life = this._life
    // Between two Clients (`reconnect`): the next one is about to connect.
    if (life === undefined) return CONNECTING
    if (life.openSession !== undefined && !life.openSession.closeDispatched) return OPEN
    // While its error and close events are dispatched, a socket is CLOSED, even if the Client has
    // already begun the next attempt (see `_dispatchingEnd`).
    if (this._dispatchingEnd?.life === life) return CLOSED
    const state = this._runtimeOrThrow.runSync(life.client.state.get)
    return state._tag === "Idle" || state._tag === "Connecting" ? CONNECTING : CLOSED
  }

  /** The URL of the latest attempt, as given or as the provider returned it ("" before the first). */
  get url(): string {
    return this._url
  }

  /**
   * False once `close` was called (or with `startClosed`), or `shouldReconnectOnClose` said no,
   * until `reconnect`, as partysocket's.
   */
  get shouldReconnect(): boolean {
    return !this._closeCalled && !this._declined
  }

  // --- methods ----------------------------------------------------------------------------

  /**
   * Sends when open; otherwise keeps the message for the next connection (flushed before the
   * `open` event). Returns true when it went to an open connection. A message that cannot be
   * taken (past `maxEnqueuedMessages`) returns false and dispatches an `error` event whose `error`
   * is a `SendError` carrying it; so does one accepted and later not written.
   */
  send(data: Message): boolean {
    if (this._slow.length > 0 || isBlob(data)) {
      // In order behind the Blob, for this connection: a `close()` meanwhile waits for it.
      const life = this._life
      const size = slowSize(data)
      this._slow.push({ data, life, size })
      this._slowBytes += size
      if (life !== undefined) life.slowLeft++
      if (this._slow.length === 1) this._readSlow()
      return life?.takesSends === true
    }
    return this._sendCopy(data)
  }

  /**
   * `send` of what is not a Blob: copied, then sent or kept. Bytes that cannot be copied (a
   * detached ArrayBuffer, transferred away) are refused as any message that cannot be taken: false,
   * and an `error` event with `SendError EncodeFailed` carrying it, never a throw.
   */
  private _sendCopy(data: Exclude<Message, Blob>, bound?: Life): boolean {
    let message: LifelineMessage
    try {
      message = toLifeline(data)
    } catch (error) {
      // A Proxy's or toString's own exception (untyped code) goes back to the caller, as a browser's does.
      if (!isBytes(data)) throw error
      this._dispatchError(new SendError({ reason: "EncodeFailed", payload: data, cause: error }))
      return false
    }
    return this._sendMessage(message, bound)
  }

  /**
   * Closes the connection or the attempt and stops reconnecting. The `close` event is dispatched
   * at once (as partysocket does) when a connection was open or connecting. Messages not written
   * are kept: `reconnect()` sends them, `drainQueuedMessages()` hands them back.
   */
  close(code = 1000, reason = ""): void {
    if (this._closeCalled) return
    // Read before `_closeCalled` makes the socket CLOSED.
    const wasActive = this._isActive()
    this._closeCalled = true
    this._generation++
    this._leaveLife(wasActive, code, reason)
    this._startPending = false
  }

  /** Closes the connection (if any) with `code` and `reason` and connects again at once, retry count reset. */
  reconnect(code = 1000, reason = ""): void {
    this._closeCalled = false
    this._declined = false
    const wasActive = this._isActive()
    // A connection (or one about to start) is left: the next Client's start is pending.
    const leaves = this._life !== undefined || this._startPending
    this._reconnecting = true
    try {
      this._leaveLife(wasActive, code, reason)
    } finally {
      this._reconnecting = false
    }
    this._startPending = leaves
    const generation = ++this._generation
    void this._ending.then(() => {
      if (generation === this._generation && !this._closeCalled && this._life === undefined) this._startLife()
    })
  }

  /** Removes and returns the messages kept and not sent (queued while not open, or given back by `close`). */
  drainQueuedMessages(): Array<Message> {
    const queue = this._pending
    this._pending = []
    this._pendingBytes = 0
    return queue
  }

  override addEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (event: WebSocketEventMap[K]) => void,
    options?: boolean | ListenerOptions
  ): void
  override addEventListener(
    type: string,
    listener: Listener | null,
    options?: boolean | ListenerOptions
  ): void
  override addEventListener(
    type: string,
    listener: Listener | null,
    options?: boolean | ListenerOptions
  ): void {
    if (listener === null || listener === undefined) return
    // Not a function or an object (untyped code): the platform's own TypeError, as a browser throws
    // it (Node: ERR_INVALID_ARG_TYPE), not a guard's WeakMap refusing the key.
    if (typeof listener !== "function" && typeof listener !== "object") {
      return super.addEventListener(type, listener, options)
    }
    super.addEventListener(type, this._guard(listener), options)
  }

  override removeEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: (event: WebSocketEventMap[K]) => void,
    options?: boolean | EventListenerOptions
  ): void
  override removeEventListener(
    type: string,
    listener: Listener | null,
    options?: boolean | EventListenerOptions
  ): void
  override removeEventListener(
    type: string,
    listener: Listener | null,
    options?: boolean | EventListenerOptions
  ): void {
    if (listener === null || listener === undefined) return
    super.removeEventListener(type, this._guards.get(listener) ?? (listener as EventListener), options)
  }

  // --- events -----------------------------------------------------------------------------

  /** A listener that throws is reported (as browsers do), never thrown into lifeline or the process. */
  private _guard(listener: Listener): EventListener {
    const known = this._guards.get(listener)
    if (known !== undefined) return known
    const guarded = function(this: unknown, event: Event): void {
      try {
        if (typeof listener === "function") listener.call(this, event)
        else listener.handleEvent(event)
      } catch (error) {
        reportListenerError(error)
      }
    }
    this._guards.set(listener, guarded)
    return guarded
  }

  private _callHandler(type: "open" | "message" | "close" | "error", event: Event): void {
    const handler = this[`on${type}`] as Handler<Event>
    if (typeof handler !== "function") return
    try {
      handler.call(this, event)
    } catch (error) {
      reportListenerError(error)
    }
  }

  private _emit(event: Event): void {
    try {
      this.dispatchEvent(event)
    } catch (error) {
      reportListenerError(error)
    }
  }

  private _dispatchError(error: Error): void {
    this._emit(new ErrorEvent(error))
  }

  /** The close event of `life`'s open session (if any): nothing more of it is dispatched after. */
  private _dispatchClose(life: Life, code: number, reason: string, wasClean: boolean): void {
    const session = life.openSession
    if (session !== undefined) {
      session.closeDispatched = true
      life.openSession = undefined
    }
    this._emit(new CloseEvent(code, reason, wasClean))
  }

  /**
   * Runs `dispatch` (the error and close events of a link or an attempt of `life` that ended by
   * itself) with `state`, the state the Client went to then, as `_dispatchingEnd`. A `close()` or
   * `reconnect()` dispatches outside it: `reconnect()`'s close sees CONNECTING (its next attempt
   * begins at once).
   */
  private _dispatchEnd(life: Life, state: ClientModule.ClientState, dispatch: () => void): void {
    const outer = this._dispatchingEnd
    this._dispatchingEnd = { life, state }
    try {
      dispatch()
    } finally {
      this._dispatchingEnd = outer
    }
  }

  private _toEventData(message: LifelineMessage): unknown {
    if (typeof message === "string") return message
    switch (this._binaryType) {
      case "arraybuffer":
        // A frame that owns its buffer (both transports give one) is handed as it is, not copied.
        return message.byteOffset === 0 && message.byteLength === message.buffer.byteLength
          ? message.buffer
          : message.buffer.slice(message.byteOffset, message.byteOffset + message.byteLength)
      case "blob":
        return typeof Blob === "undefined"
          ? message.buffer.slice(message.byteOffset, message.byteOffset + message.byteLength)
          : new Blob([message as Uint8Array<ArrayBuffer>])
      case "fragments":
        return [asNodeBuffer(message)]
      default:
        // "nodebuffer" (ws's default): a Buffer where there is one, as ws gives, so that
        // `data.toString()` is the text and not a list of numbers.
        return asNodeBuffer(message)
    }
  }

  // --- sending ----------------------------------------------------------------------------

  private get _capacity(): number {
    const max = this._options.maxEnqueuedMessages
    return typeof max === "number" && Number.isFinite(max) && max >= 1 ? Math.floor(max) : DEFAULT_CAPACITY
  }

  /** `bound`: the life a send behind a Blob was made in; it still takes it while it is flushing. */
  private _sendMessage(message: LifelineMessage, bound?: Life): boolean {
    const life = bound?.flushing === true ? bound : this._life
    if (life !== undefined && (life.flushing || life.takesSends)) {
      const client = life.client
      const waiting = client instanceof LiveClient ? client.outbound.size : 0
      const exit = this._runtimeOrThrow.runSyncExit(client.enqueue(message))
      if (Exit.isSuccess(exit)) {
        // Handed to the socket; or queued in the Client's outbox (overflow "fail": nothing is
        // dropped for it), for this connection while its socket is open (the Client's `onOpen` is
        // running: written right after), else for the next one: in the turn the link dropped,
        // before this facade heard of it. That is "kept", as when not open.
        if (!(client instanceof LiveClient) || client.outbound.size === waiting) return true
        const session = life.openSession
        return session !== undefined && this._runtimeOrThrow.runSync(session.connection.readyState) === OPEN
      }
      this._dispatchError(Cause.squash(exit.cause) as Error)
      return false
    }
    const bytes = sizeOf(message)
    const refused = this._options.maxEnqueuedMessages === 0 || this._pending.length >= this._capacity ||
      (this._pending.length > 0 && this._pendingBytes + bytes > DEFAULT_MAX_BYTES)
    if (refused) {
      this._dispatchError(new SendError({ reason: "OutboxFull", payload: message }))
      return false
    }
    this._pending.push(message)
    this._pendingBytes += bytes
    return false
  }

  /** Sends what waits behind a Blob, in order, each Blob once read, to the life it was sent in. */
  private _readSlow(): void {
    for (let next = this._slow[0]; next !== undefined; next = this._slow[0]) {
      const { data, life } = next
      if (!isBlob(data)) {
        this._shiftSlow()
        try {
          this._sendCopy(data, life)
        } catch (error) {
          // Behind a Blob there is no caller to throw to (a value whose conversion to text threw).
          this._dispatchError(new SendError({ reason: "EncodeFailed", payload: data, cause: error }))
        }
        this._slowSent(life)
        continue
      }
      data.arrayBuffer().then(
        (buffer) => {
          this._shiftSlow()
          this._sendMessage(new Uint8Array(buffer), life)
          this._slowSent(life)
          this._readSlow()
        },
        (error: unknown) => {
          this._shiftSlow()
          this._dispatchError(new SendError({ reason: "WriteFailed", payload: data, cause: error }))
          this._slowSent(life)
          this._readSlow()
        }
      )
      return
    }
  }

  private _shiftSlow(): void {
    const first = this._slow.shift()
    if (first !== undefined) this._slowBytes -= first.size
  }

  /** One send behind a Blob was handed on: a close waiting for the rest of its life's goes on once there are none. */
  private _slowSent(life: Life | undefined): void {
    if (life === undefined || --life.slowLeft > 0) return
    const flushed = life.slowFlushed
    life.slowFlushed = undefined
    flushed?.()
  }

  // --- the Client -------------------------------------------------------------------------

  private get _runtimeOrThrow(): ManagedRuntime.ManagedRuntime<TransportService, never> {
    return this._runtime ??= this._makeRuntime()
  }

  private _makeRuntime(): ManagedRuntime.ManagedRuntime<TransportService, never> {
    const base = transportFor(this._options.WebSocket)
    // A protocols function: each attempt offers what it resolved to.
    const transport: TransportService = typeof this._protocolsProvider === "function"
      ? {
        // The base's network too: offline, no attempt (browsers).
        ...base,
        open: (request, listener) =>
          base.open(
            this._nextProtocols === undefined ? request : { ...request, protocols: this._nextProtocols },
            listener
          )
      }
      : base
    // eslint-disable-next-line no-console -- partysocket's `debug: true` logs to the console by default
    const debugLogger = this._options.debugLogger ?? ((...args: Array<unknown>) => console.log(...args))
    const logs = this._options.debug === true
      ? Layer.merge(
        Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ logLevel, message }) =>
            debugLogger("RWS>", logLevel.label, ...(Array.isArray(message) ? message : [message]))
          )
        ),
        Logger.minimumLogLevel(LogLevel.Debug)
      )
      : Layer.merge(Logger.remove(Logger.defaultLogger), Logger.minimumLogLevel(LogLevel.None))
    return ManagedRuntime.make(Layer.merge(Layer.succeed(Transport, transport), logs))
  }

  /** The URL (and subprotocols) of one attempt, from the providers. */
  private _resolveAttempt(): Effect.Effect<string> {
    const resolve = async (): Promise<string> => {
      const provider = this._urlProvider
      const protocolsProvider = this._protocolsProvider
      const [url, protocols] = await Promise.all([
        Promise.resolve().then(() => typeof provider === "function" ? provider() : provider).catch((error: unknown) => {
          throw new ProviderFailed("url", error)
        }),
        Promise.resolve().then(() => typeof protocolsProvider === "function" ? protocolsProvider() : undefined).catch(
          (error: unknown) => {
            throw new ProviderFailed("protocols", error)
          }
        )
      ])
      this._url = String(url)
      if (typeof protocolsProvider === "function") this._nextProtocols = toProtocols(protocols)
      return this._url
    }
    // A provider that never settles is bounded by the Client: its URL Effect has the open timeout
    // (`connectionTimeout`), then fails with TimeoutError open and is retried, as a handshake
    // that does not answer.
    return Effect.orDie(Effect.tryPromise({ try: resolve, catch: (error) => error }))
  }

  private _schedule(): Schedule.Schedule<unknown, ClientError> {
    const options = this._options
    const min = Math.max(1, finiteOr(options.minReconnectionDelay, DEFAULTS.minReconnectionDelay))
    const max = Math.max(min, finiteOr(options.maxReconnectionDelay, DEFAULTS.maxReconnectionDelay))
    const factor = Math.max(1, finiteOr(options.reconnectionDelayGrowFactor, DEFAULTS.reconnectionDelayGrowFactor))
    const jitter = Math.min(1, finiteOr(options.reconnectionDelayJitter, DEFAULTS.reconnectionDelayJitter))
    const retries = options.maxRetries ?? DEFAULTS.maxRetries
    const maxRetries = typeof retries === "number" && Number.isFinite(retries) && retries >= 0
      ? retries
      : Number.POSITIVE_INFINITY
    return reconnectSchedule({ min, max, factor, jitter, maxRetries })
  }

  private _shouldRetry(error: ClientError): boolean {
    // A provider that threw is retried, as partysocket retries it; so is a URL function's answer
    // that cannot work (it is asked again at each attempt: a token not there yet). A URL given as
    // a string that cannot work stays final.
    if (
      error._tag === "ConnectError" && error.reason === "InvalidUrl" &&
      (error.cause instanceof ProviderFailed || typeof this._urlProvider === "function")
    ) {
      return true
    }
    const decide = this._options.shouldReconnectOnClose
    if (error._tag === "Disconnected" && decide !== undefined) {
      const retry = decide(new CloseEvent(error.code, error.reason, error.wasClean))
      if (!retry) this._declined = true
      return retry
    }
    return isRetryable(error)
  }

  private _clientOptions(life: () => Life | undefined): ClientModule.Options {
    const options = this._options
    const provider = this._urlProvider
    const staticUrl = isStaticUrl(provider)
    const protocols = this._protocolsProvider
    // Room for what was kept while not open (flushed at open) and for a burst while open.
    const capacity = Math.max(this._capacity, OPEN_CAPACITY)
    return {
      url: staticUrl && typeof protocols !== "function" ? provider : this._resolveAttempt(),
      connection: {
        openTimeout: Duration.millis(Math.max(1, finiteOr(options.connectionTimeout, DEFAULTS.connectionTimeout))),
        ...(typeof protocols === "string" || Array.isArray(protocols) ? { protocols: toProtocols(protocols) } : {})
      },
      retry: this._schedule(),
      shouldRetry: (error) => this._shouldRetry(error),
      minUptime: Duration.millis(finiteOr(options.minUptime, DEFAULTS.minUptime)),
      outbox: { capacity, maxBytes: DEFAULT_MAX_BYTES, overflow: "fail" },
      // Every failed message is an event: room for all of them (the buffer is not allocated up front).
      eventsCapacity: capacity + 64,
      onOpen: (connection) => {
        const current = life()
        return current === undefined ? Effect.void : this._opened(current, connection)
      }
    }
  }

  private _startLife(): void {
    this._startPending = false
    const runtime = this._runtimeOrThrow
    // Assigned once, after the Client it is read by (through `() => life`) is made.
    // eslint-disable-next-line prefer-const
    let life: Life | undefined
    const scope = runtime.runSync(Scope.make())
    const client = runtime.runSync(Scope.extend(makeClient(this._clientOptions(() => life)), scope))
    life = new Life(client, scope)
    this._life = life
    const current = life
    // Events are dispatched from the next task on, as a WebSocket's are: a URL that cannot work
    // fails inside `make`, before the caller could add a listener. The 16 most recent events
    // that a new subscriber receives first cover what happened until then.
    const nextTask = Effect.async<void>((resume) => {
      const timer = setTimeout(() => resume(Effect.void), 0)
      return Effect.sync(() => clearTimeout(timer))
    })
    runtime.runSync(Effect.forkIn(
      Effect.zipRight(
        nextTask,
        Stream.runForEach(client.events, (event) => Effect.sync(() => this._onClientEvent(current, event)))
      ),
      scope
    ))
  }

  /**
   * The `open` event is dispatched from the Client's `onOpen`, before the Client is Open: a
   * `close()` or `reconnect()` from an `open` listener (or right after it, in a microtask) comes
   * while the Client still takes the connection for an attempt.
   */
  private _isOpening(life: Life): boolean {
    const session = life.openSession
    if (session === undefined) return false
    const state = this._runtimeOrThrow.runSync(life.client.state.get)
    // Not a later attempt (the session's link dropped and the Client is connecting again).
    return state._tag === "Connecting" && state.attempt === session.attempt
  }

  /** OPEN or CONNECTING: a `close()` or `reconnect()` now dispatches a `close` event. */
  private _isActive(): boolean {
    const state = this.readyState
    return state === OPEN || state === CONNECTING
  }

  /**
   * `close()` and `reconnect()`: ends the current life (if any) with `code` and `reason`, its
   * `close` event dispatched at once when `wasActive` (while the life is still current: its
   * `retryCount` shows there).
   */
  private _leaveLife(wasActive: boolean, code: number, reason: string): void {
    const life = this._life
    if (life === undefined) {
      // Between two Clients (a `reconnect()` of a connection, whose next Client has not started):
      // CONNECTING to the caller, so its `close()` or `reconnect()` dispatches a close event, as
      // partysocket's does (round 33: none was, and whether a `close()` came here depended on how
      // long the last Client took to close). Not after `startClosed` or `close()`: nothing to close.
      if (wasActive && this._startPending) this._emit(new CloseEvent(code, reason, true))
      return
    }
    // The first leave of a life decides how it ends. A `close()` or `reconnect()` from the listener
    // of the close event dispatched here leaves it again, inside the dispatch and before this call
    // ends it: it ends it as decided here, and dispatches no second close event. Before, it decided
    // alone: a `close()` while the connection was opening, whose listener called `reconnect()`,
    // closed the Client at once (the sends made before it lost, the peer's close not the one asked
    // for) instead of waiting for Open (round 33).
    const first = life.leaving === undefined
    const leaving = life.leaving ??= { code, reason, opening: this._isOpening(life) }
    if (first) {
      if (life.slowLeft > 0 && life.openSession !== undefined) life.flushing = true
      if (wasActive) this._dispatchClose(life, code, reason, true)
    }
    this._endLife(life, leaving.code, leaving.reason, leaving.opening)
  }

  /**
   * Closes a life's Client with `code` and `reason`; what it did not write is kept, ahead of newer
   * sends. `opening`: the connection is open but the Client not yet Open (see `_isOpening`): the
   * close waits for Open, so that what was sent goes out and the peer gets `code` and `reason`
   * (closed at once, the Client would abort the attempt: 1001, nothing written).
   */
  private _endLife(life: Life, code: number, reason: string, opening = false): void {
    // Ended already: a `close()` or `reconnect()` from the listener of the close event this end
    // dispatched. The first end stands (its code goes out; the next life waits for it).
    if (life.closing) return
    life.closing = true
    if (this._life === life) this._life = undefined
    const runtime = this._runtimeOrThrow
    const previous = this._ending
    this._ending = new Promise<void>((resolve) => {
      runtime.runCallback(
        Effect.gen(function*() {
          // Sends of this connection behind a Blob go out before its close.
          if (life.flushing) {
            yield* Effect.async<void>((resume) => {
              if (life.slowLeft === 0) return resume(Effect.void)
              life.slowFlushed = () => resume(Effect.void)
            })
          }
          if (opening) {
            yield* life.client.state.changes.pipe(
              Stream.filter((state) => state._tag !== "Connecting" && state._tag !== "Idle"),
              Stream.take(1),
              Stream.runDrain
            )
          }
          const unsent = yield* life.client.close(code, reason)
          yield* Scope.close(life.scope, Exit.void)
          return unsent
        }),
        {
          onExit: (exit) => {
            if (Exit.isSuccess(exit) && exit.value.length > 0) {
              this._pending = [...exit.value, ...this._pending]
              for (const message of exit.value) this._pendingBytes += sizeOf(message)
            }
            void previous.then(() => resolve())
          }
        }
      )
    })
  }

  /**
   * The Client's `onOpen`: a connection is open. What was kept goes first (into the Client's
   * outbox, written right after this), then the `open` event, then the connection's messages.
   */
  private _opened(life: Life, connection: Connection): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      // The close of the previous connection goes out before this open.
      for (const earlier of [...life.sessions]) yield* Deferred.await(earlier.done)
      // One step from here: a link that ends meanwhile interrupts the hook (the Client then fails
      // the attempt with that close), and what was kept must be in the outbox or still kept, never
      // half of it in neither.
      // (The reader is forked interruptible again: `restore`.)
      yield* Effect.uninterruptibleMask((restore) => this._openedNow(life, connection, restore))
    })
  }

  /** `_opened` once the earlier closes are out: the session, what was kept, the `open` event, the reader. */
  private _openedNow(
    life: Life,
    connection: Connection,
    restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  ): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      if (life.closing || this._life !== life) return
      const state = yield* life.client.state.get
      const session = new Session(connection, state._tag === "Connecting" ? state.attempt : -1)
      life.sessions.push(session)
      life.openSession = session
      this._protocol = connection.protocol
      this._extensions = connection.extensions
      const kept = this._pending
      this._pending = []
      this._pendingBytes = 0
      for (const message of kept) {
        const sent = yield* Effect.exit(life.client.enqueue(message))
        if (Exit.isFailure(sent)) this._dispatchError(Cause.squash(sent.cause) as Error)
      }
      this._emit(new Event("open"))
      yield* Effect.forkIn(restore(this._read(life, session)), life.scope)
    })
  }

  /** Dispatches the connection's messages; once it ended and they are all out, its close. */
  private _read(life: Life, session: Session): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      yield* Stream.runForEach(session.connection.messages, (message) =>
        Effect.sync(() => {
          if (life.closing || session.closeDispatched) return
          this._emit(new MessageEvent("message", { data: this._toEventData(message) }))
        }))
      session.drained = yield* session.connection.closed
      this._sessionEnded(life, session)
    })
  }

  private _onClientEvent(life: Life, event: ClientModule.ClientEvent): void {
    if (event._tag === "MessageFailed") {
      // `Closed`: the Client stopped with it queued (a fatal error); close() returns the rest.
      if (!life.closing) this._dispatchError(event.error)
      return
    }
    // No codec here: no frame is ever decoded, so no DecodeFailed.
    if (event._tag !== "Transition") return
    const { from, to } = event
    if (to._tag === "Connecting") {
      life.lastRetry = to.attempt - 1
      return
    }
    if (to._tag === "Open" || to._tag === "Idle") return
    const error = to._tag === "Closed" ? Option.getOrUndefined(to.error) : to.error
    if (from._tag === "Open") {
      this._leftSession(life, error, to)
      return
    }
    if (from._tag !== "Connecting" && from._tag !== "Idle") return
    // Opened at the socket, ended before the Client was Open (while `onOpen` ran).
    if (this._leftSession(life, error, to)) return
    if (error === undefined || life.closing) return
    // A failed attempt: the error, then close 1006 (with why, when it is the last one).
    this._dispatchEnd(life, to, () => {
      this._dispatchError(error)
      this._emit(new CloseEvent(1006, to._tag === "Closed" ? `${summary(error)}; not retrying` : "", false))
    })
  }

  /** The Client left the session it had (if any) with `error`: false when it had none. */
  private _leftSession(life: Life, error: ClientError | undefined, state: ClientModule.ClientState): boolean {
    const session = life.sessions.find((candidate) => candidate.ended === undefined)
    if (session === undefined) return false
    session.ended = { error, state }
    this._sessionEnded(life, session)
    return true
  }

  /** Both halves known (the connection drained, the Client's verdict): its error and close events. */
  private _sessionEnded(life: Life, session: Session): void {
    const drained = session.drained
    const ended = session.ended
    if (drained === undefined || ended === undefined) return
    const index = life.sessions.indexOf(session)
    if (index !== -1) life.sessions.splice(index, 1)
    Deferred.unsafeDone(session.done, Exit.void)
    if (session.closeDispatched || life.closing) return
    // No longer OPEN while its error event is dispatched (a WebSocket is CLOSED by then): a send
    // from an error listener is kept for the next connection, not reported sent on this one.
    session.closeDispatched = true
    if (life.openSession === session) life.openSession = undefined
    const error = ended.error
    this._dispatchEnd(life, ended.state, () => {
      if (error !== undefined && error._tag !== "Disconnected") {
        // The heartbeat found the peer dead, or the like: the error, then the close as it happened.
        this._dispatchError(error)
        this._dispatchClose(life, drained.code, drained.reason, false)
        return
      }
      const closed = error ?? drained
      if (closed.code === 1006) this._dispatchError(closed)
      this._dispatchClose(life, closed.code, closed.reason, closed.wasClean)
    })
  }
}

export {
  /**
   * `ReconnectingWebSocket`, under the name partysocket's main entry exports it.
   *
   * @since 0.1.0
   * @category constructors
   */
  ReconnectingWebSocket as WebSocket
}

export default ReconnectingWebSocket
