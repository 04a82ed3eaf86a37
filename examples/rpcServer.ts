/**
 * A `SocketServer.SocketServer` (from `@effect/platform`) over `ws`'s `WebSocketServer`, for
 * serving `@effect/rpc` with `RpcServer.layerProtocolSocketServer` where `@effect/platform-node`
 * is not installed. Copy it into your app: it depends on `ws`, `effect` and `@effect/platform`.
 *
 * - Every accepted WebSocket becomes a `Socket.Socket` (`Socket.fromWebSocket`) handed to the
 *   `run` handler in a fiber of its own; a connection that arrives before `run` waits for it.
 * - Each socket and the server keep an `'error'` listener for life, so no `'error'` event can find
 *   none and crash the process.
 * - When the handler ends or the server stops, the socket is closed with `closeCode` (default
 *   1001, "going away": a lifeline Client treats it as transient and reconnects). Stopping (the
 *   scope's end) closes every client, waits up to `closeTimeout` (default 1 s) for their close
 *   handshakes, destroys the stragglers, then closes the listener: bounded, and the port is free
 *   when the scope has closed.
 *
 * @example
 * const ServerLive = RpcServer.layer(MyRpcs).pipe(
 *   Layer.provide(MyHandlers),
 *   Layer.provide(RpcServer.layerProtocolSocketServer),
 *   Layer.provide(RpcSerialization.layerNdjson),
 *   Layer.provide(layerWebSocketServer({ host: "127.0.0.1", port: 8080 }))
 * )
 */
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import type { Scope } from "effect"
import { Cause, Deferred, Duration, Effect, Exit, FiberSet, Layer } from "effect"
import { WebSocketServer } from "ws"
import type { WebSocket } from "ws"

export interface Options {
  /** The address to listen on; default 127.0.0.1. */
  readonly host?: string
  /** The port; 0 (the default) lets the OS pick one: read it from `address`. */
  readonly port?: number
  /** A path the upgrade request must have (e.g. "/rpc"); default: any path. */
  readonly path?: string
  /** The close code sent when the handler ends or the server stops; default 1001. */
  readonly closeCode?: number
  /** How long stopping waits for the clients' close handshakes before destroying them; default 1 s. */
  readonly closeTimeout?: Duration.DurationInput
}

/**
 * A SocketServer listening on `options.host:options.port`, for the life of the scope.
 */
export const makeWebSocketServer = (
  options: Options = {}
): Effect.Effect<SocketServer.SocketServer["Type"], SocketServer.SocketServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const closeCode = options.closeCode ?? 1001
    const closeTimeout = Duration.decode(options.closeTimeout ?? "1 second")
    // An error of the listener after it is up: what ends `run`.
    const failed = yield* Deferred.make<never, SocketServer.SocketServerError>()

    const server = yield* Effect.acquireRelease(
      Effect.async<WebSocketServer, SocketServer.SocketServerError>((resume) => {
        const wss = new WebSocketServer({
          host: options.host ?? "127.0.0.1",
          port: options.port ?? 0,
          ...(options.path === undefined ? {} : { path: options.path })
        })
        const onListening = () => {
          wss.off("error", onOpenError)
          // Permanent: an error once listening fails `run`, never the process.
          wss.on(
            "error",
            (cause) =>
              Deferred.unsafeDone(failed, Exit.fail(new SocketServer.SocketServerError({ reason: "Unknown", cause })))
          )
          resume(Effect.succeed(wss))
        }
        const onOpenError = (cause: Error) => {
          wss.off("listening", onListening)
          wss.on("error", () => {})
          wss.close()
          resume(Effect.fail(new SocketServer.SocketServerError({ reason: "Open", cause })))
        }
        wss.once("listening", onListening)
        wss.once("error", onOpenError)
      }),
      (wss) => stop(wss, closeCode, closeTimeout)
    )

    // Connections that arrive while no `run` is active wait here (and leave if they close first).
    const pending = new Set<WebSocket>()
    const wait = (ws: WebSocket) => {
      pending.add(ws)
      ws.once("close", () => pending.delete(ws))
    }
    let onConnection = wait
    server.on("connection", (ws) => {
      ws.on("error", () => {})
      onConnection(ws)
    })

    const run = <R, E, _>(handler: (socket: Socket.Socket) => Effect.Effect<_, E, R>) =>
      Effect.scoped(Effect.gen(function*() {
        const fibers = yield* FiberSet.make()
        const runFork = yield* FiberSet.runtime(fibers)<R>()
        const serve = (ws: WebSocket) => {
          // Closed while it waited for `run`: nothing to serve.
          if (ws.readyState !== ws.OPEN) return
          Socket.fromWebSocket(
            Effect.acquireRelease(
              Effect.succeed(ws as unknown as globalThis.WebSocket),
              () => Effect.sync(() => ws.close(closeCode))
            )
          ).pipe(
            Effect.flatMap(handler),
            // One connection's failure is its own: log it at debug and serve the others.
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.void
                : Effect.logDebug("SocketServer: a connection's handler failed", cause)
            ),
            Effect.provideService(Socket.WebSocket, ws as unknown as globalThis.WebSocket),
            runFork
          )
        }
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            onConnection = wait
          })
        )
        onConnection = serve
        const waiting = [...pending]
        pending.clear()
        for (const ws of waiting) serve(ws)
        return yield* Deferred.await(failed)
      }))

    // Listening, so never null.
    const address = server.address()!
    return SocketServer.SocketServer.of({
      address: typeof address === "string"
        ? { _tag: "UnixAddress", path: address }
        : { _tag: "TcpAddress", hostname: address.address, port: address.port },
      run
    })
  })

/** Closes every client with `code`, destroys those still open after `timeout`, then the listener. */
const stop = (server: WebSocketServer, code: number, timeout: Duration.Duration): Effect.Effect<void> =>
  Effect.gen(function*() {
    const clients = [...server.clients]
    yield* Effect.forEach(clients, (ws) =>
      Effect.async<void>((resume) => {
        if (ws.readyState === ws.CLOSED) return resume(Effect.void)
        ws.once("close", () => resume(Effect.void))
        ws.close(code)
      }).pipe(
        // A release runs uninterruptibly: let the timeout cut the wait.
        Effect.interruptible,
        Effect.timeout(timeout),
        Effect.ignore
      ), { concurrency: "unbounded", discard: true })
    for (const ws of clients) ws.terminate()
    yield* Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
  })

/**
 * The SocketServer as a layer; `SocketServer.SocketServer` stays in the output, for its `address`.
 *
 * @example
 * const SocketServerLive = layerWebSocketServer({ host: "127.0.0.1", port: 8080 })
 */
export const layerWebSocketServer = (
  options: Options = {}
): Layer.Layer<SocketServer.SocketServer, SocketServer.SocketServerError> =>
  Layer.scoped(SocketServer.SocketServer, makeWebSocketServer(options))

/**
 * An `RpcServer` for `group` with its `handlers`, over ndjson, on a `layerWebSocketServer(options)`
 * (kept in the output, for its `address`).
 *
 * @example
 * const ServerLive = layerRpcServer(MyRpcs, MyHandlers, { port: 8080 })
 */
export const layerRpcServer = <Rpcs extends Rpc.Any, EH, RH>(
  group: RpcGroup.RpcGroup<Rpcs>,
  handlers: Layer.Layer<Rpc.ToHandler<Rpcs>, EH, RH>,
  options: Options = {}
) =>
  RpcServer.layer(group).pipe(
    Layer.provide(handlers),
    Layer.provide(RpcServer.layerProtocolSocketServer),
    Layer.provide(RpcSerialization.layerNdjson),
    Layer.provideMerge(layerWebSocketServer(options))
  )
