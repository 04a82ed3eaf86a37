// The socket plumbing TestServer and FaultProxy share: listening on 127.0.0.1 only, and closing
// servers and sockets so that no handle is left in the event loop once the effect completes.
import * as Effect from "effect/Effect"
import type * as Net from "node:net"

/** The only address the test kit ever listens on or connects to. */
export const LOOPBACK_HOST = "127.0.0.1"

/** An 'error' listener that keeps a socket's or server's errors from becoming uncaught exceptions. */
export const ignoreError = (): void => {}

/** Listens on `LOOPBACK_HOST`; port 0 picks an ephemeral one. */
export const listen = (server: Net.Server, port: number): Effect.Effect<void, NodeJS.ErrnoException> =>
  Effect.async<void, NodeJS.ErrnoException>((resume) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening)
      resume(Effect.fail(error))
    }
    const onListening = () => {
      server.off("error", onError)
      resume(Effect.void)
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(port, LOOPBACK_HOST)
  })

/**
 * Stops accepting right now (not when the effect runs), so nothing is accepted after the caller
 * destroys its sockets; the effect completes once the listening handle is released.
 */
export const closeNow = (server: Net.Server): Effect.Effect<void> => {
  if (!server.listening) return Effect.void
  const released = new Promise<void>((resolve) => server.close(() => afterCloseCallbacks(resolve)))
  return Effect.promise(() => released)
}

/** The sockets of a server that are not closed yet; each leaves the set on its 'close' event. */
export interface OpenSockets {
  /** starts tracking, and swallows the socket's errors */
  readonly add: (socket: Net.Socket) => void
  /** completes when every given socket has emitted 'close' (only then is its handle gone) */
  readonly awaitClosed: (sockets: ReadonlyArray<Net.Socket>) => Effect.Effect<void>
  /** destroys every open socket now; the effect completes when all have closed */
  readonly destroyAll: () => Effect.Effect<void>
}

/** An empty set of open sockets. */
export const makeOpenSockets = (): OpenSockets => {
  const open = new Set<Net.Socket>()
  const awaitOne = (socket: Net.Socket): Effect.Effect<void> =>
    Effect.async<void>((resume) => {
      if (!open.has(socket)) return resume(Effect.void)
      const onClose = () => resume(Effect.void)
      socket.once("close", onClose)
      return Effect.sync(() => socket.off("close", onClose))
    })
  const awaitClosed = (sockets: ReadonlyArray<Net.Socket>) =>
    Effect.forEach(sockets, awaitOne, { concurrency: "unbounded", discard: true })
  return {
    add: (socket) => {
      socket.on("error", ignoreError)
      open.add(socket)
      socket.on("close", () => open.delete(socket))
    },
    awaitClosed,
    destroyAll: () => {
      const closing = [...open]
      for (const socket of closing) socket.destroy()
      return awaitClosed(closing)
    }
  }
}

// A server's close callback runs on the next tick, before libuv releases the handle in the loop's
// close phase; an immediate queued from an immediate runs after that phase.
const afterCloseCallbacks = (callback: () => void): void => {
  setImmediate(() => setImmediate(callback))
}
