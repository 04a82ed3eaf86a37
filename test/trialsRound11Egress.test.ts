/**
 * Round 11: lifeline through an outbound HTTP proxy (CONNECT), as a Node service in a corporate
 * network uses it: `NodeTransport.layerWith({ agent: new HttpsProxyAgent(process.env.HTTPS_PROXY) })`.
 * The proxy is test/support/connectProxy.ts on 127.0.0.1; the agent is the real https-proxy-agent.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Logger, LogLevel, Redacted, Schedule, Stream, Supervisor } from "effect"
import { HttpsProxyAgent } from "https-proxy-agent"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { inspect } from "node:util"
import { Client, Connection, NodeTransport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitReceived, awaitState, isTag } from "./support/clientKit.js"
import * as ConnectProxy from "./support/connectProxy.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { captureLogs } from "./support/logs.js"
import { hasOpenssl, issue } from "./support/tlsMaterial.js"

if (!hasOpenssl) console.warn("\n*** test/trialsRound11Egress.test.ts: wss:// part SKIPPED, missing: openssl ***\n")

const dir = hasOpenssl ? Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-r11egress-")) : ""
afterAll(() => {
  if (dir !== "") Fs.rmSync(dir, { recursive: true, force: true })
})
const certs = hasOpenssl
  ? (() => {
    const ca = issue(dir, "Egress CA", undefined, { ca: true })
    return { ca, server: issue(dir, "egress-server", ca) }
  })()
  : undefined

const USER = "alice"
const PASSWORD = "s3cret-Pw9"
const CREDENTIALS = `${USER}:${PASSWORD}`

/** The transport through `agent`, without the default logger (tests about logs add their own). */
const through = (options: NodeTransport.Options) =>
  Effect.provide(Layer.merge(NodeTransport.layerWith(options), Logger.remove(Logger.defaultLogger)))

const fast = Schedule.spaced("50 millis")

const echoOnce = (connection: Connection.Connection, text: string) =>
  Effect.gen(function*() {
    yield* connection.send(text)
    return Chunk.toArray(yield* connection.messages.pipe(Stream.take(1), Stream.runCollect))
  })

const target = (server: { readonly port: number }) => `127.0.0.1:${server.port}`

describe("round 11: through an HTTP CONNECT proxy", () => {
  it.live("ws:// through the proxy: echo, the server's close code, one CONNECT per attempt to the server's host:port", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make({ credentials: CREDENTIALS })
      const server = yield* TestServer.make()
      const agent = new HttpsProxyAgent(proxy.url(CREDENTIALS))
      yield* Effect.gen(function*() {
        const connection = yield* Connection.connect(server.url)
        expect(yield* echoOnce(connection, "hello")).toEqual(["hello"])
        expect(proxy.requests()).toEqual([target(server)])
        yield* server.closeAll(4001, "bye")
        expect(yield* connection.closed).toMatchObject({ _tag: "Disconnected", code: 4001, reason: "bye" })

        // A Client: the server's close is a Disconnected; the next attempt is a new CONNECT. Its
        // handshake headers go to the server through the tunnel, never to the proxy.
        const client = yield* Client.make({
          url: server.url,
          retry: fast,
          heartbeat: false,
          headers: { authorization: Redacted.make("Bearer server-token") }
        })
        yield* client.awaitOpen
        expect((yield* server.lastRequestHeaders)["authorization"]).toBe("Bearer server-token")
        expect(proxy.headerNames()[1]).toEqual(["proxy-authorization", "host", "proxy-connection"])
        yield* server.closeAll(4002, "again")
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff).toMatchObject({ attempt: 1, error: { _tag: "Disconnected", code: 4002, initiator: "server" } })
        yield* awaitState(client, isTag("Open"))
        expect(proxy.requests()).toEqual([target(server), target(server), target(server)])
        expect(proxy.tunnels()).toBe(3)
        yield* client.close()
      }).pipe(through({ agent }))
    })))

  it.live.skipIf(!hasOpenssl)(
    "wss:// through the proxy with a private CA (connection.tls.ca): echo, TLS end to end, one CONNECT",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const proxy = yield* ConnectProxy.make()
        const server = yield* TestServer.make({ tls: certs!.server })
        expect(server.url.startsWith("wss://127.0.0.1:")).toBe(true)
        const agent = new HttpsProxyAgent(proxy.url())
        yield* Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url, { tls: { ca: certs!.ca.cert } })
          expect(yield* echoOnce(connection, "over tls")).toEqual(["over tls"])
          yield* connection.close(1000, "done")
          const client = yield* Client.make({ url: server.url, connection: { tls: { ca: certs!.ca.cert } } })
          yield* client.awaitOpen
          yield* client.send("client over tls")
          yield* awaitReceived(server, 2)
          expect(yield* server.received).toEqual(["over tls", "client over tls"])
          yield* client.close()
          // Without the CA, the server's certificate is refused through the tunnel as it is directly.
          const untrusted = yield* Effect.flip(Effect.scoped(Connection.connect(server.url)))
          expect(untrusted).toMatchObject({ _tag: "ConnectError", reason: "TlsFailed" })
          expect(proxy.requests()).toEqual([target(server), target(server), target(server)])
        }).pipe(through({ agent }))
      }))
  )

  it.live("proxy credentials wrong or missing: 407, said to be the proxy's, fatal (one CONNECT); the password appears nowhere, at any log level", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make({ credentials: CREDENTIALS })
      const server = yield* TestServer.make()
      const detail = `the HTTP proxy answered CONNECT ${target(server)} with 407 Proxy Authentication Required, ` +
        "not 200: no tunnel, the server was not reached; the proxy wants credentials, or refused those given: " +
        "check the user and password of the proxy URL given to the agent (not shown here)"
      for (const userInfo of [`${USER}:wrong-Pw7`, undefined]) {
        const before = proxy.requests().length
        const logs = captureLogs(LogLevel.All)
        const agent = new HttpsProxyAgent(proxy.url(userInfo))
        const seen = yield* Effect.gen(function*() {
          const client = yield* Client.make({ url: server.url, retry: fast })
          const events = yield* Effect.fork(Stream.runCollect(Stream.take(client.events, 2)))
          const error = yield* Effect.flip(client.awaitOpen)
          expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 407, detail })
          const closed = yield* awaitState(client, isTag("Closed"))
          expect(proxy.requests().length - before).toBe(1)
          expect(yield* server.requests).toBe(0)
          const transitions = Chunk.toArray(yield* Fiber.join(events))
          yield* client.close()
          return [error, closed, ...transitions]
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(NodeTransport.layerWith({ agent }), logs.layer)))
        expect(logs.lines.length).toBeGreaterThan(0)
        const text = [
          ...seen.flatMap((value) => [inspect(value, { depth: null }), JSON.stringify(value), String(value)]),
          ...logs.lines.map((line) => `${line.level} ${line.message} ${String(line.url)}`)
        ].join("\n")
        expect(text).toContain("407")
        for (const secret of [PASSWORD, "wrong-Pw7", Buffer.from(CREDENTIALS).toString("base64"), `${USER}:`]) {
          expect(text).not.toContain(secret)
        }
      }
    })))

  it.live("a 407 with no agent to say so (a proxy on the way, not configured): said to be a proxy's, fatal", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(407, { "proxy-authenticate": "Basic realm=\"egress\"" })
      const error = yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, retry: fast })
        return yield* Effect.flip(client.awaitOpen)
      }).pipe(through({}))
      expect(error).toMatchObject({
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        status: 407,
        detail: "the server answered HTTP 407 instead of 101; a proxy on the way wants credentials (Proxy " +
          "Authentication Required): connect through it with an agent that has them (NodeTransport.layerWith), " +
          "or check those the agent has"
      })
      expect(yield* server.requests).toBe(1)
    })))

  it.live("proxy down: ConnectionRefused naming the proxy's address, retried at the backoff's pace; back once the proxy is; the outbox delivered once", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make({ record: true })
      yield* proxy.kill
      const agent = new HttpsProxyAgent(proxy.url())
      yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, retry: Schedule.spaced("100 millis"), heartbeat: false })
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff).toMatchObject({
          attempt: 1,
          delay: { value: { millis: 100 } },
          error: {
            _tag: "ConnectError",
            reason: "ConnectionRefused",
            detail: `the proxy at 127.0.0.1:${proxy.port} (the agent's), before the tunnel to ${target(server)}: ` +
              `connect ECONNREFUSED 127.0.0.1:${proxy.port}; nothing listens at the proxy's address: the proxy is ` +
              "down, or the proxy URL given to the agent (e.g. HTTPS_PROXY) is wrong; retrying helps once it is back"
          }
        })
        yield* client.enqueue("queued while the proxy is down")
        yield* awaitState(client, (state) => state._tag === "Backoff" && state.attempt === 2)
        yield* proxy.restart
        yield* awaitState(client, isTag("Open"))
        yield* awaitReceived(server, 1)
        yield* client.send("after")
        yield* awaitReceived(server, 2)
        expect(yield* server.received).toEqual(["queued while the proxy is down", "after"])
        expect(proxy.requests()).toEqual([target(server)])
        yield* client.close()
      }).pipe(through({ agent }))
    })))

  it.live("target down behind the proxy: HandshakeRejected 502 said to be the proxy's, retried; Open once the server is back, the outbox once", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make({ record: true })
      yield* server.kill
      const agent = new HttpsProxyAgent(proxy.url())
      yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, retry: Schedule.spaced("100 millis"), heartbeat: false })
        yield* client.enqueue("queued while the server is down")
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff).toMatchObject({
          attempt: 1,
          delay: { value: { millis: 100 } },
          error: {
            _tag: "ConnectError",
            reason: "HandshakeRejected",
            status: 502,
            detail: `the HTTP proxy answered CONNECT ${target(server)} with 502 Bad Gateway, not 200: no tunnel, ` +
              "the server was not reached; the proxy could not reach the server (down, refused or unreachable " +
              "from the proxy); retrying helps once it is back"
          }
        })
        yield* awaitState(client, (state) => state._tag === "Backoff" && state.attempt === 2)
        yield* server.restart
        yield* awaitState(client, isTag("Open"))
        yield* awaitReceived(server, 1)
        expect(yield* server.received).toEqual(["queued while the server is down"])
        expect(proxy.requests().length).toBeGreaterThanOrEqual(3)
        expect(new Set(proxy.requests())).toEqual(new Set([target(server)]))
        yield* client.close()
      }).pipe(through({ agent }))
    })))

  it.live("a target the proxy refuses (403): fatal, said to be the proxy's", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make()
      proxy.refuse(target(server))
      const error = yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, retry: fast })
        return yield* Effect.flip(client.awaitOpen)
      }).pipe(through({ agent: new HttpsProxyAgent(proxy.url()) }))
      expect(error).toMatchObject({
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        status: 403,
        detail:
          `the HTTP proxy answered CONNECT ${target(server)} with 403 Forbidden, not 200: no tunnel, the server ` +
          "was not reached; the proxy does not tunnel to this host and port: ask for it to be allowed, or connect " +
          "directly (NO_PROXY)"
      })
      expect(proxy.requests()).toEqual([target(server)])
    })))

  it.live("a proxy that redirects CONNECT (a captive portal): fatal, said to be the proxy's refusal; an absolute http(s) Location is named, its query values redacted and cut to 200 characters; a relative or javascript: one is not", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make()
      const refusal = (location: string) =>
        Effect.gen(function*() {
          proxy.redirect(location)
          const client = yield* Client.make({ url: server.url, retry: fast })
          const error = yield* Effect.flip(client.awaitOpen)
          expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 302 })
          return error._tag === "ConnectError" ? error.detail : ""
        }).pipe(Effect.scoped, through({ agent: new HttpsProxyAgent(proxy.url()) }))
      const said = (page: string) =>
        `the HTTP proxy answered CONNECT ${target(server)} with 302 Found, not 200: no tunnel, the server was not ` +
        `reached; the proxy refused the tunnel and redirects to a page of its own${page} (a policy or login page, ` +
        "for a browser): ask for the host to be allowed, or connect directly (NO_PROXY)"
      expect(yield* refusal("https://login.hotel.example/portal?token=abc123&mac=00:11")).toBe(
        said(", \"https://login.hotel.example/portal?token=redacted&mac=redacted\"")
      )
      expect(yield* refusal("/portal?token=abc123")).toBe(said(""))
      expect(yield* refusal("javascript:alert(1)")).toBe(said(""))
      const long = yield* refusal(`http://portal.example/${"p".repeat(300)}`)
      expect(long).toContain(
        `, "http://portal.example/${"p".repeat(200 - "http://portal.example/".length)}" (its first 200 characters) (`
      )
      expect(proxy.requests()).toEqual([target(server), target(server), target(server), target(server)])
      expect(yield* server.requests).toBe(0)
    })))

  it.live("a proxy that hangs up on CONNECT: ClosedBeforeOpen said to be the proxy's, retried; Open once it tunnels again", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make()
      proxy.hangUp(true)
      yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, retry: fast, heartbeat: false })
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff).toMatchObject({
          attempt: 1,
          error: {
            _tag: "ConnectError",
            reason: "ClosedBeforeOpen",
            detail: `the proxy, before the tunnel to ${target(server)}: Proxy connection ended before receiving ` +
              "CONNECT response; the socket closed before it opened"
          }
        })
        proxy.hangUp(false)
        yield* awaitState(client, isTag("Open"))
        expect(proxy.tunnels()).toBe(1)
        yield* client.close()
      }).pipe(through({ agent: new HttpsProxyAgent(proxy.url()) }))
    })))

  it.live("a proxy that never answers CONNECT: TimeoutError open after openTimeout, retried; lifeline leaves no handle", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make()
      proxy.blackhole(true)
      yield* Effect.gen(function*() {
        const client = yield* Client.make({
          url: server.url,
          connection: { openTimeout: "200 millis" },
          retry: Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(1))),
          heartbeat: false
        })
        const error = yield* Effect.flip(client.awaitOpen)
        expect(error).toMatchObject({ _tag: "TimeoutError", operation: "open" })
        expect(proxy.requests()).toEqual([target(server), target(server)])
        yield* client.close()
        // https-proxy-agent 7 cannot abort a CONNECT it is waiting on: its sockets to the proxy
        // stay open until the proxy ends them (the proxy's scope, below, does).
        expect(proxy.openSockets()).toBe(2)
      }).pipe(through({ agent: new HttpsProxyAgent(proxy.url()) }))
    })))

  it.live("the proxy kills every tunnel while two Clients are open: Disconnected 1006, both reconnect through it", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make({ record: true })
      yield* Effect.gen(function*() {
        const clients = [
          yield* Client.make({ url: server.url, retry: fast, heartbeat: false }),
          yield* Client.make({ url: server.url, retry: fast, heartbeat: false })
        ]
        for (const client of clients) yield* client.awaitOpen
        expect(proxy.tunnels()).toBe(2)
        proxy.killTunnels()
        for (const client of clients) {
          const backoff = yield* awaitState(client, isTag("Backoff"))
          expect(backoff).toMatchObject({ error: { _tag: "Disconnected", code: 1006, initiator: "transport" } })
        }
        for (const client of clients) yield* awaitState(client, isTag("Open"))
        expect(proxy.tunnels()).toBe(4)
        yield* clients[0]!.send("one")
        yield* clients[1]!.send("two")
        yield* awaitReceived(server, 2)
        expect([...(yield* server.received)].sort()).toEqual(["one", "two"])
        for (const client of clients) yield* client.close()
      }).pipe(through({ agent: new HttpsProxyAgent(proxy.url()) }))
    })))

  it.live("the function form: one endpoint direct, one through the proxy; a Client on both fails over from the dead direct one", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const direct = yield* TestServer.make()
      const proxied = yield* TestServer.make({ record: true })
      const agent = new HttpsProxyAgent(proxy.url())
      const asked: Array<string> = []
      const pick = (url: URL) => {
        asked.push(url.host)
        return url.port === String(direct.port) ? undefined : agent
      }
      yield* Effect.gen(function*() {
        const connection = yield* Connection.connect(direct.url)
        expect(yield* echoOnce(connection, "direct")).toEqual(["direct"])
        expect(proxy.requests()).toEqual([])
        yield* direct.kill
        const client = yield* Client.make({ url: [direct.url, proxied.url], strategy: "ordered", retry: fast })
        yield* client.awaitOpen
        expect(Effect.runSync(client.state.get)).toMatchObject({ _tag: "Open", endpoint: `${proxied.url}/` })
        yield* client.send("via the proxy")
        yield* awaitReceived(proxied, 1)
        expect(proxy.requests()).toEqual([target(proxied)])
        expect(asked.slice(0, 3)).toEqual([target(direct), target(direct), target(proxied)])
        yield* client.close()
      }).pipe(through({ agent: pick }))
    })))

  describe("an agent that cannot work: ConnectError InvalidOptions at the attempt, not retried, never a throw", () => {
    class BrokenAgent extends Http.Agent {
      override createConnection(): never {
        throw new Error("agent out of order")
      }
    }
    const cases: ReadonlyArray<readonly [string, unknown, string]> = [
      ["an object that is not an Agent", { host: "proxy" }, "an object, not an http.Agent nor a function of the URL"],
      ["a string (the proxy URL itself)", "http://proxy:3128", "string, not an http.Agent nor a function of the URL"],
      [
        "a function that throws",
        () => {
          throw new Error("no proxy configured")
        },
        "the function that picks the agent threw (no proxy configured)"
      ],
      [
        "a function that returns a string",
        () => "http://proxy:3128",
        "the function that picks the agent returned string, not an http.Agent or undefined"
      ],
      [
        "an Agent whose createConnection throws",
        new BrokenAgent(),
        "the agent threw when asked for a connection (agent out of order)"
      ]
    ]
    for (const [name, agent, said] of cases) {
      it.live(name, () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const layer = NodeTransport.layerWith({ agent } as unknown as NodeTransport.Options)
          const error = yield* Effect.gen(function*() {
            const client = yield* Client.make({ url: server.url, retry: fast })
            const error = yield* Effect.flip(client.awaitOpen)
            yield* awaitState(client, isTag("Closed"))
            return error
          }).pipe(Effect.provide(Layer.merge(layer, Logger.remove(Logger.defaultLogger))))
          expect(error).toMatchObject({
            _tag: "ConnectError",
            reason: "InvalidOptions",
            detail: `NodeTransport agent: ${said}; fix the option named above`
          })
          expect(yield* server.requests).toBe(0)
        })))
    }
  })

  it.live("over layerWith, a Client with the default retry connects on callbacks as over layer (make to awaitOpen starts no fiber); headers still checked", () => {
    let started = 0
    class Starts extends Supervisor.AbstractSupervisor<void> {
      readonly value = Effect.void
      override onStart(): void {
        started++
      }
    }
    return withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const server = yield* TestServer.make()
      const agent = new HttpsProxyAgent(proxy.url())
      yield* Effect.gen(function*() {
        const before = started
        const client = yield* Client.make({ url: server.url })
        yield* client.awaitOpen
        expect(started - before).toBe(0)
        expect(proxy.requests()).toEqual([target(server)])
        yield* client.close()
        // The transport's own checks still apply: an invalid header name is InvalidOptions, nothing dialled.
        const bad = yield* Client.make({ url: server.url, headers: { "bad name": "x" } })
        expect(yield* Effect.flip(bad.awaitOpen)).toMatchObject({ _tag: "ConnectError", reason: "InvalidOptions" })
        expect(proxy.requests()).toEqual([target(server)])
      }).pipe(Effect.provide(Layer.mergeAll(
        Supervisor.addSupervisor(new Starts()),
        NodeTransport.layerWith({ agent: (url) => url.protocol === "ws:" ? agent : undefined }),
        Logger.remove(Logger.defaultLogger)
      )))
    }))
  })
})
