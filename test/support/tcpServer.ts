/**
 * A TCP server on 127.0.0.1 (port 0) for hand-written peers: each accepted socket goes to
 * `onSocket`; released, every socket is destroyed and the server closed.
 */
import { Effect } from "effect"
import * as Crypto from "node:crypto"
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

/**
 * For a hand-written peer: `onRequest` gets a request's head (an upgrade's or any HTTP request's,
 * latin1 text up to and with the blank line) once it is whole, and the socket's `data` is the
 * peer's own from then on. The socket's errors are ignored.
 */
export const onRequestHead = (socket: Net.Socket, onRequest: (request: string) => void): void => {
  socket.on("error", () => {})
  let request = ""
  const onData = (data: Buffer) => {
    request += data.toString("latin1")
    if (!request.includes("\r\n\r\n")) return
    socket.off("data", onData)
    onRequest(request)
  }
  socket.on("data", onData)
}

/** The `Sec-WebSocket-Accept` that answers the request's `Sec-WebSocket-Key` (RFC 6455 §4.2.2). */
export const acceptFor = (request: string): string => {
  const key = /sec-websocket-key: *([^\r\n]*)/i.exec(request)?.[1]?.trim() ?? ""
  return Crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64")
}

/**
 * A hand-written WebSocket peer: once it has an upgrade request, `answer` gets the socket and a
 * correct 101 head (bytes), and what the socket does next is its own. Counts the requests.
 */
export const upgradingServer = (requests: { count: number }, answer: (socket: Net.Socket, head: Buffer) => void) =>
  tcpServer((socket) =>
    onRequestHead(socket, (request) => {
      requests.count++
      answer(
        socket,
        Buffer.from(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${
            acceptFor(request)
          }\r\n\r\n`,
          "latin1"
        )
      )
    })
  )
