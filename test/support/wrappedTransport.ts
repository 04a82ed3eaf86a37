/** A Transport over a real one whose sockets' `send` a test replaces (to hold or fail writes). */
import { Either } from "effect"
import type { Transport } from "../../src/index.js"

export const withSend = (
  inner: Transport.Transport,
  send: (socket: Transport.TransportSocket, data: Transport.Message, callback?: (error?: Error) => void) => void
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
      send: (data, callback) => send(socket, data, callback)
    }))
})
