/**
 * `effect-lifeline/platform`: an `@effect/platform` `Socket.Socket` backed by a lifeline Client, so
 * anything written for `@effect/platform`'s Socket (its `run`, `runRaw` and `writer`, and what is
 * built on them) gains reconnects, the outbox, the heartbeat and typed errors. lifeline's errors
 * become the platform's `SocketError`s, lifeline's error as their `cause`: a close frame that ends
 * a run is a `SocketCloseError` (its `code` and `closeReason`), an open that times out
 * `SocketGenericError` "OpenTimeout", a refused or failed open "Open", anything else "Read"
 * (`socketErrorOf`).
 *
 * - `runRaw` / `run` wait for the Client to be Open, run `onOpen`, then hand the handler every
 *   message across reconnects, running `onOpen` again at each new connection (as the platform's
 *   runs it at each socket's open), until the Client is closed on purpose (they complete) or by
 *   an error (they fail with it). `onOpen` runs for one connection: what it writes goes on that
 *   connection (a Client from `Client.make`), and fails if that one is gone, rather than wait in
 *   the outbox for the next, whose own `onOpen` writes it again (so do fibers forked there, for
 *   as long as they live). A run that starts on a Client
 *   already closed by an error is first handed what the earlier connections delivered and nobody
 *   read, then fails; one that starts once it is closed for good (`close`, a `CloseEvent`), or
 *   while it is Suspended with `whenSuspended: "failFast"`, fails "Open" at once.
 * - `writer` sends through the Client (`SocketGenericError` "Write" with the `SendError`: the
 *   outbox's bounds apply, `OutboxFull` for concurrent writes past its capacity by default); a
 *   `Socket.CloseEvent` closes the Client with its code and reason, for good: later runs fail.
 * - Interrupting a run does not close the connection: the Client is the layer's.
 * - `perConnection: true`: a run reads one connection, as a platform WebSocket's does. When that
 *   connection drops, the run fails with the Client's error (after `reconnect`, "Read" with its
 *   `Connecting` state), and the next run waits for the next connection. What an earlier
 *   connection delivered and no run read is dropped when the next run starts (a Client from
 *   `Client.make`; its socket had gone with its run): such a Socket owns its Client's `messages`,
 *   and no other reader of that Client should read them. Request/response
 *   protocols need it: `@effect/rpc`'s `RpcClient` fails the calls in flight when its run fails,
 *   and would otherwise wait forever for answers a restarted server never sends.
 *
 * `@effect/platform` is an optional peer dependency, used only by this entry.
 *
 * @module effect-lifeline/platform
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Client, ClientError, ClientState, Options as ClientOptions } from "./Client.js"
import { make as makeClient } from "./Client.js"
import type { Connection } from "./Connection.js"
import { LiveClient } from "./internal/client/liveClient.js"
import { dropEarlier } from "./internal/primitives/successiveInbound.js"
import type { Message, Transport } from "./Transport.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface SocketOptions {
  /**
   * A run reads one connection: it fails when the connection drops (`SocketCloseError` for a close
   * frame, else `SocketGenericError` "Read"), instead of reading on across reconnects, and a run
   * that starts drops what earlier connections left unread. Default false.
   */
  readonly perConnection?: boolean | undefined
}

/**
 * The Client's options and the Socket's.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends ClientOptions, SocketOptions {}

const encoder = new TextEncoder()

/**
 * A lifeline error as the platform's, lifeline's own as `cause`: a close frame (its code, from
 * either side) is a `SocketCloseError`, as a platform WebSocket's close event is; an open that
 * timed out "OpenTimeout"; a refused or failed open "Open"; anything else `reason`.
 *
 * @since 0.1.0
 * @category errors
 */
export const socketErrorOf = (error: unknown, reason: "Read" | "Write" = "Read"): Socket.SocketError => {
  // Anything else (a state, untyped values) is no ClientError: none of these tags.
  const known = error as ClientError | undefined
  switch (known?._tag) {
    case "Disconnected": {
      // 1005 and 1006 are no close frame's codes (none came, or it had none), and 1015 is a TLS failure's.
      const { code, reason: closeReason } = known
      if (code === 1005 || code === 1006 || code === 1015) break
      // `cause` is no field of the platform's class: the Error's own `cause`, as the generic errors carry it.
      const fields: { reason: "Close"; code: number; closeReason?: string; cause: unknown } = {
        reason: "Close",
        code,
        cause: error,
        ...(closeReason === "" ? {} : { closeReason })
      }
      return new Socket.SocketCloseError(fields)
    }
    case "ConnectError":
    case "CircuitOpenError":
      return new Socket.SocketGenericError({ reason: "Open", cause: error })
    case "TimeoutError":
      if (known.operation === "open") return new Socket.SocketGenericError({ reason: "OpenTimeout", cause: error })
  }
  return new Socket.SocketGenericError({ reason, cause: error })
}

/** A Client Closed by an error: the run fails with it; closed on purpose, it ends. */
const closedByError = (state: ClientState): Effect.Effect<void, Socket.SocketError> =>
  state._tag === "Closed" && Option.isSome(state.error) ? Effect.fail(socketErrorOf(state.error.value)) : Effect.void

/** Why the connection a run read is gone: the Client's error when its state has one, else the state. */
const dropCause = (state: ClientState): unknown =>
  state._tag === "Backoff" || state._tag === "Suspended" ? state.error : state

/**
 * The link a run's `onOpen` runs for: its writes go on that connection (and fail once it is gone),
 * never through the outbox to a later link, whose own `onOpen` writes them again.
 */
const boundLink = FiberRef.unsafeMake<{ readonly client: Client; readonly connection: Connection } | undefined>(
  undefined
)

/** The connection of the Open `state` while it is still the Client's link (a Client from `Client.make`). */
const connectionOf = (client: Client, state: ClientState): Connection | undefined => {
  const session = client instanceof LiveClient ? client.openSession : undefined
  return session !== undefined && session.view === state ? session.opened.connection : undefined
}

/**
 * The `Socket.Socket` of a Client. Several `run`s may read at once (two `RpcClient`s, each with
 * its own protocol, over one layer): each gets every message that arrives while it reads. One of
 * them reads the Client's `messages` (which has a single consumer) for all; when it ends, another
 * takes over.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromClient = (client: Client, socketOptions: SocketOptions = {}): Socket.Socket => {
  const perConnection = socketOptions.perConnection === true
  // The runs under way, each as what it does with a message; one run at a time reads for them all.
  // A chunk is delivered in one step: a reading run interrupted between two of its messages would
  // take the rest of the chunk with it, and the run that takes over would never see them.
  const readers = new Set<(message: string | Uint8Array) => void>()
  const reader = Effect.unsafeMakeSemaphore(1)
  const readForAll = reader.withPermits(1)(
    Stream.runForEachChunk(client.messages, (chunk) =>
      Effect.sync(() => {
        for (const message of chunk) {
          for (const deliver of readers) deliver(message)
        }
      }))
  )
  const runRaw = <_, E = never, R = never>(
    handler: (_: string | Uint8Array) => Effect.Effect<_, E, R> | void,
    options?: { readonly onOpen?: Effect.Effect<void> | undefined }
  ): Effect.Effect<void, Socket.SocketError | E, R> =>
    Effect.scopedWith((scope) =>
      Effect.gen(function*() {
        const handlers = yield* Scope.extend(FiberSet.make<unknown, E>(), scope)
        const run = yield* FiberSet.runtime(handlers)<R>()
        // A throw fails this run (through its FiberSet), not the one reading for all.
        const deliver = (message: string | Uint8Array) => {
          try {
            const result = handler(message)
            if (Effect.isEffect(result)) run(result)
          } catch (defect) {
            run(Effect.die(defect))
          }
        }
        // `effect` with this run among the readers: handed every message read meanwhile.
        const asReader = <A>(effect: Effect.Effect<A>) =>
          Effect.acquireUseRelease(
            Effect.sync(() => readers.add(deliver)),
            () => effect,
            () => Effect.sync(() => readers.delete(deliver))
          )
        // Every message across reconnects; `messages` ends when the Client is closed, on purpose
        // or by an error (then the run fails with it, whichever of the two sees it first).
        const reading = Effect.zipRight(asReader(readForAll), Effect.flatMap(client.state.get, closedByError))
        const opened = yield* Effect.either(client.awaitOpen)
        if (opened._tag === "Left") {
          const now = yield* client.state.get
          // Not Closed by an error (closed on purpose for good, or Suspended with `failFast`):
          // the Socket cannot open, as a run that starts then is told.
          if (now._tag !== "Closed" || Option.isNone(now.error)) {
            return yield* Effect.fail(new Socket.SocketGenericError({ reason: "Open", cause: opened.left }))
          }
          // Closed by an error. perConnection: there is no connection to read. Otherwise what the
          // connections before delivered and nobody read comes first (a platform run gets the
          // frames before its socket's close), then the run fails with the error.
          if (perConnection) return yield* Effect.fail(socketErrorOf(opened.left))
          const handed = asReader(Effect.zipRight(readForAll, FiberSet.awaitEmpty(handlers)))
          return yield* Effect.raceFirst(
            Effect.zipRight(handed, Effect.fail(socketErrorOf(opened.left))),
            FiberSet.join(handlers)
          )
        }
        // The connection this run starts on (the Client has one state object per connection).
        const ours = yield* client.state.get
        // perConnection: what earlier connections left unread belonged to runs that ended with them.
        if (perConnection && client instanceof LiveClient) dropEarlier(client.inbound)
        const onOpen = options?.onOpen
        // `onOpen` for the link of `state`, its writes bound to that link's connection: a link
        // gone before or while it runs gets none (a later Open runs it for the next link), and a
        // write that would have waited in the outbox for that link fails instead of going twice.
        // A Client of another make: as it is, its writes through the Client.
        const openFor = (state: ClientState): Effect.Effect<void> => {
          if (onOpen === undefined || state._tag !== "Open") return Effect.void
          if (!(client instanceof LiveClient)) return onOpen
          const connection = connectionOf(client, state)
          return connection === undefined ? Effect.void : Effect.locally(onOpen, boundLink, { client, connection })
        }
        yield* openFor(ours)
        // Closed by an error (or, perConnection, the connection read is gone): what ends the
        // reading with a failure. Across reconnects, `onOpen` runs again at each new connection.
        const failed = Stream.runForEach(client.state.changes, (state) => {
          if (state._tag === "Closed") return closedByError(state)
          if (!perConnection) return state === ours ? Effect.void : openFor(state)
          if (state._tag === "Open" && state === ours) return Effect.void
          // The Client's error, or (a reconnect, a failover) the state it moved to at once.
          return Effect.fail(socketErrorOf(dropCause(state)))
        })
        return yield* Effect.raceFirst(Effect.raceFirst(reading, failed), FiberSet.join(handlers))
      })
    )

  const run = <_, E = never, R = never>(
    handler: (_: Uint8Array) => Effect.Effect<_, E, R> | void,
    options?: { readonly onOpen?: Effect.Effect<void> | undefined }
  ): Effect.Effect<void, Socket.SocketError | E, R> =>
    runRaw((data) => handler(typeof data === "string" ? encoder.encode(data) : data), options)

  const write = (chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> =>
    Socket.isCloseEvent(chunk)
      ? Effect.asVoid(client.close(chunk.code, chunk.reason))
      : Effect.flatMap(FiberRef.get(boundLink), (bound) =>
        Effect.mapError(
          // In a run's `onOpen`: on its link's connection.
          bound !== undefined && bound.client === client ? bound.connection.send(chunk) : client.send(chunk as Message),
          (error) => socketErrorOf(error, "Write")
        ))

  return {
    [Socket.TypeId]: Socket.TypeId,
    run,
    runRaw,
    writer: Effect.succeed(write)
  }
}

/**
 * Provides `Socket.Socket` from a Client made with `options` (and the Socket's `perConnection`),
 * for the life of the layer.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { NodeTransport } from "effect-lifeline"
 * import * as LifelinePlatform from "effect-lifeline/platform"
 *
 * const SocketLive = LifelinePlatform.layer({ url: "wss://example.com/rpc" }).pipe(Layer.provide(NodeTransport.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Socket.Socket, never, Transport> => {
  // `perConnection` is no Client option (the Client's checks ignore it): the options go as given.
  // Options that are not an object (untyped code) go too: the Client starts Closed naming them.
  const perConnection = (options as Partial<Options> | null | undefined)?.perConnection
  return Layer.scoped(Socket.Socket, Effect.map(makeClient(options), (client) => fromClient(client, { perConnection })))
}
