// A service that runs out of file descriptors:
//   node --import tsx test/support/emfileChild.ts <url> <clients> <extra>
// Lowers its own soft RLIMIT_NOFILE (prlimit) to what it has open plus `clients` and a few, makes
// `clients` Clients to `url` (all Open), then takes every descriptor left (/dev/null), so that
// nothing is free. Then `extra` more Clients (the last one to `localhost`, which needs a
// descriptor for its lookup too) each make two attempts, which fail; the descriptors are given
// back and every extra Client must be Open. Prints one JSON line.
import { Duration, Effect, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { closeSync, openSync } from "node:fs"
import type { Client as ClientType } from "../../src/index.js"
import { Client } from "../../src/index.js"
import { describeError, emit, openDescriptors, quiet, strays, until, warnings } from "./opsChild.js"

const [url, clientsText, extraText] = process.argv.slice(2)
const clients = Number(clientsText)
const extra = Number(extraText)

const base = openDescriptors()
// Headroom for what the 30 Clients' first turns may open besides their sockets (none was seen),
// and for the extra Clients once the fill is given back: each needs one descriptor, and the fill
// takes every one left, so the headroom changes nothing until then. (With only 4 over the 30, the
// 5 extra Clients needed every descriptor freed; one held elsewhere left one of them failing
// EMFILE for good.)
const limit = base + clients + extra + 8
execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${limit}:`])

interface Attempt {
  readonly error: string
  readonly message: string
  readonly cause: string | undefined
}

const program = Effect.gen(function*() {
  const first: Array<ClientType.Client> = []
  for (let i = 0; i < clients; i++) first.push(yield* Client.make({ url: url! }))
  yield* Effect.forEach(first, (client) => client.awaitOpen, { discard: true })
  // Any transition of the first Clients from now on (none expected: they hold their descriptors).
  let firstLeftOpen = 0
  for (const client of first) {
    yield* Effect.forkDaemon(
      Stream.runForEach(client.state.changes, (state) => Effect.sync(() => state._tag !== "Open" && firstLeftOpen++))
    )
  }
  const afterClients = openDescriptors()
  // Take every descriptor left (bounded).
  const fillers: Array<number> = []
  let fillError = ""
  for (let i = 0; i < 1000; i++) {
    try {
      fillers.push(openSync("/dev/null", "r"))
    } catch (error) {
      fillError = String(Reflect.get(error as object, "code"))
      break
    }
  }
  const localhostUrl = url!.replace("127.0.0.1", "localhost")
  const attempts: Array<Array<Attempt>> = []
  // Each extra Client's Backoffs: [attempt, delay in ms].
  const series: Array<Array<[number, number]>> = Array.from({ length: extra }, () => [])
  const extras: Array<ClientType.Client> = []
  const started = performance.now()
  for (let i = 0; i < extra; i++) {
    const own: Array<Attempt> = []
    attempts.push(own)
    const client = yield* Client.make({ url: i === extra - 1 ? localhostUrl : url! })
    extras.push(client)
    yield* Effect.forkDaemon(Stream.runForEach(client.state.changes, (state) =>
      Effect.sync(() => {
        if (state._tag !== "Backoff") return
        const cause = Reflect.get(state.error, "cause")
        series[i]!.push([state.attempt, Duration.toMillis(state.delay)])
        own.push({
          error: describeError(state.error),
          message: state.error.message,
          cause: cause === undefined ? undefined : String(Reflect.get(cause as object, "code"))
        })
      })))
  }
  yield* until(() => attempts.every((own) => own.length >= 2), "two failed attempts on each extra Client")
  const twoAttemptsMs = performance.now() - started
  // An original Client still works meanwhile (a frame needs no descriptor).
  const echoed = yield* Effect.scoped(Effect.gen(function*() {
    const reader = yield* Effect.fork(Stream.runHead(first[0]!.messages))
    yield* first[0]!.send("still here")
    return yield* reader
  }))
  const seriesWhileFull = series.map((own) => [...own])
  for (const fd of fillers) closeSync(fd)
  const freed = performance.now()
  // Each extra Client opens at the end of the backoff it is in (at most the default cap, 30 s):
  // bounded by the longest delay seen plus 20 s for a loaded machine, rather than a fixed time.
  const longestDelay = Math.max(...series.map((own) => own.at(-1)?.[1] ?? 0))
  const reopened = yield* Effect.forEach(extras, (client) =>
    client.awaitOpen.pipe(
      Effect.timeout(longestDelay + 20_000),
      Effect.as(true),
      Effect.orElseSucceed(() => false)
    ))
  if (reopened.includes(false)) {
    // Which extra Clients never opened, where each stands and every attempt it made.
    const stuck = yield* Effect.forEach(extras, (client) => client.state.get)
    return yield* Effect.dieMessage(JSON.stringify({
      notOpen: reopened.flatMap((open, i) => open ? [] : [i]),
      states: stuck.map((state) =>
        state._tag === "Backoff" ? `Backoff ${state.attempt} ${describeError(state.error)}` : state._tag
      ),
      series,
      attempts: attempts.map((own) => own.slice(-2)),
      longestDelay,
      freedAfterMs: Math.round(freed - started)
    }))
  }
  const states = yield* Effect.forEach([...first, ...extras], (client) => client.state.get)
  const afterAll = openDescriptors()
  return {
    afterAll,
    base,
    limit,
    afterClients,
    fillers: fillers.length,
    fillError,
    attempts,
    seriesWhileFull,
    twoAttemptsMs: Math.round(twoAttemptsMs),
    recoverMs: Math.round(performance.now() - freed),
    echoed: echoed._tag === "Some" ? echoed.value : null,
    firstLeftOpen,
    open: states.filter((state) => state._tag === "Open").length,
    strays,
    warnings
  }
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(quiet))).then(
  (report) => emit(report),
  (error: unknown) => emit({ error: String(error) })
)
