/**
 * `@effect/rpc` over lifeline: an `RpcClient` whose socket is `effect-lifeline/platform`'s, so
 * its requests ride a Client that reconnects by itself, with the outbox and the heartbeat.
 *
 * `Rpcs` is the API (shared by client and server); `HandlersLive` its server side, served by
 * `examples/rpcServer.ts` (a `SocketServer` over `ws`). On the client, `RpcClient.make(Rpcs)` over
 * `RpcClient.layerProtocolSocket()` over `LifelinePlatform.layer({ url, perConnection: true })`:
 * with `perConnection`, a run of the socket ends when its connection drops, so the rpc client
 * fails the calls that were in flight (`RpcClientError` "Protocol") instead of waiting forever
 * for answers the restarted server will never send. docs/rpc.md has the table of what a call sees
 * across a server restart.
 *
 * Run: `npx tsx examples/rpc.ts` (starts its own rpc server on 127.0.0.1).
 */

import * as SocketServer from "@effect/platform/SocketServer"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import type * as RpcClientError from "@effect/rpc/RpcClientError"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Chunk, Console, Effect, Layer, Schedule, Schema, Stream } from "effect"
import { NodeTransport, Reconnect } from "effect-lifeline"
import * as LifelinePlatform from "effect-lifeline/platform"
import { layerRpcServer } from "./rpcServer.js"

/** The API: three calls and a stream. */
export class Rpcs extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Add", { payload: { a: Schema.Number, b: Schema.Number }, success: Schema.Number }),
  /** Answers after `millis`: a call that is still in flight when something goes wrong. */
  Rpc.make("Wait", { payload: { millis: Schema.Number }, success: Schema.Number }),
  /** 1, 2, ..., `to`. */
  Rpc.make("Count", { payload: { to: Schema.Number }, success: Schema.Number, stream: true })
) {}

/** The server side of `Rpcs`. */
export const HandlersLive = Rpcs.toLayer({
  Echo: ({ text }) => Effect.succeed(text),
  Add: ({ a, b }) => Effect.succeed(a + b),
  Wait: ({ millis }) => Effect.as(Effect.sleep(millis), millis),
  Count: ({ to }) => Stream.range(1, to)
})

/** The rpc server on `host:port` (port 0: the OS picks; read it from `SocketServer.SocketServer`). */
export const ServerLive = (options: { readonly port?: number } = {}) =>
  layerRpcServer(Rpcs, HandlersLive, { host: "127.0.0.1", ...options })

/**
 * The client's protocol: ndjson over the Socket of a lifeline Client for `url`.
 *
 * `perConnection: true` ends a run of the socket when its connection drops, which is how the rpc
 * client learns that the answers to its calls in flight are lost. The rpc client then waits
 * `retrySchedule` before it reads again; lifeline paces the reconnects itself (the next run waits
 * for the Client to be Open), so the rpc client's own pause can be short.
 */
export const ProtocolLive = (url: string, options: Partial<LifelinePlatform.Options> = {}) =>
  RpcClient.layerProtocolSocket({ retrySchedule: Schedule.spaced("50 millis") }).pipe(
    Layer.provide(LifelinePlatform.layer({
      url,
      retry: Reconnect.exponentialBackoff({ base: "200 millis", cap: "5 seconds" }),
      perConnection: true,
      ...options
    })),
    Layer.provide(RpcSerialization.layerNdjson),
    Layer.provide(NodeTransport.layer)
  )

/** The app: an echo, a sum and a stream, over one rpc client. */
export const main = (url: string): Effect.Effect<
  { readonly echo: string; readonly sum: number; readonly counted: ReadonlyArray<number> },
  RpcClientError.RpcClientError
> =>
  Effect.gen(function*() {
    const client = yield* RpcClient.make(Rpcs)
    const echo = yield* client.Echo({ text: "hello" })
    const sum = yield* client.Add({ a: 1, b: 2 })
    const counted = Chunk.toReadonlyArray(yield* Stream.runCollect(client.Count({ to: 3 })))
    return { echo, sum, counted }
  }).pipe(Effect.scoped, Effect.provide(ProtocolLive(url)))

if (import.meta.url === `file://${process.argv[1]}`) {
  const standalone = Effect.gen(function*() {
    const server = yield* SocketServer.SocketServer
    const address = server.address._tag === "TcpAddress"
      ? `${server.address.hostname}:${server.address.port}`
      : server.address.path
    yield* Console.log(`rpc server on ws://${address}`)
    const result = yield* main(`ws://${address}`)
    yield* Console.log(`Echo: ${result.echo}, Add: ${result.sum}, Count: ${result.counted.join(", ")}`)
  })
  Effect.runPromise(standalone.pipe(Effect.provide(ServerLive()))).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
