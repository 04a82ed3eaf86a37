/**
 * The Client's outbound side: `send`, `enqueue`, the outbox and its flush into the open session.
 * Every message accepted ends exactly once: written, or failed with a `SendError` that carries it
 * (to the `send` caller, or as a `MessageFailed` event after `enqueue` returned), and counted in
 * `failed` when it was accepted and not written.
 */
import type { MetricLabel } from "effect"
import * as Effect from "effect/Effect"
import type { CircuitOpenError, SendError } from "../../Errors.js"
import type { Message } from "../../Transport.js"
import { refusedFrame, writeFailed } from "../connection.js"
import * as Metrics from "../metrics.js"
import type { Entry, Overflow } from "../primitives/outbox.js"
import { Outbox } from "../primitives/outbox.js"
import { frameBytes, OPEN } from "../protocol.js"
import type { Session } from "./session.js"
import { closedError } from "./session.js"

const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

/** What the outbound side asks of its Client. */
export interface OutboundHost {
  /** The open session, if the client is Open. */
  readonly openSession: Session | undefined
  /** Closing or closed: sends fail with `Closed`. */
  readonly stopped: boolean
  /** Set while Suspended with `whenSuspended: "failFast"`: new sends fail with it at once. */
  readonly failFast: CircuitOpenError | undefined
  /** Publishes a MessageFailed event. */
  readonly publishFailure: (error: SendError) => void
  /** The fiber running the Client's `onOpen`, while it runs (see `inOwnOnOpen`). */
  readonly onOpenFiber: object | undefined
}

/**
 * `what` called on the fiber of `host`'s own `onOpen`, which it would wait for: the Client is Open
 * only once `onOpen` is done. A defect that says so, which fails the hook at once (`OnOpenError`),
 * instead of a wait until `onOpenTimeout` at every attempt with nothing to say why. Only that
 * fiber: one it forks may wait for Open (nothing waits for it), and one it joins is not told.
 */
export const inOwnOnOpen = (host: OutboundHost, what: string): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) =>
    fiber === host.onOpenFiber
      ? Effect.dieMessage(`the Client's ${what} in its own onOpen waits for onOpen: use the connection onOpen gets`)
      : Effect.void
  )

/** The outbound side is its outbox too: one object per Client, not two (idle memory per client is a target). */
export class Outbound extends Outbox {
  private flushing = false
  /** Accepted messages that were not written: exact, whatever the events buffer kept. */
  failedTotal = 0
  /** This outbox's share of `lifeline_outbox_depth` (the sum over every Client's): its size when last reported. */
  private last = 0

  constructor(
    private readonly host: OutboundHost,
    capacity: number,
    maxBytes: number,
    overflow: Overflow,
    /** `connection.maxMessageSize`: larger messages fail with `SendError TooLarge` at once. */
    private readonly maxMessageSize: number | undefined
  ) {
    super(capacity, maxBytes, overflow)
  }

  /** An entry that lands in the outbox while connected (admitted from `suspend`) goes out at once. */
  protected override outboxAdmitted(): void {
    const session = this.host.openSession
    if (session !== undefined) this.flush(session)
  }

  /** An accepted message failed after its `enqueue` returned: counted, and published. */
  reportFailure(error: SendError): void {
    this.countFailure()
    this.host.publishFailure(error)
  }

  /** An accepted message failed (its sender is told, or `reportFailure` publishes it). */
  countFailure(): void {
    this.failedTotal++
    Metrics.messagesFailed.unsafeUpdate(1, NO_TAGS)
  }

  /**
   * Writes everything queued, synchronously, oldest first, until the outbox is empty (taking
   * entries admits suspended ones, which the next round writes). Only for the open session, while OPEN.
   */
  flush(session: Session): void {
    const socket = session.opened.socket
    if (this.flushing || this.host.openSession !== session || socket.readyState() !== OPEN) return
    this.flushing = true
    let count = 0
    let bytes = 0
    while (this.size > 0) {
      for (const entry of this.handOffAll()) {
        const size = entry.bytes
        // A send that throws (a detached buffer) fails its own entry, never the rest.
        const thrown = session.write(entry, entry.payload, size, true)
        if (thrown !== undefined) {
          entry.done(writeFailed(entry.payload, thrown))
          continue
        }
        bytes += size
        count++
      }
    }
    this.flushing = false
    Metrics.messagesOut.unsafeUpdate(count, NO_TAGS)
    Metrics.bytesOut.unsafeUpdate(bytes, NO_TAGS)
    this.report(0)
  }

  /**
   * Moves the process-wide gauge by this outbox's change since its last report: the gauge is the
   * messages waiting in every Client's outbox, not the size of the one that reported last.
   */
  private report(size: number): void {
    Metrics.outboxDepth.unsafeModify(size - this.last, NO_TAGS)
    this.last = size
  }

  /** Frames came back unwritten and are queued again: the gauge counts them as waiting. */
  override putBack(entries: ReadonlyArray<Entry>): void {
    super.putBack(entries)
    this.report(this.size)
  }

  /** Fails everything still queued with `Closed` (the client closed); returns the payloads. */
  failQueued(): ReadonlyArray<Message> {
    const unsent = this.failAll("Closed")
    this.report(0)
    return unsent
  }

  /**
   * The fast path: a session open, nothing queued ahead, and room for `bytes` among the messages
   * not yet written, so the frame goes straight out.
   */
  private writable(bytes: number): Session | undefined {
    const session = this.host.openSession
    if (
      session === undefined || this.size > 0 || this.hasWaiting || !this.hasRoom(bytes) ||
      session.opened.socket.readyState() !== OPEN
    ) {
      return undefined
    }
    return session
  }

  /** Writes at once; returns what the transport threw, if it did (then nothing was written). */
  private writeNow(session: Session, item: Message | Entry, data: Message, bytes: number): Error | undefined {
    const thrown = session.write(item, data, bytes, false)
    if (thrown !== undefined) return thrown
    Metrics.messagesOut.unsafeUpdate(1, NO_TAGS)
    Metrics.bytesOut.unsafeUpdate(bytes, NO_TAGS)
    return undefined
  }

  /** Queues a frame and completes when it is written or fails. */
  private sendQueued(data: Message, bytes: number): Effect.Effect<void, SendError> {
    return Effect.async<void, SendError>((resume) => {
      if (this.host.stopped) return resume(Effect.fail(closedError(data)))
      // Its sender stopped waiting (interrupted, timed out) once it was with the transport.
      let gaveUp = false
      const entry: Entry = {
        payload: data,
        bytes,
        done: (error) => {
          // No one waits for it: a failure is published, as after `enqueue` returned.
          if (gaveUp) return error === undefined ? undefined : this.reportFailure(error)
          // Refused at once for want of room is not a message lost: it was never taken.
          if (error !== undefined && error.reason !== "OutboxFull") this.countFailure()
          resume(error === undefined ? Effect.void : Effect.fail(error))
        }
      }
      this.offer(entry, () => this.report(this.size + 1))
      return Effect.sync(() => {
        if (this.remove(entry)) this.report(this.size)
        else gaveUp = true
      })
    })
  }

  // The `lifeline.send` span covers sends that wait in the outbox, where the time is worth
  // seeing; a span on the direct path would cost more than the write it traces.
  private sendQueuedTraced(data: Message, bytes: number): Effect.Effect<void, SendError> {
    return this.sendQueued(data, bytes).pipe(Effect.withSpan("lifeline.send", {
      captureStackTrace: false,
      attributes: { "lifeline.outbox.depth": this.size }
    }))
  }

  /** Why `data` is refused before it is taken: not a frame, the client closed, failFast while Suspended, too large. */
  private refused(data: Message, bytes: number): SendError | CircuitOpenError | undefined {
    if (!(bytes >= 0)) return refusedFrame(data, bytes, undefined)
    if (this.host.stopped) return closedError(data)
    if (this.host.failFast !== undefined) return this.host.failFast
    return refusedFrame(data, bytes, this.maxMessageSize)
  }

  send(data: Message): Effect.Effect<void, SendError | CircuitOpenError> {
    return Effect.suspend((): Effect.Effect<void, SendError | CircuitOpenError> => {
      const bytes = frameBytes(data)
      const refused = this.refused(data, bytes)
      if (refused !== undefined) return Effect.fail(refused)
      if (this.writable(bytes) === undefined) {
        return this.host.onOpenFiber !== undefined
          ? Effect.zipRight(inOwnOnOpen(this.host, "send"), this.sendQueuedTraced(data, bytes))
          : this.sendQueuedTraced(data, bytes)
      }
      return Effect.async<void, SendError>((resume) => {
        // The fiber may have yielded since the check: check again where the write happens.
        const session = this.writable(bytes)
        if (session === undefined) return resume(this.sendQueued(data, bytes))
        // Its sender: waiting (undefined), told (true), or gone while the transport had the frame
        // (false: interrupted, timed out).
        let sender: boolean | undefined = undefined
        const entry: Entry = {
          payload: data,
          bytes,
          done: (error) => {
            // No one waits for it: a failure is published, as after `enqueue` returned.
            if (sender === false) return error === undefined ? undefined : this.reportFailure(error)
            sender = true
            if (error !== undefined) this.countFailure()
            resume(error === undefined ? Effect.void : Effect.fail(error))
          }
        }
        const thrown = this.writeNow(session, entry, data, bytes)
        if (thrown !== undefined) return resume(Effect.fail(writeFailed(data, thrown)))
        // Told already (a transport that completes at once: browsers), or taken whole by the
        // network (then reported written, even if this very tick ends the socket: Transport's
        // contract): a sender that stops waiting leaves nothing to report, and needs no canceler
        // (one makes a send three times the Effect operations).
        if (sender === true || session.opened.socket.bufferedAmount() === 0) return
        return Effect.sync(() => {
          sender = false
          // Back in the outbox (its transport never wrote it: `notWritten`): not sent, as a
          // queued send that is interrupted.
          if (this.remove(entry)) this.report(this.size)
        })
      })
    })
  }

  // Synchronous unless the outbox is full under `suspend`: the pipelining path allocates no
  // Effect.async, no fiber and, when connected with nothing queued, nothing per frame but its
  // place in the session's in-flight list.
  enqueue(data: Message): Effect.Effect<void, SendError | CircuitOpenError> {
    return this.enqueueWith(data, this.overflow)
  }

  /**
   * `enqueue` that waits for room whatever the overflow strategy: what `sink` writes with, so a
   * stream is held back by the outbox (and so by the peer) instead of failing `OutboxFull`.
   */
  enqueueWaiting(data: Message): Effect.Effect<void, SendError | CircuitOpenError> {
    return this.enqueueWith(data, "suspend")
  }

  private enqueueWith(data: Message, overflow: Overflow): Effect.Effect<void, SendError | CircuitOpenError> {
    return Effect.suspend((): Effect.Effect<void, SendError | CircuitOpenError> => {
      const bytes = frameBytes(data)
      const refused = this.refused(data, bytes)
      if (refused !== undefined) return Effect.fail(refused)
      const session = this.writable(bytes)
      if (session !== undefined) {
        const thrown = this.writeNow(session, data, data, bytes)
        // Nothing was written, so no completion will come for it.
        return thrown === undefined ? Effect.void : Effect.fail(writeFailed(data, thrown))
      }
      return this.enqueueQueued(data, bytes, overflow)
    })
  }

  private enqueueQueued(data: Message, bytes: number, overflow: Overflow): Effect.Effect<void, SendError> {
    let buffered = false
    let rejected: SendError | undefined
    let wake: ((effect: Effect.Effect<void, SendError>) => void) | undefined
    const entry: Entry = {
      payload: data,
      bytes,
      // Before it is buffered a failure fails `enqueue`; after, it is reported as an event.
      done: (error) => {
        if (error === undefined) return
        if (buffered) return this.reportFailure(error)
        // A sender that waited for room (`suspend`) and was failed: counted, as `send`'s are.
        if (error.reason !== "OutboxFull") this.countFailure()
        rejected = error
        if (wake !== undefined) wake(Effect.fail(error))
      }
    }
    this.offer(entry, () => {
      buffered = true
      if (wake !== undefined) wake(Effect.void)
    }, overflow)
    if (buffered) {
      this.report(this.size)
      return Effect.void
    }
    if (rejected !== undefined) return Effect.fail(rejected)
    // Full under `suspend`: wait for room.
    return Effect.async<void, SendError>((resume) => {
      wake = resume
      return Effect.sync(() => {
        if (!buffered) this.remove(entry)
      })
    })
  }
}
