/**
 * A slow uplink with backpressure, on 127.0.0.1: a TCP pipe in front of a server that reads the
 * client's bytes a chunk at a time, so the kernel's buffers fill behind it and the client's
 * writes move only as fast as the pipe reads. Used by heartbeatSlowLink.test.ts and
 * chromium.test.ts.
 */
import { Effect } from "effect"
import * as Net from "node:net"

export interface SlowPipe {
  readonly port: number
  /** Stops reading the client's bytes for good (the server side still answers what it got). */
  readonly stopReading: Effect.Effect<void>
}

/**
 * A TCP pipe on 127.0.0.1 in front of `targetPort`: the server's bytes pass at once; the client's
 * are read `chunk` bytes every `everyMillis` (the socket stays paused, so Node stops reading from
 * the kernel when its own small buffer is full), until `stopReading`. Closed with the scope.
 */
export const slowPipe = (targetPort: number, chunk: number, everyMillis: number) =>
  Effect.gen(function*() {
    const sockets = new Set<Net.Socket>()
    const timers = new Set<NodeJS.Timeout>()
    const state = { reading: true }
    // Node's own buffer for the paused socket holds up to `chunk`, so each tick can read a whole one.
    const server = Net.createServer({ highWaterMark: chunk }, (client) => {
      const upstream = Net.connect(targetPort, "127.0.0.1")
      sockets.add(client)
      sockets.add(upstream)
      client.pause()
      upstream.pipe(client)
      const timer = setInterval(() => {
        if (!state.reading || upstream.destroyed) return
        const available = client.readableLength
        if (available === 0) {
          client.read(0)
          return
        }
        const data: Buffer | null = client.read(Math.min(chunk, available))
        if (data === null) return
        upstream.write(data)
      }, everyMillis)
      timers.add(timer)
      const end = () => {
        clearInterval(timer)
        timers.delete(timer)
        client.destroy()
        upstream.destroy()
      }
      client.on("error", end).on("close", end)
      upstream.on("error", end).on("close", end)
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const timer of timers) clearInterval(timer)
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    return {
      port,
      stopReading: Effect.sync(() => {
        state.reading = false
      })
    } satisfies SlowPipe
  })
