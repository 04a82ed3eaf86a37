/** A Transport that records every socket it creates, so a test can check each ends CLOSED. */
import { Effect, Either, Fiber, Layer } from "effect"
import { Connection, NodeTransport, Transport } from "../../src/index.js"
import { TestServer } from "../../src/testing/index.js"
import { withNoHandlesLeft } from "./handles.js"

export const makeRecordingTransport = (inner: Transport.Transport = NodeTransport.make) => {
  const sockets: Array<Transport.TransportSocket> = []
  const transport: Transport.Transport = {
    // Its checks of headers and tls, and its network, passed on.
    ...inner,
    open: (request, listener) => {
      const result = inner.open(request, listener)
      if (Either.isRight(result)) sockets.push(result.right)
      return result
    }
  }
  return { sockets, transport, layer: Layer.succeed(Transport.Transport, transport) }
}

/**
 * Runs `body` in its own scope, with the handle check, over a transport that records each socket
 * it opens (`body` gets the live list); returns every socket's readyState once the scope closed.
 */
export const recordingSockets = <A, E, R>(
  body: (sockets: ReadonlyArray<Transport.TransportSocket>) => Effect.Effect<A, E, R>
) =>
  Effect.suspend(() => {
    const recording = makeRecordingTransport()
    return withNoHandlesLeft(body(recording.sockets)).pipe(
      Effect.provide(recording.layer),
      Effect.map(() => recording.sockets.map((socket) => socket.readyState()))
    )
  })

/**
 * Opens through `inner` against a server that never answers the handshake, interrupts the open
 * after 20 ms, and returns the readyState of every socket created (each must be CLOSED, 3).
 * `checkHandles` wraps the scope in the handle check (off where the platform leaks, see callers).
 */
export const interruptWhileConnecting = (inner: Transport.Transport, checkHandles: boolean) =>
  Effect.gen(function*() {
    const recording = makeRecordingTransport(inner)
    const run = Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.hangHandshake
      const fiber = yield* Effect.fork(Connection.connect(server.url).pipe(Effect.scoped))
      yield* Effect.sleep("20 millis")
      yield* Fiber.interrupt(fiber)
    })
    yield* (checkHandles ? withNoHandlesLeft(run) : Effect.scoped(run)).pipe(Effect.provide(recording.layer))
    return recording.sockets.map((socket) => socket.readyState())
  })
