/**
 * The machinery of one connection: the listener the transport calls, the open and close
 * signals, the inbound buffer, and the readyState-aware release of invariant 2.
 */
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import type * as Stream from "effect/Stream"
import type { Connection } from "../Connection.js"
import { ConnectError, Disconnected, SendError, TimeoutError } from "../Errors.js"
import type { Message, ReadyState, SocketListener, TransportSocket } from "../Transport.js"
import { Transport } from "../Transport.js"
import type { HandshakeFailure } from "./classifyHandshakeError.js"
import type { CheckedOptions, ConnectOptions } from "./options.js"
import { DEFAULT_CLOSE_TIMEOUT, resolveOptions } from "./options.js"
import type { Endpoint } from "./parseEndpoint.js"
import { isUrlEffect, parseEndpoint } from "./parseEndpoint.js"
import type { SharedInbound } from "./primitives/inboundBuffer.js"
import { FIRST_FREE_FLAG, InboundQueue, streamOfPulls } from "./primitives/inboundBuffer.js"
import type { Timers } from "./primitives/timers.js"
import { currentTimers, TimedWait } from "./primitives/timers.js"
import {
  ABNORMAL_CLOSURE,
  approximateBytes,
  CLOSED,
  CLOSING,
  CONNECTING,
  frameBytes,
  GOING_AWAY,
  isSendableCloseCode,
  MAX_CLOSE_REASON_BYTES,
  NORMAL_CLOSURE,
  OPEN,
  POLICY_VIOLATION
} from "./protocol.js"
import { redactCause, redactUrlsIn } from "./redactUrl.js"

/** Options after validation, with defaults applied. */
export interface ResolvedOptions {
  readonly openTimeout: Duration.Duration
  readonly closeTimeout: Duration.Duration
  readonly inboundCapacity: number
  readonly inboundBytes: number
  readonly writeHighWaterMark: number
  /** Larger outgoing messages fail with `SendError TooLarge` before any write; none when undefined. */
  readonly maxMessageSize: number | undefined
}

type ClosedWith = ConstructorParameters<typeof Disconnected>[0]

/** This side asked to close (or aborted): a bit of the inbound queue's `flags`. */
const CLOSE_REQUESTED = FIRST_FREE_FLAG
/** This side closed because the peer broke the protocol (1007, 1008, 1009...): the next bit. */
const PEER_BROKE_PROTOCOL = FIRST_FREE_FLAG * 2

/**
 * The listener half: filled by the transport's callbacks, read by the Connection's effects. It is
 * also the connection's inbound buffer, and that buffer's source (it pauses and resumes the
 * socket): one object, not three (idle memory per connection is a benchmark target).
 */
export class ConnectionListener extends InboundQueue<Message> implements SocketListener {
  socket: TransportSocket | undefined = undefined
  // Deferreds made only when someone waits, and dropped once complete: an idle connection
  // keeps neither (idle memory per connection is a benchmark target).
  // The open's outcome once settled; before that, its waiter if someone waits (one field for both).
  private opening: Exit.Exit<void, ConnectError> | OpenWaiter | undefined = undefined
  private closeSignal: Deferred.Deferred<Disconnected> | undefined = undefined
  // How it closed: its fields, replaced by the Disconnected error when someone asks (a failed
  // attempt's never is made). Before the close, the protocol error it will report, if any.
  private closedWith: ClosedWith | Disconnected | ProtocolError | undefined = undefined

  /** The connection's inbound buffer: this object. */
  get inbound(): InboundQueue<Message> {
    return this
  }
  /**
   * Waits for OPEN or the handshake's failure, at most `timeout`: one timer, no racing fibers
   * (connect cost matters when many clients reconnect at once). One waiter at a time.
   */
  awaitOpened(timeout: Duration.Duration, timers: Timers): Effect.Effect<void, ConnectError | TimeoutError> {
    return Effect.async<void, ConnectError | TimeoutError>((resume) => {
      const waiter = this.waitOpen(timeout, timers, resume)
      if (waiter !== undefined) return Effect.sync(() => waiter.finish())
    })
  }

  /**
   * Calls `resume` once, with the open's outcome or a TimeoutError after `timeout` (at once when
   * settled already, and then returns nothing); `finish()` on the waiter stops it. What the
   * Client's attempts on callbacks wait with, and `awaitOpened` on a fiber.
   */
  waitOpen(timeout: Duration.Duration, timers: Timers, resume: (exit: OpenExit) => void): OpenWaiter | undefined {
    const outcome = this.openOutcome
    if (outcome !== undefined) return void resume(outcome)
    const waiter = new OpenWaiter(this, resume, timeout, timers)
    this.opening = waiter
    waiter.start(Duration.toMillis(timeout))
    return waiter
  }

  /** The open wait is over (settled, timed out or interrupted). */
  dropOpenWaiter(waiter: OpenWaiter): void {
    if (this.opening === waiter) this.opening = undefined
  }
  get awaitClosed(): Effect.Effect<Disconnected> {
    return Effect.suspend(() => {
      const ended = this.endedWith
      if (ended !== undefined) return Effect.succeed(ended)
      this.closeSignal ??= Deferred.unsafeMake<Disconnected>(FiberId.none)
      return Deferred.await(this.closeSignal)
    })
  }

  /** The first outcome wins, as with a Deferred. */
  private settleOpen(outcome: Exit.Exit<void, ConnectError>): void {
    const waiter = this.opening
    if (waiter !== undefined && !(waiter instanceof OpenWaiter)) return
    this.opening = outcome
    if (waiter !== undefined) waiter.settle(outcome)
  }
  /** The open's outcome, once settled. */
  private get openOutcome(): Exit.Exit<void, ConnectError> | undefined {
    const opening = this.opening
    return opening instanceof OpenWaiter ? undefined : opening
  }

  /** How the connection ended, once it has. */
  get endedWith(): Disconnected | undefined {
    const closedWith = this.closedWith
    if (closedWith === undefined || closedWith instanceof ProtocolError) return undefined
    if (closedWith instanceof Disconnected) return closedWith
    return this.closedWith = new Disconnected(closedWith)
  }
  /**
   * How the connection ended, once it has, if by the peer's doing: it closed, the network dropped,
   * or it broke the protocol and this side closed (`initiator` "client" then). Not a close this
   * side asked for itself.
   */
  get endedByPeer(): Disconnected | undefined {
    const ended = this.endedWith
    return ended !== undefined && (ended.initiator !== "client" || (this.flags & PEER_BROKE_PROTOCOL) !== 0)
      ? ended
      : undefined
  }
  /** Told once the connection ended (the Client's session watches it without a fiber). */
  watcher: { readonly connectionEnded: (disconnected: Disconnected) => void } | undefined = undefined
  /** Counts inbound frames and pongs: the heartbeat reads it to tell whether the peer is alive. */
  activity = 0

  /**
   * `shared`: the Client's, whose connections are held to one inbound bound together.
   * `closeTimeout`: how long a release waits for each step of the close (`releaseOnExit`).
   */
  constructor(
    readonly url: string,
    capacity: number,
    byteCapacity: number,
    shared?: SharedInbound,
    readonly closeTimeout: Duration.Duration = DEFAULT_CLOSE_TIMEOUT
  ) {
    super(capacity, byteCapacity, shared?.budgetFor(capacity, byteCapacity))
  }

  private get closeRequested(): boolean {
    return (this.flags & CLOSE_REQUESTED) !== 0
  }

  private set closeRequested(requested: boolean) {
    this.flags = requested ? this.flags | CLOSE_REQUESTED : this.flags & ~CLOSE_REQUESTED
  }

  // The inbound buffer's source: this connection's socket. Once this side has asked to close it
  // is not paused: the peer's close frame comes after what it sent before, and a reader that
  // stopped (the scope's end) held it back until closeTimeout (1006). Frames over the bound are
  // then dropped (`onMessage`).
  protected pauseSource(): boolean {
    if (this.closeRequested) return true
    return this.socket?.pause() ?? false
  }

  protected resumeSourceNow(): void {
    this.socket?.resume()
  }

  protected weigh(data: Message): number {
    return approximateBytes(data)
  }

  protected overflowSource(): void {
    // Report 1008 whatever the platform lets us send (browsers send only 1000 or 3000-4999).
    this.onProtocolError(POLICY_VIOLATION, "inbound queue overflow")
    this.requestClose(POLICY_VIOLATION, "inbound queue overflow")
  }

  onOpen(): void {
    // First: a Client whose inbound is already full pauses this socket before it delivers.
    this.opened()
    this.settleOpen(Exit.void)
  }

  onMessage(data: Message): void {
    this.activity++
    if (this.closeRequested && this.isPaused) return
    this.offer(data)
  }

  /** Told of each pong as it arrives (the heartbeat dates it); frames are only counted in `activity`. */
  pongWatcher: { readonly onPong: () => void } | undefined = undefined

  onPong(): void {
    this.activity++
    this.pongWatcher?.onPong()
  }

  onHandshakeFailure(failure: HandshakeFailure): void {
    this.settleOpen(Exit.fail(toConnectError(this.url, failure)))
  }

  onProtocolError(code: number, reason: string): void {
    this.closeRequested = true
    this.flags |= PEER_BROKE_PROTOCOL
    if (this.closedWith === undefined) this.closedWith = new ProtocolError(code, reason)
  }

  onClose(code: number, reason: string, wasClean: boolean): void {
    // This side closed because the peer broke the protocol (ws then reports 1006, a browser the
    // code it was allowed to send): report the real code and why.
    const protocolError = this.closedWith
    if (protocolError instanceof ProtocolError) {
      code = protocolError.code
      reason = protocolError.reason
      wasClean = false
    }
    // Closed before any outcome: that is the open's failure (the first outcome wins; a handshake
    // failure is one).
    if (this.openOutcome === undefined) {
      const failure: HandshakeFailure = {
        reason: "ClosedBeforeOpen",
        detail: `the socket closed with code ${code} before it opened`
      }
      this.settleOpen(Exit.fail(toConnectError(this.url, failure)))
    }
    const initiator = this.closeRequested ? "client" : code === ABNORMAL_CLOSURE ? "transport" : "server"
    const closed = { code, reason, wasClean, initiator } as const
    this.closedWith = closed
    const signal = this.closeSignal
    const watcher = this.watcher
    this.closeSignal = undefined
    if (signal !== undefined || watcher !== undefined) {
      const ended = this.closedWith = new Disconnected(closed)
      if (signal !== undefined) Deferred.unsafeDone(signal, Exit.succeed(ended))
      if (watcher !== undefined) watcher.connectionEnded(ended)
    }
    this.end()
  }

  /** Starts the close handshake from this side (OPEN), or aborts (CONNECTING). Never throws. */
  requestClose(code: number, reason: string): void {
    const socket = this.socket
    if (socket === undefined) return
    this.closeRequested = true
    const state = socket.readyState()
    if (state === CONNECTING) socket.terminate()
    else if (state === OPEN) {
      socket.close(code, reason)
      // Paused because the buffer is full: read on to the peer's close frame (see `pauseSource`).
      if (this.isPaused) socket.resume()
    }
  }

  /**
   * The release table of invariant 2. Bounded by `closeTimeout` (twice at most: once for the
   * close handshake, once for the socket to report CLOSED after `terminate()`), never fails.
   */
  release(code: number, reason: string, closeTimeout: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      const socket = this.socket
      if (socket === undefined) return Effect.void
      switch (socket.readyState()) {
        case CLOSED:
          return Effect.void
        case CONNECTING:
          return this.terminateAndWait(closeTimeout)
        case OPEN:
          this.requestClose(code, reason)
          return this.awaitClosedOrTerminate(closeTimeout)
        case CLOSING:
          return this.awaitClosedOrTerminate(closeTimeout)
      }
    })
  }

  /** How it ended, once `release` returned: a transport that never reported CLOSED counts as 1006. */
  get closedAfterRelease(): Effect.Effect<Disconnected> {
    return Effect.sync(() =>
      this.endedWith ??
        new Disconnected(
          { code: ABNORMAL_CLOSURE, reason: "close timed out", wasClean: false, initiator: "client" }
        )
    )
  }

  // Release runs in finalizers, which are uninterruptible: a timeout there cannot interrupt the
  // wait unless the wait itself is marked interruptible, and would then never fire.
  private get awaitClosedInterruptibly(): Effect.Effect<Disconnected> {
    return Effect.interruptible(this.awaitClosed)
  }

  private waitForClose(timeout: Duration.Duration): Effect.Effect<void> {
    return this.awaitClosedInterruptibly.pipe(Effect.timeoutOption(timeout), Effect.asVoid)
  }

  private awaitClosedOrTerminate(timeout: Duration.Duration): Effect.Effect<void> {
    return this.awaitClosedInterruptibly.pipe(
      Effect.timeoutOption(timeout),
      Effect.flatMap((result) => Option.isSome(result) ? Effect.void : this.terminateAndWait(timeout)),
      // The wait is interruptible (above): one interrupted (a probe stopped, a release under a
      // caller's timeout) still ends the socket, never leaves it to the transport's own timer.
      Effect.onInterrupt(() => Effect.sync(() => this.terminate()))
    )
  }

  private terminate(): void {
    this.closeRequested = true
    this.socket?.terminate()
  }

  private terminateAndWait(timeout: Duration.Duration): Effect.Effect<void> {
    this.terminate()
    return this.waitForClose(timeout)
  }
}

/** Why this side closes an open connection: the peer broke the protocol (reported on close). */
class ProtocolError {
  constructor(readonly code: number, readonly reason: string) {}
}

type OpenExit = Exit.Exit<void, ConnectError | TimeoutError>

/** One wait for OPEN: resumed by the listener's outcome or by its timer, whichever comes first. */
export class OpenWaiter extends TimedWait {
  constructor(
    private readonly listener: ConnectionListener,
    private readonly resume: (exit: OpenExit) => void,
    private readonly timeout: Duration.Duration,
    timers: Timers
  ) {
    super(timers)
  }

  settle(outcome: Exit.Exit<void, ConnectError>): void {
    if (this.finish()) this.resume(outcome)
  }

  protected timedOut(): void {
    this.resume(Exit.fail(openTimeoutError(this.listener.url, this.timeout)))
  }

  protected ended(): void {
    this.listener.dropOpenWaiter(this)
  }
}

/** The close code a scope's Exit asks for: 1000 on success, 1001 when failed or interrupted. */
export const closeCodeOf = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.isSuccess(exit) ? NORMAL_CLOSURE : GOING_AWAY

/**
 * A code and reason that the transport can send: invalid codes become 1000, a reason that is not a
 * string (untyped code: ws throws on null) becomes "", long reasons are cut between characters
 * (not inside an emoji's surrogate pair: its first half alone would be sent as U+FFFD).
 */
export const sendableClose = (code: number, reason: string): readonly [number, string] => {
  const given: unknown = reason
  let cut = typeof given === "string" ? reason.slice(0, MAX_CLOSE_REASON_BYTES) : ""
  while (utf8Length(cut) > MAX_CLOSE_REASON_BYTES) cut = cut.slice(0, /[\udc00-\udfff]$/.test(cut) ? -2 : -1)
  return [isSendableCloseCode(code) ? code : NORMAL_CLOSURE, cut]
}

const encoder = new TextEncoder()
const utf8Length = (text: string): number => encoder.encode(text).length

// A transport's message or error may hold the URL (ws: "Invalid URL: ...", a browser's
// DOMException): details and causes are redacted here, for every transport.
export const toConnectError = (url: string, failure: HandshakeFailure): ConnectError =>
  new ConnectError({
    reason: failure.reason,
    url,
    detail: redactUrlsIn(failure.detail),
    ...(failure.status === undefined ? {} : { status: failure.status }),
    ...(failure.retryAfter === undefined ? {} : { retryAfter: failure.retryAfter }),
    ...(failure.cause === undefined ? {} : { cause: redactCause(failure.cause) })
  })

export const openTimeoutError = (url: string, timeout: Duration.Duration): TimeoutError =>
  new TimeoutError({ operation: "open", timeout, url })

export const notOpen = (payload: unknown): SendError => new SendError({ reason: "NotOpen", payload })

/** Over `maxMessageSize`: refused before any write (strings counted in UTF-8 bytes, as sent). */
export const tooLarge = (payload: unknown): SendError => new SendError({ reason: "TooLarge", payload })

/**
 * Why a frame of `bytes` (`frameBytes`) is refused before any write: not a frame (`EncodeFailed`:
 * a browser would send a number as text, and no bound can count a Blob), or over `maxMessageSize`.
 * Peers count a text's UTF-8 bytes (Jetty's 64 KiB, round 20); a string's is between its length
 * (`bytes`) and three times it, so it is encoded only when that decides.
 */
export const refusedFrame = (data: unknown, bytes: number, largest: number | undefined): SendError | undefined =>
  bytes >= 0
    ? largest !== undefined &&
        (bytes > largest || typeof data === "string" && bytes * 3 > largest && encoder.encode(data).length > largest)
      ? tooLarge(data)
      : undefined
    : new SendError({
      reason: "EncodeFailed",
      payload: data,
      cause: new TypeError(`not a string, ArrayBuffer or view: ${kindOf(data)}`)
    })

/** `Object`, `Blob`, `Number`...: what a value that is not a frame is; `Object` when that cannot be read (a Proxy's trap threw). */
const kindOf = (data: unknown): string => {
  try {
    return Object.prototype.toString.call(data).slice(8, -1)
  } catch {
    return "Object"
  }
}

/** A Connection with the parts the Client drives directly: its socket and its listener. */
export interface OpenedConnection {
  readonly connection: Connection
  readonly socket: TransportSocket
  readonly listener: ConnectionListener
}

/** Releases an opened connection (what a scope's finalizer runs). */
export const releaseOpened = (opened: OpenedConnection, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  releaseOnExit.call(opened.listener, exit)

/** `Connection.connect`, keeping the socket and listener for the Client's fast paths. */
export const openConnection = <E, R>(
  url: string | URL | Effect.Effect<string, E, R>,
  options: ConnectOptions
): Effect.Effect<OpenedConnection, ConnectError | TimeoutError | E, Scope.Scope | Transport | R> =>
  // Scope.addFinalizerExit, not Effect.addFinalizer: the latter keeps the acquiring fiber's
  // FiberRefs (context, span) alive for the life of the connection, several KB each.
  acquireConnection(url, options, (opened) =>
    Effect.flatMap(Effect.scope, (scope) =>
      Scope.addFinalizerExit(scope, releaseOnExit.bind(opened.listener))))

/**
 * Opens a connection and hands it to `keep`, which takes over its release; `keep` runs in the
 * same uninterruptible step as the open's success, so no interruption falls between them.
 * `shared`: the Client's inbound, so that all its connections are held to one inbound bound.
 * `options`: as given (decoded here), or decoded already (a Client's, by `Client.make`): used as they are.
 */
export const acquireConnection = <E, R, R2>(
  url: string | URL | Effect.Effect<string, E, R>,
  options: ConnectOptions,
  keep: (opened: OpenedConnection) => Effect.Effect<void, never, R2>,
  shared?: SharedInbound
): Effect.Effect<OpenedConnection, ConnectError | TimeoutError | E, Transport | R | R2> =>
  Effect.gen(function*() {
    // Not a string, a URL or an Effect (untyped code): checkEndpoint refuses it, InvalidUrl.
    const endpoint = yield* parseEndpoint(
      isUrlEffect(url) ? yield* (url as Effect.Effect<string, E, R>) : url as string
    )
    yield* Effect.annotateCurrentSpan("lifeline.url", endpoint.redacted)
    const checked = yield* resolveOptions(endpoint.redacted, options)
    const transport = yield* Transport
    const timers = yield* currentTimers
    // Not Effect.acquireRelease: its acquire is uninterruptible as a whole, and the wait for OPEN
    // must stay interruptible. Only the wait is; a failed or interrupted wait releases the socket
    // before connect returns, so retries inside one scope do not pile up finalizers.
    return yield* Effect.uninterruptibleMask((restore) => {
      const opened = createConnection(endpoint, checked, transport, shared)
      if (opened instanceof ConnectError) return Effect.fail(opened)
      return restore(opened.listener.awaitOpened(checked.openTimeout, timers)).pipe(
        Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : releaseOpened(opened, exit)),
        Effect.zipRight(keep(opened)),
        Effect.as(opened)
      )
    })
  }).pipe(Effect.withSpan("lifeline.connect", { captureStackTrace: false }))

/**
 * Creates the socket and its listener (the handshake starts; nothing waits for it): what
 * `acquireConnection` does once the URL and the options are read. Synchronous, for the Client's
 * attempts on callbacks too. A transport that refuses at once: its ConnectError.
 */
export const createConnection = (
  endpoint: Endpoint,
  checked: CheckedOptions,
  transport: Transport,
  shared?: SharedInbound
): OpenedConnection | ConnectError => {
  const listener = new ConnectionListener(
    endpoint.redacted,
    checked.inboundCapacity,
    checked.inboundBytes,
    shared,
    checked.closeTimeout
  )
  const request = {
    url: endpoint.url,
    protocols: checked.protocols,
    headers: checked.headers,
    maxPayload: checked.maxPayload,
    perMessageDeflate: checked.perMessageDeflate,
    tls: checked.tls,
    writeHighWaterMark: checked.writeHighWaterMark
  }
  const created = transport.open(request, listener)
  if (Either.isLeft(created)) return toConnectError(endpoint.redacted, created.left)
  const socket = created.right
  listener.socket = socket
  return new LiveConnection(listener, socket, checked)
}

// Module level on purpose: a finalizer made inside `openConnection` would keep that whole
// generator's scope (URL, options, transport) alive for the life of the connection. Bound to the
// listener, not the Connection: a Connection nobody holds any more is not kept for its release.
// A bound function, not a closure: no context object, about 50 B less per connection.
/** Releases by the table of invariant 2, with the close code the Exit asks for. */
function releaseOnExit(this: ConnectionListener, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
  return this.release(closeCodeOf(exit), "", this.closeTimeout)
}

/**
 * The Connection. A class so that one connection costs a few fields, not a closure per method:
 * idle memory per connection is a benchmark target. `messages` and `sink` are built on first use.
 * It is its own OpenedConnection (the Client's view of its socket and listener): no second object
 * per connection. As the success value of the `lifeline.connect` span a tracer may render it: it
 * renders redacted (`toJSON`), never as the socket (ws keeps the raw URL) or the options (header values).
 */
export class LiveConnection implements Connection, OpenedConnection {
  constructor(
    readonly listener: ConnectionListener,
    readonly socket: TransportSocket,
    private readonly options: ResolvedOptions
  ) {}

  get connection(): Connection {
    return this
  }

  /** Redacted: the URL as `url` shows it, never the socket (raw URL) or the options (header values). */
  toJSON(): unknown {
    return { _id: "lifeline/Connection", url: this.url, protocol: this.protocol, readyState: this.socket.readyState() }
  }

  // `util.inspect` shows `toJSON` where the Node transport is loaded (`nodeInspect.ts`); elsewhere
  // it sends no header, so the options hold no secret.

  get url(): string {
    return this.listener.url
  }

  get protocol(): string {
    return this.socket.protocol()
  }

  get extensions(): string {
    return this.socket.extensions?.() ?? ""
  }

  get readyState(): Effect.Effect<ReadyState> {
    return Effect.sync(() => this.socket.readyState())
  }

  get bufferedAmount(): Effect.Effect<number> {
    return Effect.sync(() => this.socket.bufferedAmount())
  }

  get closed(): Effect.Effect<Disconnected> {
    return this.listener.awaitClosed
  }

  get ping(): Effect.Effect<boolean> {
    return Effect.sync(() => this.socket.ping())
  }

  get activity(): Effect.Effect<number> {
    return Effect.sync(() => this.listener.activity)
  }

  get messages(): Stream.Stream<Message> {
    const inbound = this.listener.inbound
    return streamOfPulls(inbound.pull, inbound.pullOne)
  }

  get sink(): Sink.Sink<void, Message, never, SendError> {
    return Sink.forEachChunk((chunk: Chunk.Chunk<Message>) => this.writeChunk(chunk))
  }

  // send, write and close are used point-free (`Stream.runForEach(connection.write)`), so they
  // must not depend on `this`: each is made on first use, bound, and kept.
  private boundSend: ((data: Message) => Effect.Effect<void, SendError>) | undefined
  private boundWrite: ((data: Message) => Effect.Effect<void, SendError>) | undefined
  private boundClose: ((code?: number, reason?: string) => Effect.Effect<Disconnected>) | undefined

  get send(): (data: Message) => Effect.Effect<void, SendError> {
    return this.boundSend ??= sendOn(this.socket, this.options.maxMessageSize)
  }

  get write(): (data: Message) => Effect.Effect<void, SendError> {
    return this.boundWrite ??= writeOn(this.socket, this.options.maxMessageSize)
  }

  get close(): (code?: number, reason?: string) => Effect.Effect<Disconnected> {
    const listener = this.listener
    const closeTimeout = this.options.closeTimeout
    return this.boundClose ??= (code = NORMAL_CLOSURE, reason = "") =>
      Effect.suspend(() => {
        const [sendableCode, sendableReason] = sendableClose(code, reason)
        return listener.release(sendableCode, sendableReason, closeTimeout)
      }).pipe(Effect.zipRight(listener.closedAfterRelease))
  }

  private writeChunk(chunk: Chunk.Chunk<Message>): Effect.Effect<void, SendError> {
    return Effect.suspend(() => this.writeFrom(chunk, 0))
  }

  /**
   * Writes the chunk from `start`. Each frame that keeps `bufferedAmount` within the high-water
   * mark is written at once (no Effect per frame); the first that would cross it is sent and its
   * write awaited before the rest: on Node its callback comes once everything before it was
   * flushed, and the browser transport's once no more than this same mark is buffered up to it
   * (a socket that closes first fails it). So at most the mark plus one frame is ever buffered,
   * however large the chunk.
   */
  private writeFrom(chunk: Chunk.Chunk<Message>, start: number): Effect.Effect<void, SendError> {
    const socket = this.socket
    const size = chunk.length
    if (start >= size) return Effect.void
    // readyState cannot change during this synchronous loop: ws reports write errors later.
    if (socket.readyState() !== OPEN) return Effect.fail(notOpen(Chunk.unsafeGet(chunk, start)))
    const mark = this.options.writeHighWaterMark
    const largest = this.options.maxMessageSize
    for (let index = start; index < size; index++) {
      const data = Chunk.unsafeGet(chunk, index)
      const bytes = frameBytes(data)
      const refused = refusedFrame(data, bytes, largest)
      if (refused !== undefined) return Effect.fail(refused)
      if (socket.bufferedAmount() + bytes > mark) {
        const written = this.send(data)
        return index === size - 1
          ? written
          : Effect.zipRight(written, Effect.suspend(() => this.writeFrom(chunk, index + 1)))
      }
      const thrown = trySend(socket, data)
      if (thrown !== undefined) return Effect.fail(writeFailed(data, thrown))
    }
    return Effect.void
  }
}

const sendOn =
  (socket: TransportSocket, largest: number | undefined) => (data: Message): Effect.Effect<void, SendError> =>
    Effect.async<void, SendError>((resume) => {
      const refused = refusedFrame(data, frameBytes(data), largest)
      if (refused !== undefined) return resume(Effect.fail(refused))
      if (socket.readyState() !== OPEN) return resume(Effect.fail(notOpen(data)))
      const thrown = trySend(socket, data, (error) => {
        resume(error === undefined || error === null ? Effect.void : Effect.fail(writeFailed(data, error)))
      })
      if (thrown !== undefined) resume(Effect.fail(writeFailed(data, thrown)))
    })

const writeOn =
  (socket: TransportSocket, largest: number | undefined) => (data: Message): Effect.Effect<void, SendError> =>
    Effect.suspend(() => {
      const refused = refusedFrame(data, frameBytes(data), largest)
      if (refused !== undefined) return Effect.fail(refused)
      if (socket.readyState() !== OPEN) return Effect.fail(notOpen(data))
      const thrown = trySend(socket, data)
      return thrown === undefined ? Effect.void : Effect.fail(writeFailed(data, thrown))
    })

/**
 * `socket.send`, returning what it threw instead of throwing: ws throws synchronously for some
 * payloads (a Uint8Array over a detached ArrayBuffer). When it throws, nothing was written and
 * `callback` will not be called.
 */
export const trySend = (
  socket: TransportSocket,
  data: Message,
  callback?: (error?: Error) => void
): Error | undefined => {
  try {
    socket.send(data, callback)
    return undefined
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error))
  }
}

/** The transport reported an error while writing `payload`. */
export const writeFailed = (payload: unknown, cause: Error): SendError =>
  new SendError({ reason: "WriteFailed", payload, cause })
