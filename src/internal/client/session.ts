/**
 * One open connection of a Client, from `onOpen` done until it ends. It is a `Scope` whose
 * finalizer releases the connection (invariant 2): ending the session is closing it with the
 * session's Exit (it is the attempt's scope from the attempt's start). It is what the connection
 * and the heartbeat call back when the session ends, so an open session costs no closures; and it
 * tracks the frames it handed to the transport until each is reported written.
 *
 * One object for what an open Client keeps of its session (idle memory per client is a benchmark
 * target): the scope (`SessionScope`), the heartbeat (`HeartbeatCore`, its base classes) and the
 * Open phase itself (`_tag` "Open", on the prototype, and its public view).
 */
import type { Clock } from "effect"
import type * as Effect from "effect/Effect"
import type { ConnectError, Disconnected, TimeoutError } from "../../Errors.js"
import { SendError } from "../../Errors.js"
import type { Message } from "../../Transport.js"
import { cannotProbeLog } from "../clientCommon.js"
import type { ClientState } from "../clientState.js"
import type { OpenedConnection } from "../connection.js"
import { trySend, writeFailed } from "../connection.js"
import type { HeartbeatOptions } from "../heartbeat.js"
import { HeartbeatCore } from "../heartbeat.js"
import type { Entry, Outbox } from "../primitives/outbox.js"
import { SessionScope } from "../primitives/sessionScope.js"
import type { Timers } from "../primitives/timers.js"
import { OPEN } from "../protocol.js"
import type { SessionEnd } from "./phase.js"

/** What a session reports to its Client. */
export interface SessionOwner {
  readonly outbox: Outbox
  /** An accepted message failed after its `enqueue` returned. */
  readonly reportFailure: (error: SendError) => void
  /** Called from socket and timer callbacks: the session is over. */
  readonly endSession: (session: Session, reason: SessionEnd) => void
  /** What a defect of the client's own code is reported as (it closes the client). */
  readonly brokenOption: (detail: string, cause: unknown) => ConnectError
  /** Runs a log line on a fiber of the Client's runtime (never inside the callback). */
  readonly logLater: (log: Effect.Effect<void>) => void
  /** The heartbeat's options (none: no heartbeat), Clock and timers: the Client's. */
  readonly settings: { readonly heartbeat: HeartbeatOptions | undefined }
  readonly clock: Clock.Clock
  readonly timers: Timers
}

export const closedError = (payload: Message): SendError => new SendError({ reason: "Closed", payload })

const connectionEnded = new Error("the connection ended before the frame was written")

const isEntry = (item: Message | Entry): item is Entry => typeof item === "object" && "done" in item

const payloadOf = (item: Message | Entry): Message => isEntry(item) ? item.payload : item

export class Session extends SessionScope(HeartbeatCore) {
  declare readonly _tag: "Open"
  /** The connection, set when it opened (before that the session is the attempt's scope). */
  opened!: OpenedConnection
  /** Its public view (Open), made when it opened: what `state` shows while it is the phase. */
  view!: ClientState
  /** With `ordered` and `returnToPrimary`, on an endpoint other than the first. */
  probe: { readonly stop: () => void } | undefined = undefined

  constructor(private readonly owner: SessionOwner) {
    super()
  }

  /** The Open phase it is: itself. */
  get session(): Session {
    return this
  }

  protected get heartbeatOptions(): HeartbeatOptions {
    return this.owner.settings.heartbeat!
  }

  protected get clock(): Clock.Clock {
    return this.owner.clock
  }

  protected get timers(): Timers {
    return this.owner.timers
  }

  // Frames handed to the transport whose write has not completed, oldest first: a bare payload
  // for `enqueue` (a failure is reported as an event), an Entry for `send` and the outbox (the
  // entry is told). They all share one write callback: a closure per frame makes Node keep large
  // frames alive past a scavenge (64 KiB frames: a full GC every few hundred), and write
  // callbacks come back in order. Each counts against the outbox until it settles.
  private inFlight: Array<Message | Entry | undefined> | undefined = undefined
  /** The size each was counted with when handed off: settled by it, never by the payload again. */
  private sizes: Array<number> | undefined = undefined
  private inFlightHead = 0
  private writtenCallback: ((error?: Error | null) => void) | undefined = undefined
  /** Set by `close`: frames that fail from here are returned by it rather than reported. */
  unsent: Array<Message> | undefined = undefined

  /**
   * Writes one frame; `item` is what its completion reports to. `counted`: the outbox already
   * counts it in flight (taken from the queue). Returns what the transport threw, if it did: then
   * nothing was written, nothing is tracked and the frame's room is free again.
   */
  write(item: Message | Entry, data: Message, bytes: number, counted: boolean): Error | undefined {
    const inFlight = this.inFlight ??= []
    // Tracked before the send: a transport may call back at once (browsers).
    inFlight.push(item)
    const sizes = this.sizes ??= []
    sizes.push(bytes)
    const outbox = this.owner.outbox
    if (!counted) outbox.handedOff(bytes)
    const thrown = trySend(this.opened.socket, data, this.writtenCallback ??= (error) => this.written(error))
    if (thrown === undefined) return undefined
    inFlight.pop()
    sizes.pop()
    outbox.settled(bytes)
    return thrown
  }

  /** The oldest tracked frame's write completed. */
  private written(error: Error | null | undefined): void {
    const inFlight = this.inFlight
    if (inFlight === undefined || this.inFlightHead >= inFlight.length) return
    // Not a byte of it reached the network, nor of any frame after it (a stream is written in
    // order): they all go out again on the next connection (unless the client is closing: then
    // `close` returns them). Only once the socket is past OPEN: a transport that said so of a
    // frame while open would have the flush write it again at once, without end. (ws is CLOSING
    // from its TCP socket's 'error' or 'end' on, before its compressor can call back.)
    if (
      error !== undefined && error !== null && (error as { notWritten?: unknown }).notWritten === true &&
      this.unsent === undefined && this.opened.socket.readyState() !== OPEN
    ) {
      return this.putBackInFlight()
    }
    const item = inFlight[this.inFlightHead]!
    const sizes = this.sizes!
    const bytes = sizes[this.inFlightHead]!
    inFlight[this.inFlightHead++] = undefined
    if (this.inFlightHead === inFlight.length) {
      inFlight.length = 0
      sizes.length = 0
      this.inFlightHead = 0
    } else if (this.inFlightHead > 1024 && this.inFlightHead * 2 > inFlight.length) {
      // Never quite empty under a steady stream: drop the completed head now and then.
      inFlight.splice(0, this.inFlightHead)
      sizes.splice(0, this.inFlightHead)
      this.inFlightHead = 0
    }
    const data = payloadOf(item)
    this.owner.outbox.settled(bytes)
    if (error === undefined || error === null) {
      if (isEntry(item)) item.done(undefined)
      return
    }
    this.fail(item, this.unsent === undefined ? writeFailed(data, error) : closedError(data))
  }

  /**
   * The connection is released: frames whose write never completed were not written. They fail
   * (`Closed`, and into `unsent`, while the client closes; else `WriteFailed`).
   */
  abandonInFlight(): void {
    this.drainInFlight((item, bytes) => {
      const data = payloadOf(item)
      this.owner.outbox.settled(bytes)
      this.fail(item, this.unsent === undefined ? writeFailed(data, connectionEnded) : closedError(data))
    })
  }

  /**
   * Every frame still in flight back at the front of the outbox, in order, ahead of what was
   * queued since; their own completions then find nothing.
   */
  private putBackInFlight(): void {
    // Not `this`: an entry waits through the backoff, and must not keep the dead socket alive.
    const owner = this.owner
    const entries: Array<Entry> = []
    this.drainInFlight((item, bytes) =>
      entries.push(
        isEntry(item) ? item : {
          payload: item,
          bytes,
          // Handed over bare by `enqueue`: a failure is reported as an event.
          done: (failure) => failure && owner.reportFailure(failure)
        }
      )
    )
    owner.outbox.putBack(entries)
  }

  /** Hands each frame still in flight, oldest first, with the size it was counted with, to `each`; none is tracked after. */
  private drainInFlight(each: (item: Message | Entry, bytes: number) => void): void {
    const inFlight = this.inFlight
    const sizes = this.sizes
    const from = this.inFlightHead
    this.inFlight = undefined
    this.sizes = undefined
    this.inFlightHead = 0
    if (inFlight === undefined) return
    for (let index = from; index < inFlight.length; index++) each(inFlight[index]!, sizes![index]!)
  }

  private fail(item: Message | Entry, error: SendError): void {
    if (this.unsent !== undefined) this.unsent.push(error.payload as Message)
    if (isEntry(item)) item.done(error)
    else this.owner.reportFailure(error)
  }

  /** Stops what runs on the session's behalf: it is over for sending. */
  detach(): void {
    this.opened.listener.watcher = undefined
    this.stopHeartbeat()
    this.probe?.stop()
  }

  connectionEnded(disconnected: Disconnected): void {
    this.owner.endSession(this, disconnected)
  }

  onDead(timeout: TimeoutError): void {
    this.owner.endSession(this, timeout)
  }

  onFailed(defect: unknown): void {
    this.owner.endSession(this, this.owner.brokenOption("the heartbeat failed", defect))
  }

  onCannotProbe(): void {
    // No protocol ping here (a browser) and no app-level message configured: say so once.
    this.owner.logLater(cannotProbeLog())
  }
}

// The Open phase's tag, on the prototype: no field per session.
Object.defineProperty(Session.prototype, "_tag", { value: "Open" })
