/**
 * Page script for trialsRound10RpcBrowser.test.ts: an `@effect/rpc` `RpcClient` in the browser
 * whose socket is `effect-lifeline/platform`'s over `BrowserTransport.layer`, as a web app wires
 * it. `r10` opens rpc clients (over a Client of the page's, or over `LifelinePlatform.layer` shared
 * by two `RpcClient`s), starts calls and streams, and hands their outcomes to Node as plain data.
 * The API is the one of examples/rpc.ts, declared again here (that file imports the Node server).
 */
import * as Socket from "@effect/platform/Socket"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import type * as RpcClientError from "@effect/rpc/RpcClientError"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Cause, Effect, ExecutionStrategy, Exit, Layer, Logger, Schedule, Schema, Scope, Stream } from "effect"
import { BrowserTransport, Client } from "effect-lifeline/browser"
import * as LifelinePlatform from "effect-lifeline/platform"

/** examples/rpc.ts's API, the same tags and schemas. */
class Rpcs extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Add", { payload: { a: Schema.Number, b: Schema.Number }, success: Schema.Number }),
  Rpc.make("Wait", { payload: { millis: Schema.Number }, success: Schema.Number }),
  Rpc.make("Count", { payload: { to: Schema.Number }, success: Schema.Number, stream: true })
) {}

type RpcApi = RpcClient.RpcClient<RpcGroup.Rpcs<typeof Rpcs>, RpcClientError.RpcClientError>

/** How a call ended, as plain data. */
export type Outcome =
  | { readonly ok: unknown }
  | { readonly error: string }
  | { readonly interrupted: true }
  | { readonly defect: string }
  | { readonly hung: true }

/** An RpcClientError as `RpcClientError <reason> (<cause's cause tag> <code>)`, as round 8's tally. */
const describeError = (error: any): string =>
  error?._tag === "RpcClientError"
    ? `RpcClientError ${error.reason} (${error.cause?.cause?._tag} ${error.cause?.cause?.code})`
    : String(error?._tag ?? error)

const outcome = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return { ok: exit.value }
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") {
    const error = failure.value as { _tag?: string }
    return error._tag === "TimeoutException" ? { hung: true } : { error: describeError(error) }
  }
  if (Cause.isInterruptedOnly(exit.cause)) return { interrupted: true }
  return { defect: Cause.pretty(exit.cause).split("\n")[0]! }
}

const quiet = Logger.remove(Logger.defaultLogger)
const transport = Layer.merge(BrowserTransport.layer, quiet)

/** The rpc client's protocol: ndjson over `socket`, a short pause before it reads again. */
const protocol = <E, R>(socket: Layer.Layer<Socket.Socket, E, R>, serialization: Serialization = "ndjson") =>
  RpcClient.layerProtocolSocket({ retrySchedule: Schedule.spaced("50 millis") }).pipe(
    Layer.provide(socket),
    Layer.provide(serialization === "msgpack" ? RpcSerialization.layerMsgPack : RpcSerialization.layerNdjson)
  )

/** The wire format: ndjson (text frames) or MessagePack (binary frames). */
export type Serialization = "ndjson" | "msgpack"

interface Opened {
  readonly rpc: RpcApi
  readonly scope: Scope.CloseableScope
  readonly client?: Client.Client
  readonly states: Array<string>
}
const opened = new Map<string, Opened>()
const calls: Array<Promise<Outcome>> = []
/** Each stream's chunks as they arrive. */
const streamed: Array<Array<number>> = []

/** The Client's options: quick retries; no heartbeat unless given (e.g. the rpc Ping as its probe). */
const clientOptions = (url: string, heartbeat: Client.HeartbeatOptions | false = false) => ({
  url,
  retry: Schedule.spaced("50 millis"),
  minRetryDelay: "50 millis" as const,
  heartbeat
})

const bound = <A, E>(effect: Effect.Effect<A, E>, millis: number): Promise<Outcome> =>
  Effect.runPromise(Effect.exit(Effect.timeout(effect, millis))).then(outcome)

const r10 = {
  /** An RpcClient over the Socket of a lifeline Client of the page's (its states recorded). */
  open: (
    id: string,
    url: string,
    perConnection: boolean,
    serialization: Serialization = "ndjson",
    heartbeat: Client.HeartbeatOptions | false = false
  ): Promise<void> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const client = yield* Scope.extend(Client.make(clientOptions(url, heartbeat)), scope)
        const states: Array<string> = []
        yield* Effect.forkIn(
          Stream.runForEach(client.state.changes, (state) => Effect.sync(() => states.push(state._tag))),
          scope
        )
        const socket = Layer.succeed(Socket.Socket, LifelinePlatform.fromClient(client, { perConnection }))
        const context = yield* Layer.buildWithScope(protocol(socket, serialization), scope)
        const rpc = yield* Effect.provide(Scope.extend(RpcClient.make(Rpcs), scope), context)
        opened.set(id, { rpc, scope, client, states })
      }).pipe(Effect.provide(transport))
    ),
  /**
   * Two RpcClients, each with its own protocol, over ONE `LifelinePlatform.layer` (as two services
   * of an app built from the same layer value): ids `${id}-a` and `${id}-b`.
   */
  openTwo: (id: string, url: string, perConnection: boolean): Promise<void> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const socket = LifelinePlatform.layer({ ...clientOptions(url), perConnection })
        const memo = yield* Layer.memoize(socket).pipe(Scope.extend(scope))
        opened.set(id, { rpc: undefined as never, scope, states: [] })
        // Each RpcClient in a scope of its own (closing one leaves the other and the layer).
        for (const suffix of ["a", "b"]) {
          const own = yield* Scope.fork(scope, ExecutionStrategy.sequential)
          const context = yield* Layer.buildWithScope(protocol(memo), own)
          const rpc = yield* Effect.provide(Scope.extend(RpcClient.make(Rpcs), own), context)
          opened.set(`${id}-${suffix}`, { rpc, scope: own, states: [] })
        }
      }).pipe(Effect.provide(transport))
    ),
  /** A bare Client (no rpc) with an app-level heartbeat whose answer is `pong`; its states recorded. */
  openBare: (id: string, url: string, heartbeat: Client.HeartbeatOptions, pong: string): Promise<void> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const withPong = { ...heartbeat, isPong: (message: unknown) => message === pong }
        // A handshake that starts while the proxy is still blackholed is never answered: 2 s bounds it.
        const options = { ...clientOptions(url, withPong), connection: { openTimeout: "2 seconds" as const } }
        const client = yield* Scope.extend(Client.make(options), scope)
        const states: Array<string> = []
        yield* Effect.forkIn(
          Stream.runForEach(client.state.changes, (state) => Effect.sync(() => states.push(state._tag))),
          scope
        )
        opened.set(id, { rpc: undefined as never, scope, client, states })
      }).pipe(Effect.provide(transport))
    ),
  states: (id: string): ReadonlyArray<string> => opened.get(id)!.states,
  /** How many times the Client has been `tag`. */
  count: (id: string, tag: string): number => opened.get(id)!.states.filter((state) => state === tag).length,
  /** Starts a call (bounded by `millis`); its number, for `outcome`. */
  call: (id: string, name: "Echo" | "Add" | "Wait", payload: any, millis = 3_000): number => {
    const rpc = opened.get(id)!.rpc as any
    calls.push(bound(rpc[name](payload) as Effect.Effect<unknown, unknown>, millis))
    return calls.length - 1
  },
  /** Starts `count` calls at once; their numbers. */
  calls: (id: string, name: "Echo" | "Add" | "Wait", payloads: ReadonlyArray<any>, millis = 3_000) =>
    payloads.map((payload) => r10.call(id, name, payload, millis)),
  outcome: (n: number): Promise<Outcome> => calls[n]!,
  outcomes: (ns: ReadonlyArray<number>): Promise<Array<Outcome>> => Promise.all(ns.map((n) => calls[n]!)),
  /** Starts a Count stream (bounded); its number: `chunks(n)` what arrived so far, `outcome(m)` its end. */
  stream: (id: string, to: number, millis = 5_000): { readonly stream: number; readonly call: number } => {
    const got: Array<number> = []
    streamed.push(got)
    calls.push(bound(
      Stream.runForEach(opened.get(id)!.rpc.Count({ to }), (n) => Effect.sync(() => got.push(n))),
      millis
    ))
    return { stream: streamed.length - 1, call: calls.length - 1 }
  },
  chunks: (n: number): ReadonlyArray<number> => streamed[n]!,
  /** Echo until one is answered (each bounded 500 ms, 50 ms apart, at most 60 tries): how many failed first. */
  echoUntilAnswered: (id: string): Promise<number> =>
    Effect.runPromise(Effect.gen(function*() {
      const rpc = opened.get(id)!.rpc
      // Bounded by time (12 s), not by the count of calls: while the Client backs off (an attempt
      // made during the blackhole hangs until openTimeout, then a backoff) each call fails at once.
      const deadline = Date.now() + 12_000
      for (let failed = 0; failed < 400 && Date.now() < deadline; failed++) {
        const exit = yield* Effect.exit(Effect.timeout(rpc.Echo({ text: "probe" }), 500))
        if (Exit.isSuccess(exit)) return failed
        yield* Effect.sleep(50)
      }
      return -1
    })),
  close: (id: string): Promise<void> => Effect.runPromise(Scope.close(opened.get(id)!.scope, Exit.void)),
  online: (): boolean => navigator.onLine
}
;(globalThis as unknown as { r10: typeof r10 }).r10 = r10
;(globalThis as unknown as { pageReady: boolean }).pageReady = true

export type R10 = typeof r10
