/**
 * The inbound queue of one connection: filled from a socket callback without allocating per
 * message (one check-phase callback per turn in which it wakes the reader), drained by the
 * consumer a whole chunk at a time. When it reaches either bound, its capacity in frames or in
 * bytes (a single frame over the byte bound is still taken, then the bound is reached), it asks
 * the socket to pause, and resumes it once the consumer has taken everything.
 *
 * Waking the consumer costs a fiber resume, and in Node each socket read is its own callback, so
 * large frames (one per read) would wake it once per frame. The first message of an event-loop
 * turn wakes it at once (a lone reply is not delayed); messages that arrive later in the same
 * turn wake it once, in the check phase (`setImmediate`), as one chunk, unless the buffer is
 * half full (in frames or in bytes): then at once, so a source that cannot pause (a browser
 * socket) never overflows because a wake was held back. Where there is no `setImmediate`
 * (browsers), or it is a fake clock's (fake timers installed before this module loaded), every
 * message wakes it at once.
 */
import { Channel, Chunk, Effect, Option, Stream } from "effect"

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

const endTurn = <A>(buffer: InboundBuffer<A>): void => buffer.endTurn()

type Waiter<A> = (effect: Effect.Effect<Chunk.Chunk<A>, Option.Option<never>>) => void

const weightless = (): number => 0

export class InboundBuffer<A> {
  private items: Array<A> = []
  private bytes = 0
  // Made on first wait: most buffers of idle connections never have a waiter.
  private waiters: Array<Waiter<A>> | undefined = undefined
  private ended = false
  private paused = false
  // A wake happened this turn (a check-phase callback is pending), and one is owed to it.
  private turnPending = false
  private wakeOwed = false

  /** `weigh` gives an item's size in bytes (the default weighs nothing: only `capacity` bounds). */
  constructor(
    readonly capacity: number,
    private readonly source: InboundSource,
    readonly byteCapacity: number = Number.POSITIVE_INFINITY,
    private readonly weigh: (item: A) => number = weightless
  ) {}

  get size(): number {
    return this.items.length
  }

  /** True while the source is paused because the consumer is behind. */
  get isPaused(): boolean {
    return this.paused
  }

  /** From a socket callback. Never throws, never runs user code. */
  offer(item: A): void {
    if (this.ended) return
    const items = this.items
    items.push(item)
    const frames = items.length
    const bytes = this.bytes += this.weigh(item)
    if (!this.paused && (frames >= this.capacity || bytes >= this.byteCapacity)) this.full(frames)
    if (this.waiters === undefined || this.waiters.length === 0) return
    if (this.turnPending && frames * 2 < this.capacity && bytes * 2 < this.byteCapacity) {
      this.wakeOwed = true
      return
    }
    if (checkPhase !== undefined && !this.turnPending) {
      this.turnPending = true
      checkPhase(endTurn, this)
    }
    this.wakeOwed = false
    this.wakeOne()
  }

  /** A bound is reached (`frames` waiting in all). */
  private full(frames: number): void {
    this.paused = true
    if (this.source.pause()) return
    // A source that cannot pause (a browser) would grow without bound: end it instead. A lone
    // frame over the byte bound is let through, as Node delivers it before pausing.
    if (frames >= this.capacity || frames > 1) this.source.overflow()
    else this.paused = false
  }

  /** In the check phase after a wake: the messages that came later in that turn, as one chunk. */
  endTurn(): void {
    this.turnPending = false
    if (!this.wakeOwed) return
    this.wakeOwed = false
    this.wakeOne()
  }

  /** No more items will come; the consumer still receives what is buffered, then the end. */
  end(): void {
    if (this.ended) return
    this.ended = true
    const waiters = this.waiters ?? []
    this.waiters = undefined
    for (const waiter of waiters) waiter(this.pull)
  }

  /** Everything buffered, or waits for the next item; fails with None at the end. */
  get pull(): Effect.Effect<Chunk.Chunk<A>, Option.Option<never>> {
    return Effect.suspend(() => this.pullNow())
  }

  private pullNow(): Effect.Effect<Chunk.Chunk<A>, Option.Option<never>> {
    if (this.items.length > 0) return Effect.succeed(this.drain())
    if (this.ended) return Effect.fail(Option.none())
    return Effect.async<Chunk.Chunk<A>, Option.Option<never>>((resume) => {
      ;(this.waiters ??= []).push(resume)
      return Effect.sync(() => {
        const index = this.waiters?.indexOf(resume) ?? -1
        if (index !== -1) this.waiters?.splice(index, 1)
      })
    })
  }

  private wakeOne(): void {
    const waiter = this.waiters?.shift()
    if (waiter !== undefined) waiter(this.pull)
  }

  private drain(): Chunk.Chunk<A> {
    const chunk = Chunk.unsafeFromArray(this.items)
    this.items = []
    this.bytes = 0
    if (this.paused) {
      this.paused = false
      if (!this.ended) this.source.resume()
    }
    return chunk
  }
}

/**
 * The chunks `pull` returns (empty ones skipped), as a Stream that ends when `pull` fails with
 * None. One channel step per chunk: `Stream.repeatEffectChunkOption` wraps every chunk in an
 * Option, a tuple and two more effects, and costs the reader a few more microseconds a wake.
 */
export const streamOfPulls = <A>(pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<never>>): Stream.Stream<A> => {
  const next = Effect.orElseSucceed(pull, () => undefined)
  const loop: Channel.Channel<Chunk.Chunk<A>, unknown, never, unknown, void, unknown> = Channel.flatMap(
    Channel.fromEffect(next),
    (chunk) =>
      chunk === undefined ? Channel.void : Chunk.isEmpty(chunk) ? loop : Channel.flatMap(Channel.write(chunk), () => loop)
  )
  return Stream.fromChannel(loop)
}
