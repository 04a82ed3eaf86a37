/**
 * The Client's inbound side: the inbound buffers of its successive connections, read in order as
 * one stream that lives across reconnects.
 */
import type { Chunk } from "effect"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { Message } from "../../Transport.js"
import type { InboundQueue, SharedInbound } from "./inboundBuffer.js"
import { InboundBudget } from "./inboundBuffer.js"

/**
 * The inbound buffers of successive connections, read in order. The read position lives here, not
 * in a stream, so `messages` can be consumed again after a consumer stops. Their buffers share one
 * budget: what waits unread across all of them is held to the Client's `inboundCapacity` and
 * `inboundBytes`, however many times it reconnects.
 */
export class SuccessiveInbound extends InboundBudget implements SharedInbound {
  // The buffer read now, and those that follow it (rare: a connection that opened before the one
  // before it was read out). No array for the one buffer an open Client has: idle memory per
  // client is a benchmark target.
  // Not private: `dropEarlier` (below) moves them.
  reading: InboundQueue<Message> | undefined = undefined
  later: ReadonlyArray<InboundQueue<Message>> | undefined = undefined
  private ended = false
  // What the readers waiting for a connection wait on (usually one; `messages` may be read by
  // several fibers): made where a reader finds no connection, so one that comes while it has yet
  // to wait (its fiber may yield first) is not missed.
  private next: Deferred.Deferred<void> | undefined = undefined

  constructor() {
    // Sized by the first connection: one object is both the reader and the budget.
    super(0, 0)
  }

  /** Every connection's options are the Client's, so the first connection's bounds are everyone's. */
  budgetFor(capacity: number, byteCapacity: number): InboundBudget {
    // Unsized until then: a capacity is never 0 (the options refuse it).
    if (this.capacity === 0) {
      this.capacity = capacity
      this.byteCapacity = byteCapacity
    }
    return this
  }

  /** The reader takes this connection's buffer on, after the earlier ones. */
  offer(buffer: InboundQueue<Message>): void {
    buffer.adopt()
    // Those ended with nothing left to read go: each keeps its closed socket alive, and a Client
    // nobody reads from would otherwise keep one per reconnect.
    this.read(
      [this.reading, ...(this.later ?? []), buffer].filter((queue): queue is InboundQueue<Message> =>
        queue !== undefined && !queue.isDone
      )
    )
    this.wake()
  }

  /** Reads these buffers, in order, from now on. */
  read(buffers: ReadonlyArray<InboundQueue<Message>>): void {
    this.reading = buffers[0]
    this.later = buffers.length > 1 ? buffers.slice(1) : undefined
  }

  /** No connection follows: a reader gets what is buffered, then the end of the stream. */
  end(): void {
    this.ended = true
    this.wake()
  }

  /** Connections follow again (`reconnect` after a Closed by an error): a new read waits for them. */
  reopen(): void {
    this.ended = false
  }

  get pull(): Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>> {
    return Effect.suspend(() => this.pullNow(false))
  }

  /** The oldest frame alone (`InboundQueue.pullOne`). */
  get pullOne(): Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>> {
    return Effect.suspend(() => this.pullNow(true))
  }

  private pullNow(one: boolean): Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>> {
    const buffer = this.reading
    if (buffer === undefined) {
      if (this.ended) return Effect.fail(Option.none())
      return Effect.zipRight(
        Deferred.await(this.next ??= Deferred.unsafeMake<void>(FiberId.none)),
        one ? this.pullOne : this.pull
      )
    }
    return (one ? buffer.pullOne : buffer.pull).pipe(Effect.catchAll(() => {
      // That connection ended and is drained: move on to the next one.
      if (this.reading === buffer) this.read(this.later ?? [])
      return one ? this.pullOne : this.pull
    }))
  }

  private wake(): void {
    const next = this.next
    this.next = undefined
    if (next !== undefined) Deferred.unsafeDone(next, Effect.void)
  }
}

/**
 * Drops what the connections before the newest left unread (and their share of the inbound
 * budget): from now on, only the newest is read. For the platform Socket's `perConnection` runs,
 * whose earlier connections went with their runs. A function, not a method: a browser bundle,
 * which never calls it, does not carry it.
 */
export const dropEarlier = (inbound: SuccessiveInbound): void => {
  const buffers = [inbound.reading, ...(inbound.later ?? [])]
  const newest = buffers[buffers.length - 1]
  for (const buffer of buffers) if (buffer !== newest) buffer?.discard()
  inbound.read(newest === undefined ? [] : [newest])
  // With nothing left unread, the newest connection's socket reads again.
  inbound.drained(0, 0)
}
