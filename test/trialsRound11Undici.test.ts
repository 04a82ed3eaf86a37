/**
 * Round 11 trials: lifeline over Node's own WebSocket (undici's: the global one on Node 22; on
 * Node 20 behind --experimental-websocket, set in vitest.config.ts), as a Node user gets it through
 * `BrowserTransport.layer` or `effect-lifeline/compat` without `WebSocket: WS`. Real TestServer,
 * FaultProxy and raw `ws` servers on 127.0.0.1, child processes for the process's life; exact
 * outcomes. Loopback only; every loop bounded. What was found: docs/trials.md, round 11.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Runtime, Schedule } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { BrowserTransport, Client } from "../src/index.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { awaitReceived, awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"

const provideBrowser = Effect.provide(Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger)))
const fast = { retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis" } as const
const appHeartbeat = {
  interval: "200 millis",
  timeout: "200 millis",
  message: "ping",
  isPong: (message: unknown) => message === "pong"
} as const
const answersPings = (message: unknown, reply: (data: string) => void) => {
  if (message === "ping") reply("pong")
}

describe("a Client over Node's global WebSocket: outages", () => {
  it.live("server killed and restarted: Disconnected 1006, then Open again, the outbox flushed once, in order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ record: true, handler: "ignore" })
      const client = yield* Client.make({ url: server.url, ...fast })
      yield* client.awaitOpen
      yield* server.kill
      expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
        error: { _tag: "Disconnected", code: 1006, wasClean: false, initiator: "transport" }
      })
      for (let index = 0; index < 5; index++) yield* client.enqueue(`m${index}`)
      yield* server.restart
      yield* awaitState(client, isTag("Open"))
      yield* awaitReceived(server, 5)
      expect(yield* server.received).toEqual(["m0", "m1", "m2", "m3", "m4"])
      expect(yield* client.failed).toBe(0)
    })).pipe(provideBrowser))

  it.live("a half-open peer (blackhole) with an app-level heartbeat: TimeoutError heartbeat, Open again once restored", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: answersPings })
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* Client.make({ url: proxy.url, ...fast, heartbeat: appHeartbeat })
      yield* client.awaitOpen
      yield* proxy.blackhole
      expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
        error: { _tag: "TimeoutError", operation: "heartbeat" }
      })
      yield* proxy.restore
      yield* awaitState(client, isTag("Open"))
    })).pipe(provideBrowser))

  // undici sends its close frame and waits for the peer's, with no timeout: a dead peer never
  // answers, so the TCP connection stayed open (CLOSING) for as long as the path stayed silent,
  // and kept the process alive. The heartbeat gives the socket up: its TCP connection goes too.
  it.live("the socket the heartbeat gave up is gone at once, not left CLOSING on the dead peer", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: answersPings })
      const proxy = yield* FaultProxy.make(server.port)
      // No retry before the test ends: the only connection is the one given up.
      const client = yield* Client.make({ url: proxy.url, retry: Schedule.spaced("1 hour"), heartbeat: appHeartbeat })
      yield* client.awaitOpen
      yield* proxy.blackhole
      expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
        error: { _tag: "TimeoutError", operation: "heartbeat" }
      })
      // Still blackholed: only the client itself can end its TCP connection.
      yield* awaitTrue(
        Effect.map(proxy.connections, (open) => open === 0),
        "the proxy sees the client's connection closed"
      )
    })).pipe(provideBrowser))
})

interface ChildRun {
  readonly code: number | null
  readonly signal: string | null
  readonly report: Record<string, unknown> | undefined
  readonly stderr: string
}

/**
 * Runs test/support/undiciChild.ts in `mode` against `url` (Node's global WebSocket on, as on
 * Node 22): `onLine` runs for each line it prints. Killed (SIGKILL) if it has not exited by
 * itself within 8 s: a process held open by a socket shows as `signal: "SIGKILL"`.
 */
const runChild = (
  mode: string,
  url: string,
  onLine: (line: string, child: { kill: (signal: NodeJS.Signals) => void }) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const script = fileURLToPath(new URL("./support/undiciChild.ts", import.meta.url))
    return yield* Effect.async<ChildRun>((resume) => {
      const child = spawn(process.execPath, [
        "--experimental-websocket",
        "--no-warnings",
        "--import",
        "tsx",
        script,
        mode,
        url
      ], {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      const bound = setTimeout(() => child.kill("SIGKILL"), 8_000)
      child.stdout.setEncoding("utf8")
      child.stderr.on("data", (chunk) => stderr += chunk)
      child.stdout.on("data", (chunk: string) => {
        const lines = (stdout + chunk).split("\n")
        stdout = lines.pop()!
        for (const line of lines) {
          if (line.startsWith("{")) stdout = `${line}\n${stdout}`
          else Runtime.runFork(runtime)(onLine(line, child))
        }
      })
      child.on("exit", (code, signal) => {
        clearTimeout(bound)
        const line = stdout.split("\n").find((text) => text.startsWith("{"))
        resume(Effect.succeed({ code, signal, report: line === undefined ? undefined : JSON.parse(line), stderr }))
      })
      return Effect.sync(() => child.kill("SIGKILL"))
    })
  })

describe("a Node process with a Client over its global WebSocket", () => {
  it.live("opens, sends, closes: the process exits by itself, code 0, nothing uncaught", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const run = yield* runChild("once", server.url)
      expect(run).toMatchObject({ code: 0, signal: null, stderr: "" })
      expect(run.report).toEqual({
        echo: { _id: "Option", _tag: "Some", value: "hello" },
        unsent: 0,
        state: "Closed",
        failed: 0,
        strays: []
      })
    }).pipe(Effect.scoped))

  // Before, the socket the heartbeat gave up stayed CLOSING on the silent path (undici has no
  // close timeout): the Client was Closed, yet the process stayed up until it was killed.
  it.live("its heartbeat finds a dead peer, the Client closes: the process exits by itself while the path is still silent", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: answersPings })
      const proxy = yield* FaultProxy.make(server.port)
      const run = yield* runChild("dead", proxy.url, (line) => line === "open" ? proxy.blackhole : Effect.void)
      expect(run).toMatchObject({ code: 0, signal: null, stderr: "" })
      expect(run.report).toEqual({ error: "TimeoutError", state: "Closed", strays: [] })
    }).pipe(Effect.scoped))

  it.live("SIGTERM during a reconnect storm: the runtime disposed, the process exits by itself, nothing uncaught", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const run = yield* runChild(
        "storm",
        server.url,
        (line, child) =>
          line === "open" ? server.kill : line === "ready" ? Effect.sync(() => child.kill("SIGTERM")) : Effect.void
      )
      expect(run).toMatchObject({ code: 0, signal: null, stderr: "" })
      expect(run.report).toEqual({ state: "Closed", stormed: true, strays: [] })
    }).pipe(Effect.scoped))
})
