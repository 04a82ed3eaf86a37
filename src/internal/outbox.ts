/**
 * The Client's outbox: bounded, FIFO across reconnects, with an overflow strategy. Every entry
 * ends exactly once, through its `done` callback: written (undefined) or a SendError.
 */
import { SendError } from "../Errors.js"
import type { Message } from "../Transport.js"

export type Overflow = "fail" | "dropOldest" | "suspend"

export interface Entry {
  readonly payload: Message
  /** Called once: with undefined when written, or with the error. */
  readonly done: (error: SendError | undefined) => void
}

interface Blocked {
  readonly entry: Entry
  readonly admitted: () => void
}

export class Outbox {
  private items: Array<Entry> = []
  private head = 0
  private blocked: Array<Blocked> = []
  /** Told after an entry is queued: the client writes at once when it is connected. */
  owner: { readonly outboxAdmitted: () => void } | undefined = undefined

  constructor(readonly capacity: number, readonly overflow: Overflow) {}

  get size(): number {
    return this.items.length - this.head
  }

  /**
   * Adds an entry. When it is queued, `admitted` runs (synchronously if there is room). When the
   * outbox is full: `fail` ends the entry with OutboxFull; `dropOldest` ends the oldest entry with
   * Dropped and queues this one; `suspend` holds it until the writer makes room.
   */
  offer(entry: Entry, admitted: () => void): void {
    if (this.size < this.capacity) {
      this.push(entry)
      admitted()
      return
    }
    switch (this.overflow) {
      case "fail":
        entry.done(new SendError({ reason: "OutboxFull", payload: entry.payload }, true))
        return
      case "dropOldest": {
        // Safe: the outbox is full, so it holds an oldest entry.
        const oldest = this.items[this.head]!
        this.shift()
        this.push(entry)
        admitted()
        oldest.done(new SendError({ reason: "Dropped", payload: oldest.payload }, true))
        return
      }
      case "suspend":
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
    this.admitBlocked()
    return true
  }

  /** Everything queued, oldest first; admits suspended offers into the room made. */
  takeAll(): Array<Entry> {
    const taken = this.head === 0 ? this.items : this.items.slice(this.head)
    this.items = []
    this.head = 0
    this.admitBlocked()
    return taken
  }

  /** Puts entries that could not be written back at the front, in order. */
  unshiftAll(entries: ReadonlyArray<Entry>): void {
    if (entries.length === 0) return
    this.items = [...entries, ...this.items.slice(this.head)]
    this.head = 0
  }

  /** Fails every queued and suspended entry with `reason` (the client closed); returns their payloads. */
  failAll(reason: "Closed"): Array<Message> {
    const blocked = this.blocked
    this.blocked = []
    const entries = this.takeAll()
    for (const { entry } of blocked) entries.push(entry)
    for (const entry of entries) entry.done(new SendError({ reason, payload: entry.payload }, true))
    return entries.map((entry) => entry.payload)
  }

  private push(entry: Entry): void {
    this.items.push(entry)
    this.owner?.outboxAdmitted()
  }

  private shift(): void {
    this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }

  private admitBlocked(): void {
    while (this.blocked.length > 0 && this.size < this.capacity) {
      // Safe: the loop condition checked the array is not empty.
      const next = this.blocked.shift()!
      this.push(next.entry)
      next.admitted()
    }
  }
}
