/**
 * Review of round 11 (proxies, HAProxy, CI peers): each test fails without its fix.
 * Real sockets on 127.0.0.1: TestServer, the CONNECT proxy of test/support, https-proxy-agent.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Logger } from "effect"
import { HttpsProxyAgent } from "https-proxy-agent"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { Connection, NodeTransport, Reconnect } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import * as ConnectProxy from "./support/connectProxy.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { closedPort } from "./support/ports.js"
import { hasOpenssl, issue } from "./support/tlsMaterial.js"

const through = (options: NodeTransport.Options) =>
  Effect.provide(Layer.merge(NodeTransport.layerWith(options), Logger.remove(Logger.defaultLogger)))
const direct = Effect.provide(Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger)))

/** The ConnectError of a connection that must fail to open (a TimeoutError is a defect here). */
const failure = (url: string, options?: Connection.Options) =>
  Effect.flip(Effect.scoped(Connection.connect(url, options))).pipe(
    Effect.flatMap((error) =>
      error._tag === "ConnectError" ? Effect.succeed(error) : Effect.dieMessage(`not a ConnectError: ${error._tag}`)
    )
  )

/** A TCP server on 127.0.0.1 that does `onData` with the first bytes of each connection. */
const rawServer = (onData: (socket: Net.Socket) => void) =>
  Effect.gen(function*() {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("close", () => sockets.delete(socket))
      socket.once("data", () => onData(socket))
    })
    yield* Effect.async<void>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.void))
    })
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
    )
    return (server.address() as Net.AddressInfo).port
  })

const dir = hasOpenssl ? Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-review12-")) : ""
afterAll(() => {
  if (dir !== "") Fs.rmSync(dir, { recursive: true, force: true })
})
const certs = hasOpenssl
  ? (() => {
    const ca = issue(dir, "Review12 CA", undefined, { ca: true })
    return {
      ca,
      forIp: issue(dir, "review12-ip", ca),
      forLocalhost: issue(dir, "review12-localhost", ca, { san: "DNS:localhost" })
    }
  })()
  : undefined

describe("review 12: NodeTransport through an agent", () => {
  it.live.skipIf(!hasOpenssl)(
    "wss:// to an IP with tls.servername \"\" through the agent checks the certificate against the IP, as directly (not \"localhost\")",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const proxy = yield* ConnectProxy.make()
        const agent = new HttpsProxyAgent(proxy.url())
        // A certificate that names only "localhost", dialled as 127.0.0.1: refused both ways.
        const impostor = yield* TestServer.make({ tls: certs!.forLocalhost })
        const options = { tls: { ca: certs!.ca.cert, servername: "" } }
        const refusedDirectly = yield* failure(impostor.url, options).pipe(direct)
        const refusedThrough = yield* failure(impostor.url, options).pipe(through({ agent }))
        expect(refusedDirectly).toMatchObject({ _tag: "ConnectError", reason: "TlsFailed" })
        expect(refusedDirectly.detail).toContain("ERR_TLS_CERT_ALTNAME_INVALID")
        expect(refusedThrough).toMatchObject({
          _tag: "ConnectError",
          reason: "TlsFailed",
          detail: refusedDirectly.detail
        })
        // A certificate for 127.0.0.1: accepted both ways.
        const server = yield* TestServer.make({ tls: certs!.forIp })
        yield* Effect.scoped(Connection.connect(server.url, options)).pipe(through({ agent }))
        expect(yield* server.accepted).toBe(1)
        expect(proxy.requests()).toEqual([`127.0.0.1:${impostor.port}`, `127.0.0.1:${server.port}`])
      }))
  )

  it.live("a plain http.Agent dialling a host name that refuses: the target's failure, as directly, not \"the proxy at\"", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const port = yield* closedPort
      const url = `ws://localhost:${port}/`
      const directly = yield* failure(url).pipe(direct)
      const agent = new Http.Agent()
      const throughAgent = yield* failure(url).pipe(through({ agent }))
      agent.destroy()
      expect(directly).toMatchObject({ _tag: "ConnectError", reason: "ConnectionRefused" })
      expect(throughAgent).toMatchObject({ _tag: "ConnectError", reason: "ConnectionRefused", detail: directly.detail })
      expect(throughAgent.detail).not.toContain("proxy")
    })))

  it.live("a proxy's reason phrase with an escape sequence, a control character and 3000 characters: one short line in the detail", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const phrase = `Forbidden \x1b[31mred\x07 ${"x".repeat(3000)}`
      const port = yield* rawServer((socket) =>
        socket.end(`HTTP/1.1 403 ${phrase}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
      )
      const server = yield* TestServer.make()
      const error = yield* failure(server.url).pipe(
        through({ agent: new HttpsProxyAgent(`http://127.0.0.1:${port}`) })
      )
      expect(error).toMatchObject({
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        status: 403,
        detail:
          `the HTTP proxy answered CONNECT 127.0.0.1:${server.port} with 403 ${
            `Forbidden ?[31mred? ${"x".repeat(3000)}`.slice(0, 64)
          }…, not 200: no tunnel, the server was not reached; the proxy does not tunnel to this host and port: ` +
          "ask for it to be allowed, or connect directly (NO_PROXY)"
      })
      expect(yield* server.requests).toBe(0)
    })))
  it.live("a proxy's 503 that Node's HTTP parser refuses (a header name with a space): the proxy's 503, retried, not a ProtocolViolation of the server", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const port = yield* rawServer((socket) =>
        socket.end("HTTP/1.1 503 Service Unavailable\r\nRetry After: 5\r\nContent-Length: 0\r\n\r\n")
      )
      const server = yield* TestServer.make()
      const error = yield* failure(server.url).pipe(
        through({ agent: new HttpsProxyAgent(`http://127.0.0.1:${port}`) })
      )
      expect(error).toMatchObject({
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        status: 503,
        detail: `the HTTP proxy answered CONNECT 127.0.0.1:${server.port} with 503 Service Unavailable, not 200: ` +
          "no tunnel, the server was not reached; the proxy could not reach the server (Squid answers 503 when it " +
          "is down or refused), or the proxy itself is unavailable; retrying helps once it is back"
      })
      expect(Reconnect.isRetryable(error)).toBe(true)
      expect(yield* server.requests).toBe(0)
    })))
})

describe("review 12: the detail of a redirect", () => {
  const answered = "the server answered HTTP 302 instead of 101"
  it.live("a Location of 8000 characters, with credentials and a token: redacted and cut at 200 characters", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(302, { location: `https://bob:pw-Secret1@other.example/${"a".repeat(8000)}?token=t0k` })
      const error = yield* failure(server.url).pipe(direct)
      const shown = `https://redacted@other.example/${"a".repeat(8000)}`.slice(0, 200)
      expect(error).toMatchObject({
        _tag: "ConnectError",
        reason: "HandshakeRejected",
        status: 302,
        detail: `${answered}, a redirect to "${shown}" (its first 200 characters); redirects are not followed: ` +
          "dial that URL"
      })
      expect(error.message).not.toContain("pw-Secret1")
    })))

  for (const location of ["javascript:alert(document.cookie)", "file:///etc/passwd", "data:text/html,<b>x</b>"]) {
    it.live(`a Location ${location.slice(0, 12)}...: no URL to dial, not shown`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* server.rejectNext(302, { location })
        const error = yield* failure(server.url).pipe(direct)
        expect(error).toMatchObject({
          _tag: "ConnectError",
          reason: "HandshakeRejected",
          status: 302,
          detail: `${answered}, a redirect to a URL that is not http(s) nor ws(s) (not shown); ` +
            "the server refused the upgrade"
        })
      })))
  }
})

describe("review 12: the CONNECT proxy of the test kit", () => {
  it.live("a server that resets after the tunnel is up: ConnectionReset as directly, no 502 written into the tunnel", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      const port = yield* rawServer((socket) => socket.resetAndDestroy())
      const url = `ws://127.0.0.1:${port}/`
      const directly = yield* failure(url).pipe(direct)
      const throughProxy = yield* failure(url).pipe(through({ agent: new HttpsProxyAgent(proxy.url()) }))
      expect(directly).toMatchObject({ _tag: "ConnectError", reason: "ConnectionReset" })
      expect(throughProxy).toMatchObject({ _tag: "ConnectError", reason: "ConnectionReset" })
      expect(throughProxy.status).toBe(undefined)
      expect(proxy.tunnels()).toBe(1)
    })))

  it.live("restart on a port taken meanwhile: a defect of the test, not an uncaught 'error' event", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const proxy = yield* ConnectProxy.make()
      yield* proxy.kill
      const squatter = Net.createServer()
      yield* Effect.async<void>((resume) => {
        squatter.listen(proxy.port, "127.0.0.1", () => resume(Effect.void))
      })
      yield* Effect.addFinalizer(() => Effect.async<void>((resume) => void squatter.close(() => resume(Effect.void))))
      const exit = yield* Effect.exit(proxy.restart)
      expect(Exit.isFailure(exit) && Exit.isInterrupted(exit) === false).toBe(true)
      expect(String(exit._tag === "Failure" ? exit.cause : "")).toContain("EADDRINUSE")
    })))
})

describe("review 12: .ci/run installs the missing peers without a prompt", () => {
  /**
   * .ci/run copied to a temp directory and run there with PATH holding only stubs (npm, node, id,
   * sudo, apt-get; bash, dirname and env linked): nothing is installed, nothing runs in the worktree.
   * Chromium and Firefox ESR are missing there (not on that PATH); the other peers are this machine's.
   */
  const run = (uid: number) => {
    const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-review12-ci-"))
    try {
      const bin = Path.join(root, "bin")
      const log = Path.join(root, "log")
      Fs.mkdirSync(Path.join(root, ".ci"))
      Fs.mkdirSync(bin)
      Fs.copyFileSync(".ci/run", Path.join(root, ".ci", "run"))
      Fs.chmodSync(Path.join(root, ".ci", "run"), 0o755)
      for (const tool of ["bash", "dirname", "env"]) {
        Fs.symlinkSync(
          ChildProcess.execFileSync("/usr/bin/which", [tool], { encoding: "utf8" }).trim(),
          Path.join(bin, tool)
        )
      }
      const stub = (name: string, body: string) =>
        Fs.writeFileSync(Path.join(bin, name), `#!${Path.join(bin, "bash")}\n${body}\n`, { mode: 0o755 })
      stub("node", "exit 0")
      stub("npm", `echo "npm $*" >> ${log}`)
      stub("id", `echo ${uid}`)
      // sudo: records its arguments; runs the command after its options (a password never asked here)
      stub("sudo", `echo "sudo $*" >> ${log}; while [ "\${1#-}" != "$1" ]; do shift; done; exec "$@"`)
      // apt-get: a source fails to update (exit 100); install succeeds
      stub(
        "apt-get",
        `echo "apt-get $* (DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-})" >> ${log}; [ "$1" != update ] || exit 100`
      )
      const result = ChildProcess.spawnSync(Path.join(root, ".ci", "run"), [], {
        cwd: root,
        env: { PATH: bin, HOME: root },
        encoding: "utf8",
        timeout: 20_000
      })
      return { status: result.status, log: Fs.existsSync(log) ? Fs.readFileSync(log, "utf8").trim().split("\n") : [] }
    } finally {
      Fs.rmSync(root, { recursive: true, force: true })
    }
  }
  const npm = ["npm ci", "npm run typecheck", "npm run lint", "npm run build", "npm run docs"]
  /**
   * What .ci/run finds missing there: Chromium and Firefox ESR (not on that PATH), and any other peer this machine
   * lacks (Xvfb, WebKitGTK for /usr/bin/python3...: a CI machine whose install of one failed still runs this test).
   */
  const python = (module: string) =>
    ChildProcess.spawnSync("/usr/bin/python3", ["-c", `import ${module}`], { stdio: "ignore" }).status === 0
  const webkit = (version: string) =>
    ChildProcess.spawnSync("/usr/bin/python3", ["-c", `import gi; gi.require_version('WebKit2', '${version}')`], {
      stdio: "ignore"
    }).status === 0
  const missing = [
    "chromium",
    "firefox-esr",
    ...(Fs.existsSync("/usr/bin/Xvfb") ? [] : ["xvfb"]),
    ...(python("gi") ? [] : ["python3-gi"]),
    ...(webkit("4.1") ? [] : ["gir1.2-webkit2-4.1"]),
    ...(Fs.existsSync("/usr/bin/caddy") ? [] : ["caddy"]),
    ...(Fs.existsSync("/usr/sbin/apache2") ? [] : ["apache2-bin"]),
    ...(Fs.existsSync("/usr/sbin/lighttpd") ? [] : ["lighttpd"]),
    ...(python("websockets") ? [] : ["python3-websockets"]),
    ...(python("aiohttp") ? [] : ["python3-aiohttp"]),
    ...(python("tornado") ? [] : ["python3-tornado"]),
    ...(Fs.existsSync("/usr/bin/go") ? [] : ["golang-go"]),
    ...(Fs.existsSync("/usr/share/gocode/src/github.com/gorilla/websocket") ?
      [] :
      ["golang-github-gorilla-websocket-dev"]),
    ...(Fs.existsSync("/usr/bin/javac") ? [] : ["default-jdk-headless"]),
    ...(Fs.existsSync("/usr/share/java/jetty9-server.jar") ? [] : ["libjetty9-java"]),
    ...(Fs.existsSync("/usr/share/java/jetty9-websocket-server.jar") ? [] : ["libjetty9-extra-java"]),
    ...(Fs.existsSync("/usr/share/java/servlet-api.jar") ? [] : ["libservlet-api-java"]),
    ...(Fs.existsSync("/usr/bin/libwebsockets-test-server") ? [] : ["libwebsockets-test-server"]),
    ...(Fs.existsSync("/usr/bin/websocketd") ? [] : ["websocketd"]),
    ...(Fs.existsSync("/usr/sbin/squid") ? [] : ["squid"]),
    ...(Fs.existsSync("/usr/bin/tinyproxy") ? [] : ["tinyproxy"]),
    ...(Fs.existsSync("/usr/bin/script") ? [] : ["bsdutils"])
  ].join(" ")

  it.skipIf(!Fs.existsSync("/usr/sbin/nginx") || !Fs.existsSync("/usr/sbin/haproxy") || !hasOpenssl)(
    "as a user with sudo: sudo -n (never a password prompt), noninteractive, install despite a failed update",
    () => {
      expect(run(1000)).toEqual({
        status: 0,
        log: [
          ...npm,
          "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update",
          "apt-get update (DEBIAN_FRONTEND=noninteractive)",
          `sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing}`,
          `apt-get install -y ${missing} (DEBIAN_FRONTEND=noninteractive)`,
          "npm test"
        ]
      })
    }
  )

  it.skipIf(!Fs.existsSync("/usr/sbin/nginx") || !Fs.existsSync("/usr/sbin/haproxy") || !hasOpenssl)(
    "as root: noninteractive, install despite a failed update",
    () => {
      expect(run(0)).toEqual({
        status: 0,
        log: [
          ...npm,
          "apt-get update (DEBIAN_FRONTEND=noninteractive)",
          `apt-get install -y ${missing} (DEBIAN_FRONTEND=noninteractive)`,
          "npm test"
        ]
      })
    }
  )
})
