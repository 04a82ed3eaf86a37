/** A Transport that records every socket it creates, so a test can check each ends CLOSED. */
import { Either, Layer } from "effect"
import { NodeTransport, Transport } from "../../src/index.js"

export const makeRecordingTransport = (inner: Transport.Transport = NodeTransport.make) => {
  const sockets: Array<Transport.TransportSocket> = []
  const transport: Transport.Transport = {
    platform: inner.platform,
    open: (request, listener) => {
      const result = inner.open(request, listener)
      if (Either.isRight(result)) sockets.push(result.right)
      return result
    }
  }
  return { sockets, layer: Layer.succeed(Transport.Transport, transport) }
}
