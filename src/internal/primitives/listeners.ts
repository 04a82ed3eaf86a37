/** A set of synchronous listeners, and a Stream over it: what the Client's `state` and `events` are built on. */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"

/** What `end` sends the listeners of streams: a stream ends on it (it is not emitted). */
const END: unique symbol = Symbol("lifeline/Listeners/end")

/** The listeners that streams registered: the only ones `end` calls (a module's set, no field per object). */
const streamListeners = new WeakSet<object>()

const never = (): boolean => false

/** Listeners called synchronously with each value; the set is made on first use. */
export class Listeners<A> {
  private set: Set<(value: A) => void> | undefined = undefined

  add(listener: (value: A) => void): () => void {
    const set = this.set ??= new Set()
    set.add(listener)
    return () => {
      set.delete(listener)
      // An empty set is dropped: a Client's `awaitOpen` listens only until Open, and an idle
      // Client's size is a target.
      if (set.size === 0 && this.set === set) this.set = undefined
    }
  }

  emit(value: A): void {
    const set = this.set
    if (set === undefined) return
    for (const listener of set) listener(value)
  }

  /**
   * A stream of `first()`, then of every value emitted while it runs. Both are taken in one
   * synchronous step, so no value falls between them. It ends at `end()`, after what was emitted
   * before it; made when `ended()` says the end has come already, it ends after `first()`.
   * `buffer`: how far a slow reader may fall behind (`sliding`: the oldest go).
   *
   * On a plain `Queue` that the listener offers to, in order, with no fiber per value (a
   * `Stream.asyncPush` brought Effect's `Mailbox`, a `Stream.asyncScoped` a fiber per value and its
   * runtime: about 1.5 KB gzip of a browser bundle that imports Effect by module paths, or whose
   * bundler tree-shakes Effect's index as Vite does).
   */
  stream(
    first: () => Iterable<A>,
    buffer: { readonly bufferSize: "unbounded" } | { readonly bufferSize: number; readonly strategy: "sliding" },
    ended: () => boolean = never
  ): Stream.Stream<A> {
    const capacity = buffer.bufferSize === "unbounded" ? Infinity : buffer.bufferSize
    return Stream.unwrapScoped(Effect.flatMap(
      capacity === Infinity ? Queue.unbounded<A | typeof END>() : Queue.bounded<A | typeof END>(capacity + 1),
      (queue) => {
        const offer = (value: A | typeof END) => {
          // Sliding: the oldest value goes to make room. The end has a place of its own, so a
          // stalled reader still gets the last `capacity` values before it.
          if (value !== END && Option.getOrElse(queue.unsafeSize(), () => 0) >= capacity) {
            Effect.runSync(Queue.poll(queue))
          }
          queue.unsafeOffer(value)
        }
        return Effect.as(
          Effect.acquireRelease(
            Effect.sync(() => {
              for (const value of first()) offer(value)
              if (ended()) {
                offer(END)
                return undefined
              }
              streamListeners.add(offer)
              return this.add(offer)
            }),
            (remove) => Effect.sync(() => remove?.())
          ),
          Stream.takeWhile(Stream.fromQueue(queue), (value): value is A => value !== END)
        )
      }
    ))
  }

  /** Ends every stream made by `stream` that runs now; plain listeners are not called. */
  end(): void {
    const set = this.set
    if (set === undefined) return
    for (const listener of set) {
      if (streamListeners.has(listener)) (listener as (value: A | typeof END) => void)(END)
    }
  }
}
