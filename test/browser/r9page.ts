/**
 * Page script for trialsRound9Browser.test.ts: the page kit of test/browser/client.ts (`lab`, for
 * Clients in the page) and `r9`, what round 9 tried beyond it: a Client inside a dedicated or
 * shared module worker (test/browser/r9worker.ts, driven over a MessagePort), payloads a browser
 * app has at hand (Blob, ArrayBuffer, DataView, Float32Array, and values untyped code passes), a
 * large message with a small `maxMessageSize`, a subprotocol the server does not pick, and the
 * page's lifecycle events. Everything that crosses to Node is plain data.
 */
import { Cause, Chunk, Effect, Exit, Layer, Logger, Option, Schedule, Scope, Stream } from "effect"
import { BrowserTransport, Client } from "effect-lifeline/browser"
import type { Transport } from "effect-lifeline/browser"
import { WebSocket as PartySocket } from "partysocket"
import type { Wire } from "./client.js"

interface Port {
  onmessage: ((event: MessageEvent) => void) | null
  postMessage: (message: unknown) => void
}

let port: Port | undefined
let nextId = 0
const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
const workerErrors: Array<string> = []

/** An Exit as plain data: the error's tag and reason, or the defect. */
export type Outcome =
  | { readonly ok: true }
  | { readonly error: { readonly _tag: string; readonly reason?: string; readonly cause?: string } }
  | { readonly defect: string }

const outcome = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return { ok: true }
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") {
    const error = failure.value as { _tag: string; reason?: string; cause?: unknown }
    return {
      error: {
        _tag: error._tag,
        ...(error.reason === undefined ? {} : { reason: error.reason }),
        ...(error.cause === undefined ? {} : { cause: String(error.cause) })
      }
    }
  }
  return { defect: Cause.pretty(exit.cause).split("\n")[0]! }
}

const layer = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))
const run = <A, E>(effect: Effect.Effect<A, E, Transport.Transport | Scope.Scope>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.provide(effect, layer)))

const toWire = (message: string | Uint8Array): Wire =>
  typeof message === "string" ? { text: message } : { bytes: [...message] }

/** What the page saw of its own lifecycle, in order. */
const lifecycle: Array<string> = []
for (const type of ["pagehide", "pageshow", "freeze", "resume", "visibilitychange", "online", "offline"]) {
  addEventListener(type, (event) => {
    const persisted = (event as PageTransitionEvent).persisted
    lifecycle.push(
      type === "visibilitychange"
        ? `visibility:${document.visibilityState}`
        : persisted === undefined
        ? type
        : `${type}:${persisted}`
    )
  })
}
document.addEventListener("visibilitychange", () => lifecycle.push(`visibility:${document.visibilityState}`))
document.addEventListener("freeze", () => lifecycle.push("freeze"))
document.addEventListener("resume", () => lifecycle.push("resume"))

/**
 * partysocket's ReconnectingWebSocket given as the WebSocket constructor (it reconnects by itself),
 * as an app that already used it might: its retries made quick.
 */
class Party extends PartySocket {
  constructor(url: string, protocols?: string | Array<string>) {
    super(url, protocols, { minReconnectionDelay: 50, maxReconnectionDelay: 100 })
  }
}

interface Opened {
  readonly client: Client.Client
  readonly scope: Scope.CloseableScope
  readonly states: Array<Outcome & { readonly tag: string }>
  readonly messages: Array<Received>
}
/** A message as it crosses to Node: whole when short, else its kind (and type) and length. */
export type Received = Wire | { readonly kind: string; readonly length: number }
const opened = new Map<string, Opened>()

const stateOf = (state: Client.ClientState) => {
  const error = state._tag === "Backoff"
    ? Option.some(state.error)
    : state._tag === "Closed"
    ? state.error
    : Option.none()
  return Option.match(error, {
    onNone: () => ({ tag: state._tag, ok: true as const }),
    onSome: (error) => ({ tag: state._tag, ...outcome(Exit.fail(error)) })
  })
}

const r9 = {
  /** A Client with connection options (`protocols`, `maxMessageSize`...), its states and messages recorded. */
  open: (
    id: string,
    url: string,
    retryMillis: number,
    connection: Record<string, unknown> = {},
    constructor?: "partysocket"
  ): Promise<void> =>
    Effect.runPromise(Effect.provide(
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const client = yield* Scope.extend(
          Client.make({ url, retry: Schedule.spaced(retryMillis), minRetryDelay: retryMillis, connection }),
          scope
        )
        const entry: Opened = { client, scope, states: [], messages: [] }
        opened.set(id, entry)
        yield* Effect.forkIn(
          Stream.runForEach(client.state.changes, (state) => Effect.sync(() => entry.states.push(stateOf(state)))),
          scope
        )
        yield* Effect.forkIn(
          Stream.runForEach(client.messages, (message) =>
            Effect.sync(() =>
              entry.messages.push(
                message.length <= 64 ? toWire(message) : {
                  kind: typeof message === "string" ? "text" : Object.prototype.toString.call(message),
                  length: message.length
                }
              )
            )),
          scope
        )
      }),
      constructor === undefined
        ? layer
        : Layer.merge(
          BrowserTransport.layerWith(Party as unknown as BrowserTransport.WebSocketConstructor),
          Logger.remove(Logger.defaultLogger)
        )
    )),
  states: (id: string) => opened.get(id)!.states,
  /** The messages received: kinds and lengths only (a 10 MB message does not cross to Node). */
  received: (id: string): ReadonlyArray<Received> => opened.get(id)!.messages,
  sendSized: (id: string, kind: "text" | "bytes", length: number): Promise<Outcome> =>
    Effect.runPromise(
      Effect.exit(opened.get(id)!.client.send(kind === "text" ? "x".repeat(length) : new Uint8Array(length)))
    )
      .then(outcome),
  closeClient: async (id: string): Promise<void> => {
    const entry = opened.get(id)!
    opened.delete(id)
    await Effect.runPromise(Scope.close(entry.scope, Exit.void))
  },
  /**
   * A Client over `BrowserTransport.layerWith` and a constructor of the app's (a subclass of
   * WebSocket that counts what it made and sent, as a polyfill or an instrumented socket would):
   * sends, reads the echo, closes.
   */
  polyfill: (url: string): Promise<unknown> => {
    let made = 0
    let sent = 0
    class Counting extends WebSocket {
      constructor(url: string, protocols?: string | Array<string>) {
        super(url, protocols)
        made++
      }
      override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
        sent++
        super.send(data)
      }
    }
    return Effect.runPromise(Effect.scoped(Effect.provide(
      Effect.gen(function*() {
        const client = yield* Client.make({ url })
        yield* client.send("through the polyfill")
        const echo = yield* client.messages.pipe(Stream.take(1), Stream.runCollect, Effect.timeout(2_000))
        yield* client.close()
        return { made, sent, echo: Chunk.toArray(echo).map(toWire) }
      }),
      Layer.merge(BrowserTransport.layerWith(Counting), Logger.remove(Logger.defaultLogger))
    )))
  },
  /** On `pagehide`: `close(code, reason)` run as the page goes (`runFork`, or `runSync` to get the queued payloads back at once). */
  closeOnPagehide: (id: string, how: "fork" | "sync" | "promise"): void => {
    addEventListener("pagehide", () => {
      const close = opened.get(id)!.client.close(4000, "page hidden")
      if (how === "fork") {
        Effect.runFork(close)
        return
      }
      if (how === "promise") {
        Effect.runPromise(close).then((payloads) =>
          sessionStorage.setItem("r9-closed", JSON.stringify({ returned: payloads.length }))
        )
        return
      }
      const exit = Effect.runSyncExit(close)
      sessionStorage.setItem(
        "r9-closed",
        JSON.stringify(
          Exit.isSuccess(exit) ? { returned: exit.value.length } : { defect: Cause.pretty(exit.cause).split("\n")[0] }
        )
      )
    })
  },
  enqueueOn: (id: string, text: string): Promise<Outcome> =>
    Effect.runPromise(Effect.exit(opened.get(id)!.client.enqueue(text))).then(outcome),
  /** What the last `closeOnPagehide` with "sync" stored. */
  closedAtPagehide: (): unknown => JSON.parse(sessionStorage.getItem("r9-closed") ?? "null"),
  /** Adds a Content-Security-Policy meta element (Chromium applies one added after load). */
  csp: (policy: string): void => {
    const meta = document.createElement("meta")
    meta.httpEquiv = "Content-Security-Policy"
    meta.content = policy
    document.head.append(meta)
  },
  /** Starts the worker script as a dedicated or a shared module worker. */
  startWorker: (kind: "dedicated" | "shared"): void => {
    if (kind === "dedicated") {
      const worker = new Worker("/r9worker.js", { type: "module", name: "r9" })
      worker.onerror = (event) => workerErrors.push(`error: ${event.message}`)
      port = worker as unknown as Port
    } else {
      const shared = new SharedWorker("/r9worker.js", { type: "module", name: `r9-${Math.random()}` })
      shared.onerror = (event) => workerErrors.push(`error: ${(event as ErrorEvent).message}`)
      port = shared.port as unknown as Port
      shared.port.start()
    }
    port.onmessage = (event: MessageEvent) => {
      const { error, id, ok } = event.data as { id: number; ok?: unknown; error?: string }
      const waiting = pending.get(id)
      pending.delete(id)
      if (error === undefined) waiting?.resolve(ok)
      else waiting?.reject(new Error(error))
    }
  },
  /** Calls `lab[method]` (or the worker's own extras) in the worker. */
  worker: (method: string, args: ReadonlyArray<unknown>): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      pending.set(id, { resolve, reject })
      port!.postMessage({ id, method, args })
    }),
  /** Ends the dedicated worker at once (`Worker.terminate`), its Client with it. */
  terminateWorker: (): void => (port as unknown as Worker).terminate(),
  workerErrors: (): ReadonlyArray<string> => workerErrors,
  lifecycle: (): ReadonlyArray<string> => lifecycle,
  /**
   * Sends each kind of payload on an open Client (sending through `send`, then `enqueue`), then
   * a plain string: how each ended, and what came back (the server echoes).
   */
  payloads: (url: string, kinds: ReadonlyArray<string>): Promise<unknown> =>
    run(Effect.gen(function*() {
      const client = yield* Client.make({
        url,
        retry: Schedule.spaced(50),
        outbox: { capacity: 64, maxBytes: 64 * 1024 }
      })
      yield* client.awaitOpen
      const make = (kind: string): unknown => {
        switch (kind) {
          case "Blob":
            return new Blob([new Uint8Array([1, 2, 3])])
          case "ArrayBuffer":
            return new Uint8Array([4, 5, 6]).buffer
          case "DataView":
            return new DataView(new Uint8Array([0, 7, 8, 9, 0]).buffer, 1, 3)
          case "Float32Array":
            return new Float32Array([1.5])
          case "Uint8Array view":
            return new Uint8Array(new Uint8Array([0, 10, 11, 0]).buffer, 1, 2)
          case "number":
            return 42
          case "object":
            return { a: 1 }
          case "null":
            return null
          case "undefined":
            return undefined
          default:
            return kind
        }
      }
      const results: Array<{ kind: string; send: Outcome; enqueue: Outcome }> = []
      for (const kind of kinds) {
        const send = outcome(yield* Effect.exit(client.send(make(kind) as string)))
        const enqueue = outcome(yield* Effect.exit(client.enqueue(make(kind) as string)))
        results.push({ kind, send, enqueue })
      }
      // The link after them: a string still goes, and is echoed.
      const after = outcome(yield* Effect.exit(client.send("after")))
      const outboxSize = yield* client.outboxSize
      const echoed = yield* client.messages.pipe(
        Stream.takeUntil((message) => message === "after"),
        Stream.runCollect,
        Effect.timeout(2_000),
        Effect.map((chunk) => Chunk.toArray(chunk).map(toWire)),
        Effect.orElseSucceed(() => "timed out")
      )
      const failed = yield* client.failed
      yield* client.close()
      return { results, after, outboxSize, echoed, failed }
    }))
}

export type R9 = typeof r9

// The kit's `lab` (test/browser/client.ts sets it, and `pageReady`, as it loads). A dynamic import:
// the package's `sideEffects` list makes esbuild drop a bare `import "./client.js"`.
await import("./client.js")
Object.assign(globalThis, { r9 })
