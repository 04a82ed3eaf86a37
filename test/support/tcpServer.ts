/**
 * A TCP server on 127.0.0.1 (port 0) for hand-written peers: each accepted socket goes to
 * `onSocket`; released, every socket is destroyed and the server closed.
 */
import { Effect } from "effect"
import * as Net from "node:net"

export interface TcpServer {
  readonly url: string
  readonly server: Net.Server
  readonly sockets: Set<Net.Socket>
}

export const tcpServer = (onSocket: (socket: Net.Socket) => void = () => {}) =>
  Effect.acquireRelease(
    Effect.async<TcpServer>((resume) => {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        onSocket(socket)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as Net.AddressInfo
        resume(Effect.succeed({ url: `ws://127.0.0.1:${address.port}`, server, sockets }))
      })
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )
