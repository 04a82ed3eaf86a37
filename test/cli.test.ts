// `effect-lifeline` (src/cli.ts) as a child process against TestServers on 127.0.0.1: stdin piped
// (or a pseudo-terminal through util-linux `script`), stdout and stderr read line by line. The CLI
// is bundled once from src/ with esbuild (a node start of the bundle is a fraction of tsx's); the
// `--version` test runs src/cli.ts through tsx, and test/package.test.ts runs the built dist/cli.js.
// Every child is killed in its scope's finalizer if it is still running, and every wait is bounded.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Redacted } from "effect"
import type { Scope } from "effect"
import { build } from "esbuild"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parse } from "../src/cli/args.js"
import type { ConnectCommand } from "../src/cli/args.js"
import { clientOptions } from "../src/cli/connect.js"
import { ConnectError, Disconnected } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { autobahnPeer, hasAutobahn } from "./support/autobahnPeer.js"
import { peer } from "./support/peers.js"
import { hasOpenssl, makeMaterial, noMaterial } from "./support/tlsMaterial.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "lifeline-cli-"))
const bundle = join(dir, "cli.mjs")

beforeAll(async () => {
  await build({
    entryPoints: [join(root, "src", "cli.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: bundle,
    // ws's optional native helpers; ws does without them.
    external: ["bufferutil", "utf-8-validate"],
    // ws is CommonJS: its require() calls of Node's modules need a require in the ES module.
    banner: {
      js: "import { createRequire as cliRequire } from \"node:module\"; const require = cliRequire(import.meta.url);"
    },
    logLevel: "silent"
  })
}, 60_000)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// ---------------------------------------------------------------------------------------------
// The CLI as a child process

interface Exited {
  readonly code: number | null
  readonly stdout: ReadonlyArray<string>
  readonly stderr: ReadonlyArray<string>
}

interface Cli {
  readonly stdout: () => ReadonlyArray<string>
  readonly stderr: () => ReadonlyArray<string>
  readonly write: (text: string) => Effect.Effect<void>
  readonly end: Effect.Effect<void>
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Closes our end of the child's stdout, as `| head -1` does once it has its line. */
  readonly closeStdout: Effect.Effect<void>
  /** Waits (at most 10 s) until `predicate` holds for the complete lines of `stream`. */
  readonly waitFor: (
    stream: "stdout" | "stderr",
    predicate: (lines: ReadonlyArray<string>) => boolean
  ) => Effect.Effect<void>
  /** Waits (at most 20 s) for the process to end and its output to be read. */
  readonly exited: Effect.Effect<Exited>
}

const WAIT_TURNS = 1_000
const WAIT_STEP = "10 millis"
const EXIT_TIMEOUT = "20 seconds"

const linesOf = (text: string): ReadonlyArray<string> => {
  const lines = text.split("\n")
  lines.pop()
  return lines
}

type Launch = { readonly via: "bundle" } | { readonly via: "tsx" } | { readonly via: "pty" }

/** Starts the CLI with `args`; it is killed when the scope closes if it is still running. */
const cli = (args: ReadonlyArray<string>, launch: Launch = { via: "bundle" }): Effect.Effect<Cli, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        switch (launch.via) {
          case "bundle":
            return spawn(process.execPath, [bundle, ...args], { cwd: root, stdio: "pipe" })
          case "tsx":
            return spawn(process.execPath, ["--import", "tsx", join(root, "src", "cli.ts"), ...args], {
              cwd: root,
              stdio: "pipe"
            })
          case "pty": {
            // `script` runs the command on a new pseudo-terminal and relays our pipes to it.
            const command = [process.execPath, bundle, ...args].map((word) => `'${word.replace(/'/g, "'\\''")}'`).join(
              " "
            )
            return spawn("script", ["-qfec", command, "/dev/null"], { cwd: root, stdio: "pipe" })
          }
        }
      }),
      (child) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        })
    )
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    // A write after the child ended must not fail the test run.
    child.stdin.on("error", () => {})
    const closed = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)))
    const output = () => `stdout:\n${stdout}\nstderr:\n${stderr}`
    return {
      stdout: () => linesOf(stdout),
      stderr: () => linesOf(stderr),
      write: (text) => Effect.sync(() => void child.stdin.write(text)),
      end: Effect.sync(() => void child.stdin.end()),
      signal: (signal) => Effect.sync(() => void child.kill(signal)),
      closeStdout: Effect.sync(() => void child.stdout.destroy()),
      waitFor: (stream, predicate) =>
        Effect.gen(function*() {
          for (let turn = 0; turn < WAIT_TURNS; turn++) {
            if (predicate(linesOf(stream === "stdout" ? stdout : stderr))) return
            yield* Effect.sleep(WAIT_STEP)
          }
          return yield* Effect.dieMessage(`the CLI's ${stream} never matched; so far:\n${output()}`)
        }),
      exited: Effect.promise(() => closed).pipe(
        Effect.map((code) => ({ code, stdout: linesOf(stdout), stderr: linesOf(stderr) })),
        Effect.timeoutFail({
          duration: EXIT_TIMEOUT,
          onTimeout: () => new Error(`the CLI did not exit; so far:\n${output()}`)
        }),
        Effect.orDie
      )
    }
  })

/** Runs the CLI with stdin left open (an error, not stdin's end, must end it) until it exits. */
const runToExit = (args: ReadonlyArray<string>) => Effect.flatMap(cli(args), (child) => child.exited)

const has = (line: string) => (lines: ReadonlyArray<string>) => lines.includes(line)
const count = (n: number) => (lines: ReadonlyArray<string>) => lines.length >= n
const cliLines = (lines: ReadonlyArray<string>) => lines.filter((line) => line.startsWith("effect-lifeline:"))

// ---------------------------------------------------------------------------------------------
// A session
//
// Each test runs its own CLI process against its own server: the describes run their tests
// concurrently (vitest's default, five at a time), which takes this file from about 30 s to 16 s.

describe.concurrent("connect: a session", () => {
  it.scopedLive("stdin lines reach the server in order; the server's text and binary messages are printed; stdin's end closes, exit 0", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const url = `${server.url}/`
      const child = yield* cli(["connect", server.url])
      yield* child.waitFor("stderr", has(`* open ${url} (attempt 1)`))
      const lines = Array.from({ length: 200 }, (_, i) => `line ${i + 1}`)
      yield* child.write(lines.map((line) => `${line}\n`).join(""))
      yield* child.waitFor("stdout", count(200))
      yield* server.broadcast("from the server")
      yield* server.broadcast(new Uint8Array([1, 2, 3]))
      yield* child.waitFor("stdout", has("<binary 3 bytes>"))
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(exited.stdout).toEqual([...lines, "from the server", "<binary 3 bytes>"])
      expect(exited.stderr).toEqual([`* connecting to ${url} (attempt 1)`, `* open ${url} (attempt 1)`, "* closed"])
      expect(yield* server.received).toEqual(lines)
    }))

  it.scopedLive("--binary base64 prints a binary message in base64", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const child = yield* cli(["connect", "--binary", "base64", server.url])
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
      yield* server.broadcast(new Uint8Array([0, 255, 16]))
      yield* child.waitFor("stdout", count(1))
      yield* child.end
      const exited = yield* child.exited
      expect(exited.stdout).toEqual([Buffer.from([0, 255, 16]).toString("base64")])
      expect(exited.code).toBe(0)
    }))

  it.scopedLive("the server killed and restarted: the CLI stays up, reconnects, and the lines typed during the outage arrive after, in order", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const url = `${server.url}/`
      const child = yield* cli(["connect", server.url])
      yield* child.write("before\n")
      yield* child.waitFor("stdout", has("before"))
      yield* server.kill
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* backoff")))
      yield* child.write("during 1\nduring 2\nduring 3\n")
      yield* server.restart
      yield* child.waitFor("stderr", (lines) => lines.filter((line) => line.startsWith("* open")).length === 2)
      yield* child.write("after\n")
      yield* child.waitFor("stdout", count(5))
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(yield* server.received).toEqual(["before", "during 1", "during 2", "during 3", "after"])
      expect(exited.stdout).toEqual(["before", "during 1", "during 2", "during 3", "after"])
      // One line per transition; the backoff line has the delay and the error.
      const [connecting, open, backoff, ...rest] = exited.stderr
      expect([connecting, open]).toEqual([`* connecting to ${url} (attempt 1)`, `* open ${url} (attempt 1)`])
      expect(backoff).toMatch(
        /^\* backoff: attempt 2 in (\d+ms|\d+s|\d+s \d+ms), after Disconnected: disconnected by transport with code 1006 \(not clean\)$/
      )
      expect(rest.at(-2)).toMatch(new RegExp(`^\\* open ${url.replace(/[.]/g, "\\.")} \\(attempt \\d+\\)$`))
      expect(rest.at(-1)).toBe("* closed")
      expect(cliLines(exited.stderr)).toEqual([])
    }))

  it.scopedLive("--json: every event is one JSON line of an exact shape", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const url = `${server.url}/`
      yield* server.rejectNext(503, { "retry-after": "1" })
      const child = yield* cli(["connect", "--json", server.url])
      yield* child.write("hello\n")
      yield* child.waitFor("stdout", (lines) => lines.some((line) => line.includes(`"text":"hello"`)))
      yield* server.broadcast(new Uint8Array([1, 2, 3]))
      yield* child.waitFor("stdout", (lines) => lines.some((line) => line.includes(`"base64"`)))
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(exited.stderr).toEqual([])
      const events = exited.stdout.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(events).toEqual([
        { type: "connecting", attempt: 1, url },
        {
          type: "backoff",
          attempt: 1,
          delayMs: expect.any(Number),
          error: {
            _tag: "ConnectError",
            reason: "HandshakeRejected",
            status: 503,
            retryAfterMs: 1000,
            message:
              `HandshakeRejected connecting to ${url} (HTTP 503, retry after 1s): the server answered HTTP 503 instead of 101; ` +
              "a proxy answers so when no server behind it is up or has room (HAProxy: all down, or its queue timed out), " +
              "a server when overloaded; retrying helps once one is back"
          }
        },
        { type: "connecting", attempt: 2, url },
        { type: "open", attempt: 2, url, protocol: "" },
        { type: "message", text: "hello" },
        { type: "message", bytes: 3, base64: "AQID" },
        { type: "closed", error: null },
        { type: "exit", code: 0 }
      ])
    }))

  it.scopedLive("-H and -s reach the server; the open line names the subprotocol the server chose", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["chat"] })
      const child = yield* cli([
        "connect",
        "-H",
        "Authorization: Bearer s3cret",
        "-H",
        "X-App: cli",
        "--header",
        "x-app: second",
        "-s",
        "superchat",
        "--subprotocol",
        "chat",
        server.url
      ])
      yield* child.waitFor("stderr", has(`* open ${server.url}/ (attempt 1, subprotocol chat)`))
      const headers = yield* server.lastRequestHeaders
      expect(headers["authorization"]).toBe("Bearer s3cret")
      expect(headers["x-app"]).toBe("cli, second")
      expect(headers["sec-websocket-protocol"]).toBe("superchat,chat")
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(exited.stderr.join("\n")).not.toContain("s3cret")
    }))

  it.scopedLive("stdin ends while the server is down, and it comes back within --drain-timeout: the queued lines are written, exit 0", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const child = yield* cli(["connect", server.url])
      yield* child.write("queued 1\nqueued 2\n")
      yield* child.end
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* backoff")))
      yield* server.restart
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(yield* server.received).toEqual(["queued 1", "queued 2"])
      expect(exited.stderr.at(-1)).toBe("* closed")
    }))

  it.scopedLive("stdin ends while the server is down: past --drain-timeout each queued line is reported not sent, then why: never connected, exit 8 (the refusal's code, not 9)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const child = yield* cli(["connect", "--drain-timeout", "200", server.url])
      yield* child.write("one\ntwo\n")
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(8)
      expect(exited.stderr.slice(-5)).toEqual([
        "* closed",
        "* not sent (SendError Closed): one",
        "* not sent (SendError Closed): two",
        "effect-lifeline: 2 lines not sent",
        `effect-lifeline: never connected (within --drain-timeout 200 ms); last: ConnectError: ConnectionRefused connecting to ` +
        `ws://127.0.0.1:${server.port}/: connect ECONNREFUSED 127.0.0.1:${server.port}; nothing listens there; ` +
        "retrying helps if the server is starting"
      ])
    }))

  it.scopedLive("open once, then the server gone with a line waiting: past --drain-timeout, the line not sent, exit 9, no never-connected line", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const child = yield* cli(["connect", "--drain-timeout", "300", server.url])
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
      yield* server.kill
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* backoff")))
      yield* child.write("late\n")
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(9)
      expect(exited.stderr.slice(-2)).toEqual([
        "* not sent (SendError Closed): late",
        "effect-lifeline: 1 line not sent"
      ])
      expect(exited.stderr.join("\n")).not.toContain("never connected")
    }))

  it.scopedLive("a line on stdin and a server that answers 503 until the end: the line reported not sent, never connected, exit 4 (the status's code)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 1_000)
      const child = yield* cli(["connect", "--drain-timeout", "1500", server.url])
      yield* child.write("hi\n")
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(4)
      expect(exited.stderr.slice(-3)).toEqual([
        "* not sent (SendError Closed): hi",
        "effect-lifeline: 1 line not sent",
        expect.stringMatching(
          /^effect-lifeline: never connected \(within --drain-timeout 1500 ms\); last: ConnectError: HandshakeRejected .*\(HTTP 503\)/
        )
      ])
      expect(yield* server.requests).toBeGreaterThanOrEqual(1)
      expect(yield* server.received).toEqual([])
    }))

  it.scopedLive("an empty stdin still connects: a 401 exits 4 (it exited 0 before the handshake was even answered)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(401)
      const child = yield* cli(["connect", server.url])
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(4)
      expect(cliLines(exited.stderr)).toHaveLength(1)
      expect(cliLines(exited.stderr)[0]).toMatch(/^effect-lifeline: ConnectError: HandshakeRejected .*\(HTTP 401\)/)
      expect(yield* server.requests).toBe(1)
    }))

  it.scopedLive("an empty stdin and a server that never comes back: past --drain-timeout, never connected, exit 8 with the last failure", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const child = yield* cli([
        "connect",
        "--drain-timeout",
        "300",
        `ws://user:pa55@127.0.0.1:${server.port}/?token=s3cret`
      ])
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(8)
      expect(cliLines(exited.stderr)).toEqual([
        `effect-lifeline: never connected (within --drain-timeout 300 ms); last: ConnectError: ConnectionRefused connecting to ` +
        `ws://redacted@127.0.0.1:${server.port}/?token=redacted: connect ECONNREFUSED 127.0.0.1:${server.port}; nothing listens there; ` +
        "retrying helps if the server is starting"
      ])
      expect(exited.stderr.join("\n")).not.toMatch(/s3cret|pa55|user/)
    }))

  it.scopedLive("the same with --json: a failed event per line, then exit 8", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const child = yield* cli(["connect", "--json", "--drain-timeout", "200", server.url])
      yield* child.write("one\ntwo\n")
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(8)
      expect(exited.stdout.slice(-4).map((line) => JSON.parse(line) as unknown)).toEqual([
        { type: "closed", error: null },
        { type: "failed", reason: "Closed", payload: "one" },
        { type: "failed", reason: "Closed", payload: "two" },
        { type: "exit", code: 8 }
      ])
      expect(exited.stderr).toEqual([
        "effect-lifeline: 2 lines not sent",
        `effect-lifeline: never connected (within --drain-timeout 200 ms); last: ConnectError: ConnectionRefused connecting to ` +
        `ws://127.0.0.1:${server.port}/: connect ECONNREFUSED 127.0.0.1:${server.port}; nothing listens there; ` +
        "retrying helps if the server is starting"
      ])
    }))

  it.scopedLive("--heartbeat 200: a peer that stops answering pings is dropped after 200 ms of silence and 200 ms more", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const child = yield* cli(["connect", "--heartbeat", "200", server.url])
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
      yield* server.stopPonging
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* backoff")))
      expect(child.stderr().find((line) => line.startsWith("* backoff"))).toMatch(
        new RegExp(
          `^\\* backoff: attempt 2 in .+, after TimeoutError: heartbeat timed out after 200ms on ${
            server.url.replace(/[.]/g, "\\.")
          }/$`
        )
      )
      yield* child.end
      expect((yield* child.exited).code).toBe(0)
    }))

  it.scopedLive("--heartbeat 1000 --no-probe: no ping goes out; a peer that speaks is kept, and once silent it is dropped after 1 s and 1 s more", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      // 1 s: a stall of the loaded machine shorter than the 2 s window does not end the link early
      const child = yield* cli(["connect", "--heartbeat", "1000", "--no-probe", server.url])
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
      // the peer speaks every 50 ms for a second: kept, though nothing is asked of it
      for (let i = 0; i < 20; i++) {
        yield* server.broadcast(`tick ${i}`)
        yield* Effect.sleep("50 millis")
      }
      expect(child.stderr().some((line) => line.startsWith("* backoff"))).toBe(false)
      // then it falls silent: dropped
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* backoff")))
      expect(child.stderr().find((line) => line.startsWith("* backoff"))).toMatch(
        /^\* backoff: attempt 2 in .+, after TimeoutError: heartbeat timed out after 1s on /
      )
      expect(yield* server.pings).toBe(0)
      expect(child.stdout().filter((line) => line.startsWith("tick "))).toHaveLength(20)
      yield* child.end
      expect((yield* child.exited).code).toBe(0)
    }))

  it.scopedLive("--wait 2000: after stdin's end, a reply that comes 500 ms later is still printed (without it, it is not)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({
        handler: (message, reply) => void setTimeout(() => reply(`late ${String(message)}`), 500)
      })
      for (const [args, stdout] of [[[], []], [["--wait", "2000"], ["late hello"]]] as const) {
        const child = yield* cli(["connect", ...args, server.url])
        yield* child.write("hello\n")
        yield* child.end
        const exited = yield* child.exited
        expect(exited.code).toBe(0)
        expect(exited.stdout).toEqual(stdout)
      }
    }))

  it.scopedLive("a closed stdout (| head -1) ends the program quietly, without a stack trace", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const child = yield* cli(["connect", server.url])
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
      yield* child.closeStdout
      for (let i = 0; i < 5; i++) yield* server.broadcast(`message ${i}`)
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(exited.stderr).toEqual([`* connecting to ${server.url}/ (attempt 1)`, `* open ${server.url}/ (attempt 1)`])
    }))

  it.scopedLive("SIGINT closes the connection and exits 130", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const child = yield* cli(["connect", server.url])
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
      yield* child.signal("SIGINT")
      const exited = yield* child.exited
      expect(exited.code).toBe(130)
      expect(exited.stderr.at(-1)).toBe("* closed")
      // The server saw a close handshake, not a dropped socket.
      for (let turn = 0; turn < 200 && (yield* server.connections) > 0; turn++) yield* Effect.sleep("5 millis")
      expect(yield* server.connections).toBe(0)
    }))
})

// ---------------------------------------------------------------------------------------------
// Exit codes: one per reason, each with one line on stderr that names it

describe.concurrent("exit codes", () => {
  it.scopedLive("2: an unknown option, a missing URL, a bad value, a --ca file that cannot be read or holds no certificate", () =>
    Effect.gen(function*() {
      const unknown = yield* runToExit(["connect", "--nope", "ws://127.0.0.1:1"])
      expect(unknown.code).toBe(2)
      // The first line is node:util parseArgs's message.
      expect(unknown.stderr).toHaveLength(2)
      expect(unknown.stderr[0]).toMatch(/^effect-lifeline: Unknown option '--nope'/)
      expect(unknown.stderr[1]).toBe("Run effect-lifeline --help for the usage.")
      const missing = yield* runToExit(["connect"])
      expect(missing.code).toBe(2)
      expect(missing.stderr[0]).toBe("effect-lifeline: connect needs a URL: connect <url>")
      const badValue = yield* runToExit(["connect", "--heartbeat", "soon", "ws://127.0.0.1:1"])
      expect(badValue.code).toBe(2)
      expect(badValue.stderr[0]).toBe(`effect-lifeline: --heartbeat takes a whole number of milliseconds, got "soon"`)
      const badHeader = yield* runToExit(["connect", "-H", "no colon", "ws://127.0.0.1:1"])
      expect(badHeader.code).toBe(2)
      expect(badHeader.stderr[0]).toBe(
        `effect-lifeline: -H takes "Name: value" with a valid header name, got no ":"`
      )
      const ca = yield* runToExit(["connect", "--ca", join(dir, "missing.pem"), "wss://127.0.0.1:1"])
      expect(ca.code).toBe(2)
      expect(ca.stderr).toEqual([
        `effect-lifeline: cannot read --ca ${join(dir, "missing.pem")}: ENOENT: no such file or directory, open '${
          join(dir, "missing.pem")
        }'`
      ])
      writeFileSync(join(dir, "not-a-cert.pem"), "not a certificate\n")
      const notPem = yield* runToExit(["connect", "--ca", join(dir, "not-a-cert.pem"), "wss://127.0.0.1:1"])
      expect(notPem.code).toBe(2)
      expect(notPem.stderr).toEqual([
        `effect-lifeline: --ca ${join(dir, "not-a-cert.pem")} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`
      ])
    }))

  it.scopedLive("3: a URL that is not ws:// (InvalidUrl), an invalid subprotocol (InvalidOptions)", () =>
    Effect.gen(function*() {
      const url = yield* runToExit(["connect", "ftp://127.0.0.1:1/"])
      expect(url.code).toBe(3)
      expect(cliLines(url.stderr)).toEqual([
        `effect-lifeline: ConnectError: InvalidUrl connecting to ftp://127.0.0.1:1/: the scheme is "ftp:"; use a ws:// or wss:// URL without a fragment`
      ])
      const protocol = yield* runToExit(["connect", "-s", "a b", "ws://127.0.0.1:1/"])
      expect(protocol.code).toBe(3)
      expect(cliLines(protocol.stderr)).toHaveLength(1)
      expect(cliLines(protocol.stderr)[0]).toMatch(/^effect-lifeline: ConnectError: InvalidOptions /)
    }))

  it.scopedLive("4: the handshake rejected with 401, one line naming 401, no retry", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(401)
      const exited = yield* runToExit(["connect", server.url])
      expect(exited.code).toBe(4)
      expect(cliLines(exited.stderr)).toEqual([
        `effect-lifeline: ConnectError: HandshakeRejected connecting to ${server.url}/ (HTTP 401): the server answered HTTP 401 instead of 101; ` +
        "the server refused the upgrade"
      ])
      expect(yield* server.requests).toBe(1)
    }))

  it.scopedLive("5: the server closes with 1008 (a fatal close code)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const child = yield* cli(["connect", server.url])
      yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
      yield* server.closeAll(1008, "policy")
      const exited = yield* child.exited
      expect(exited.code).toBe(5)
      expect(cliLines(exited.stderr)).toEqual([
        `effect-lifeline: Disconnected: disconnected by server with code 1008 "policy"`
      ])
    }))

  it.scopedLive("7: a 101 answer with a wrong accept key (ProtocolViolation)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.badAcceptKey
      const exited = yield* runToExit(["connect", server.url])
      expect(exited.code).toBe(7)
      expect(cliLines(exited.stderr)).toHaveLength(1)
      expect(cliLines(exited.stderr)[0]).toMatch(/^effect-lifeline: ConnectError: ProtocolViolation connecting to /)
    }))

  it.scopedLive("8: --no-reconnect and nothing listens: one attempt, ConnectionRefused; the URL's secrets are redacted", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const exited = yield* runToExit([
        "connect",
        "--no-reconnect",
        `ws://user:pa55@127.0.0.1:${server.port}/feed?token=s3cret`
      ])
      expect(exited.code).toBe(8)
      expect(exited.stderr.filter((line) => line.startsWith("* connecting"))).toHaveLength(1)
      expect(cliLines(exited.stderr)).toHaveLength(1)
      expect(cliLines(exited.stderr)[0]).toBe(
        `effect-lifeline: ConnectError: ConnectionRefused connecting to ws://redacted@127.0.0.1:${server.port}/feed?token=redacted: ` +
          `connect ECONNREFUSED 127.0.0.1:${server.port}; nothing listens there; retrying helps if the server is starting`
      )
      expect(exited.stderr.join("\n")).not.toMatch(/s3cret|pa55|user/)
    }))

  it.scopedLive.skipIf(!hasAutobahn)(
    "a refusal whose reason repeats the request (Autobahn's allowedOrigins): the CLI's line gives the reason with the Origin sent (-H) and the URL's token redacted, never the values",
    () =>
      Effect.gen(function*() {
        const peer = yield* autobahnPeer({ allowedOrigins: ["https://app.example:443"] })
        const exited = yield* runToExit([
          "connect",
          "--no-reconnect",
          "-H",
          "Origin: https://evil.example",
          `${peer.url("/echo")}?token=s3cretvalue`
        ])
        expect(cliLines(exited.stderr)).toEqual([
          `effect-lifeline: ConnectError: HandshakeRejected connecting to ${
            peer.url("/echo")
          }?token=redacted (HTTP 400): the server answered HTTP 400 "WebSocket connection denied: origin 'redacted' ` +
          `not allowed" instead of 101; the server refused the upgrade`
        ])
        expect(exited.code).toBe(4)
        expect([...exited.stderr, ...exited.stdout].join("\n")).not.toMatch(/s3cretvalue|evil\.example/)
      }),
    30_000
  )

  it.scopedLive("0 and 8 with --no-reconnect: the server closes with 1000, or with 1012", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      for (const [code, exit] of [[1000, 0], [1012, 8]] as const) {
        const child = yield* cli(["connect", "--no-reconnect", server.url])
        yield* child.waitFor("stderr", (lines) => lines.some((line) => line.startsWith("* open")))
        yield* server.closeAll(code, "bye")
        const exited = yield* child.exited
        expect(exited.code).toBe(exit)
        expect(cliLines(exited.stderr)).toEqual([
          `effect-lifeline: Disconnected: disconnected by server with code ${code} "bye"`
        ])
      }
    }))
})

// ---------------------------------------------------------------------------------------------
// wss:// with a private CA made by openssl when the file runs

describe.skipIf(!hasOpenssl)("wss:// with a private CA", () => {
  const material = hasOpenssl ? makeMaterial(dir, "lifeline cli test CA") : noMaterial
  const tlsServer = TestServer.make({ tls: { cert: material.serverCert, key: material.serverKey } })

  it.scopedLive("6: without --ca the certificate does not verify: one attempt, TlsFailed", () =>
    Effect.gen(function*() {
      const server = yield* tlsServer
      const exited = yield* runToExit(["connect", server.url])
      expect(exited.code).toBe(6)
      expect(exited.stderr.filter((line) => line.startsWith("* connecting"))).toHaveLength(1)
      expect(cliLines(exited.stderr)).toHaveLength(1)
      expect(cliLines(exited.stderr)[0]).toMatch(
        /^effect-lifeline: ConnectError: TlsFailed connecting to wss:\/\/127\.0\.0\.1:\d+\/: .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/
      )
      expect(yield* server.accepted).toBe(0)
    }))

  it.scopedLive("--ca file.pem trusts the CA: opens and echoes", () =>
    Effect.gen(function*() {
      const server = yield* tlsServer
      const child = yield* cli(["connect", "--ca", material.caFile, server.url])
      yield* child.write("over tls\n")
      yield* child.waitFor("stdout", has("over tls"))
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(exited.stderr).toEqual([
        `* connecting to ${server.url}/ (attempt 1)`,
        `* open ${server.url}/ (attempt 1)`,
        "* closed"
      ])
    }))

  it.scopedLive("--insecure opens without verifying, with lifeline's warning, once", () =>
    Effect.gen(function*() {
      const server = yield* tlsServer
      const child = yield* cli(["connect", "--insecure", server.url])
      yield* child.write("unverified\n")
      yield* child.waitFor("stdout", has("unverified"))
      yield* child.end
      const exited = yield* child.exited
      expect(exited.code).toBe(0)
      expect(cliLines(exited.stderr)).toEqual([
        `effect-lifeline: warning: TLS certificate verification is off (tls.rejectUnauthorized: false) for ${server.url}/; ` +
        "anyone on the path can read and change the traffic (logged once per tls options object)"
      ])
    }))
})

// ---------------------------------------------------------------------------------------------
// A terminal, help, version, demo

const hasScript = peer(existsSync("/usr/bin/script"), "script (a pseudo-terminal)", "bsdutils")

describe.concurrent("the rest of the command line", () => {
  it.scopedLive.skipIf(!hasScript)(
    "under a pseudo-terminal: a line typed is sent, its echo printed; Ctrl-D ends the session, exit 0",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const child = yield* cli(["connect", server.url], { via: "pty" })
        yield* child.waitFor("stdout", (lines) => lines.some((line) => line.startsWith("* open")))
        yield* child.write("typed\r")
        // The terminal echoes what is typed; the second "typed" is the server's echo.
        yield* child.waitFor("stdout", (lines) =>
          lines.filter((line) => line.replace(/\r$/, "") === "typed").length === 2)
        yield* child.write("\u0004")
        const exited = yield* child.exited
        expect(exited.code).toBe(0)
        expect(yield* server.received).toEqual(["typed"])
        expect(
          exited.stdout.map((line) =>
            line.replace(/\r$/, "")
          ).at(-1)
        ).toBe("* closed")
      })
  )

  it.scopedLive("--help prints the usage, exit 0; no command is a usage error", () =>
    Effect.gen(function*() {
      const help = yield* runToExit(["--help"])
      expect(help.code).toBe(0)
      expect(help.stdout[0]).toBe("Usage: effect-lifeline <command> [options]")
      expect(help.stdout).toContain(
        "Exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid URL or options, 4 handshake rejected"
      )
      const none = yield* runToExit([])
      expect(none.code).toBe(2)
    }))

  it.scopedLive("--version prints package.json's version (src/cli.ts through tsx)", () =>
    Effect.gen(function*() {
      const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }
      const exited = yield* Effect.flatMap(cli(["--version"], { via: "tsx" }), (child) => child.exited)
      expect(exited).toEqual({ code: 0, stdout: [version], stderr: [] })
    }))

  it.scopedLive("demo runs the chaos demo and exits 0", () =>
    Effect.gen(function*() {
      const exited = yield* runToExit(["demo"])
      expect(exited.code).toBe(0)
      expect(exited.stdout[0]).toBe("lifeline demo")
      expect(exited.stdout).toContainEqual(
        expect.stringMatching(/^ {4}check {6}sent \d+ = written \d+ \+ failed \d+; every echo was written, none twice/)
      )
      expect(exited.stdout.at(-1)).toMatch(/^demo finished in \d+ ms$/)
    }), 40_000)
})

// ---------------------------------------------------------------------------------------------
// The command line as Client options (no process)

const connectCommand = (...args: Array<string>): ConnectCommand => {
  const parsed = parse(["connect", ...args, "ws://127.0.0.1:1/"])
  if (Either.isLeft(parsed) || parsed.right._tag !== "Connect") {
    throw new Error(`not a connect command: ${args.join(" ")}`)
  }
  return parsed.right
}

describe.concurrent("the command line as Client options", () => {
  const hooks = { opened: () => {}, everOpened: () => false }
  const rejected = (reason: ConnectError["reason"], status?: number) =>
    new ConnectError({ reason, url: "ws://127.0.0.1:1/", detail: "", ...(status === undefined ? {} : { status }) })

  it("--heartbeat: absent keeps lifeline's default, 0 turns it off, <ms> sets interval and timeout", () => {
    expect("heartbeat" in clientOptions(connectCommand(), undefined, hooks)).toBe(false)
    expect(clientOptions(connectCommand("--heartbeat", "0"), undefined, hooks).heartbeat).toBe(false)
    expect(clientOptions(connectCommand("--heartbeat", "1500"), undefined, hooks).heartbeat).toEqual({
      interval: 1500,
      timeout: 1500
    })
  })

  it("--no-probe: probe false, with lifeline's default timings or --heartbeat's; beside --heartbeat 0 a usage error", () => {
    expect(clientOptions(connectCommand("--no-probe"), undefined, hooks).heartbeat).toEqual({ probe: false })
    expect(clientOptions(connectCommand("--heartbeat", "1500", "--no-probe"), undefined, hooks).heartbeat).toEqual({
      interval: 1500,
      timeout: 1500,
      probe: false
    })
    const refused = parse(["connect", "--heartbeat", "0", "--no-probe", "ws://127.0.0.1:1"])
    expect(Either.isLeft(refused) && refused.left.message).toBe(
      "--no-probe watches the peer with the heartbeat, which --heartbeat 0 turns off"
    )
  })

  it("-H values are Redacted; -s, --ca and --insecure make connection.protocols and tls", () => {
    const options = clientOptions(
      connectCommand("-H", "Authorization: Bearer t", "-s", "a", "-s", "b", "--insecure"),
      "PEM",
      hooks
    )
    const headers = options.headers as Record<string, Redacted.Redacted<string>>
    expect(Redacted.isRedacted(headers["Authorization"])).toBe(true)
    expect(Redacted.value(headers["Authorization"]!)).toBe("Bearer t")
    expect(options.connection).toEqual({ protocols: ["a", "b"], tls: { ca: "PEM", rejectUnauthorized: false } })
    expect(clientOptions(connectCommand(), undefined, hooks).connection).toEqual({})
  })

  it("shouldRetry: the default policy, TlsFailed only once opened; --no-reconnect retries nothing", () => {
    const retry = clientOptions(connectCommand(), undefined, hooks).shouldRetry!
    expect(retry(rejected("ConnectionRefused"))).toBe(true)
    expect(retry(rejected("HandshakeRejected", 503))).toBe(true)
    expect(retry(rejected("HandshakeRejected", 401))).toBe(false)
    expect(retry(new Disconnected({ code: 1008, reason: "", wasClean: true, initiator: "server" }))).toBe(false)
    expect(retry(rejected("TlsFailed"))).toBe(false)
    const opened = clientOptions(connectCommand(), undefined, { ...hooks, everOpened: () => true }).shouldRetry!
    expect(opened(rejected("TlsFailed"))).toBe(true)
    const once = clientOptions(connectCommand("--no-reconnect"), undefined, hooks).shouldRetry!
    expect(once(rejected("ConnectionRefused"))).toBe(false)
    expect(once(rejected("HandshakeRejected", 503))).toBe(false)
  })

  it("parse: durations, --binary, -H merging, and the mistakes", () => {
    const command = connectCommand(
      "--drain-timeout",
      "250",
      "-w",
      "40",
      "--binary",
      "base64",
      "-H",
      "X-A: 1",
      "-H",
      "x-a:2"
    )
    expect(command).toMatchObject({
      drainTimeoutMillis: 250,
      waitMillis: 40,
      binary: "base64",
      headers: [["X-A", "1, 2"]]
    })
    expect(connectCommand()).toMatchObject({
      drainTimeoutMillis: 10_000,
      waitMillis: 0,
      binary: "summary",
      reconnect: true,
      json: false
    })
    const message = (...argv: Array<string>) =>
      Either.match(parse(argv), { onLeft: (error) => error.message, onRight: () => "" })
    expect(message("connect", "--binary", "hex", "ws://h")).toBe(`--binary takes "summary" or "base64", got "hex"`)
    expect(message("connect", "ws://a", "ws://b")).toBe("connect takes one URL, got 2")
    expect(message("connect", "-s", "", "ws://h")).toBe("-s takes a subprotocol name, got an empty one")
    expect(message("demo", "--json")).toBe("demo takes no arguments or options, got json")
    expect(message("listen")).toBe(`unknown command "listen": connect <url> or demo (see --help)`)
    expect(parse(["help"])).toEqual(Either.right({ _tag: "Help" }))
    expect(parse(["connect", "-h"])).toEqual(Either.right({ _tag: "Help" }))
  })
})
