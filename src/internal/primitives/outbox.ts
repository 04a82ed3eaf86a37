/**
 * The Client's outbox: bounded, FIFO across reconnects, with an overflow strategy. Every entry
 * ends exactly once, through its `done` callback: written (undefined) or a SendError.
 *
 * The bound covers every message accepted and not yet written: the entries queued here and the
 * frames already handed to the transport whose write has not completed (`inFlight`), counted in
 * frames and in bytes. A server that stops reading therefore fills the outbox while the client is
 * Open, and the overflow strategy applies, instead of the transport's buffer growing without end.
 */
import { SendError } from "../../Errors.js"
import type { Message } from "../../Transport.js"

export type Overflow = "fail" | "dropOldest" | "suspend"

export interface Entry {
  readonly payload: Message
  /**
   * Its size, counted once when it was offered: the bounds settle by this number, never by the
   * payload again (a buffer the sender reuses or transfers after `enqueue` must not skew them).
   */
  readonly bytes: number
  /** Called once: with undefined when written, or with the error. */
  readonly done: (error: SendError | undefined) => void
}

interface Blocked {
  readonly entry: Entry
  readonly admitted: () => void
}

// Never pushed to: replaced by a new array first.
const NONE: Array<never> = []

export class Outbox {
  // The shared empty array until the first push: most idle clients never queue anything.
  private items: Array<Entry> = NONE
  private head = 0
  private blocked: Array<Blocked> = NONE
  /** Bytes of the queued entries. */
  private queuedBytes = 0
  /** Frames handed to the transport and not yet reported written (or failed), and their bytes. */
  inFlight = 0
  inFlightBytes = 0

  constructor(readonly capacity: number, readonly maxBytes: number, readonly overflow: Overflow) {}

  /**
   * An entry was queued: what the Client's outbound side (a subclass: one object per Client, not
   * two) does then, writing at once when it is connected.
   */
  protected outboxAdmitted(): void {}

  /** Senders waiting for room (`suspend`): a new message must not pass them. */
  get hasWaiting(): boolean {
    return this.blocked.length > 0
  }

  /** The bytes of the entries queued (not yet handed to the transport). */
  get bytesQueued(): number {
    return this.queuedBytes
  }

  /** Entries queued (not yet handed to the transport). */
  get size(): number {
    return this.items.length - this.head
  }

  /** Messages accepted and not written: queued plus in flight. */
  get pending(): number {
    return this.size + this.inFlight
  }

  /**
   * Whether a message of `bytes` fits: fewer than `capacity` messages pending, and their bytes
   * with this one within `maxBytes`. A message larger than `maxBytes` fits when nothing else is
   * pending, so no size of message is refused for good.
   */
  hasRoom(bytes: number): boolean {
    if (this.pending >= this.capacity) return false
    const pendingBytes = this.queuedBytes + this.inFlightBytes
    return pendingBytes === 0 || pendingBytes + bytes <= this.maxBytes
  }

  /** A frame of `bytes` was handed to the transport. */
  handedOff(bytes: number): void {
    this.inFlight++
    this.inFlightBytes += bytes
  }

  /** A frame handed to the transport was written or failed: its room is free again. */
  settled(bytes: number): void {
    this.inFlight--
    this.inFlightBytes -= bytes
    if (this.blocked.length > 0) this.admitBlocked()
  }

  /**
   * Adds an entry. When it is queued, `admitted` runs (synchronously if there is room). When the
   * outbox is full, by `overflow` (the outbox's own unless a caller asks for another): `fail` ends the entry with OutboxFull; `dropOldest` ends the oldest queued
   * entries with Dropped until this one fits (with nothing queued to drop, because everything
   * pending is already with the transport, this one fails with OutboxFull); `suspend` holds it
   * until there is room.
   */
  offer(entry: Entry, admitted: () => void, overflow: Overflow = this.overflow): void {
    const bytes = entry.bytes
    if (this.blocked.length === 0 && this.hasRoom(bytes)) {
      admitted()
      this.push(entry)
      return
    }
    switch (overflow) {
      case "fail":
        entry.done(new SendError({ reason: "OutboxFull", payload: entry.payload }))
        return
      case "dropOldest": {
        const dropped: Array<Entry> = []
        while (this.size > 0 && !this.hasRoom(bytes)) {
          // Safe: size > 0, so there is an oldest entry.
          dropped.push(this.items[this.head]!)
          this.shift()
        }
        if (!this.hasRoom(bytes)) {
          // Everything pending is with the transport already: nothing can make room now.
          this.unshiftAll(dropped)
          entry.done(new SendError({ reason: "OutboxFull", payload: entry.payload }))
          return
        }
        admitted()
        this.push(entry)
        for (const oldest of dropped) oldest.done(new SendError({ reason: "Dropped", payload: oldest.payload }))
        return
      }
      case "suspend":
        if (this.blocked === NONE) this.blocked = []
        this.blocked.push({ entry, admitted })
        return
    }
  }

  /** Removes an entry still queued or suspended (its sender was interrupted). */
  remove(entry: Entry): boolean {
    const blocked = this.blocked.findIndex((candidate) => candidate.entry === entry)
    if (blocked !== -1) {
      this.blocked.splice(blocked, 1)
      return true
    }
    const index = this.items.indexOf(entry, this.head)
    if (index === -1) return false
    this.items.splice(index, 1)
    this.queuedBytes -= entry.bytes
    this.admitBlocked()
    return true
  }

  /**
   * Everything queued, oldest first, counted as in flight from here: the caller hands each to the
   * transport, and `settled` frees its room (the caller settles at once what it could not write).
   * Suspended offers are admitted into whatever room is left.
   */
  handOffAll(): Array<Entry> {
    this.inFlight += this.size
    this.inFlightBytes += this.queuedBytes
    return this.takeAll()
  }

  /** Everything queued, oldest first; admits suspended offers into the room made. */
  private takeAll(): Array<Entry> {
    const taken = this.head === 0 ? this.items : this.items.slice(this.head)
    this.items = NONE
    this.head = 0
    this.queuedBytes = 0
    this.admitBlocked()
    return taken
  }

  /**
   * Frames handed to the transport came back unwritten (`notWritten`): queued again at the front,
   * in order, their room moved from in flight to queued, so the bounds are unchanged.
   */
  putBack(entries: ReadonlyArray<Entry>): void {
    for (const entry of entries) {
      this.inFlight--
      this.inFlightBytes -= entry.bytes
    }
    this.unshiftAll(entries)
  }

  /** Puts entries back at the front, in order. */
  unshiftAll(entries: ReadonlyArray<Entry>): void {
    if (entries.length === 0) return
    for (const entry of entries) this.queuedBytes += entry.bytes
    this.items = [...entries, ...this.items.slice(this.head)]
    this.head = 0
  }

  /** Fails every queued and suspended entry with `reason` (the client closed); returns their payloads. */
  failAll(reason: "Closed"): Array<Message> {
    const blocked = this.blocked
    this.blocked = NONE
    const entries = this.takeAll().slice()
    for (const { entry } of blocked) entries.push(entry)
    for (const entry of entries) entry.done(new SendError({ reason, payload: entry.payload }))
    return entries.map((entry) => entry.payload)
  }

  private push(entry: Entry): void {
    if (this.items === NONE) this.items = []
    this.items.push(entry)
    this.queuedBytes += entry.bytes
    this.outboxAdmitted()
  }

  private shift(): void {
    this.queuedBytes -= this.items[this.head]!.bytes
    this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }

  private admitBlocked(): void {
    while (this.blocked.length > 0 && this.hasRoom(this.blocked[0]!.entry.bytes)) {
      // Safe: the loop condition checked the array is not empty.
      const next = this.blocked.shift()!
      // Admitted before it is queued: queueing may write it at once, and a write that fails
      // must find it admitted.
      next.admitted()
      this.push(next.entry)
    }
  }
}
