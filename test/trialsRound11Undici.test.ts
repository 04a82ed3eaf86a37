/**
 * Round 11 trials: lifeline over Node's own WebSocket (undici's: the global one on Node 22; on
 * Node 20 behind --experimental-websocket, set in vitest.config.ts), as a Node user gets it through
 * `BrowserTransport.layer` or `effect-lifeline/compat` without `WebSocket: WS`. Real TestServer,
 * FaultProxy and raw `ws` servers on 127.0.0.1, child processes for the process's life; exact
 * outcomes. Loopback only; every loop bounded. What was found: docs/trials.md, round 11.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Logger, Option, Runtime, Schedule, Stream } from "effect"
import { spawn } from "node:child_process"
import type * as Net from "node:net"
import { fileURLToPath } from "node:url"
import type { WebSocket as WsSocket } from "ws"
import { WebSocketServer } from "ws"
import { BrowserTransport, Client } from "../src/index.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { bundledChild } from "./support/childBundle.js"
import { awaitReceived, awaitState, isTag } from "./support/clientKit.js"
import { closeWithBacklog, expectBacklogAccounted } from "./support/closeBacklog.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"
import { slowPipe } from "./support/slowPipe.js"
import { upgradingServer } from "./support/tcpServer.js"

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
 * itself within 15 s (a child's start alone can take seconds on a loaded machine): a process held open
 * by a socket shows as `signal: "SIGKILL"`.
 */
const runChild = (
  mode: string,
  url: string,
  onLine: (line: string, child: { kill: (signal: NodeJS.Signals) => void }) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const script = yield* bundledChild(fileURLToPath(new URL("./support/undiciChild.ts", import.meta.url)))
    return yield* Effect.async<ChildRun>((resume) => {
      const child = spawn(process.execPath, [
        "--experimental-websocket",
        "--no-warnings",
        script,
        mode,
        url
      ], {
        cwd: fileURLToPath(new URL("..", import.meta.url)),
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      const bound = setTimeout(() => child.kill("SIGKILL"), 15_000)
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

/** A `ws` server on 127.0.0.1 that does `act` to each connection, and records the close code it sees. */
const rawServer = (act: (ws: WsSocket) => void) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<WebSocketServer>((resume) => {
        const wss: WebSocketServer = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () =>
          resume(Effect.succeed(wss)))
      }),
      (wss) =>
        Effect.async<void>((resume) => {
          for (const ws of wss.clients) {
            ws.terminate()
          }
          wss.close(() =>
            resume(Effect.void)
          )
        })
    ),
    (wss) => {
      const codes: Array<number> = []
      wss.on("connection", (ws) => {
        ws.on("close", (code) => codes.push(code))
        act(ws)
      })
      return { url: `ws://127.0.0.1:${(wss.address() as Net.AddressInfo).port}`, codes }
    }
  )

/** The Client's first Closed or Backoff state (`retry` stops by default: Closed). */
const endOf = (url: string, retry: Schedule.Schedule<unknown, unknown> = Schedule.stop) =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url, retry, minRetryDelay: "20 millis" })
    return yield* awaitState(client, (state) => state._tag === "Closed" || state._tag === "Backoff")
  }).pipe(Effect.scoped)

describe("what undici reports, as a Client sees it", () => {
  it.live("HTTP 503 and a refused port: ConnectError ClosedBeforeOpen, no status, retried by the default policy", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, { "retry-after": "1" })
      const client = yield* Client.make({ url: server.url, ...fast })
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({ error: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } })
      expect(backoff._tag === "Backoff" && "status" in backoff.error ? backoff.error.status : undefined).toBeUndefined()
      // Retried at once (no Retry-After seen): Open on the next attempt.
      yield* awaitState(client, isTag("Open"))
      yield* server.kill
      expect(yield* endOf(server.url)).toMatchObject({
        _tag: "Closed",
        error: { _tag: "Some", value: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } }
      })
    }).pipe(Effect.scoped, provideBrowser))

  it.live("server closes with 1001, 4000 and a reason, and with no code: Disconnected with that code and reason, clean", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const closes: Array<[number | undefined, string]> = [[1001, ""], [4000, "custom reason"], [undefined, ""]]
      let next = 0
      const server = yield* rawServer((ws) => {
        const [code, reason] = closes[next++]!
        ws.close(code, reason)
      })
      const seen = []
      for (let index = 0; index < closes.length; index++) {
        const state = yield* endOf(server.url)
        seen.push(state._tag === "Closed" && state.error._tag === "Some" ? state.error.value : undefined)
      }
      expect(seen).toMatchObject([
        { _tag: "Disconnected", code: 1001, reason: "", wasClean: true, initiator: "server" },
        { _tag: "Disconnected", code: 4000, reason: "custom reason", wasClean: true, initiator: "server" },
        { _tag: "Disconnected", code: 1005, reason: "", wasClean: true, initiator: "server" }
      ])
    })).pipe(provideBrowser))

  it.live("a server that drops the TCP connection without a close frame: Disconnected 1006, not clean, from the transport", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* rawServer((ws) => setTimeout(() => ws.terminate(), 10))
      expect(yield* endOf(server.url, fast.retry)).toMatchObject({
        _tag: "Backoff",
        error: { _tag: "Disconnected", code: 1006, reason: "", wasClean: false, initiator: "transport" }
      })
    })).pipe(provideBrowser))

  it.live("invalid UTF-8 in a text frame: Disconnected 1006 (retried), where the Node transport reports 1007 (fatal); undici sends no close frame", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      // A text frame of two bytes that are not UTF-8, written raw past ws' own checks.
      const server = yield* rawServer((ws) => Reflect.get(ws, "_socket").write(Buffer.from([0x81, 0x02, 0xff, 0xfe])))
      expect(yield* endOf(server.url, fast.retry)).toMatchObject({
        _tag: "Backoff",
        error: { _tag: "Disconnected", code: 1006, wasClean: false, initiator: "transport" }
      })
      yield* awaitTrue(Effect.sync(() => server.codes.length >= 1), "the server saw the close")
      expect(server.codes[0]).toBe(1006)
    })).pipe(provideBrowser))

  it.live("a 101 without an Upgrade header: undici waits (no event), so TimeoutError open; a subprotocol the server does not pick: ClosedBeforeOpen (as Chromium)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ protocols: ["p1"] })
      yield* server.noUpgradeHeader
      const hung = yield* Client.make({
        url: server.url,
        retry: Schedule.stop,
        connection: { openTimeout: "200 millis" }
      })
      expect(yield* awaitState(hung, isTag("Closed"))).toMatchObject({
        error: { _tag: "Some", value: { _tag: "TimeoutError", operation: "open" } }
      })
      yield* server.behave
      const unpicked = yield* Client.make({ url: server.url, retry: Schedule.stop, connection: { protocols: ["p2"] } })
      expect(yield* awaitState(unpicked, isTag("Closed"))).toMatchObject({
        error: { _tag: "Some", value: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } }
      })
    }).pipe(Effect.scoped, provideBrowser))

  // undici answers a close frame and then waits for the peer to end TCP, with no timeout and no
  // event; no probe goes out on a CLOSING socket, so the Client stayed Open on it for good, with or
  // without a heartbeat. Now a socket seen CLOSING that the transport did not close is given up
  // 3 s later (Chromium's own wait is 2 s), and undici reports the peer's close as it came.
  it.live("a peer that sends its close frame and never ends TCP: Disconnected with its code, with a heartbeat and with a send", () =>
    Effect.gen(function*() {
      const requests = { count: 0 }
      // The close frames the clients sent back (undici answers the server's at once).
      const answered = { count: 0 }
      const server = yield* upgradingServer(requests, (socket, head) => {
        socket.write(head)
        // A close frame 4000 "bye" (unmasked, as a server's), then nothing: TCP stays open.
        setTimeout(() => socket.write(Buffer.from([0x88, 0x05, 0x0f, 0xa0, 0x62, 0x79, 0x65])), 20)
        let frames = Buffer.alloc(0)
        socket.on("data", (chunk: Buffer) => {
          frames = Buffer.concat([frames, chunk])
          // A client's frames are masked and short here (a ping, a close): 2 + 4 + length bytes.
          while (frames.length >= 2 && frames.length >= 6 + (frames[1]! & 0x7f)) {
            if ((frames[0]! & 0x0f) === 0x8) answered.count++
            frames = frames.subarray(6 + (frames[1]! & 0x7f))
          }
        })
      })
      const probing = yield* Client.make({ url: server.url, retry: Schedule.stop, heartbeat: appHeartbeat })
      const sending = yield* Client.make({ url: server.url, retry: Schedule.stop })
      yield* probing.awaitOpen
      yield* sending.awaitOpen
      yield* awaitTrue(Effect.sync(() => server.sockets.size === 2), "both connected")
      // The close frame is in (undici has answered it) before the send. A 100 ms sleep in its place
      // was too short on a loaded machine: the send went out while the socket was still OPEN.
      yield* awaitTrue(Effect.sync(() => answered.count === 2), "both clients answered the close frame")
      const sent = yield* Effect.fork(sending.send("after the close frame"))
      const closedWith = {
        _tag: "Closed",
        error: { _tag: "Some", value: { _tag: "Disconnected", code: 4000, reason: "bye", initiator: "server" } }
      }
      expect(yield* awaitState(probing, isTag("Closed"))).toMatchObject(closedWith)
      expect(yield* awaitState(sending, isTag("Closed"))).toMatchObject(closedWith)
      expect(yield* Effect.flip(sent.await.pipe(Effect.flatten))).toMatchObject({ _tag: "SendError", reason: "Closed" })
      yield* awaitTrue(Effect.sync(() => server.sockets.size === 0), "both TCP connections ended")
    }).pipe(Effect.scoped, provideBrowser))

  it.live("10 MB each way, bytes and text: sent whole, received whole, the link stays Open", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url })
      yield* client.awaitOpen
      const size = 10 * 1024 * 1024
      yield* client.send(new Uint8Array(size).fill(7))
      yield* client.send("y".repeat(size))
      const echoed = Chunk.toArray(yield* client.messages.pipe(Stream.take(2), Stream.runCollect))
      expect(
        echoed.map((message) => typeof message === "string" ? ["text", message.length] : ["bytes", message.byteLength])
      )
        .toEqual([["bytes", size], ["text", size]])
      expect((echoed[0] as Uint8Array).every((byte) => byte === 7)).toBe(true)
      expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
    })).pipe(provideBrowser))

  it.live("10,000 enqueued to a slow reader: 1 MiB goes into undici's buffer, then the outbox (1,024) holds what waits behind it, the rest is refused OutboxFull at once (as on Node, not piled up in bufferedAmount); every one taken arrives, in order; failed 0; no heartbeat timeout", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ record: true, handler: answersPings })
      // About 6 MB/s: the 10 MB take about 1.6 s, several of the heartbeat's intervals: probes go out behind them.
      const pipe = yield* slowPipe(server.port, 64 * 1024, 10)
      const client = yield* Client.make({
        url: `ws://127.0.0.1:${pipe.port}`,
        // The timeout exceeds what the kernel holds at that rate (see the heartbeat's rule), with
        // room for a loaded machine, where the pipe's timers (and so its rate) run late.
        heartbeat: { ...appHeartbeat, interval: "300 millis", timeout: "3 seconds" }
      })
      yield* client.awaitOpen
      const states: Array<string> = []
      yield* Effect.forkScoped(
        Stream.runForEach(client.state.changes, (state) => Effect.sync(() => states.push(state._tag)))
      )
      const payload = "x".repeat(1000)
      const errors = yield* Effect.forEach(
        Array.from({ length: 10_000 }, (_, index) => index),
        (index) => Effect.flip(client.enqueue(`${index}:${payload}`)).pipe(Effect.option)
      )
      const refused = errors.flatMap((error) => Option.isSome(error) ? [error.value] : [])
      expect(new Set(refused.map((error) => `${error._tag} ${Reflect.get(error, "reason")}`))).toEqual(
        new Set(["SendError OutboxFull"])
      )
      // At least the 1 MiB under the mark and the outbox's 1,024 behind it were taken (more if the
      // pipe took some during the loop); the rest was refused, none silently.
      const taken = errors.flatMap((error, index) => Option.isNone(error) ? [`${index}:${payload}`] : [])
      expect(taken.length).toBeGreaterThanOrEqual(1024 + Math.floor(1024 * 1024 / 1005))
      expect(refused.length).toBe(10_000 - taken.length)
      expect(refused.length).toBeGreaterThan(0)
      yield* awaitTrue(
        Effect.map(
          server.received,
          (received) => received.filter((message) => message !== "ping").length === taken.length
        ),
        "every one taken at the server",
        3000
      )
      const received = (yield* server.received).filter((message) => message !== "ping") as Array<string>
      expect(received).toEqual(taken)
      expect(yield* client.outboxSize).toBe(0)
      expect(yield* client.failed).toBe(0)
      expect(states).toEqual(["Open"])
    })).pipe(provideBrowser))
})

describe("frames past the high-water mark at the close (Node's own WebSocket)", () => {
  it.live("500 frames of 64 KiB enqueued to a peer that stopped reading, then close: the frames still waiting past the mark come back from close, in order; none of them reaches the server; what it got is in order", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      // The peer reads nothing, so the close frame goes unanswered: given up after closeTimeout.
      // The outbox was written out before the close frame; what the browser had not sent by the
      // close's end (the kernel full) comes back, each counted failed (as on Node).
      expectBacklogAccounted(yield* closeWithBacklog("x"))
    })).pipe(provideBrowser))
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
    }).pipe(Effect.scoped), 30_000)

  // Before, the socket the heartbeat gave up stayed CLOSING on the silent path (undici has no
  // close timeout): the Client was Closed, yet the process stayed up until it was killed.
  it.live(
    "its heartbeat finds a dead peer, the Client closes: the process exits by itself while the path is still silent",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: answersPings })
        const proxy = yield* FaultProxy.make(server.port)
        const run = yield* runChild("dead", proxy.url, (line) => line === "open" ? proxy.blackhole : Effect.void)
        expect(run).toMatchObject({ code: 0, signal: null, stderr: "" })
        expect(run.report).toEqual({ error: "TimeoutError", state: "Closed", strays: [] })
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "SIGTERM during a reconnect storm: the runtime disposed, the process exits by itself, nothing uncaught",
    () =>
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
      }).pipe(Effect.scoped),
    30_000
  )
})

/** A `navigator` as Node 22's (a class with `userAgent`, no `onLine`), for the scope; Node has no global `addEventListener`. */
const nodeNavigator = Effect.acquireRelease(
  Effect.sync(() => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator")
    class Navigator {
      get userAgent() {
        return "Node.js/22"
      }
      get hardwareConcurrency() {
        return 2
      }
    }
    Object.defineProperty(globalThis, "navigator", { value: new Navigator(), configurable: true, writable: true })
    return saved
  }),
  (saved) =>
    Effect.sync(() => {
      if (saved === undefined) Reflect.deleteProperty(globalThis, "navigator")
      else Object.defineProperty(globalThis, "navigator", saved)
    })
)

describe("Node's navigator (no onLine) and no global addEventListener", () => {
  it.live("the network reads online and its online wake is a no-op; a Client retries on its schedule through an outage", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      yield* nodeNavigator
      expect(Reflect.get(globalThis, "addEventListener")).toBeUndefined()
      expect(BrowserTransport.network.isOnline()).toBe(true)
      const stop = BrowserTransport.network.onOnline(() => {})
      stop()
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, ...fast })
      yield* client.awaitOpen
      let attempts = 0
      yield* Effect.forkScoped(client.state.changes.pipe(
        Stream.runForEach((state) => Effect.sync(() => state._tag === "Connecting" && attempts++))
      ))
      yield* server.kill
      // Attempts go out on the schedule (none held back as offline).
      yield* awaitTrue(Effect.sync(() => attempts >= 5), "five attempts while the server is down")
      expect(yield* client.state.get).not.toMatchObject({ _tag: "Closed" })
      yield* server.restart
      yield* awaitState(client, isTag("Open"))
    })).pipe(provideBrowser))
})
