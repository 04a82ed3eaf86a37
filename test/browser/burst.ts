/**
 * Page script for browserBurst.test.ts: a Client over the browser transport in Chromium, written to
 * faster than a peer that stopped reading takes it, by a burst of `enqueue`s and by a `sink`.
 * Plain data crosses to Node.
 */
import { Effect, Fiber, Layer, Logger, Option, Scope, Stream } from "effect"
import type { Client as ClientType } from "effect-lifeline/browser"
import { BrowserTransport, Client } from "effect-lifeline/browser"

const layer = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))
const scope = Effect.runSync(Scope.make())
let client: ClientType.Client | undefined
let writing: Fiber.RuntimeFiber<void, unknown> | undefined
let sunk = 0

const open = (url: string) =>
  Client.make({ url }).pipe(
    Effect.tap((made) => made.awaitOpen),
    Scope.extend(scope),
    Effect.provide(layer),
    Effect.tap((made) => Effect.sync(() => client = made))
  )

export const burst = {
  /** `count` enqueues of `size`-byte frames in a loop: the indices taken, and each refusal's tag and reason. */
  enqueue: (url: string, count: number, size: number): Promise<{ taken: Array<number>; refusals: Array<string> }> =>
    Effect.runPromise(Effect.gen(function*() {
      const made = yield* open(url)
      const taken: Array<number> = []
      const refusals = new Set<string>()
      for (let index = 0; index < count; index++) {
        const refused = yield* Effect.flip(made.enqueue(`${index}:${"x".repeat(size)}`)).pipe(Effect.option)
        if (Option.isNone(refused)) taken.push(index)
        else refusals.add(`${refused.value._tag} ${String(Reflect.get(refused.value, "reason"))}`)
      }
      return { taken, refusals: [...refusals] }
    })),
  /**
   * A sink of `count` frames of `size` bytes: resolves once it has taken nothing more for 300 ms
   * (held back) or has completed, bounded at 5 s, with how many it took.
   */
  sink: (url: string, count: number, size: number): Promise<{ done: boolean; taken: number }> =>
    Effect.runPromise(Effect.gen(function*() {
      const made = yield* open(url)
      const frames = Stream.range(0, count - 1).pipe(
        Stream.map((index) => `${index}:${"y".repeat(size)}`),
        Stream.tap(() => Effect.sync(() => sunk++))
      )
      writing = Effect.runFork(Stream.run(frames, made.sink))
      let last = -1
      let still = 0
      for (let poll = 0; poll < 500 && still < 30; poll++) {
        if (Option.isSome(yield* Fiber.poll(writing))) break
        still = sunk === last ? still + 1 : 0
        last = sunk
        yield* Effect.sleep("10 millis")
      }
      return { done: Option.isSome(yield* Fiber.poll(writing)), taken: sunk }
    })),
  /** The sink's end (bounded: 10 s), the Client's failures, then the Client closed. */
  finish: (): Promise<{ sink: string; failed: number; outbox: number }> =>
    Effect.runPromise(Effect.gen(function*() {
      const ended = writing === undefined
        ? Option.some("none")
        : yield* Fiber.await(writing).pipe(
          Effect.map((exit) => exit._tag),
          Effect.timeout("10 seconds"),
          Effect.option
        )
      const failed = yield* client!.failed
      const outbox = yield* client!.outboxSize
      yield* client!.close()
      return { sink: Option.getOrElse(ended, () => "still waiting after 10 s"), failed, outbox }
    }))
}

Object.assign(globalThis, { burst, pageReady: true })
