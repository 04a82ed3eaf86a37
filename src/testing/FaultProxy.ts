// Owns a TCP proxy on 127.0.0.1 that sits between a client and a server under test and can
// blackhole, delay, throttle or reset the traffic. Everything it opens is closed with its scope.
import type { Scope } from "effect"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import { closeNow, ignoreError, listen, LOOPBACK_HOST, makeOpenSockets } from "./internal/loopback.js"

/**
 * A live proxy and the knobs to degrade the network it simulates.
 *
 * @category models
 */
export interface FaultProxy {
  readonly port: number
  /** `ws://127.0.0.1:${port}` */
  readonly url: string
  /**
   * stop forwarding in both directions while keeping every TCP connection open (half-open peer); new
   * connections are accepted but nothing is forwarded. A FIN is still passed on: leaving is the
   * endpoint's choice, and it lets a client that gives up close its socket.
   */
  readonly blackhole: Effect.Effect<void>
  /** forward normally again (data swallowed while blackholed is lost) */
  readonly restore: Effect.Effect<void>
  /** delay each forwarded chunk by this many ms (0 = none); ordering preserved */
  readonly latency: (millis: number) => Effect.Effect<void>
  /**
   * destroy every current connection with a TCP RST on the client side (socket.resetAndDestroy())
   * and destroy the upstream; completes once all of them have closed
   */
  readonly reset: Effect.Effect<void>
  /**
   * limit forwarding to about this many bytes per second, per connection and direction
   * (undefined/0 = unlimited)
   */
  readonly throttle: (bytesPerSecond: number | undefined) => Effect.Effect<void>
  /** open client-side connections */
  readonly connections: Effect.Effect<number>
}

type Pending =
  | { readonly kind: "data"; bytes: Buffer; readonly dueAt: number }
  | { readonly kind: "end"; readonly dueAt: number }

/** One direction of one proxied connection: what was read from `source` and is owed to `sink`. */
interface Pipe {
  readonly source: Net.Socket
  readonly sink: Net.Socket
  readonly pending: Array<Pending>
  pendingBytes: number
  sourceEnded: boolean
  waitingForDrain: boolean
  /** throttling: when the next slice may be written */
  nextSendAt: number
  timer: ReturnType<typeof setTimeout> | undefined
}

interface Connection {
  readonly client: Net.Socket
  readonly upstream: Net.Socket
}

// Above this much delayed or throttled data the source is paused, so memory stays bounded.
const MAX_PENDING_BYTES = 1024 * 1024
// Throttled data is written in slices this often, so the rate is smooth at a coarse timer grain.
const THROTTLE_SLICES_PER_SECOND = 20
// Bounds one synchronous pump; the rest continues on the next timer turn.
const MAX_WRITES_PER_PUMP = 1024

/**
 * A TCP proxy on 127.0.0.1 in front of `127.0.0.1:targetPort`, closed with the scope.
 *
 * @category constructors
 */
export const make = (targetPort: number): Effect.Effect<FaultProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const sockets = makeOpenSockets()
    const connections = new Set<Connection>()
    const pipes = new Set<Pipe>()
    let blackholed = false
    let latencyMillis = 0
    let bytesPerSecond: number | undefined = undefined

    const updateFlow = (pipe: Pipe): void => {
      if (pipe.source.destroyed) return
      // While blackholed everything read is dropped, so keep reading: the peer sees a silent, open socket.
      const congested = pipe.waitingForDrain || pipe.pendingBytes > MAX_PENDING_BYTES
      if (!blackholed && congested) pipe.source.pause()
      else pipe.source.resume()
    }

    const schedulePump = (pipe: Pipe, delayMillis: number): void => {
      clearTimer(pipe)
      pipe.timer = setTimeout(() => {
        pipe.timer = undefined
        pump(pipe)
      }, delayMillis)
    }

    const pump = (pipe: Pipe): void => {
      clearTimer(pipe)
      for (let writes = 0; writes < MAX_WRITES_PER_PUMP; writes++) {
        const head = pipe.pending[0]
        if (head === undefined || pipe.waitingForDrain || pipe.sink.destroyed) return updateFlow(pipe)
        const now = performance.now()
        const readyAt = head.kind === "data" && bytesPerSecond !== undefined
          ? Math.max(head.dueAt, pipe.nextSendAt)
          : head.dueAt
        if (readyAt > now) {
          schedulePump(pipe, readyAt - now)
          return updateFlow(pipe)
        }
        if (head.kind === "end") {
          pipe.pending.shift()
          pipe.sink.end()
          continue
        }
        let bytes = head.bytes
        if (bytesPerSecond !== undefined) {
          const sliceBytes = Math.max(1, Math.floor(bytesPerSecond / THROTTLE_SLICES_PER_SECOND))
          if (bytes.length > sliceBytes) {
            head.bytes = bytes.subarray(sliceBytes)
            bytes = bytes.subarray(0, sliceBytes)
          } else {
            pipe.pending.shift()
          }
          pipe.nextSendAt = now + (bytes.length * 1000) / bytesPerSecond
        } else {
          pipe.pending.shift()
        }
        pipe.pendingBytes -= bytes.length
        if (!pipe.sink.write(bytes)) {
          pipe.waitingForDrain = true
          pipe.sink.once("drain", () => {
            pipe.waitingForDrain = false
            pump(pipe)
          })
        }
      }
      schedulePump(pipe, 0)
      updateFlow(pipe)
    }

    const onData = (pipe: Pipe, bytes: Buffer): void => {
      if (blackholed || pipe.sink.destroyed) return
      pipe.pending.push({ kind: "data", bytes, dueAt: performance.now() + latencyMillis })
      pipe.pendingBytes += bytes.length
      pump(pipe)
    }

    // A FIN is forwarded even while blackholed (see `blackhole`), after the data before it.
    const onEnd = (pipe: Pipe): void => {
      pipe.sourceEnded = true
      pipe.pending.push({ kind: "end", dueAt: performance.now() + latencyMillis })
      pump(pipe)
    }

    const onClose = (outgoing: Pipe, incoming: Pipe): void => {
      // Nothing can be delivered to a closed socket any more.
      clearTimer(incoming)
      dropPending(incoming, false)
      pipes.delete(incoming)
      // Its source may be paused waiting for a drain that will never come; it must still read its FIN.
      incoming.waitingForDrain = false
      updateFlow(incoming)
      // An orderly FIN lets what is still owed to the peer drain first; an abrupt close is passed on.
      if (!outgoing.sourceEnded) outgoing.sink.destroy()
    }

    const onConnection = (client: Net.Socket): void => {
      sockets.add(client)
      const upstream = Net.connect({ host: LOOPBACK_HOST, port: targetPort, allowHalfOpen: true })
      sockets.add(upstream)
      const connection: Connection = { client, upstream }
      connections.add(connection)
      const clientToUpstream = makePipe(client, upstream)
      const upstreamToClient = makePipe(upstream, client)
      pipes.add(clientToUpstream)
      pipes.add(upstreamToClient)
      client.on("data", (bytes) => onData(clientToUpstream, bytes))
      upstream.on("data", (bytes) => onData(upstreamToClient, bytes))
      client.on("end", () => onEnd(clientToUpstream))
      upstream.on("end", () => onEnd(upstreamToClient))
      client.on("close", () => {
        connections.delete(connection)
        onClose(clientToUpstream, upstreamToClient)
      })
      // Includes a failed connect: the client is then destroyed, as there is nothing to talk to.
      upstream.on("close", () => onClose(upstreamToClient, clientToUpstream))
    }

    const server = Net.createServer({ allowHalfOpen: true }, onConnection)
    server.on("error", ignoreError)

    const close = Effect.suspend(() => {
      const serverClosed = closeNow(server)
      for (const pipe of pipes) clearTimer(pipe)
      return Effect.all([serverClosed, sockets.destroyAll()], { concurrency: "unbounded", discard: true })
    })

    yield* Effect.acquireRelease(listen(server, 0).pipe(Effect.orDie), () => close)

    const address = server.address()
    if (address === null || typeof address === "string") {
      return yield* Effect.dieMessage("FaultProxy: the server reported no TCP address")
    }

    const pumpAll = (): void => {
      for (const pipe of pipes) pump(pipe)
    }

    return {
      port: address.port,
      url: `ws://${LOOPBACK_HOST}:${address.port}`,
      blackhole: Effect.sync(() => {
        blackholed = true
        for (const pipe of pipes) {
          dropPending(pipe, true)
          pump(pipe)
        }
      }),
      restore: Effect.sync(() => {
        blackholed = false
        pumpAll()
      }),
      latency: (millis) =>
        Effect.sync(() => {
          latencyMillis = Math.max(0, millis)
          pumpAll()
        }),
      reset: Effect.suspend(() => {
        const closing: Array<Net.Socket> = []
        for (const { client, upstream } of connections) {
          client.resetAndDestroy()
          upstream.destroy()
          closing.push(client, upstream)
        }
        return sockets.awaitClosed(closing)
      }),
      throttle: (rate) =>
        Effect.sync(() => {
          bytesPerSecond = rate === undefined || rate <= 0 ? undefined : rate
          pumpAll()
        }),
      connections: Effect.sync(() => connections.size)
    } satisfies FaultProxy
  })

const makePipe = (source: Net.Socket, sink: Net.Socket): Pipe => ({
  source,
  sink,
  pending: [],
  pendingBytes: 0,
  sourceEnded: false,
  waitingForDrain: false,
  nextSendAt: 0,
  timer: undefined
})

const clearTimer = (pipe: Pipe): void => {
  if (pipe.timer !== undefined) clearTimeout(pipe.timer)
  pipe.timer = undefined
}

const dropPending = (pipe: Pipe, keepEnd: boolean): void => {
  const ends = keepEnd ? pipe.pending.filter((item) => item.kind === "end") : []
  pipe.pending.splice(0, pipe.pending.length, ...ends)
  pipe.pendingBytes = 0
}
