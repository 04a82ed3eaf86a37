/** A Transport over a real one whose sockets' `send` or `ping` a test replaces (to hold or fail writes, to stall after a probe). */
import { Either } from "effect"
import type { Transport } from "../../src/index.js"

type Socket = Transport.TransportSocket

/** Each socket the real transport opens, with the methods `replace` gives in place of its own. */
export const withSocket = (
  inner: Transport.Transport,
  replace: (socket: Socket) => Partial<Pick<Socket, "send" | "ping">>
): Transport.Transport => ({
  // Its checks of headers and tls, and its network, passed on.
  ...inner,
  open: (request, listener) =>
    Either.map(inner.open(request, listener), (socket) => ({
      readyState: () => socket.readyState(),
      protocol: () => socket.protocol(),
      bufferedAmount: () => socket.bufferedAmount(),
      close: (code, reason) => socket.close(code, reason),
      terminate: () => socket.terminate(),
      pause: () => socket.pause(),
      resume: () => socket.resume(),
      ping: () => socket.ping(),
      send: (data, callback) => socket.send(data, callback),
      ...replace(socket)
    }))
})

export const withSend = (
  inner: Transport.Transport,
  send: (socket: Socket, data: Transport.Message, callback?: (error?: Error) => void) => void
): Transport.Transport => withSocket(inner, (socket) => ({ send: (data, callback) => send(socket, data, callback) }))
