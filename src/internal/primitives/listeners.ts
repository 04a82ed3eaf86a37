/** A set of synchronous listeners, and a Stream over it: what the Client's `state` and `events` are built on. */
import * as Effect from "effect/Effect"
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
   */
  stream(
    first: () => Iterable<A>,
    buffer: Parameters<typeof Stream.asyncPush<A>>[1],
    ended: () => boolean = never
  ): Stream.Stream<A> {
    return Stream.asyncPush<A>((emit) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          for (const value of first()) emit.single(value)
          if (ended()) {
            emit.end()
            return undefined
          }
          const listener = (value: A | typeof END) => value === END ? emit.end() : emit.single(value)
          streamListeners.add(listener)
          return this.add(listener)
        }),
        (remove) => Effect.sync(() => remove?.())
      ), buffer)
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
