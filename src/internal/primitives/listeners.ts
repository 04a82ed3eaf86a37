/** A set of synchronous listeners, and a Stream over it: what the Client's `state` and `events` are built on. */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

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
   * synchronous step, so no value falls between them.
   */
  stream(first: () => Iterable<A>, buffer: Parameters<typeof Stream.asyncPush<A>>[1]): Stream.Stream<A> {
    return Stream.asyncPush<A>((emit) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          for (const value of first()) emit.single(value)
          return this.add((value) => emit.single(value))
        }),
        (remove) => Effect.sync(remove)
      ), buffer)
  }
}
