/**
 * Page script for trialsRound13ConnectionBrowser.test.ts: a Connection over the browser transport
 * in Chromium, whose `sink` writes to a peer that stops reading and then dies. Chromium keeps a
 * closed socket's `bufferedAmount` (the WebSocket standard: it does not reset on close), which a
 * sink waiting for the buffer to drain must not wait on for good. Plain data crosses to Node.
 */
import { Cause, Effect, Exit, Fiber, Layer, Logger, Scope, Stream } from "effect"
import { BrowserTransport, Connection } from "effect-lifeline/browser"

const layer = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))

let writing: Fiber.RuntimeFiber<void, unknown> | undefined
let connection: Connection.Connection | undefined
const scope = Effect.runSync(Scope.make())

const describeExit = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") {
    const error = failure.value as { _tag: string; reason?: string }
    return `${error._tag} ${String(error.reason)}`
  }
  return Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "defect"
}

export const r13 = {
  /** Opens and starts a sink of 200 frames of 100 kB (mark 64 KiB); resolves once it waits, with over the mark buffered. */
  start: (url: string): Promise<number> =>
    Effect.runPromise(Effect.gen(function*() {
      connection = yield* Connection.connect(url, { writeHighWaterMark: 64 * 1024, closeTimeout: "200 millis" }).pipe(
        Scope.extend(scope),
        Effect.provide(layer)
      )
      const frames = Stream.range(1, 200).pipe(Stream.map((index) => `${index} ${"y".repeat(100_000)}`))
      writing = Effect.runFork(Stream.run(frames, connection.sink))
      // The kernel's buffers fill, then the sink waits with over the mark in the browser's buffer:
      // 20 looks in a row over it. The last of them is the answer: a look after it may find less,
      // as Chromium's network process takes bytes on in steps (38,009 B once, in a loaded run).
      let over = 0
      let buffered = 0
      for (let poll = 0; poll < 1000 && over < 20; poll++) {
        buffered = yield* connection.bufferedAmount
        over = buffered > 64 * 1024 ? over + 1 : 0
        if (over < 20) yield* Effect.sleep("5 millis")
      }
      return over < 20 ? -1 : buffered
    })),
  /** Once the peer is gone: how the connection ended, and how the sink ended (bounded: 3 s). */
  finish: (): Promise<{ closed: number; readyState: number; buffered: number; sink: string }> =>
    Effect.runPromise(Effect.gen(function*() {
      const closed = yield* connection!.closed
      const ended = yield* Fiber.await(writing!).pipe(Effect.timeout("3 seconds"), Effect.option)
      if (ended._tag === "None") yield* Fiber.interrupt(writing!)
      yield* Scope.close(scope, Exit.void)
      return {
        closed: closed.code,
        readyState: yield* connection!.readyState,
        buffered: yield* connection!.bufferedAmount,
        sink: ended._tag === "None" ? "still waiting after 3 s" : describeExit(ended.value)
      }
    }))
}

Object.assign(globalThis, { r13, pageReady: true })
