/**
 * The rpc test kit of rpc.test.ts and userPatterns.test.ts: the example's RpcServer
 * (examples/rpcServer.ts) on 127.0.0.1 with the test's handlers, and an RpcClient over a lifeline
 * Client's `effect-lifeline/platform` Socket.
 */
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Effect, Exit, Layer, Schedule, Scope } from "effect"
import type { Client } from "effect-lifeline"
import * as LifelinePlatform from "effect-lifeline/platform"
import * as Example from "../../examples/rpc.js"
import { layerRpcServer } from "../../examples/rpcServer.js"

/**
 * Starts an rpc server on `port` (0: any) with `handlers`, in a scope of its own; `stop` closes
 * it as an app's shutdown does: the RpcServer ends the calls under way, every client gets a close
 * 1001 (100 ms for the handshake), then the listener closes. A port just freed may take a moment
 * to bind again: up to 50 tries, 10 ms apart.
 */
export const startRpcServer = (
  port: number,
  handlers: Layer.Layer<Rpc.ToHandler<RpcGroup.Rpcs<typeof Example.Rpcs>>>
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      layerRpcServer(Example.Rpcs, handlers, { host: "127.0.0.1", port, closeTimeout: "100 millis" }),
      scope
    ).pipe(
      Effect.tapError(() => Scope.close(scope, Exit.void)),
      Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.intersect(Schedule.recurs(50))))
    )
    const address = (yield* Effect.provide(SocketServer.SocketServer, context)).address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("not a TCP address")
    return { port: address.port, url: `ws://127.0.0.1:${address.port}`, stop: Scope.close(scope, Exit.void) }
  })

/** An RpcClient over the Socket of `client` (perConnection as given), for the test's scope; short rpc retry pause. */
export const rpcClient = (client: Client.Client, perConnection: boolean) =>
  Effect.gen(function*() {
    const protocol = yield* Layer.build(
      RpcClient.layerProtocolSocket({ retrySchedule: Schedule.spaced("20 millis") }).pipe(
        Layer.provide(Layer.succeed(Socket.Socket, LifelinePlatform.fromClient(client, { perConnection }))),
        Layer.provide(RpcSerialization.layerNdjson)
      )
    )
    return yield* Effect.provide(RpcClient.make(Example.Rpcs), protocol)
  })

/** Client options that retry fast and probe nothing: the rpc tests' restarts take milliseconds. */
export const fast = { retry: Schedule.spaced("50 millis"), minRetryDelay: "50 millis", heartbeat: false } as const
