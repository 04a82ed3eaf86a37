// The body of a `worker_threads` Worker that runs lifeline, for round 17's trials (started by
// test/support/workerParent.ts). `workerData`: { mode, url, ... }. It posts to its parent:
//   { state: "<tag>" } at each Client state, { sent: n } / { note: "..." } where the mode says,
//   { stray: "..." } for anything uncaught in this thread, { done: {...} } once it ended by itself.
// It posts { ready: true } first, once its module is loaded.
// Modes:
// - "client": `Effect.runFork` of a scoped Client (closeTimeout 5 s, retry every 200 ms) that
//   posts its states; on "backlog" from the parent it makes 200 `enqueue`s of 64 KiB (a peer that
//   does not read fills the socket and the outbox), on "close" it calls `client.close()`.
// - "exitWhileOpen": once Open, and the parent posted anything, `process.exit(3)` in the worker.
// - "idle": `Effect.runFork` of a Client that reads `messages` and nothing else: the thread must
//   stay alive while it lives (through a Backoff too), and end by itself once it is Closed.
// - "crashPattern": 100 Clients closed while CONNECTING (a server that never answers the
//   upgrade), one after the other, then 100 compat ReconnectingWebSockets the same way; then
//   posts { done }, and the thread ends by itself.
// - "bridge": the Client's `messages` posted one by one on `workerData.port` (a MessagePort whose
//   other end the parent closes); counts what it posted and what failed; the parent then posts
//   "close" on the control channel and the worker reports.
// - "fleet": `count` Clients with the default schedule, each posting { open: i } at every Open.
// - "compat": a compat `ReconnectingWebSocket` (Node transport) to `url`; posts its readyState.
import { Effect, Fiber, Runtime, Schedule, Stream } from "effect"
import { type MessagePort, parentPort, workerData } from "node:worker_threads"
import { Client } from "../../src/index.js"
import { quietNode } from "./node.js"

const data = workerData as {
  readonly mode: string
  readonly url: string
  readonly port?: MessagePort
  readonly count?: number
}
const post = (message: unknown) => parentPort!.postMessage(message)

post({ ready: true })
process.on("uncaughtException", (error) => post({ stray: `uncaughtException ${String(error)}` }))
process.on("unhandledRejection", (error) => post({ stray: `unhandledRejection ${String(error)}` }))

const options = {
  url: data.url,
  retry: Schedule.spaced("200 millis"),
  connection: { closeTimeout: "5 seconds", openTimeout: "5 seconds" }
} as const

const watchStates = (client: Client.Client) =>
  Effect.forkDaemon(Stream.runForEach(client.state.changes, (state) =>
    Effect.sync(() =>
      post({
        state: state._tag,
        ...(state._tag === "Closed" && state.error._tag === "Some" ? { error: describe(state.error.value) } : {})
      })
    )))

const describe = (error: { readonly _tag: string }) =>
  error._tag === "Disconnected" ? `Disconnected ${Reflect.get(error, "code")}` : error._tag

if (data.mode === "client") {
  // Commands from the parent: "backlog" (200 `enqueue`s of 64 KiB), "close" (`client.close()`).
  Effect.runFork(
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make(options)
      yield* watchStates(client)
      const runtime = yield* Effect.runtime<never>()
      parentPort!.on("message", (command) => {
        if (command === "backlog") {
          Runtime.runFork(runtime)(Effect.gen(function*() {
            const frame = new Uint8Array(64 * 1024)
            let enqueued = 0
            for (let i = 0; i < 200; i++) {
              const queued = yield* Effect.either(client.enqueue(frame))
              if (queued._tag === "Right") enqueued++
            }
            post({ sent: enqueued, outbox: yield* client.outboxSize })
          }))
        }
        if (command === "close") {
          // runFork runs the close at once up to its first wait (the close handshake): the close
          // frame is handed to the socket before the parent hears "closing".
          Runtime.runFork(runtime)(client.close().pipe(Effect.tap(() => post({ note: "closed" }))))
          post({ note: "closing" })
        }
      })
      return yield* Effect.never
    })).pipe(Effect.provide(quietNode))
  )
} else if (data.mode === "exitWhileOpen") {
  Effect.runFork(
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make(options)
      yield* client.awaitOpen
      yield* client.send("before exit")
      post({ state: "Open" })
      parentPort!.once("message", () => process.exit(3))
      return yield* Effect.never
    })).pipe(Effect.provide(quietNode))
  )
} else if (data.mode === "idle") {
  // A Client and nothing else (no port listener, no timer of this script's own): the thread lives
  // as long as the Client does, and the program ends once `messages` ends (Closed by an error).
  Effect.runFork(
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make(options)
      yield* watchStates(client)
      let frames = 0
      yield* Stream.runForEach(client.messages, () => Effect.sync(() => frames++))
      post({ done: { frames, state: (yield* client.state.get)._tag } })
    })).pipe(Effect.provide(quietNode))
  )
} else if (data.mode === "crashPattern") {
  Effect.runFork(
    Effect.gen(function*() {
      let connecting = 0
      for (let i = 0; i < 100; i++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Client.make({ ...options, connection: { openTimeout: "10 seconds" } })
          yield* Stream.runDrain(Stream.takeUntil(client.state.changes, (state) => state._tag === "Connecting"))
          connecting++
          yield* client.close()
        }))
      }
      // The same with the compat facade: a ReconnectingWebSocket closed while CONNECTING, its
      // TCP connection under way (a few ms of real time after the constructor), 100 times.
      const { default: ReconnectingWebSocket } = yield* Effect.promise(() => import("../../src/compatNode.js"))
      const { default: WS } = yield* Effect.promise(() => import("ws"))
      const compat = { closeEvents: 0, errorEvents: 0, readyStates: [] as Array<number> }
      for (let i = 0; i < 100; i++) {
        const socket = new ReconnectingWebSocket(data.url, [], { WebSocket: WS, connectionTimeout: 10_000 })
        socket.addEventListener("close", () => compat.closeEvents++)
        socket.addEventListener("error", () => compat.errorEvents++)
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2)))
        socket.close()
        compat.readyStates.push(socket.readyState)
      }
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
      post({ done: { connecting, compat: { ...compat, readyStates: [...new Set(compat.readyStates)] } } })
    }).pipe(Effect.provide(quietNode))
  )
} else if (data.mode === "bridge") {
  const port = data.port!
  let posted = 0
  const failures: Array<string> = []
  const fiber = Effect.runFork(
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make(options)
      yield* watchStates(client)
      yield* Stream.runForEach(client.messages, (frame) =>
        Effect.sync(() => {
          try {
            port.postMessage(frame)
            posted++
          } catch (error) {
            failures.push(String(error))
          }
        }))
    })).pipe(Effect.provide(quietNode))
  )
  parentPort!.on("message", (message) => {
    if (message === "report") {
      post({ report: { posted, failures, state: fiber.unsafePoll() === null ? "running" : "ended" } })
    }
    if (message === "close") {
      parentPort!.unref()
      Effect.runFork(Fiber.interrupt(fiber).pipe(Effect.tap(() => post({ done: { posted, failures } }))))
    }
  })
} else if (data.mode === "fleet") {
  // `count` Clients (minUptime 200 ms: each outage starts a new backoff series), each posting
  // { open: i } at every Open.
  Effect.runFork(
    Effect.gen(function*() {
      for (let i = 0; i < (data.count ?? 1); i++) {
        const client = yield* Client.make({ url: data.url, minUptime: "200 millis" })
        yield* Effect.forkDaemon(
          Stream.runForEach(
            client.state.changes,
            (state) => Effect.sync(() => state._tag === "Open" && post({ open: i }))
          )
        )
      }
      return yield* Effect.never
    }).pipe(Effect.scoped, Effect.provide(quietNode))
  )
} else if (data.mode === "compat") {
  const { default: ReconnectingWebSocket } = await import("../../src/compatNode.js")
  const { default: WS } = await import("ws")
  const socket = new ReconnectingWebSocket(data.url, [], { WebSocket: WS, connectionTimeout: 5000 })
  post({ state: `readyState ${socket.readyState}` })
  socket.addEventListener("open", () => post({ state: "open" }))
}
