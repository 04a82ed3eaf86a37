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

/**
 * The real transport, counting the sockets it opens (`counter.opens`): the handshakes the Clients
 * started, counted when they start. A server's request count lags behind it on a loaded machine,
 * where the server reads a request long after the Client sent it (or gave up on it).
 */
export const countingOpens = (inner: Transport.Transport, counter: { opens: number }): Transport.Transport => ({
  ...inner,
  open: (request, listener) => {
    counter.opens++
    return inner.open(request, listener)
  }
})
