/**
 * The inbound queue of one connection: filled from a socket callback without allocating per
 * message (one check-phase callback per turn in which it wakes the reader), drained by the
 * consumer a whole chunk at a time (one item at a time for the first few of each run of a stream
 * over it, `streamOfSteps`). When it reaches either bound, its capacity in frames or in
 * bytes (a single frame over the byte bound is still taken, then the bound is reached), it asks
 * the socket to pause, and resumes it once the consumer has taken everything. The buffers of one
 * Client's successive connections share one `InboundBudget`: the bounds are then on their total,
 * and what pauses is the current connection's socket.
 *
 * Waking the consumer costs a fiber resume, and in Node each socket read is its own callback, so
 * large frames (one per read) would wake it once per frame. The first message of an event-loop
 * turn wakes it at once (a lone reply is not delayed); when that message is large (16 KiB or
 * more, or of unknown size: a buffer that does not weigh its items), messages that arrive later in
 * the same turn wake it once, in the check phase (`setImmediate`), as one chunk, unless the buffer
 * is half full (in frames or in bytes): then at once, so a source that cannot pause (a browser
 * socket) never overflows because a wake was held back. A small message needs no such callback:
 * small frames come many to a socket read, and the reader, woken by the first, takes the rest of
 * that read in the same chunk; a lone small reply then costs no `setImmediate`. Where there is no
 * `setImmediate` (browsers), or it is a fake clock's (fake timers installed before this module
 * loaded), every message wakes it at once.
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

/** What the buffer asks of the socket that fills it. */
export interface InboundSource {
  /** The buffer is full; returns false when the source cannot pause. */
  readonly pause: () => boolean
  readonly resume: () => void
  /** The buffer is full and the source cannot pause. */
  readonly overflow: () => void
}

type Immediate = <T>(callback: (argument: T) => void, argument: T) => unknown

/**
 * Node's `setImmediate`, taken when the module loads: fake timers installed later do not hold a
 * wake back. Undefined in browsers, and when it is already a fake clock's (@sinonjs/fake-timers,
 * which vitest and jest use, marks its fakes with `clock`), which would never run it.
 */
const checkPhase: Immediate | undefined = (() => {
  const immediate: unknown = globalThis.setImmediate
  if (typeof immediate !== "function" || "clock" in immediate) return undefined
  return immediate as Immediate
})()

const endTurn = <A>(buffer: InboundQueue<A>): void => buffer.endTurn()

type Resume<A> = (effect: Effect.Effect<Chunk.Chunk<A>, Option.Option<never>>) => void

/** A reader waiting for the next item: its fiber, how to resume it, and whether it takes one item or all. */
interface Waiter<A> {
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  readonly resume: Resume<A>
  readonly one: boolean
}

const weightless = (): number => 0

/**
 * Frames at least this large (about a quarter of a socket read) hold the wakes of the rest of
 * their turn back to the check phase; smaller ones wake the reader at once.
 */
const LARGE_FRAME_BYTES = 16 * 1024

/** Where the connections of one Client get their shared budget (`acquireConnection`). */
export interface SharedInbound {
  /** The same budget for every call; made, with these bounds, on the first. */
  budgetFor(capacity: number, byteCapacity: number): InboundBudget
}

/**
 * The unread total of the inbound buffers of one Client's successive connections, held to one
 * bound in frames and in bytes: every buffer adds what it takes and subtracts what the consumer
 * drains. At the bound the current connection's socket pauses (a browser's is ended, as for one
 * buffer); a connection that opens while the total is at the bound starts paused; it resumes once
 * the consumer has taken everything. A buffer that the Client never adopted (its `onOpen` failed)
 * is discarded when the next connection opens, so its frames do not count forever.
 */
export class InboundBudget {
  frames = 0
  bytes = 0
  // The buffer of the connection that opened last: the one that receives, so the one to pause.
  private current: InboundQueue<unknown> | undefined = undefined
  // Opened but not yet adopted by the Client's reader.
  private pending: InboundQueue<unknown> | undefined = undefined

  constructor(public capacity: number, public byteCapacity: number) {}

  /** A connection opened: it receives from now on; paused at once if the total is at the bound. */
  opened(buffer: InboundQueue<unknown>): void {
    const pending = this.pending
    if (pending !== undefined && pending !== buffer) pending.discard()
    this.pending = buffer
    this.current = buffer
    if (this.frames >= this.capacity || this.bytes >= this.byteCapacity) buffer.pauseAtOpen()
  }

  /** The Client reads this buffer: its frames are delivered, never discarded. */
  adopted(buffer: InboundQueue<unknown>): void {
    if (this.pending === buffer) this.pending = undefined
  }

  /** The consumer took `frames` and `bytes`; with nothing left unread, the current socket resumes. */
  drained(frames: number, bytes: number): void {
    this.frames -= frames
    this.bytes -= bytes
    if (this.frames === 0) this.current?.resumeSource()
  }
}

// The buffer's states, one bit each in `flags` (one field, not five: idle memory per connection
// is a benchmark target). Subclasses may use the bits from FIRST_FREE_FLAG on.
const ENDED = 1
const PAUSED = 2
// Paused at open because the budget was at its bound, and not resumed since: takes nothing.
const HELD = 4
// A wake happened this turn (a check-phase callback is pending), and one is owed to it.
const TURN_PENDING = 8
const WAKE_OWED = 16
/** The first bit of `flags` an `InboundQueue` leaves to its subclasses. */
export const FIRST_FREE_FLAG = 32

/**
 * The buffer, without its source: a subclass is its own source (`pauseSource`, `resumeSource`,
 * `overflowSource`) and weighs its items (`weigh`), so that a connection's listener and its
 * inbound buffer are one object. `InboundBuffer` is the same over a separate `InboundSource`.
 */
export abstract class InboundQueue<A> {
  // Made by the first item after each drain: an idle buffer, and one just drained, hold no array.
  private items: Array<A> | undefined = undefined
  private bytes = 0
  // Made by a wait, and dropped by the wake: most buffers of idle connections never have a waiter.
  private waiters: Array<Waiter<A>> | undefined = undefined
  /** The bits above; a subclass keeps its own from `FIRST_FREE_FLAG` on. */
  protected flags = 0

  /** With a `budget`, the bounds are on the total of every buffer that shares it (the budget's). */
  constructor(
    readonly capacity: number,
    readonly byteCapacity: number,
    private readonly budget: InboundBudget | undefined
  ) {}

  /** The buffer is full; returns false when the source cannot pause. */
  protected abstract pauseSource(): boolean
  protected abstract resumeSourceNow(): void
  /** The buffer is full and the source cannot pause. */
  protected abstract overflowSource(): void
  /** An item's size in bytes. */
  protected abstract weigh(item: A): number

  /** An item of `size` bytes is small: it wakes the reader without holding back the rest of its turn. */
  protected isSmall(size: number): boolean {
    return size < LARGE_FRAME_BYTES
  }

  get size(): number {
    return this.items?.length ?? 0
  }

  /** Ended with nothing left to read. */
  get isDone(): boolean {
    return (this.flags & ENDED) !== 0 && this.items === undefined
  }

  /** True while the source is paused because the consumer is behind. */
  get isPaused(): boolean {
    return (this.flags & PAUSED) !== 0
  }

  /** From a socket callback. Never throws, never runs user code. */
  offer(item: A): void {
    if ((this.flags & (ENDED | HELD)) !== 0) return
    const items = this.items ??= []
    items.push(item)
    const size = this.weigh(item)
    this.bytes += size
    // The totals the bounds apply to: this buffer's, or those of every buffer of its budget.
    const budget = this.budget
    let frames: number
    let bytes: number
    if (budget === undefined) {
      frames = items.length
      bytes = this.bytes
    } else {
      frames = ++budget.frames
      bytes = budget.bytes += size
    }
    if ((this.flags & PAUSED) === 0 && (frames >= this.capacity || bytes >= this.byteCapacity)) this.full(frames)
    if (this.waiters === undefined || this.waiters.length === 0) return
    const turnPending = (this.flags & TURN_PENDING) !== 0
    if (turnPending && frames * 2 < this.capacity && bytes * 2 < this.byteCapacity) {
      this.flags |= WAKE_OWED
      return
    }
    if (checkPhase !== undefined && !turnPending && !this.isSmall(size)) {
      this.flags |= TURN_PENDING
      checkPhase(endTurn, this)
    }
    this.flags &= ~WAKE_OWED
    this.wakeAll()
  }

  /** A bound is reached (`frames` waiting in all). */
  private full(frames: number): void {
    this.flags |= PAUSED
    if (this.pauseSource()) return
    // A source that cannot pause (a browser) would grow without bound: end it instead. A lone
    // frame over the byte bound is let through, as Node delivers it before pausing.
    if (frames >= this.capacity || frames > 1) this.overflowSource()
    else this.flags &= ~PAUSED
  }

  /**
   * The connection opened while its budget was at the bound: pause before anything arrives, and
   * take nothing until resumed. ws hands over, when a paused socket closes, what Node had already
   * read from the kernel; taken, that would add up to a socket read per reconnect. A connection
   * that ends while held loses what it had not delivered, as any connection that drops does.
   */
  pauseAtOpen(): void {
    if ((this.flags & (ENDED | PAUSED)) !== 0) return
    // A source that cannot pause is ended by its first frame instead (`full`).
    if (this.pauseSource()) this.flags |= PAUSED | HELD
  }

  /** Resumes the source if it was paused because the consumer was behind. */
  resumeSource(): void {
    if ((this.flags & PAUSED) === 0) return
    this.flags &= ~(PAUSED | HELD)
    if ((this.flags & ENDED) === 0) this.resumeSourceNow()
  }

  /** The connection opened and is open for the budget. */
  opened(): void {
    this.budget?.opened(this as InboundQueue<unknown>)
  }

  /** The Client's reader takes this buffer on: its items are delivered, never discarded. */
  adopt(): void {
    this.budget?.adopted(this as InboundQueue<unknown>)
  }

  /** Nobody will read this buffer: drop what it holds (and its share of the budget) and end it. */
  discard(): void {
    const budget = this.budget
    if (budget !== undefined) {
      budget.frames -= this.items?.length ?? 0
      budget.bytes -= this.bytes
    }
    this.items = undefined
    this.bytes = 0
    this.end()
  }

  /** In the check phase after a wake: the messages that came later in that turn, as one chunk. */
  endTurn(): void {
    const owed = (this.flags & WAKE_OWED) !== 0
    this.flags &= ~(TURN_PENDING | WAKE_OWED)
    if (owed) this.wakeAll()
  }

  /** No more items will come; the consumer still receives what is buffered, then the end. */
  end(): void {
    if ((this.flags & ENDED) !== 0) return
    this.flags |= ENDED
    this.wakeAll()
  }

  /** Everything buffered, or waits for the next item; fails with None at the end. */
  get pull(): Effect.Effect<Chunk.Chunk<A>, Option.Option<never>> {
    return Effect.suspend(() => this.pullNow(false))
  }

  /** The oldest item alone (the others stay buffered), or waits for the next; fails with None at the end. */
  get pullOne(): Effect.Effect<Chunk.Chunk<A>, Option.Option<never>> {
    return Effect.suspend(() => this.pullNow(true))
  }

  private pullNow(one: boolean): Effect.Effect<Chunk.Chunk<A>, Option.Option<never>> {
    const items = this.items
    if (items !== undefined) return Effect.succeed(one && items.length > 1 ? this.takeOldest(items) : this.drain(items))
    if ((this.flags & ENDED) !== 0) return Effect.fail(Option.none())
    return Effect.withFiberRuntime((fiber) =>
      Effect.async<Chunk.Chunk<A>, Option.Option<never>>((resume) => this.wait(fiber, resume, one))
    )
  }

  /**
   * Records a waiting reader. The wait returns no canceler: one would wrap every wait in Effect's
   * interruption handler (`onInterrupt`: an uninterruptible region and a restore, about ten
   * operations), which cost the round trip more than anything else on the reader's side (12-23 us
   * a wake, bench/README.md). So a reader interrupted while it waits leaves its entry here; that
   * is harmless, for Effect ignores a resume once the wait was interrupted, and bounded: a wake
   * resumes every entry (the first live reader takes the items; any other reads nothing and waits
   * again), and each new wait drops the entries of its own fiber (a fiber waits in one place at a
   * time, so they are stale) and of fibers that have ended.
   */
  private wait(fiber: Fiber.RuntimeFiber<unknown, unknown>, resume: Resume<A>, one: boolean): void {
    // The fiber may have yielded between `pullNow`'s look and here (Effect's scheduler yields
    // between any two operations), and a socket callback offered meanwhile, or ended the buffer,
    // with no wait to wake: looked at again, or that item would wait for the next one.
    if (this.items !== undefined || (this.flags & ENDED) !== 0) return resume(one ? this.pullOne : this.pull)
    const waiters = this.waiters
    if (waiters === undefined) {
      this.waiters = [{ fiber, resume, one }]
      return
    }
    let kept = 0
    for (const waiter of waiters) {
      if (waiter.fiber !== fiber && waiter.fiber.unsafePoll() === null) waiters[kept++] = waiter
    }
    waiters.length = kept
    waiters.push({ fiber, resume, one })
  }

  /** Resumes every waiting reader (see `wait`): one live reader in the usual case. */
  private wakeAll(): void {
    const waiters = this.waiters
    if (waiters === undefined) return
    // Dropped first: a reader resumed at once (a synchronous scheduler) may wait again.
    this.waiters = undefined
    for (const waiter of waiters) waiter.resume(waiter.one ? this.pullOne : this.pull)
  }

  /** Takes the oldest of several items; the others stay, and so does the pause (not everything was taken). */
  private takeOldest(items: Array<A>): Chunk.Chunk<A> {
    // `shift` moves the others (V8 trims a large array's front in place): at most ONE_AT_A_TIME a run.
    const item = items.shift()!
    const size = this.weigh(item)
    this.bytes -= size
    if (this.budget !== undefined) this.budget.drained(1, size)
    return Chunk.of(item)
  }

  private drain(items: Array<A>): Chunk.Chunk<A> {
    const chunk = Chunk.unsafeFromArray(items)
    const bytes = this.bytes
    this.items = undefined
    this.bytes = 0
    if (this.budget !== undefined) this.budget.drained(chunk.length, bytes)
    else this.resumeSource()
    return chunk
  }
}

/** An `InboundQueue` over a separate source. */
export class InboundBuffer<A> extends InboundQueue<A> {
  /**
   * `weigh` gives an item's size in bytes (the default weighs nothing: only `capacity` bounds);
   * with a `budget`, the bounds are on the total of every buffer that shares it (the budget's).
   */
  constructor(
    capacity: number,
    private readonly source: InboundSource,
    byteCapacity: number = Number.POSITIVE_INFINITY,
    private readonly weighItem: (item: A) => number = weightless,
    budget: InboundBudget | undefined = undefined
  ) {
    super(capacity, byteCapacity, budget)
  }

  protected pauseSource(): boolean {
    return this.source.pause()
  }

  protected resumeSourceNow(): void {
    this.source.resume()
  }

  protected overflowSource(): void {
    this.source.overflow()
  }

  protected weigh(item: A): number {
    return this.weighItem(item)
  }

  // Without a weight, no item is known to be small: every turn's wakes are batched.
  protected override isSmall(size: number): boolean {
    return this.weighItem !== weightless && super.isSmall(size)
  }
}

/**
 * How many values each run of a stream of pulls takes one at a time (`pullOne`; a pong filtered
 * out, or a frame a codec skipped, is not counted) before it takes everything waiting as one
 * chunk. A reader that stops within them (`Stream.runHead`, `Stream.take(n)`, a `takeUntil` the
 * answer to a handshake) leaves the items after the last it was handed in the buffer, for the next
 * reader: handed a chunk, it would drop the rest of it with itself (Effect's `take` and
 * `Sink.head` keep what they need of a chunk and end). Each costs the reader a pull and a channel
 * step, about 10 µs, once per run (DESIGN.md, round 31).
 */
export const ONE_AT_A_TIME = 64

/**
 * The chunks `pull` returns (empty ones skipped), as a Stream that ends when `pull` fails with
 * None; each run takes its first `ONE_AT_A_TIME` items with `pullOne`. One channel step per chunk:
 * `Stream.repeatEffectChunkOption` wraps every chunk in an Option, a tuple and two more effects,
 * and costs the reader a few more microseconds a wake.
 */
export const streamOfPulls = <A>(
  pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<never>>,
  pullOne: Effect.Effect<Chunk.Chunk<A>, Option.Option<never>>
): Stream.Stream<A> =>
  streamOfSteps(Effect.orElseSucceed(pull, () => undefined), Effect.orElseSucceed(pullOne, () => undefined))

/**
 * The chunks `step` returns (empty ones skipped), as a Stream that ends at `undefined` and fails as
 * `step` fails; each run takes its first `ONE_AT_A_TIME` items from `stepOne` (a chunk of one).
 */
export const streamOfSteps = <A, E>(
  step: Effect.Effect<Chunk.Chunk<A> | undefined, E>,
  stepOne: Effect.Effect<Chunk.Chunk<A> | undefined, E>
): Stream.Stream<A, E> => {
  type Loop = Channel.Channel<Chunk.Chunk<A>, unknown, E, unknown, void, unknown>
  const all = Channel.fromEffect(step)
  const one = Channel.fromEffect(stepOne)
  return Stream.fromChannel(Channel.suspend(() => {
    // Per run: a stream value may be run again, and each run starts one at a time.
    let handed = 0
    const next = (): Loop => Channel.flatMap(handed < ONE_AT_A_TIME ? one : all, written)
    const written = (chunk: Chunk.Chunk<A> | undefined): Loop =>
      chunk === undefined ? Channel.void : Chunk.isEmpty(chunk) ? next() : Channel.flatMap(Channel.write(chunk), () => {
        handed += chunk.length
        return next()
      })
    return next()
  }))
}
