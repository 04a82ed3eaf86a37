/**
 * An HTTP CONNECT proxy on 127.0.0.1 (node:http, `server.on("connect")`), as a corporate egress
 * proxy: it can require Basic credentials (407 without them), refuse targets (403), answer 502
 * when the target refuses, count the tunnels it opened, kill every tunnel, blackhole CONNECT
 * (accept and never answer), hang up on CONNECT, go down and come back on the same port. Tunnels only to 127.0.0.1
 * (named so, or by one of `names`).
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import * as Net from "node:net"

export interface ConnectProxyOptions {
  /** `user:password` the proxy requires in Proxy-Authorization (Basic); none by default. */
  readonly credentials?: string
  /**
   * Host names the proxy resolves itself, to 127.0.0.1 (as a corporate proxy reaches internal
   * names the client cannot): CONNECT to one of these tunnels there. Never looked up by the client.
   */
  readonly names?: ReadonlyArray<string>
}

export interface ConnectProxy {
  readonly port: number
  /** `http://127.0.0.1:port`, with `user:password@` when given. */
  readonly url: (userInfo?: string) => string
  /** The CONNECT targets asked for, in order (`host:port`), whatever the answer. */
  readonly requests: () => ReadonlyArray<string>
  /** The header names of every CONNECT, in order (lower case). */
  readonly headerNames: () => ReadonlyArray<ReadonlyArray<string>>
  /** Tunnels opened (answered 200) so far. */
  readonly tunnels: () => number
  /** Sockets from clients the proxy holds now (tunnels and unanswered CONNECTs). */
  readonly openSockets: () => number
  /** Refuses CONNECT to these `host:port` targets with 403. */
  readonly refuse: (target: string) => void
  /** From now on, answers CONNECT with 302 and this Location (a captive portal, a policy page); undefined: stop. */
  readonly redirect: (location: string | undefined) => void
  /** From now on, accepts CONNECT and never answers (the client's socket stays open). */
  readonly blackhole: (on: boolean) => void
  /** From now on, closes the connection on CONNECT without an answer. */
  readonly hangUp: (on: boolean) => void
  /** Destroys every client socket and tunnel now. */
  readonly killTunnels: () => void
  /** Stops listening and destroys every socket: nothing listens at `port` until `restart`. */
  readonly kill: Effect.Effect<void>
  /** Listens again on the same port. */
  readonly restart: Effect.Effect<void>
}

// A port taken meanwhile (restart) is a defect of the test, not an 'error' event without listener.
const listen = (server: Http.Server, port: number) =>
  Effect.async<number>((resume) => {
    const failed = (error: Error) => resume(Effect.die(error))
    server.once("error", failed)
    server.listen(port, "127.0.0.1", () => {
      server.off("error", failed)
      const address = server.address()
      resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

const stop = (server: Http.Server) =>
  Effect.async<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
  })

const answer = (socket: Net.Socket, status: number, text: string, headers: Array<string> = []) => {
  socket.end([`HTTP/1.1 ${status} ${text}`, ...headers, "Content-Length: 0", "Connection: close", "", ""].join("\r\n"))
}

/** A CONNECT proxy, stopped with its scope (every socket destroyed). */
export const make = (options: ConnectProxyOptions = {}): Effect.Effect<ConnectProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const requests: Array<string> = []
    const headerNames: Array<ReadonlyArray<string>> = []
    const refused = new Set<string>()
    const sockets = new Set<Net.Socket>()
    const clients = new Set<Net.Socket>()
    let tunnels = 0
    let blackholing = false
    let hangingUp = false
    let redirecting: string | undefined = undefined
    const expected = options.credentials === undefined
      ? undefined
      : `Basic ${Buffer.from(options.credentials).toString("base64")}`
    const track = (socket: Net.Socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("close", () => sockets.delete(socket))
    }
    const server = Http.createServer((_, response) => {
      response.writeHead(405, { connection: "close" }).end()
    })
    server.on("connect", (request: Http.IncomingMessage, client: Net.Socket, head: Buffer) => {
      track(client)
      clients.add(client)
      client.on("close", () => clients.delete(client))
      const target = request.url ?? ""
      requests.push(target)
      headerNames.push(Object.keys(request.headers))
      if (blackholing) return
      if (hangingUp) return void client.end()
      if (redirecting !== undefined) return answer(client, 302, "Found", [`Location: ${redirecting}`])
      if (expected !== undefined && request.headers["proxy-authorization"] !== expected) {
        return answer(client, 407, "Proxy Authentication Required", ["Proxy-Authenticate: Basic realm=\"egress\""])
      }
      const [host = "", portText] = target.split(":")
      if (refused.has(target) || !(host === "127.0.0.1" || options.names?.includes(host)) || portText === undefined) {
        return answer(client, 403, "Forbidden")
      }
      const upstream = Net.connect(Number(portText), "127.0.0.1")
      track(upstream)
      // 502 only while connecting: once the tunnel is up, its bytes are the client's (a reset
      // there ends the tunnel, as a real proxy does, below).
      const badGateway = () => answer(client, 502, "Bad Gateway")
      upstream.once("error", badGateway)
      upstream.once("connect", () => {
        upstream.off("error", badGateway)
        tunnels++
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n")
        if (head.length > 0) upstream.write(head)
        upstream.pipe(client)
        client.pipe(upstream)
        client.on("close", () => upstream.destroy())
        upstream.on("close", () => client.destroy())
      })
    })
    server.on("clientError", (_, socket) => socket.destroy())
    const port = yield* listen(server, 0)
    const killTunnels = () => {
      for (const socket of sockets) socket.destroy()
    }
    yield* Effect.addFinalizer(() => Effect.suspend(() => (killTunnels(), stop(server))))
    return {
      port,
      url: (userInfo) => `http://${userInfo === undefined ? "" : `${userInfo}@`}127.0.0.1:${port}`,
      requests: () => [...requests],
      headerNames: () => [...headerNames],
      tunnels: () => tunnels,
      openSockets: () => clients.size,
      refuse: (target) => void refused.add(target),
      redirect: (location) => {
        redirecting = location
      },
      blackhole: (on) => {
        blackholing = on
      },
      hangUp: (on) => {
        hangingUp = on
      },
      killTunnels,
      kill: Effect.suspend(() => (killTunnels(), stop(server))),
      restart: Effect.asVoid(Effect.suspend(() => listen(server, port)))
    }
  })
