/**
 * `effect-lifeline connect` behind an HTTP proxy: `--proxy <url>`, or `HTTPS_PROXY` (wss://) /
 * `HTTP_PROXY` (ws://) and `NO_PROXY` from the environment, never for a loopback host from the
 * environment. The CLI runs in process (`run(argv, io, env)` of src/cli/main.ts) against a
 * TestServer, through the test kit's CONNECT proxy (credentials, a name only the proxy resolves)
 * and through Squid 5.7 and tinyproxy 1.11 (BasicAuth) when they are installed. What is asserted: the line is echoed, what the proxy
 * was asked (CONNECT targets), the exit code, and that a proxy's password is never printed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Scope } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PassThrough } from "node:stream"
import { fileURLToPath } from "node:url"
import { ExitCode } from "../src/cli/exitCodes.js"
import { run } from "../src/cli/main.js"
import type { ProxyEnv } from "../src/cli/proxy.js"
import { chooseProxy } from "../src/cli/proxy.js"
import { bypassesProxy } from "../src/NodeTransport.js"
import { TestServer } from "../src/testing/index.js"
import * as ConnectProxy from "./support/connectProxy.js"
import { freePorts, hasSquid, hasTinyproxy, squid, tinyproxy } from "./support/forwardProxies.js"
import { hasWebsockets, pythonEcho } from "./support/python.js"
import { hasOpenssl, makeMaterial } from "./support/tlsMaterial.js"

const SECRET = "s3cret-pw"

/** The proxy `chooseProxy` gives for `url` (its href), or "direct"; a usage error's message as it is. */
const chosen = (flag: string | undefined, env: ProxyEnv, url: string): string => {
  const choice = chooseProxy(flag, env)
  if (typeof choice === "string") return choice
  return choice?.(new URL(url))?.href ?? "direct"
}

describe("the CLI's proxy choice", () => {
  it("--proxy for every URL; HTTPS_PROXY for wss:// and HTTP_PROXY for ws:// (either case, lower case first); none set: direct", () => {
    expect(chosen("http://p:3128", {}, "wss://api.example.com/")).toBe("http://p:3128/")
    expect(chosen("http://p:3128", { HTTPS_PROXY: "http://other:1" }, "ws://api.example.com/")).toBe("http://p:3128/")
    const env = { HTTPS_PROXY: "http://secure:3128", http_proxy: "http://plain:8080", HTTP_PROXY: "http://upper:1" }
    expect(chosen(undefined, env, "wss://api.example.com/")).toBe("http://secure:3128/")
    expect(chosen(undefined, env, "ws://api.example.com/")).toBe("http://plain:8080/")
    expect(chosen(undefined, { HTTPS_PROXY: "http://secure:3128" }, "ws://api.example.com/")).toBe("direct")
    expect(chosen(undefined, {}, "wss://api.example.com/")).toBe("direct")
    expect(chosen(undefined, { HTTPS_PROXY: "  " }, "wss://api.example.com/")).toBe("direct")
  })

  it("from the environment, never for loopback (localhost, 127.x, ::1); --proxy goes for loopback too; --proxy \"\" is none", () => {
    const env = { HTTPS_PROXY: "http://p:3128", HTTP_PROXY: "http://p:3128" }
    for (
      const url of ["ws://127.0.0.1:8080/", "wss://localhost/", "ws://[::1]:9/", "ws://127.9.9.9/", "ws://a.localhost/"]
    ) {
      expect(chosen(undefined, env, url)).toBe("direct")
    }
    expect(chosen("http://p:3128", {}, "ws://127.0.0.1:8080/")).toBe("http://p:3128/")
    expect(chosen("", env, "wss://api.example.com/")).toBe("direct")
  })

  it("NO_PROXY (NodeTransport.bypassesProxy; test/examples.test.ts has its cases): commas or spaces, *.domain; it applies to --proxy too", () => {
    const url = (text: string) => new URL(text)
    expect(bypassesProxy("*.example.com", url("wss://b.a.example.com/"))).toBe(true)
    expect(bypassesProxy("example.com", url("wss://notexample.com/"))).toBe(false)
    expect(bypassesProxy("example.com:443", url("ws://example.com/"))).toBe(false)
    expect(bypassesProxy("10.0.0.5 internal", url("ws://internal:81/"))).toBe(true)
    expect(bypassesProxy("10.0.0.5,internal", url("ws://10.0.0.5/"))).toBe(true)
    expect(chosen("http://p:3128", { NO_PROXY: "example.com" }, "wss://api.example.com/")).toBe("direct")
    expect(chosen(undefined, { HTTPS_PROXY: "http://p:3128", no_proxy: ".example.com" }, "wss://api.example.com/"))
      .toBe("direct")
  })

  it("a proxy URL that cannot work is a usage error naming where it came from, its password never shown; one without a scheme is http://", () => {
    expect(chosen(`socks5://u:${SECRET}@p:1080`, {}, "ws://x/")).toBe(
      "--proxy must be an http:// or https:// proxy (HTTP CONNECT), got socks5://"
    )
    expect(chosen(`http://u:${SECRET}@[p`, {}, "ws://x/")).toBe(
      "--proxy is not a URL: \"http://redacted@[p\" (give http://host:port)"
    )
    expect(chosen(undefined, { HTTP_PROXY: `ftp://u:${SECRET}@p` }, "ws://x/")).toBe(
      "HTTP_PROXY must be an http:// or https:// proxy (HTTP CONNECT), got ftp://"
    )
    expect(chosen(undefined, { HTTPS_PROXY: "http://" }, "wss://x/")).toBe(
      "HTTPS_PROXY is not a URL: \"http://\" (give http://host:port)"
    )
    // Without a scheme: http:// (as curl takes HTTP_PROXY=proxy.corp:3128).
    expect(chosen(undefined, { https_proxy: `u:${SECRET}@p:3128` }, "wss://x/")).toBe(`http://u:${SECRET}@p:3128/`)
  })
})

interface Session {
  readonly out: Array<string>
  readonly err: Array<string>
  readonly stdin: PassThrough
  readonly exited: Promise<number>
}

/** Starts `connect` in process with `env`; stdin stays open until the test ends it. */
const start = (argv: ReadonlyArray<string>, env: ProxyEnv): Session => {
  const out: Array<string> = []
  const err: Array<string> = []
  const stdin = new PassThrough()
  const exited = run(["connect", ...argv], {
    stdin,
    out: (line) => void out.push(line),
    err: (line) => void err.push(line),
    onSignal: () => () => {}
  }, env)
  return { out, err, stdin, exited }
}

/** Waits (10 ms a turn, 10 s by default) until `predicate` holds; else dies with `what` and what `seen` says. */
const until = (what: string, predicate: () => boolean, seen: () => string, turns = 1_000) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < turns; turn++) {
      if (predicate()) return
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.dieMessage(`${what} never came; ${seen()}`)
  })

/** Sends "hello" and waits for its echo, then ends stdin; the exit code and every line printed. */
const echoOnce = (argv: ReadonlyArray<string>, env: ProxyEnv) =>
  Effect.gen(function*() {
    const session = start(argv, env)
    session.stdin.write("hello\n")
    yield* until(
      "the echo",
      () => session.out.includes("hello"),
      () => `out: ${session.out.join("\n")}; err: ${session.err.join("\n")}`
    )
    session.stdin.end()
    const code = yield* Effect.promise(() => session.exited)
    return { code, lines: [...session.out, ...session.err] }
  })

const proxyLine = (url: string) => `effect-lifeline: through the proxy ${url}`

const withServerAndProxy = <A, E>(
  f: (server: TestServer.TestServer, proxy: ConnectProxy.ConnectProxy) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    const proxy = yield* ConnectProxy.make({ credentials: `user:${SECRET}`, names: ["echo.test"] })
    return yield* f(server, proxy)
  })

describe("connect through a CONNECT proxy (the test kit's, on 127.0.0.1)", () => {
  it.scopedLive("--proxy with credentials: the line goes through one tunnel and is echoed; one line names the proxy, its password redacted; exit 0", () =>
    withServerAndProxy((server, proxy) =>
      Effect.gen(function*() {
        const { code, lines } = yield* echoOnce(["--proxy", proxy.url(`user:${SECRET}`), server.url], {})
        expect(code).toBe(ExitCode.Ok)
        expect(proxy.requests()).toEqual([new URL(server.url).host])
        expect(proxy.tunnels()).toBe(1)
        expect(lines).toContain(proxyLine(`http://redacted@127.0.0.1:${proxy.port}/`))
        expect(lines.join("\n")).not.toContain(SECRET)
      })
    ))

  it.scopedLive("HTTP_PROXY for a ws:// URL by a name only the proxy resolves (the client never looks it up): tunnelled and echoed; NO_PROXY naming another host changes nothing", () =>
    withServerAndProxy((server, proxy) =>
      Effect.gen(function*() {
        const url = `ws://echo.test:${new URL(server.url).port}/`
        const env = { HTTP_PROXY: proxy.url(`user:${SECRET}`), NO_PROXY: "example.com,10.0.0.1" }
        const { code, lines } = yield* echoOnce([url], env)
        expect(code).toBe(ExitCode.Ok)
        expect(proxy.requests()).toEqual([`echo.test:${new URL(server.url).port}`])
        expect(lines).toContain(proxyLine(`http://redacted@127.0.0.1:${proxy.port}/`))
        expect(lines.join("\n")).not.toContain(SECRET)
      })
    ))

  it.scopedLive("the environment's proxy is not used for 127.0.0.1, nor --proxy for a NO_PROXY host: direct, nothing asked of the proxy, no proxy line", () =>
    withServerAndProxy((server, proxy) =>
      Effect.gen(function*() {
        const fromEnv = yield* echoOnce([server.url], { HTTP_PROXY: proxy.url(`user:${SECRET}`) })
        const noProxy = yield* echoOnce(["--proxy", proxy.url(`user:${SECRET}`), server.url], { NO_PROXY: "127.0.0.1" })
        for (const { code, lines } of [fromEnv, noProxy]) {
          expect(code).toBe(ExitCode.Ok)
          expect(lines.filter((line) => line.includes("through the proxy"))).toEqual([])
        }
        expect(proxy.requests()).toEqual([])
      })
    ))

  it.scopedLive("wrong credentials: the proxy's 407 ends the program with exit 4 at once (not retried), the line says it is the proxy's; the password is never printed", () =>
    withServerAndProxy((server, proxy) =>
      Effect.gen(function*() {
        const session = start(["--proxy", proxy.url("user:wrong-pw"), server.url], {})
        const code = yield* Effect.promise(() => session.exited)
        expect(code).toBe(ExitCode.Rejected)
        expect(proxy.requests()).toEqual([new URL(server.url).host])
        const closed = session.err.find((line) => line.startsWith("effect-lifeline: ConnectError"))
        expect(closed).toContain("HandshakeRejected")
        expect(closed).toContain("the proxy wants credentials, or refused those given")
        expect([...session.out, ...session.err].join("\n")).not.toContain("wrong-pw")
      })
    ))
})

describe("connect to wss:// through the kit's proxy", () => {
  it.scopedLive.skipIf(!hasOpenssl)(
    "--proxy and --ca: TLS runs end to end inside the tunnel (the proxy sees only CONNECT host:port), verified against the CA given; echoed; exit 0",
    () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => mkdtempSync(join(tmpdir(), "lifeline-cli-proxy-"))),
          (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
        )
        const material = makeMaterial(dir, "lifeline cli proxy test CA")
        const server = yield* TestServer.make({ tls: { cert: material.serverCert, key: material.serverKey } })
        expect(server.url.startsWith("wss://")).toBe(true)
        const proxy = yield* ConnectProxy.make()
        const { code } = yield* echoOnce(["--proxy", proxy.url(), "--ca", material.caFile, server.url], {})
        expect(code).toBe(ExitCode.Ok)
        expect(proxy.requests()).toEqual([new URL(server.url).host])
        expect(proxy.tunnels()).toBe(1)
      })
  )
})

describe("connect through Squid 5.7", () => {
  it.scopedLive.skipIf(!hasSquid)(
    "--proxy http://127.0.0.1:<squid>: Squid tunnels the line (its access log has the CONNECT) and it is echoed; exit 0",
    () =>
      Effect.gen(function*() {
        const [port] = yield* freePorts(1)
        const proxy = yield* squid([port!], () => "http_access allow CONNECT\nhttp_access deny all")
        const server = yield* TestServer.make()
        const { code, lines } = yield* echoOnce(["--proxy", proxy.url(), server.url], {})
        expect(code).toBe(ExitCode.Ok)
        expect(lines).toContain(proxyLine(`http://127.0.0.1:${port}/`))
        yield* until(
          "Squid's access log line",
          () => proxy.log().includes(`CONNECT ${new URL(server.url).host}`),
          () => `Squid's log: ${proxy.log()}`
        )
      })
  )
})

describe("connect through tinyproxy 1.11 (BasicAuth)", () => {
  it.scopedLive.skipIf(!hasTinyproxy)(
    "--proxy with the right credentials: echoed, exit 0; with wrong ones: tinyproxy's 401, exit 4 at once, 'the proxy refused the credentials given'; no password printed",
    () =>
      Effect.gen(function*() {
        const [port] = yield* freePorts(1)
        const proxy = yield* tinyproxy(port!, `BasicAuth user ${SECRET}`)
        const server = yield* TestServer.make()
        const right = yield* echoOnce(["--proxy", proxy.url(`user:${SECRET}`), server.url], {})
        expect(right.code).toBe(ExitCode.Ok)
        expect(right.lines).toContain(proxyLine(`http://redacted@127.0.0.1:${port}/`))
        const wrong = start(["--proxy", proxy.url("user:wrong-pw"), server.url], {})
        expect(yield* Effect.promise(() => wrong.exited)).toBe(ExitCode.Rejected)
        const closed = wrong.err.find((line) => line.startsWith("effect-lifeline: ConnectError"))
        expect(closed).toContain("HandshakeRejected")
        expect(closed).toContain("the proxy refused the credentials given")
        for (const line of [...right.lines, ...wrong.out, ...wrong.err]) {
          expect(line).not.toContain(SECRET)
          expect(line).not.toContain("wrong-pw")
        }
        expect(yield* server.requests).toBe(1)
      })
  )
})

const BURST = 2_000

describe("the CLI from a shell: a burst piped into it, through Squid, to Python websockets", () => {
  it.scopedLive.skipIf(!hasSquid || !hasWebsockets)(
    `${BURST} lines written to its stdin at once (\`seq 1 ${BURST} | effect-lifeline connect --proxy ...\`): every echo printed once, in order, then stdin's end closes it with exit 0`,
    () =>
      Effect.gen(function*() {
        const [port] = yield* freePorts(1)
        const proxy = yield* squid([port!], () => "http_access allow CONNECT\nhttp_access deny all")
        const serverPort = new URL(yield* pythonEcho).port
        const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url))
        const child = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(process.execPath, [
              "--import",
              "tsx",
              cli,
              "connect",
              "--proxy",
              proxy.url(),
              `ws://127.0.0.1:${serverPort}`
            ], {
              // Only the flag's proxy: this machine's own variables left out.
              env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !/_proxy$/i.test(name))),
              stdio: "pipe"
            })
          ),
          (child) => Effect.sync(() => void (child.exitCode === null && child.kill("SIGKILL")))
        )
        let stdout = ""
        let stderr = ""
        child.stdout.setEncoding("utf8").on("data", (chunk: string) => void (stdout += chunk))
        child.stderr.setEncoding("utf8").on("data", (chunk: string) => void (stderr += chunk))
        const exited = new Promise<number | null>((resolve) => child.once("close", resolve))
        const lines = Array.from({ length: BURST }, (_, k) => String(k + 1))
        child.stdin.write(lines.join("\n") + "\n")
        yield* until(
          `${BURST} echoes`,
          () => stdout.split("\n").length > BURST,
          () => `stdout: ${stdout.slice(-200)}; stderr: ${stderr}`,
          // 30 s: the child starts through tsx, slow on a loaded machine
          3_000
        )
        child.stdin.end()
        expect(yield* Effect.promise(() => exited)).toBe(ExitCode.Ok)
        expect(stdout).toBe(lines.join("\n") + "\n")
        const target = `ws://127.0.0.1:${serverPort}/`
        expect(stderr).toBe(
          `${proxyLine(`http://127.0.0.1:${port}/`)}\n* connecting to ${target} (attempt 1)\n` +
            `* open ${target} (attempt 1)\n* closed\n`
        )
      })
  )
})
