// Owns a real `ws` server on 127.0.0.1 for tests: scripted handshake faults, kill/restart on the
// same port, and a record of what it saw. Everything it opens is closed with its scope.
import type { Scope } from "effect"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import { createHash } from "node:crypto"
import * as Http from "node:http"
import * as Https from "node:https"
import type { Duplex } from "node:stream"
import { WebSocket, WebSocketServer } from "ws"
import { closeNow, ignoreError, listen, LOOPBACK_HOST, makeOpenSockets } from "./internal/loopback.js"

/**
 * A WebSocket message as the server sees it: text frames as strings, binary frames as bytes.
 *
 * @category models
 */
export type Message = string | Uint8Array

/**
 * A scripted handler: `reply` sends to the connection the message came from (nothing once it is
 * closed), which is `peer` (e.g. to answer by its request headers). A Promise or an Effect it
 * returns is run, and its failure fails that connection (1011); any other result is ignored (an
 * effect `Option` or `Either` is an Effect too: a `none` or `left` fails the connection).
 *
 * @category models
 * @since 0.2.0
 */
export type Handler = (
  message: Message,
  reply: (data: Message) => void,
  peer: Peer
) => unknown

/**
 * How the server behaves; every field is optional.
 *
 * @category models
 */
export interface Options {
  /**
   * What the server does with each inbound message; default "echo" (same data, same text/binary
   * kind). A function may reply at once, or return a Promise or an Effect (run in the test's
   * context, interrupted with the server's scope) and reply later. A handler that throws closes
   * that connection with 1011 "test handler threw"; one whose Promise rejects or whose Effect
   * fails or dies, with 1011 "test handler failed". Never an uncaught error in the process.
   */
  readonly handler?: "echo" | "ignore" | Handler | undefined
  /**
   * Runs for each connection when it is accepted, e.g. to push a feed's snapshot to every
   * (re)connected client with `peer.send`. May return a Promise or an Effect, as `handler`; a
   * throw or a failure closes that connection with 1011, as `handler`'s.
   *
   * @since 0.2.0
   */
  readonly onConnect?: ((peer: Peer) => unknown) | undefined
  /**
   * Keep every message in `received` (default true). A long run (a soak) turns it off so the test
   * kit's own memory does not grow; `received` is then always empty.
   */
  readonly record?: boolean | undefined
  /** ws server maxPayload, default 100 MiB */
  readonly maxPayload?: number | undefined
  /**
   * Subprotocols the server accepts: it picks the first one the client offers that is in this
   * list, and none if there is no match. Omitted: ws's default, the first one the client offers.
   */
  readonly protocols?: ReadonlyArray<string> | undefined
  /**
   * Serve wss:// with this certificate chain and key (PEM): an https server underneath, and `url`
   * starts with wss://. The certificate must be valid for 127.0.0.1 (an IP subjectAltName).
   */
  readonly tls?: { readonly cert: string | Uint8Array; readonly key: string | Uint8Array } | undefined
}

/**
 * One connection as the server sees it, to read or drive alone (e.g. one user of a chat app).
 *
 * @category models
 * @since 0.2.0
 */
export interface Peer {
  /** 1 for the first connection the server accepted, 2 for the next... (counts across restarts) */
  readonly id: number
  /** the headers of the upgrade request that opened it (lower-cased names) */
  readonly requestHeaders: RequestHeaders
  /** what this connection sent, in order (always empty with `record: false`) */
  readonly received: Effect.Effect<ReadonlyArray<Message>>
  /** whether it is still open */
  readonly isOpen: Effect.Effect<boolean>
  /** send one message to this connection only (nothing once it is closed) */
  readonly send: (data: Message) => Effect.Effect<void>
  /** send it a close frame; a code ws refuses to send (e.g. 1005, 1006) is a defect */
  readonly close: (code: number, reason?: string) => Effect.Effect<void>
  /** destroy it abruptly, no close frame: that client sees 1006 and the others nothing */
  readonly terminate: Effect.Effect<void>
  /**
   * completes, once the connection has ended (now or later), with the close code and reason the
   * server got: the client's (e.g. 1000 "logout"), 1005 for a close frame without a code, 1006
   * when it ended without a close frame. Real timer, as `awaitConnections`: dies after `within`
   * (default 5 seconds).
   */
  readonly awaitClosed: (within?: Duration.DurationInput) => Effect.Effect<{
    readonly code: number
    readonly reason: string
  }>
}

/**
 * A live test server and the knobs to script its misbehaviour.
 *
 * @category models
 */
export interface TestServer {
  readonly port: number
  /** `ws://127.0.0.1:${port}`, or `wss://...` when made with `tls` */
  readonly url: string
  /** number of currently open server-side WebSocket connections */
  readonly connections: Effect.Effect<number>
  /**
   * the open connections, oldest first, each to read or drive alone
   *
   * @since 0.2.0
   */
  readonly peers: Effect.Effect<ReadonlyArray<Peer>>
  /**
   * completes once exactly `count` connections are open (now or later), e.g. 1 after a Client
   * reconnected, 0 after it left. Waits on the server's events with a real timer, so it works the
   * same under `TestClock`; dies after `within` of real time (default 5 seconds) with what it saw.
   *
   * @since 0.2.0
   */
  readonly awaitConnections: (count: number, within?: Duration.DurationInput) => Effect.Effect<void>
  /**
   * completes with `received` once it holds at least `count` messages (now or later). Real timer,
   * as `awaitConnections`: dies after `within` (default 5 seconds), or at once when `record` is off.
   *
   * @since 0.2.0
   */
  readonly awaitReceived: (
    count: number,
    within?: Duration.DurationInput
  ) => Effect.Effect<ReadonlyArray<Message>>
  /**
   * what `handler` and `onConnect` threw, rejected with or failed with (an Effect's failure or
   * defect, squashed), in order: each closed its connection with 1011. Assert it is empty to
   * catch a broken handler, or read why a Client saw 1011.
   *
   * @since 0.2.0
   */
  readonly handlerErrors: Effect.Effect<ReadonlyArray<unknown>>
  /** total upgrades accepted since start (counts across restarts) */
  readonly accepted: Effect.Effect<number>
  /** total upgrade requests received since start, answered or not (handshakes attempted) */
  readonly requests: Effect.Effect<number>
  /** every message received, in order, across all connections and restarts */
  readonly received: Effect.Effect<ReadonlyArray<Message>>
  /** the request headers of the last upgrade request (lower-cased names), for tests of headers */
  readonly lastRequestHeaders: Effect.Effect<RequestHeaders>
  /**
   * stop listening and destroy every connection abruptly (no close frame); the port is freed but
   * remembered; completes once every socket has closed
   */
  readonly kill: Effect.Effect<void>
  /** listen again on the same port (after kill); no-op if already listening */
  readonly restart: Effect.Effect<void>
  /**
   * the next `count` (default 1) upgrade requests get this HTTP answer instead of 101, e.g. 401, or
   * 503 with {"retry-after": "2"}; they take precedence over the handshake mode
   */
  readonly rejectNext: (status: number, headers?: Record<string, string>, count?: number) => Effect.Effect<void>
  /** drops the `rejectNext` answers still pending: the next upgrades are handled as the mode says */
  readonly clearRejections: Effect.Effect<void>
  /** from now on, accept TCP + read the HTTP upgrade request but never answer it (until `behave`) */
  readonly hangHandshake: Effect.Effect<void>
  /** from now on, destroy the socket as soon as the upgrade request arrives (until `behave`) */
  readonly resetDuringHandshake: Effect.Effect<void>
  /** from now on answer 101 with a wrong Sec-WebSocket-Accept (until `behave`) */
  readonly badAcceptKey: Effect.Effect<void>
  /**
   * from now on answer 101 with a correct accept key but a Sec-WebSocket-Protocol the client did not
   * offer, "unexpected-protocol" (until `behave`)
   */
  readonly wrongSubprotocol: Effect.Effect<void>
  /**
   * from now on answer 101 with a correct accept key but no `Upgrade: websocket` header (until
   * `behave`); Node's http parser then sees a plain response, not an upgrade
   */
  readonly noUpgradeHeader: Effect.Effect<void>
  /** back to normal handshakes (pending `rejectNext` answers are kept) */
  readonly behave: Effect.Effect<void>
  /**
   * send a close frame with this code/reason to every open connection; a code ws refuses to send
   * (e.g. 1005, 1006) is a defect
   */
  readonly closeAll: (code: number, reason?: string) => Effect.Effect<void>
  /** stop answering pings with pongs; `startPonging` reverts */
  readonly stopPonging: Effect.Effect<void>
  /** answer pings with pongs again (the default) */
  readonly startPonging: Effect.Effect<void>
  /** pings received so far (across connections) */
  readonly pings: Effect.Effect<number>
  /**
   * send `count` messages of `size` bytes (binary unless text: true) to every open connection as
   * fast as possible, ignoring backpressure; completes when all were handed to ws
   */
  readonly flood: (count: number, size: number, options?: { readonly text?: boolean }) => Effect.Effect<void>
  /** send one message to every open connection */
  readonly broadcast: (data: Message) => Effect.Effect<void>
  /**
   * from now on, stop reading from every connection, current and new (ws `pause()`), so the
   * client's writes back up in its send buffer; `resumeReading` reverts
   */
  readonly pauseReading: Effect.Effect<void>
  /** read from every connection again (the default) */
  readonly resumeReading: Effect.Effect<void>
  /**
   * bytes the server has queued to send and not yet written to the network, summed over open
   * connections: above zero when a client stops reading and the kernel's buffers are full
   */
  readonly bufferedAmount: Effect.Effect<number>
}

/**
 * Request headers as Node's http server gives them: lower-cased names.
 *
 * @category models
 * @since 0.2.0
 */
export type RequestHeaders = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

interface PeerRecord {
  readonly received: Array<Message>
  closed: Option.Option<{ readonly code: number; readonly reason: string }>
}

type HandshakeMode = "normal" | "hang" | "reset" | "badAccept" | "wrongSubprotocol" | "noUpgrade"

interface PendingRejection {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  remaining: number
}

const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
const WRONG_ACCEPT_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
const UNEXPECTED_PROTOCOL = "unexpected-protocol"
// The port was just freed by `kill`; the kernel may need a moment before it can be bound again.
const RESTART_ATTEMPTS = 20
const RESTART_RETRY_MILLIS = 25
const DEFAULT_WAIT: Duration.DurationInput = "5 seconds"

/**
 * A real ws server on 127.0.0.1, ephemeral port, closed with the scope.
 *
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<TestServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const handler = options.handler ?? "echo"
    const record = options.record ?? true
    const acceptedProtocols = options.protocols
    const sockets = makeOpenSockets()
    const clients = new Set<WebSocket>()
    const peers = new Map<WebSocket, Peer>()
    const received: Array<Message> = []
    const handlerErrors: Array<unknown> = []
    const rejections: Array<PendingRejection> = []
    let lastRequestHeaders: RequestHeaders = {}
    let mode: HandshakeMode = "normal"
    let accepted = 0
    let requests = 0
    let pings = 0
    let ponging = true
    let reading = true
    // Each pending awaitConnections / awaitReceived: re-checked whenever what they read may change.
    const waiters = new Set<() => void>()
    const notify = (): void => {
      for (const check of [...waiters]) check()
    }
    const runHandlerEffect = yield* FiberSet.makeRuntime<never>()
    const makePeer = (ws: WebSocket, id: number, requestHeaders: RequestHeaders, own: PeerRecord): Peer => {
      return {
        id,
        requestHeaders,
        received: Effect.sync(() => [...own.received]),
        isOpen: Effect.sync(() => ws.readyState === WebSocket.OPEN),
        send: (data) => Effect.sync(() => sendIfOpen(ws, data)),
        close: (code, reason) =>
          Effect.sync(() => {
            if (ws.readyState === WebSocket.OPEN) ws.close(code, reason)
            notify()
          }),
        terminate: Effect.sync(() => ws.terminate()),
        awaitClosed: (within = DEFAULT_WAIT) =>
          waitUntil(() => own.closed, within, () => `TestServer peer ${id}: awaitClosed: still open`)
      }
    }

    const wss = new WebSocketServer({
      noServer: true,
      autoPong: false,
      clientTracking: false,
      maxPayload: options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      ...(acceptedProtocols === undefined ? {} : {
        handleProtocols: (offered: Set<string>) => {
          for (const protocol of offered) {
            if (acceptedProtocols.includes(protocol)) return protocol
          }
          return false
        }
      })
    })
    wss.on("error", ignoreError)

    // A broken test handler must fail the connection visibly, never the process.
    const failConnection = (ws: WebSocket, reason: string, error: unknown): void => {
      handlerErrors.push(error)
      if (ws.readyState === WebSocket.OPEN) ws.close(1011, reason)
      notify()
    }

    // Runs the test's own code for one connection: a throw, a rejection or a failure closes it.
    const runScripted = (ws: WebSocket, run: () => unknown): void => {
      let result: unknown
      try {
        result = run()
      } catch (error) {
        return failConnection(ws, "test handler threw", error)
      }
      if (Effect.isEffect(result)) {
        // Its requirements were the test's to provide: one that is missing dies, and fails the connection.
        runHandlerEffect(Effect.catchAllCause(result as Effect.Effect<unknown, unknown>, (cause) =>
          Cause.isInterruptedOnly(cause) ?
            Effect.void :
            Effect.sync(() => failConnection(ws, "test handler failed", Cause.squash(cause)))))
      } else if (isPromiseLike(result)) {
        result.then(undefined, (error: unknown) =>
          failConnection(ws, "test handler failed", error))
      }
    }

    const onMessage = (ws: WebSocket, peer: Peer, own: PeerRecord, message: Message): void => {
      if (record) {
        received.push(message)
        own.received.push(message)
        notify()
      }
      if (handler === "ignore") return
      if (handler === "echo") return sendIfOpen(ws, message)
      runScripted(ws, () => handler(message, (data) => sendIfOpen(ws, data), peer))
    }

    const onAccepted = (ws: WebSocket, request: Http.IncomingMessage): void => {
      accepted++
      clients.add(ws)
      const own: PeerRecord = { received: [], closed: Option.none() }
      const peer = makePeer(ws, accepted, { ...request.headers }, own)
      peers.set(ws, peer)
      ws.on("error", ignoreError)
      ws.on("close", (code, reason) => {
        own.closed = Option.some({ code, reason: reason.toString("utf8") })
        clients.delete(ws)
        peers.delete(ws)
        notify()
      })
      ws.on("message", (data, isBinary) => onMessage(ws, peer, own, toMessage(data, isBinary)))
      if (!reading) ws.pause()
      // autoPong is off so that stopPonging can withhold the pong.
      ws.on("ping", (data) => {
        pings++
        if (ponging) ws.pong(data)
      })
      notify()
      const onConnect = options.onConnect
      if (onConnect !== undefined) runScripted(ws, () => onConnect(peer))
    }

    // `socket` is one of `sockets`, with its error listener attached on 'connection'.
    const onUpgrade = (request: Http.IncomingMessage, socket: Duplex, head: Buffer): void => {
      requests++
      lastRequestHeaders = { ...request.headers }
      const rejection = rejections[0]
      if (rejection !== undefined) {
        rejection.remaining--
        if (rejection.remaining <= 0) rejections.shift()
        return answerAndClose(socket, rejection.status, rejection.headers)
      }
      switch (mode) {
        case "hang":
          // Reading on lets the socket notice the client leaving; `sockets` lets kill destroy it.
          socket.resume()
          return
        case "reset":
          socket.destroy()
          return
        case "badAccept":
          return answerSwitchingProtocols(socket, WRONG_ACCEPT_KEY, [])
        case "wrongSubprotocol": {
          // Written by hand: ws consults handleProtocols only when the client offered some.
          const key = request.headers["sec-websocket-key"]
          if (key === undefined) return void socket.destroy()
          const protocolHeader = ["Sec-WebSocket-Protocol", UNEXPECTED_PROTOCOL] as const
          return answerSwitchingProtocols(socket, acceptKeyFor(key), [protocolHeader])
        }
        case "noUpgrade": {
          const key = request.headers["sec-websocket-key"]
          if (key === undefined) return void socket.destroy()
          return answerSwitchingProtocols(socket, acceptKeyFor(key), [], { upgrade: false })
        }
        case "normal":
          return wss.handleUpgrade(request, socket, head, onAccepted)
      }
    }

    const server = options.tls === undefined
      ? Http.createServer()
      : Https.createServer({ cert: toPem(options.tls.cert), key: toPem(options.tls.key) })
    server.on("error", ignoreError)
    // A client that fails the TLS handshake (e.g. does not trust the certificate) is no error here.
    server.on("tlsClientError", (_error, socket) => socket.destroy())
    server.on("clientError", (_error, socket) => socket.destroy())
    server.on("connection", sockets.add)
    server.on("upgrade", onUpgrade)

    const kill = Effect.suspend(() => {
      const serverClosed = closeNow(server)
      for (const ws of clients) ws.terminate()
      return Effect.all([serverClosed, sockets.destroyAll()], { concurrency: "unbounded", discard: true })
    })

    yield* Effect.acquireRelease(
      listen(server, 0).pipe(Effect.orDie),
      () => kill.pipe(Effect.zipRight(Effect.sync(() => wss.close())))
    )
    const address = server.address()
    if (address === null || typeof address === "string") {
      return yield* Effect.dieMessage("TestServer: the http server reported no TCP address")
    }
    const port = address.port

    const listenAgain = (attemptsLeft: number): Effect.Effect<void> =>
      listen(server, port).pipe(Effect.catchAll((error) =>
        error.code === "EADDRINUSE" && attemptsLeft > 1
          ? waitMillis(RESTART_RETRY_MILLIS).pipe(Effect.zipRight(listenAgain(attemptsLeft - 1)))
          : Effect.die(error)
      ))

    const openClients = (): ReadonlyArray<WebSocket> => [...clients].filter((ws) => ws.readyState === WebSocket.OPEN)

    // Not Effect.sleep for the bound: tests may run under TestClock, which only moves when told to.
    const waitUntil = <A>(
      read: () => Option.Option<A>,
      within: Duration.DurationInput,
      describe: () => string
    ): Effect.Effect<A> =>
      Effect.async<A>((resume) => {
        const now = read()
        if (Option.isSome(now)) return resume(Effect.succeed(now.value))
        const millis = Duration.toMillis(Duration.decode(within))
        const stop = (): void => {
          waiters.delete(check)
          clearTimeout(timer)
        }
        const check = (): void => {
          const value = read()
          if (Option.isNone(value)) return
          stop()
          resume(Effect.succeed(value.value))
        }
        const timer = setTimeout(() => {
          stop()
          resume(Effect.dieMessage(`${describe()} after ${millis} ms`))
        }, millis)
        waiters.add(check)
        return Effect.sync(stop)
      })

    const setMode = (next: HandshakeMode) =>
      Effect.sync(() => {
        mode = next
      })

    return {
      port,
      url: `${options.tls === undefined ? "ws" : "wss"}://${LOOPBACK_HOST}:${port}`,
      connections: Effect.sync(() => openClients().length),
      peers: Effect.sync(() => openClients().flatMap((ws) => peers.get(ws) ?? [])),
      awaitConnections: (count, within = DEFAULT_WAIT) =>
        waitUntil(
          () => openClients().length === count ? Option.some(undefined) : Option.none(),
          within,
          () => `TestServer.awaitConnections(${count}): ${openClients().length} open`
        ),
      awaitReceived: (count, within = DEFAULT_WAIT) =>
        record
          ? waitUntil(
            () => received.length >= count ? Option.some([...received]) : Option.none(),
            within,
            () => `TestServer.awaitReceived(${count}): ${received.length} received`
          )
          : Effect.dieMessage(`TestServer.awaitReceived(${count}): the server was made with record: false`),
      handlerErrors: Effect.sync(() => [...handlerErrors]),
      accepted: Effect.sync(() => accepted),
      requests: Effect.sync(() => requests),
      clearRejections: Effect.sync(() => {
        rejections.length = 0
      }),
      received: Effect.sync(() => [...received]),
      lastRequestHeaders: Effect.sync(() => lastRequestHeaders),
      kill,
      restart: Effect.suspend(() => server.listening ? Effect.void : listenAgain(RESTART_ATTEMPTS)),
      rejectNext: (status, headers = {}, count = 1) =>
        Effect.sync(() => {
          if (count > 0) rejections.push({ status, headers: { ...headers }, remaining: count })
        }),
      hangHandshake: setMode("hang"),
      resetDuringHandshake: setMode("reset"),
      badAcceptKey: setMode("badAccept"),
      wrongSubprotocol: setMode("wrongSubprotocol"),
      noUpgradeHeader: setMode("noUpgrade"),
      behave: setMode("normal"),
      closeAll: (code, reason) =>
        Effect.sync(() => {
          for (const ws of openClients()) ws.close(code, reason)
          notify()
        }),
      stopPonging: Effect.sync(() => {
        ponging = false
      }),
      startPonging: Effect.sync(() => {
        ponging = true
      }),
      pings: Effect.sync(() => pings),
      flood: (count, size, floodOptions) =>
        Effect.sync(() => {
          const payload: Message = floodOptions?.text === true
            ? "x".repeat(size)
            : new Uint8Array(size).fill(0x78)
          for (const ws of openClients()) {
            for (let sent = 0; sent < count; sent++) sendIfOpen(ws, payload)
          }
        }),
      broadcast: (data) =>
        Effect.sync(() => {
          for (const ws of openClients()) sendIfOpen(ws, data)
        }),
      pauseReading: Effect.sync(() => {
        reading = false
        for (const ws of openClients()) ws.pause()
      }),
      resumeReading: Effect.sync(() => {
        reading = true
        for (const ws of openClients()) ws.resume()
      }),
      bufferedAmount: Effect.sync(() => openClients().reduce((sum, ws) => sum + ws.bufferedAmount, 0))
    } satisfies TestServer
  })

// Always a fresh plain Uint8Array: the record never aliases a buffer ws may reuse, and it compares
// equal to the Uint8Array a test expects.
const toBytes = (data: WebSocket.RawData): Uint8Array =>
  new Uint8Array(Array.isArray(data) ? Buffer.concat(data) : data)

const toMessage = (data: WebSocket.RawData, isBinary: boolean): Message =>
  isBinary ? toBytes(data) : Buffer.from(toBytes(data)).toString("utf8")

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> =>
  typeof value === "object" && value !== null && "then" in value && typeof value.then === "function"

const sendIfOpen = (ws: WebSocket, data: Message): void => {
  if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary: typeof data !== "string" })
}

const toPem = (material: string | Uint8Array): string | Buffer =>
  typeof material === "string" ? material : Buffer.from(material.buffer, material.byteOffset, material.byteLength)

const acceptKeyFor = (key: string): string => createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64")

const formatResponseHead = (statusLine: string, headers: ReadonlyArray<readonly [string, string]>): string =>
  [statusLine, ...headers.map(([name, value]) => `${name}: ${value}`), "", ""].join("\r\n")

const answerAndClose = (socket: Duplex, status: number, headers: Readonly<Record<string, string>>): void => {
  const statusText = Http.STATUS_CODES[status] ?? "Unknown"
  const head = formatResponseHead(`HTTP/1.1 ${status} ${statusText}`, [
    ...Object.entries(headers),
    ["Content-Length", "0"],
    ["Connection", "close"]
  ])
  socket.end(head, () => socket.destroy())
}

// The 101 is written by hand so that it can be wrong; the client is left to notice and hang up.
const answerSwitchingProtocols = (
  socket: Duplex,
  acceptKey: string,
  extraHeaders: ReadonlyArray<readonly [string, string]>,
  options: { readonly upgrade: boolean } = { upgrade: true }
): void => {
  // Reading on lets the socket notice when the client gives up and closes it.
  socket.resume()
  socket.write(formatResponseHead("HTTP/1.1 101 Switching Protocols", [
    ...(options.upgrade ? [["Upgrade", "websocket"] as const] : []),
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Accept", acceptKey],
    ...extraHeaders
  ]))
}

// A raw timer, not Effect.sleep: tests may run under TestClock, which only moves when told to.
const waitMillis = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })
