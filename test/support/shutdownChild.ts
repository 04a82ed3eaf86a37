// A service that shuts down on SIGTERM / SIGINT, three ways:
//   node --import tsx test/support/shutdownChild.ts <runFork|launch|complete> <urlA> <urlB> <urlC>
// - `runFork`: `Effect.runFork(program.pipe(Effect.provide(AppLive)))`, the signal interrupts the fiber;
// - `launch`: `Effect.runFork(Layer.launch(AppLive))` (the program a layer of it), interrupted;
// - `complete`: the signal completes a Deferred the program waits on: the app ends by itself.
// Three Clients, `closeTimeout` 2 s: A to a server that reads, B to one that (from "ready" on)
// does not read (nor answer a close frame), C to a port where nothing listens, with 2 `send`s
// (their own fibers) and 3 `enqueue`s waiting in its outbox. Prints "ready", then "signal N" for
// each signal (each one interrupts again, or completes again), then one JSON line once the app's
// fiber is done, and must exit by itself.
import { Context, Deferred, Effect, Exit, Fiber, FiberId, Layer, Stream } from "effect"
import { Client } from "../../src/index.js"
import { describeError, emit, quiet, strays, warnings } from "./opsChild.js"

const [how, urlA, urlB, urlC] = process.argv.slice(2)

class A extends Context.Tag("ops/A")<A, Client.Client>() {}
class B extends Context.Tag("ops/B")<B, Client.Client>() {}
class C extends Context.Tag("ops/C")<C, Client.Client>() {}

const connection = { closeTimeout: "2 seconds" } as const
const Clients = Layer.mergeAll(
  Client.layer(A, { url: urlA!, connection }),
  Client.layer(B, { url: urlB!, connection }),
  Client.layer(C, { url: urlC!, connection })
).pipe(Layer.provide(quiet))

const sends: Array<Fiber.RuntimeFiber<void, unknown>> = []
let messageFailed = 0
const clients: Array<Client.Client> = []
const stop = Deferred.unsafeMake<void>(FiberId.none)

/** What the app does once its Clients are up: greet A and B, queue 5 messages for C. */
const start = Effect.gen(function*() {
  const a = yield* A
  const b = yield* B
  const c = yield* C
  clients.push(a, b, c)
  yield* a.awaitOpen
  yield* b.awaitOpen
  yield* a.send("hello A")
  yield* b.send("hello B")
  // A watcher for the app's lifetime: it ends once C has closed.
  yield* Effect.forkDaemon(
    Stream.runForEach(c.events, (event) => Effect.sync(() => event._tag === "MessageFailed" && messageFailed++))
  )
  for (let i = 0; i < 2; i++) sends.push(yield* Effect.forkDaemon(c.send(`send ${i}`)))
  for (let i = 0; i < 3; i++) yield* c.enqueue(`enqueue ${i}`)
  yield* Effect.sync(() => emit("ready"))
})

const app: Effect.Effect<unknown, unknown> = how === "launch"
  ? Layer.launch(Layer.effectDiscard(start).pipe(Layer.provide(Clients)))
  : how === "runFork"
  ? Effect.zipRight(start, Effect.never).pipe(Effect.provide(Clients))
  : Effect.zipRight(start, Deferred.await(stop)).pipe(Effect.provide(Clients))

const fiber = Effect.runFork(app)
let signals = 0
let firstSignal = 0
const onSignal = (name: string) => () => {
  signals++
  if (signals === 1) firstSignal = performance.now()
  emit(`signal ${signals} ${name}`)
  if (how === "complete") Effect.runFork(Deferred.succeed(stop, undefined))
  else Effect.runFork(Fiber.interrupt(fiber))
}
process.on("SIGTERM", onSignal("SIGTERM"))
process.on("SIGINT", onSignal("SIGINT"))

fiber.addObserver((exit) => {
  const doneMs = performance.now() - firstSignal
  Effect.runPromise(Effect.gen(function*() {
    const outcomes: Record<string, number> = {}
    for (const send of sends) {
      const result = yield* Fiber.await(send)
      const key = Exit.isSuccess(result)
        ? "ok"
        : result.cause._tag === "Fail"
        ? describeError(result.cause.error as { _tag: string })
        : result.cause._tag
      outcomes[key] = (outcomes[key] ?? 0) + 1
    }
    const failed = yield* Effect.forEach(clients, (client) => client.failed)
    const states = yield* Effect.forEach(clients, (client) => Effect.map(client.state.get, (state) => state._tag))
    return {
      exit: Exit.isSuccess(exit) ? "Success" : Exit.isInterrupted(exit) ? "Interrupted" : "Failure",
      signals,
      sends: outcomes,
      messageFailed,
      failed,
      states,
      doneMs: Math.round(doneMs),
      strays,
      warnings
    }
  })).then((report) => {
    emit(report)
    // What is still open once the app is done (written after a turn: the release's last callbacks).
    setImmediate(() => emit({ resources: process.getActiveResourcesInfo() }))
  })
})
