/**
 * Page script for trialsRound19Chromium.test.ts: frames Chromium's `WebSocket.send` may refuse, a
 * Uint8Array whose buffer was transferred to a Worker (detached) and a view over a
 * SharedArrayBuffer (the page is served cross-origin isolated, so that it can make one), sent
 * raw, by a Connection (`write`, `send`) and by a Client over the browser transport. Plain data
 * crosses to Node.
 */
import { Cause, Chunk, Effect, Exit, Fiber, FiberStatus, Layer, Logger, Scope, Stream } from "effect"
import { BrowserTransport, Client, Connection } from "effect-lifeline/browser"

const layer = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))

export type Kind = "detached" | "shared"

/** One Worker for the page: a detached frame's buffer is transferred to it. */
let worker: Worker | undefined

/**
 * A SharedArrayBuffer: WebKitGTK 2.50 has no global `SharedArrayBuffer` even cross-origin isolated,
 * but a shared WebAssembly memory's buffer is one (its first 8 bytes are used).
 */
const sharedBuffer = (): ArrayBufferLike =>
  typeof SharedArrayBuffer === "function"
    ? new SharedArrayBuffer(8)
    : new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer

/** 8 bytes of 5, in the kind asked for. */
const frame = (kind: Kind): Uint8Array => {
  if (kind === "shared") return new Uint8Array(sharedBuffer(), 0, 8).fill(5)
  const view = new Uint8Array(8).fill(5)
  worker ??= new Worker(URL.createObjectURL(new Blob(["onmessage = () => {}"], { type: "text/javascript" })))
  worker.postMessage(view, [view.buffer])
  return view
}

/** What a send did: `ok`, or the error thrown (its name and message). */
export interface Thrown {
  readonly threw: boolean
  readonly name: string
  readonly message: string
}

const thrown = (run: () => void): Thrown => {
  try {
    run()
    return { threw: false, name: "", message: "" }
  } catch (error) {
    const e = error as { name?: string; message?: string }
    return { threw: true, name: String(e.name), message: String(e.message) }
  }
}

/** An exit as plain data: "success", "<_tag> <reason>", with whether the payload is the frame sent. */
export interface Outcome {
  readonly exit: string
  readonly payloadIsFrame: boolean
  /** The failure's cause's message ("" if none). */
  readonly cause: string
}

const outcome = (exit: Exit.Exit<unknown, unknown>, sent: unknown): Outcome => {
  if (Exit.isSuccess(exit)) return { exit: "success", payloadIsFrame: false, cause: "" }
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") {
    return { exit: Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "defect", payloadIsFrame: false, cause: "" }
  }
  const error = failure.value as { _tag: string; reason?: string; payload?: unknown; cause?: { message?: string } }
  return {
    exit: `${error._tag} ${String(error.reason)}`,
    payloadIsFrame: error.payload === sent,
    cause: String(error.cause?.message ?? "")
  }
}

const awaitTrue = (check: Effect.Effect<boolean>, what: string): Effect.Effect<void, Error> =>
  Effect.gen(function*() {
    for (let poll = 0; poll < 500; poll++) {
      if (yield* check) return
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.fail(new Error(`timed out waiting for ${what}`))
  })

let client: Client.Client | undefined
let large: Fiber.RuntimeFiber<void, unknown> | undefined
let refused: Fiber.RuntimeFiber<void, unknown> | undefined
let refusedFrame: Uint8Array | undefined
const clientScope = Effect.runSync(Scope.make())

export const refusedPage = {
  crossOriginIsolated: (): boolean => globalThis.crossOriginIsolated === true,

  /** Whether the global `SharedArrayBuffer` is there (WebKitGTK: not, even cross-origin isolated). */
  hasSharedArrayBuffer: (): boolean => typeof SharedArrayBuffer === "function",

  /** What a shared frame's buffer is (`Object.prototype.toString`), however it was made. */
  sharedKind: (): string => Object.prototype.toString.call(frame("shared").buffer),

  /** The platform alone: a raw WebSocket's `send` of the frame, then "after"; what it threw, and the frame's length then. */
  raw: (url: string, kind: Kind): Promise<{ thrown: Thrown; byteLength: number; buffered: number }> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url)
      socket.onerror = () => reject(new Error("the raw socket failed"))
      socket.onopen = () => {
        const view = frame(kind)
        const result = thrown(() => socket.send(view))
        const buffered = socket.bufferedAmount
        socket.send("after")
        resolve({ thrown: result, byteLength: view.byteLength, buffered })
      }
    }),

  /**
   * A Connection: `write` of the frame, then `send` of another, then "after" sent (the socket's
   * state before it), then two empty frames that are not detached.
   */
  connection: (
    url: string,
    kind: Kind
  ): Promise<{ write: Outcome; send: Outcome; readyState: number; after: string; empty: Array<string> }> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const connection = yield* Connection.connect(url)
        const first = frame(kind)
        const write = outcome(yield* Effect.exit(connection.write(first)), first)
        const second = frame(kind)
        const send = outcome(yield* Effect.exit(connection.send(second)), second)
        const readyState = yield* connection.readyState
        const after = outcome(yield* Effect.exit(connection.send("after")), "after").exit
        // Empty frames that are not detached still go: one of its own, one a view of none of a buffer.
        const empty = [
          outcome(yield* Effect.exit(connection.send(new Uint8Array(0))), undefined).exit,
          outcome(yield* Effect.exit(connection.send(new Uint8Array(8).subarray(4, 4))), undefined).exit
        ]
        return { write, send, readyState, after, empty }
      }).pipe(Effect.scoped, Effect.provide(layer))
    ),

  /**
   * A Client (mark 1 KiB): "one", "two", then a large frame that waits on the mark (the server does
   * not read), then the refused frame; resolves once the refused send has run.
   */
  clientStart: (url: string, kind: Kind, largeBytes: number): Promise<{ outboxSize: number; refused: string }> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const made = yield* Client.make({ url, connection: { writeHighWaterMark: 1024 } }).pipe(
          Scope.extend(clientScope),
          Effect.provide(layer)
        )
        client = made
        yield* made.awaitOpen
        yield* made.send("one")
        yield* made.send("two")
        large = Effect.runFork(made.send(new Uint8Array(largeBytes).fill(1)))
        yield* awaitTrue(Effect.map(made.outboxSize, (size) => size === 1), "the large frame waiting on the mark")
        refusedFrame = frame(kind)
        refused = Effect.runFork(made.send(refusedFrame))
        // Its send has run: failed at once, or waits on a completion.
        const fiber = refused
        yield* awaitTrue(
          Effect.map(
            Fiber.status(fiber),
            (status) => FiberStatus.isDone(status) || FiberStatus.isSuspended(status)
          ),
          "the refused send has run"
        )
        const done = yield* refused.poll
        return {
          outboxSize: yield* made.outboxSize,
          refused: done._tag === "None" ? "waiting" : outcome(done.value, refusedFrame).exit
        }
      })
    ),

  /** A Client whose app-level heartbeat message is the frame: its first three states, and the last one's error. */
  heartbeat: (url: string, kind: Kind): Promise<{ states: Array<string>; error: string; message: string }> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const made = yield* Client.make({
          url,
          heartbeat: { interval: "100 millis", timeout: "100 millis", message: frame(kind) }
        })
        const states = Chunk.toArray(
          yield* Stream.runCollect(Stream.take(made.state.changes, 3)).pipe(Effect.timeout("5 seconds"))
        )
        const last = states[states.length - 1]!
        const error = last._tag === "Closed" && last.error._tag === "Some" ? last.error.value : undefined
        return {
          states: states.map((state) => state._tag),
          error: error === undefined ? "" : `${error._tag} ${String((error as { reason?: string }).reason)}`,
          message: error === undefined ? "" : error.message
        }
      }).pipe(Effect.scoped, Effect.provide(layer))
    ),

  /** Once the server reads again: how each send ended, "after" sent, the Client's `failed`. */
  clientFinish: (): Promise<{ large: Outcome; refused: Outcome; after: string; failed: number }> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const bounded = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
          Fiber.await(fiber).pipe(
            Effect.timeout("5 seconds"),
            Effect.catchAll(() => Effect.succeed(Exit.die("still waiting after 5 s")))
          )
        const largeExit = yield* bounded(large!)
        const refusedExit = yield* bounded(refused!)
        const after = outcome(yield* Effect.exit(client!.send("after")), "after").exit
        const failed = yield* client!.failed
        yield* Scope.close(clientScope, Exit.void)
        return {
          large: outcome(largeExit, undefined),
          refused: outcome(refusedExit, refusedFrame),
          after,
          failed
        }
      })
    )
}

Object.assign(globalThis, { refusedPage, pageReady: true })
