/**
 * The Transport on Node.js, over the `ws` library: handshake headers, `maxPayload`, HTTP status
 * and Retry-After of a rejected handshake, `terminate()`, `pause()`/`resume()`, protocol ping.
 *
 * @since 0.1.0
 */
import { Either, Layer, Option } from "effect"
import type { IncomingMessage } from "node:http"
import WebSocket from "ws"
import { classifyHandshakeError, hintFor } from "./internal/classifyHandshakeError.js"
import { parseRetryAfter } from "./internal/parseRetryAfter.js"
import type { ReadyState } from "./internal/protocol.js"
import { CLOSED, CONNECTING, OPEN } from "./internal/protocol.js"
import type { Message, OpenRequest, SocketListener, TransportSocket } from "./Transport.js"
import { Transport } from "./Transport.js"

const open = (request: OpenRequest, listener: SocketListener): Either.Either<TransportSocket, ReturnType<typeof classifyHandshakeError>> => {
  let socket: WebSocket
  try {
    socket = new WebSocket(request.url, [...request.protocols], {
      headers: request.headers,
      maxPayload: request.maxPayload,
      followRedirects: false
    })
  } catch (error) {
    // ws 8.x throws synchronously for a URL or subprotocol it rejects (SyntaxError).
    return Either.left(classifyHandshakeError(error))
  }
  return Either.right(attach(socket, listener))
}

const attach = (socket: WebSocket, listener: SocketListener): TransportSocket => {
  let opened = false
  let failed = false

  const fail = (failure: ReturnType<typeof classifyHandshakeError>): void => {
    if (opened || failed) return
    failed = true
    listener.onHandshakeFailure(failure)
  }

  // The permanent error sink of invariant 1. ws 8.x emits 'error' on the next tick after an abort
  // while CONNECTING ("WebSocket was closed before the connection was established"); this listener
  // is never removed, so that event always finds it and Node never throws it.
  socket.on("error", (error) => {
    if (opened) listener.onProtocolError(closeCodeOfProtocolError(error), error.message)
    else fail(classifyHandshakeError(error))
  })

  // With a listener here ws does not abort by itself: read the status and Retry-After, then abort.
  socket.on("unexpected-response", (_request, response: IncomingMessage) => {
    const status = response.statusCode ?? 0
    const header = response.headers["retry-after"]
    const retryAfter = parseRetryAfter(Array.isArray(header) ? header[0] : header, Date.now())
    fail({
      reason: "HandshakeRejected",
      detail: `the server answered HTTP ${status} instead of 101; ${hintFor("HandshakeRejected")}`,
      status,
      ...(Option.isSome(retryAfter) ? { retryAfter: retryAfter.value } : {})
    })
    socket.terminate()
  })

  socket.on("open", () => {
    opened = true
    listener.onOpen()
  })
  socket.on("message", (data, isBinary) => {
    listener.onMessage(toMessage(data, isBinary))
  })
  socket.on("pong", listener.onPong)
  socket.on("ping", listener.onPong)
  socket.on("close", (code, reason) => {
    listener.onClose(code, reason.toString(), code !== 1006)
  })

  const readyState = (): ReadyState => socket.readyState
  return {
    readyState,
    protocol: () => socket.protocol,
    bufferedAmount: () => socket.bufferedAmount,
    send: (data, callback) => socket.send(data, callback),
    close: (code, reason) => {
      if (socket.readyState !== CLOSED) socket.close(code, reason)
    },
    terminate: () => {
      if (socket.readyState !== CLOSED) socket.terminate()
    },
    pause: () => {
      if (socket.readyState === CONNECTING) return false
      socket.pause()
      return true
    },
    resume: () => {
      if (socket.readyState !== CONNECTING) socket.resume()
    },
    ping: () => {
      if (socket.readyState !== OPEN) return false
      socket.ping()
      return true
    }
  }
}

// ws 8.x with the default binaryType "nodebuffer" hands a Buffer (a Uint8Array) to 'message'.
const toMessage = (data: WebSocket.RawData, isBinary: boolean): Message => {
  const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
  return isBinary ? bytes : bytes.toString("utf8")
}

// ws 8.x tags receiver errors with a WS_ERR_* code and closes with the matching status code.
const closeCodeOfProtocolError = (error: Error): number => {
  const code = "code" in error ? error.code : undefined
  if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") return 1009
  if (code === "WS_ERR_INVALID_UTF8") return 1007
  return typeof code === "string" && code.startsWith("WS_ERR_") ? 1002 : 1006
}

/**
 * The Node.js transport as a service value.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Transport = { platform: "node", open }

/**
 * Provides `Transport` on Node.js, over `ws`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Transport> = Layer.succeed(Transport, make)
