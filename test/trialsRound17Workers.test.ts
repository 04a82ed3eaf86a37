/**
 * Round 17 trials: Clients in `worker_threads` and at the process's edges. Each Worker trial runs
 * in a child process (test/support/workerParent.ts, its Workers test/support/workerClient.ts)
 * against servers in this process on 127.0.0.1, so a crash would end the child, not the suite:
 * - `worker.terminate()` while CONNECTING, Open with a backlog, in Backoff, during the close; 100
 *   Workers terminated at random phases; a feed per Worker (5 x 10 Clients) over a server restart;
 * - `process.exit()` inside a Worker; a Worker whose only work is a Client (does it stay alive,
 *   and end once Closed?);
 * - the crash pattern (close while CONNECTING, 100 times) in a Worker under
 *   `--unhandled-rejections=strict --trace-uncaught`;
 * - a Client's `messages` bridged to the main thread by a MessagePort whose main side closes;
 * - the compat facade terminated mid-connect;
 * and, in this process: `Connection.connect` under `Effect.runPromise(..., { signal })` aborted
 * at each phase and at 100 random moments; binary frames posted or transferred to another thread
 * (fixed: each has its own ArrayBuffer); an error posted as it is and through the schema entry;
 * frames the browser transport's `send` refuses (a SharedArrayBuffer view, a detached one: fixed).
 * Every loop bounded; no timed assertion (figures in docs/trials.md, round 17).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Effect, Exit, Fiber, FiberStatus, Layer, Logger, Option, Runtime, Schema, Stream } from "effect"
import { MessageChannel } from "node:worker_threads"
import { ReconnectingWebSocket } from "../src/compatNode.js"
import { ConnectError } from "../src/Errors.js"
import { BrowserTransport, Client, Connection, type Transport } from "../src/index.js"
import * as LifelineSchema from "../src/schema.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { spawnChild } from "./support/opsSpawn.js"
import { awaitTrue } from "./support/poll.js"
import { closedPort } from "./support/ports.js"
import { tcpServer, upgradingServer } from "./support/tcpServer.js"
import { buildWorkerBundle } from "./support/workerBundle.js"

const bundle = await buildWorkerBundle()
afterAll(() => bundle.remove())

/** A child process that starts Workers from the bundle (test/support/workerParent.ts). */
const parent = (args: ReadonlyArray<string>, options?: Parameters<typeof spawnChild>[2]) =>
  spawnChild("workerParent.ts", [bundle.file, ...args], options)

/** The child's report, once it exited 0 with nothing on stderr. */
const reportOf = (child: Effect.Effect.Success<ReturnType<typeof spawnChild>>) =>
  Effect.gen(function*() {
    const exit = yield* child.exit
    const [report] = yield* child.reports
    expect(exit.stderr).toBe("")
    expect(exit.code).toBe(0)
    expect(report.failure).toBeUndefined()
    expect(report.strays).toEqual([])
    expect(report.handlesLeft).toEqual([])
    return report
  })

/** Waits for the child's "phase X" line; returns the write of its "go" (the test looks first). */
const go = (child: Effect.Effect.Success<ReturnType<typeof spawnChild>>, phase: string) =>
  Effect.gen(function*() {
    yield* child.line((line) => line === `phase ${phase}`, `phase ${phase}`)
    return child.write("go\n")
  })

describe.concurrent("round 17: worker.terminate()", () => {
  it.live("while CONNECTING (a server that never answers the upgrade): exit 1, no 'error', nothing uncaught in either thread, the TCP socket closed, no handle left", () =>
    Effect.gen(function*() {
      const hang = yield* tcpServer((socket) => socket.resume())
      const child = yield* parent(["terminate", "connecting", hang.url])
      const proceed = yield* go(child, "connecting")
      yield* awaitTrue(Effect.sync(() => hang.sockets.size === 1), "the handshake's socket")
      yield* proceed
      // The Worker's socket is closed by its end, while this child process lives on.
      const end = yield* go(child, "end")
      yield* awaitTrue(Effect.sync(() => hang.sockets.size === 0), "the socket closed")
      yield* end
      const report = yield* reportOf(child)
      expect(report).toMatchObject({ terminated: 1, exitCode: 1, errors: [], workerStrays: [] })
      expect(report.states).toEqual(["Connecting"])
    }).pipe(Effect.scoped))

  it.live("while Open with a backlog (peer not reading, 200 enqueues of 64 KiB): exit 1, no 'error', nothing uncaught, the server's peer closed, no handle left", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const child = yield* parent(["terminate", "backlog", server.url])
      const proceed = yield* go(child, "open")
      yield* server.pauseReading
      yield* proceed
      yield* (yield* go(child, "backlog"))
      const end = yield* go(child, "end")
      yield* server.resumeReading
      const [peer] = yield* server.peers
      const closed = yield* peer!.awaitClosed()
      expect(closed.code).toBe(1006)
      expect(yield* server.connections).toBe(0)
      yield* end
      const report = yield* reportOf(child)
      expect(report).toMatchObject({ terminated: 1, exitCode: 1, errors: [], workerStrays: [] })
      expect(report.backlog.sent).toBe(200)
      expect(report.backlog.outbox).toBeGreaterThan(0)
      expect(report.states).toEqual(["Connecting", "Open"])
    }).pipe(Effect.scoped))
})

describe.concurrent("round 17: worker.terminate(), more phases; a feed per Worker", () => {
  it.live(
    "5 Workers of 10 Clients each (default schedule) to one server, killed and restarted: every Client Open again, every Worker terminated exit 1, no 'error', nothing uncaught, every socket closed, no handle left",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ record: false })
        const child = yield* parent(["fleet", "5", "10", server.url])
        yield* child.line((line) => line === "phase open", "phase open")
        expect(yield* server.connections).toBe(50)
        yield* server.kill
        yield* server.restart
        yield* child.write("go\n")
        yield* (yield* go(child, "back"))
        const end = yield* go(child, "end")
        yield* server.awaitConnections(0)
        yield* end
        const report = yield* reportOf(child)
        expect(report).toMatchObject({ errors: [], workerStrays: [] })
        expect(report.exitCodes).toEqual([1, 1, 1, 1, 1])
        expect(yield* server.accepted).toBe(100)
      }).pipe(Effect.scoped),
    40_000
  )
  it.live("in Backoff (nothing listens): exit 1, no 'error', nothing uncaught, no handle left", () =>
    Effect.gen(function*() {
      const child = yield* parent([
        "terminate",
        "backoff",
        `ws://127.0.0.1:${yield* closedPort}`
      ])
      yield* (yield* go(child, "backoff"))
      yield* (yield* go(child, "end"))
      const report = yield* reportOf(child)
      expect(report).toMatchObject({ terminated: 1, exitCode: 1, errors: [], workerStrays: [] })
      // Connecting and Backoff in turn (the retry every 200 ms may go round again on a loaded machine).
      expect(report.states.slice(0, 2)).toEqual(["Connecting", "Backoff"])
      expect(report.states).toEqual(report.states.map((_: string, i: number) => i % 2 === 0 ? "Connecting" : "Backoff"))
    }).pipe(Effect.scoped))

  it.live("during `client.close()` (the peer does not read the close frame): exit 1, no 'error', nothing uncaught, the peer closed, no handle left", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const child = yield* parent(["terminate", "closing", server.url])
      const proceed = yield* go(child, "open")
      yield* server.pauseReading
      yield* proceed
      yield* (yield* go(child, "closing"))
      const end = yield* go(child, "end")
      yield* server.resumeReading
      const [peer] = yield* server.peers
      const closed = yield* peer!.awaitClosed()
      expect(yield* server.connections).toBe(0)
      yield* end
      const report = yield* reportOf(child)
      expect(report).toMatchObject({ terminated: 1, exitCode: 1, errors: [], workerStrays: [], notes: ["closing"] })
      // Closed is the state from the start of `close` (when its post reached the main thread in time).
      expect(report.states.slice(0, 2)).toEqual(["Connecting", "Open"])
      expect(report.states.slice(2)).toEqual(report.states.length === 3 ? ["Closed"] : [])
      // The close frame was sent before the end: the server reads it once it reads again.
      expect(closed.code).toBe(1000)
    }).pipe(Effect.scoped))

  it.live(
    "50 Workers (5 at once) to a server, a hung handshake or a closed port, each terminated at once, once loaded, or after 1-3 states, 0-20 ms later: exit 1 (0 when terminated before it started), no 'error', nothing uncaught, every socket closed, no handle left",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ record: false })
        const hang = yield* tcpServer((socket) => socket.resume())
        const closed = `ws://127.0.0.1:${yield* closedPort}`
        const child = yield* parent(["rounds", "50", "17", server.url, hang.url, closed], {
          bound: 60_000
        })
        const end = yield* child.line((line) => line === "phase end", "phase end", 50_000).pipe(
          Effect.as(child.write("go\n"))
        )
        yield* awaitTrue(server.connections.pipe(Effect.map((count) => count === 0)), "every peer closed")
        yield* awaitTrue(Effect.sync(() => hang.sockets.size === 0), "every hung socket closed")
        yield* end
        const report = yield* reportOf(child)
        expect(report).toMatchObject({ errors: [], workerStrays: [] })
        // A Worker whose module ran exits 1 (terminated); one terminated before it started, 0 (Node's).
        const exits = report.exitCodes as Record<string, number>
        expect(Object.keys(exits).filter((key) => key !== "ready, exit 1" && key !== "not ready, exit 0")).toEqual([])
        expect(Object.values(exits).reduce((sum, count) => sum + count, 0)).toBe(50)
        // Where each was terminated (in docs/trials.md: every phase, alone; a loaded machine may
        // reach fewer Open ones in the 300 ms a round waits for a state).
        const phases = new Set(["not ready", "ready", "Connecting", "Open", "Backoff"])
        expect(Object.keys(report.lastStates).filter((phase) => !phases.has(phase))).toEqual([])
        expect(Object.values(report.lastStates as Record<string, number>).reduce((sum, n) => sum + n, 0)).toBe(50)
      }).pipe(Effect.scoped),
    60_000
  )
})

describe.concurrent("round 17: a Worker's own end", () => {
  it.live("process.exit(3) inside a Worker while its Client is Open: the Worker exits 3, no 'error', nothing uncaught, the peer closed, no handle left", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const child = yield* parent(["exit", server.url])
      const open = yield* go(child, "open")
      const [peer] = yield* server.peers
      yield* open
      const end = yield* go(child, "end")
      const closed = yield* peer!.awaitClosed()
      expect(closed.code).toBe(1006)
      expect(yield* server.connections).toBe(0)
      expect(yield* server.received).toEqual(["before exit"])
      yield* end
      const report = yield* reportOf(child)
      expect(report).toMatchObject({ exitCode: 3, errors: [], workerStrays: [], states: ["Open"] })
    }).pipe(Effect.scoped))

  it.live("a Worker whose only work is a Client (`Effect.runFork`): it lives while the Client does (Open, a Backoff, Open again), and exits 0 by itself once the Client is Closed (1008)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const child = yield* parent(["idle", server.url])
      yield* child.line((line) => line === "open 1", "open 1")
      const [first] = yield* server.peers
      yield* first!.send("one")
      yield* first!.close(4000, "again")
      yield* child.line((line) => line === "open 2", "open 2")
      const second = (yield* server.peers).at(-1)
      yield* second!.close(1008, "go away")
      yield* (yield* go(child, "end"))
      const report = yield* reportOf(child)
      expect(report).toMatchObject({ exitCode: 0, errors: [], workerStrays: [], done: { frames: 1, state: "Closed" } })
      // Closed by the 1008, then by the scope's close as the program ended (by design: phase.ts).
      expect(report.states).toEqual([
        "Connecting",
        "Open",
        "Backoff",
        "Connecting",
        "Open",
        "Closed Disconnected 1008",
        "Closed"
      ])
    }).pipe(Effect.scoped))

  it.live(
    "the crash pattern in a Worker (100 Clients, then 100 compat sockets, closed while CONNECTING) under --unhandled-rejections=strict --trace-uncaught: the Worker exits 0 by itself, nothing printed, every socket closed",
    () =>
      Effect.gen(function*() {
        const hang = yield* tcpServer((socket) => socket.resume())
        const child = yield* parent(["crash", hang.url], {
          nodeArgs: ["--unhandled-rejections=strict", "--trace-uncaught"]
        })
        const end = yield* go(child, "end")
        yield* awaitTrue(Effect.sync(() => hang.sockets.size === 0), "every socket closed")
        yield* end
        const report = yield* reportOf(child)
        expect(report).toMatchObject({
          exitCode: 0,
          errors: [],
          workerStrays: [],
          done: {
            connecting: 100,
            // The compat facade the same way: a close event each, no error event, CLOSED at once.
            compat: { closeEvents: 100, errorEvents: 0, readyStates: [3] }
          }
        })
      }).pipe(Effect.scoped),
    60_000
  ) // a hang guard: 20 s ran out once in a full run on a slow machine
})

describe.concurrent("round 17: bridges and facades", () => {
  it.live("a Client's messages posted to the main thread on a MessagePort whose main side closes: the Worker's Client stays Open and reads on, nothing thrown, it closes and the Worker exits 0", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const child = yield* parent(["bridge", server.url])
      const open = yield* go(child, "open")
      const [peer] = yield* server.peers
      for (let i = 0; i < 5; i++) yield* peer!.send(`a${i}`)
      yield* open
      const closed = yield* go(child, "closed")
      for (let i = 0; i < 5; i++) yield* peer!.send(`b${i}`)
      yield* closed
      const end = yield* go(child, "end")
      yield* peer!.awaitClosed()
      yield* end
      const report = yield* reportOf(child)
      expect(report).toMatchObject({
        received: 5,
        afterClose: { posted: 10, failures: [], state: "running" },
        done: { posted: 10, failures: [] },
        exitCode: 0,
        errors: [],
        workerStrays: []
      })
      expect(report.states).toEqual(["Connecting", "Open", "Closed"])
    }).pipe(Effect.scoped))

  it.live("the compat facade (ReconnectingWebSocket, Node transport) in a Worker terminated mid-connect: exit 1, no 'error', nothing uncaught, the socket closed, no handle left", () =>
    Effect.gen(function*() {
      const hang = yield* tcpServer((socket) => socket.resume())
      const child = yield* parent(["compat", hang.url])
      const proceed = yield* go(child, "connecting")
      yield* awaitTrue(Effect.sync(() => hang.sockets.size === 1), "the handshake's socket")
      yield* proceed
      const end = yield* go(child, "end")
      yield* awaitTrue(Effect.sync(() => hang.sockets.size === 0), "the socket closed")
      yield* end
      const report = yield* reportOf(child)
      expect(report).toMatchObject({ terminated: 1, exitCode: 1, errors: [], workerStrays: [] })
      expect(report.states).toEqual(["readyState 0"])
    }).pipe(Effect.scoped))
})

/** Runs `program` with `Effect.runPromise(..., { signal })`; what the promise settled with. */
const runWithSignal = <A, E>(program: Effect.Effect<A, E, Transport.Transport>, signal: AbortSignal) =>
  Effect.promise(() =>
    Effect.runPromise(program.pipe(Effect.provide(quietNode)), { signal }).then(
      (value) => ({ settled: "resolved" as const, value }),
      (error: unknown) => ({ settled: "rejected" as const, error })
    )
  )

/** True when `error` is the FiberFailure of an interruption only. */
const isInterruption = (error: unknown) =>
  Runtime.isFiberFailure(error) && Cause.isInterruptedOnly(error[Runtime.FiberFailureCauseId])

describe.concurrent("round 17: Connection.connect under runPromise's AbortSignal", () => {
  it.live("aborted while CONNECTING (a hung handshake): the promise rejects with the interruption, the socket closed", () =>
    Effect.gen(function*() {
      const hang = yield* tcpServer((socket) => socket.resume())
      const controller = new AbortController()
      const program = Effect.scoped(Connection.connect(hang.url).pipe(Effect.andThen(Effect.never)))
      const running = yield* Effect.fork(runWithSignal(program, controller.signal))
      yield* awaitTrue(Effect.sync(() => hang.sockets.size === 1), "the handshake's socket")
      controller.abort()
      const outcome = yield* Fiber.join(running)
      expect(outcome.settled).toBe("rejected")
      expect(isInterruption(Reflect.get(outcome, "error"))).toBe(true)
      yield* awaitTrue(Effect.sync(() => hang.sockets.size === 0), "the socket closed")
    }).pipe(Effect.scoped))

  it.live("aborted while OPEN: the promise rejects with the interruption, the peer gets 1001", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const controller = new AbortController()
      let opened = false
      const program = Effect.scoped(
        Connection.connect(server.url).pipe(Effect.andThen(() => opened = true), Effect.andThen(Effect.never))
      )
      const running = yield* Effect.fork(runWithSignal(program, controller.signal))
      yield* awaitTrue(Effect.sync(() => opened), "open")
      const [peer] = yield* server.peers
      controller.abort()
      const outcome = yield* Fiber.join(running)
      expect(outcome.settled).toBe("rejected")
      expect(isInterruption(Reflect.get(outcome, "error"))).toBe(true)
      const closed = yield* peer!.awaitClosed()
      expect(closed.code).toBe(1001)
    }).pipe(Effect.scoped))

  it.live("aborted while CLOSING (`close(4001)` waiting on a peer that does not read): the promise rejects with the interruption once the close is done (closeTimeout, then terminate), the socket CLOSED by then; the peer reads 4001", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const controller = new AbortController()
      let connection: Connection.Connection | undefined
      const program = Effect.scoped(Effect.gen(function*() {
        connection = yield* Connection.connect(server.url, { closeTimeout: "2 seconds" })
        yield* Effect.sleep("10 millis").pipe(Effect.repeat({ until: () => closing }))
        return yield* connection.close(4001, "bye")
      }))
      let closing = false
      const running = yield* Effect.fork(runWithSignal(program, controller.signal))
      yield* awaitTrue(Effect.sync(() => connection !== undefined), "open")
      const [peer] = yield* server.peers
      yield* server.pauseReading
      closing = true
      yield* awaitTrue(Effect.map(connection!.readyState, (state) => state === 2), "CLOSING")
      controller.abort()
      const outcome = yield* Fiber.join(running)
      expect(outcome.settled).toBe("rejected")
      expect(isInterruption(Reflect.get(outcome, "error"))).toBe(true)
      const stateAtSettle = yield* connection!.readyState
      yield* server.resumeReading
      const closed = yield* peer!.awaitClosed()
      expect(closed.code).toBe(4001)
      // The interruption waits for the close under way (bounded by closeTimeout, then terminate).
      expect(stateAtSettle).toBe(3)
    }).pipe(Effect.scoped))
})

/** A peer that answers the upgrade and, in the same write, sends 5 binary frames [i, i, i, i]. */
const fiveFramesInOneWrite = upgradingServer({ count: 0 }, (socket, head) => {
  const frames = Array.from({ length: 5 }, (_, i) => Buffer.from([0x82, 4, i, i, i, i]))
  socket.write(Buffer.concat([head, ...frames]))
})

/** Posts `frame` on a new MessageChannel (its buffer transferred or not); what the other side got. */
const post = (frame: Uint8Array, transfer: boolean) =>
  Effect.async<Uint8Array>((resume) => {
    const { port1, port2 } = new MessageChannel()
    port2.once("message", (received: Uint8Array) => {
      port1.close()
      resume(Effect.succeed(received))
    })
    port1.postMessage(frame, transfer ? [frame.buffer as ArrayBuffer] : [])
  })

/** Posts `value` on a new MessageChannel; what the other side got (a structured clone). */
const postValue = (value: unknown) =>
  Effect.async<unknown>((resume) => {
    const { port1, port2 } = new MessageChannel()
    port2.once("message", (received: unknown) => {
      port1.close()
      resume(Effect.succeed(received))
    })
    port1.postMessage(value)
  })

describe.concurrent("round 17: binary frames handed across threads", () => {
  for (const api of ["Client", "Connection"] as const) {
    it.live(`${api}: 5 binary frames that arrived in one read: each posted on a MessagePort carries its own 4 bytes, and transferring one frame's buffer leaves the others whole`, () =>
      Effect.gen(function*() {
        const server = yield* fiveFramesInOneWrite
        const messages = api === "Client"
          ? (yield* Client.make({ url: server.url, connection: { closeTimeout: "100 millis" } })).messages
          : (yield* Connection.connect(server.url, { closeTimeout: "100 millis" })).messages
        const frames = Chunk.toArray(yield* Stream.runCollect(Stream.take(messages, 5))) as Array<Uint8Array>
        const copy = yield* post(frames[0]!, false)
        expect([...copy]).toEqual([0, 0, 0, 0])
        expect(copy.buffer.byteLength).toBe(4)
        const moved = yield* post(frames[1]!, true)
        expect([...moved]).toEqual([1, 1, 1, 1])
        // The transferred frame is detached (empty); only it.
        expect(frames.map((frame) => frame.byteLength === 0 ? [] : [...frame])).toEqual([
          [0, 0, 0, 0],
          [],
          [2, 2, 2, 2],
          [3, 3, 3, 3],
          [4, 4, 4, 4]
        ])
      }).pipe(Effect.scoped, Effect.provide(quietNode)))
  }
})

/** 1,000 binary frames of 100 bytes, each its index (2 bytes) then its index mod 256, in one write. */
const thousandFramesInOneWrite = upgradingServer({ count: 0 }, (socket, head) => {
  const frames = Array.from({ length: 1000 }, (_, i) => {
    const payload = Buffer.alloc(100, i % 256)
    payload.writeUInt16BE(i, 0)
    return Buffer.concat([Buffer.from([0x82, 100]), payload])
  })
  socket.write(Buffer.concat([head, ...frames]))
})

describe("round 17: a stream of frames handed to another thread", () => {
  it.live("Stream.runForEach(client.messages) posting each frame with its buffer transferred (zero copy), 1,000 frames that came in a few reads: the other side gets all 1,000 whole, in order; none was emptied by the transfer of another", () =>
    Effect.gen(function*() {
      const server = yield* thousandFramesInOneWrite
      const client = yield* Client.make({ url: server.url, connection: { closeTimeout: "100 millis" } })
      const { port1, port2 } = new MessageChannel()
      yield* Effect.addFinalizer(() => Effect.sync(() => port1.close()))
      const got: Array<Uint8Array> = []
      port2.on("message", (frame: Uint8Array) => got.push(frame))
      yield* client.messages.pipe(
        Stream.take(1000),
        Stream.runForEach((frame) =>
          Effect.sync(() => {
            const bytes = frame as Uint8Array
            port1.postMessage(bytes, [bytes.buffer as ArrayBuffer])
          })
        )
      )
      yield* awaitTrue(Effect.sync(() => got.length === 1000), "1,000 frames on the other side", 5_000)
      const wrong = got.flatMap((frame, i) =>
        frame.byteLength === 100 && Buffer.from(frame).readUInt16BE(0) === i && frame[99] === i % 256 ? [] : [i]
      )
      expect(wrong).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(quietNode)))
})

describe("round 17: binary frames through the compat facade", () => {
  it.live("binaryType \"arraybuffer\", 5 frames that arrived in one read: each event's data is an ArrayBuffer of its own 4 bytes, and transferring one leaves the others whole", () =>
    Effect.gen(function*() {
      const server = yield* fiveFramesInOneWrite
      const socket = new ReconnectingWebSocket(server.url, [], { maxRetries: 0 })
      socket.binaryType = "arraybuffer"
      yield* Effect.addFinalizer(() => Effect.sync(() => socket.close()))
      const received: Array<ArrayBuffer> = []
      socket.addEventListener("message", ({ data }) => received.push(data as ArrayBuffer))
      yield* awaitTrue(Effect.sync(() => received.length === 5), "5 frames", 5_000)
      expect(received.map((buffer) => [...new Uint8Array(buffer)])).toEqual([0, 1, 2, 3, 4].map((i) => [i, i, i, i]))
      const moved = yield* post(new Uint8Array(received[1]!), true)
      expect([...moved]).toEqual([1, 1, 1, 1])
      expect(received.map((buffer) => buffer.byteLength)).toEqual([4, 0, 4, 4, 4])
    }).pipe(Effect.scoped))
})

describe.concurrent("round 17: errors handed across threads", () => {
  it.live("a Client's error posted on a MessagePort as it is arrives as a bare Error with an empty message (structured clone keeps no getter, no field); encoded with effect-lifeline/schema it decodes to the same error", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      yield* server.rejectNext(503, { "retry-after": "7" })
      const client = yield* Client.make({ url: server.url, shouldRetry: () => false })
      const state = yield* Stream.runHead(
        Stream.filter(client.state.changes, (state) => state._tag === "Closed")
      ).pipe(Effect.map(Option.getOrThrow))
      const error = Option.getOrThrow((state as Extract<typeof state, { _tag: "Closed" }>).error) as ConnectError
      expect(error.message).toContain(`HandshakeRejected connecting to ${server.url}/ (HTTP 503, retry after 7s)`)
      const raw = (yield* postValue(error)) as Error
      expect([raw.constructor.name, raw.message, Object.keys(raw)]).toEqual(["Error", "", []])
      const encoded = yield* postValue(Schema.encodeSync(LifelineSchema.ClientError)(error))
      const decoded = Schema.decodeUnknownSync(LifelineSchema.ClientError)(encoded)
      expect(decoded).toBeInstanceOf(ConnectError)
      expect(decoded).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 503 })
      expect(decoded.message).toBe(error.message)
    }).pipe(Effect.scoped, Effect.provide(quietNode)))
})

describe("round 17: Connection.connect aborted at random moments", () => {
  it.live("100 runPromise calls to a server, each aborted after 0-19 turns of the event loop (before, during and after the handshake): each rejects with the interruption, every connection the server accepted is closed, no handle left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const outcomes: Record<string, number> = {}
      let seed = 17
      for (let i = 0; i < 100; i++) {
        seed = (seed * 1103515245 + 12345) % 2147483648
        const turns = seed % 20
        const controller = new AbortController()
        const program = Effect.scoped(Connection.connect(server.url).pipe(Effect.andThen(Effect.never)))
        const running = yield* Effect.fork(runWithSignal(program, controller.signal))
        for (let turn = 0; turn < turns; turn++) {
          yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        }
        controller.abort()
        const outcome = yield* Fiber.join(running)
        const key = outcome.settled === "rejected" && isInterruption(outcome.error) ? "interrupted" : "other"
        outcomes[key] = (outcomes[key] ?? 0) + 1
      }
      expect(outcomes).toEqual({ interrupted: 100 })
      yield* server.awaitConnections(0)
    })).pipe(Effect.provide(quietNode)))
})

const provideBrowser = Effect.provide(Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger)))

/** 8 bytes of 5 over a SharedArrayBuffer (memory shared with another thread), which a WHATWG `send` refuses. */
const sharedView = () => new Uint8Array(new SharedArrayBuffer(8)).fill(5)

/** 8 bytes whose buffer was then transferred (`postMessage(frame, [frame.buffer])`): detached, empty. */
const detachedView = () => {
  const view = new Uint8Array(8).fill(5)
  structuredClone(view.buffer, { transfer: [view.buffer] })
  return view
}

describe.concurrent("round 17: frames the browser transport's send refuses (Node's own WebSocket): over a SharedArrayBuffer, or detached", () => {
  for (
    const [what, frame] of [["over a SharedArrayBuffer", sharedView], [
      "whose buffer was transferred to another thread",
      detachedView
    ]] as const
  ) {
    it.live(`Connection.write of a frame ${what} fails SendError WriteFailed with the frame (it was lost silently); the connection stays open`, () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        const view = frame()
        const written = yield* Effect.flip(connection.write(view))
        expect(written).toMatchObject({ _tag: "SendError", reason: "WriteFailed" })
        expect(written.payload).toBe(view)
        expect(yield* connection.readyState).toBe(1)
        yield* connection.send("after")
        yield* server.awaitReceived(1)
        expect(yield* server.received).toEqual(["after"])
      }).pipe(Effect.scoped, provideBrowser))
  }

  it.live("a Client's send of it while an earlier frame waits on the mark: that send fails WriteFailed at once (not counted in failed: nothing was accepted), the earlier one succeeds and reaches the peer (the error was matched to the earlier frame, and the earlier frame's completion to this one)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, connection: { writeHighWaterMark: 1024 } })
      yield* client.awaitOpen
      const [peer] = yield* server.peers
      yield* server.pauseReading
      // 8 MiB: more than the loopback's kernel buffers take, so it waits on the mark.
      const large = new Uint8Array(8 * 1024 * 1024).fill(1)
      const first = yield* Effect.fork(client.send(large))
      yield* awaitTrue(Effect.map(client.outboxSize, (size) => size === 1), "the large frame handed over")
      const view = sharedView()
      const second = yield* Effect.fork(client.send(view))
      // Its send has run: it failed at once, or (before the fix) waits on a completion.
      yield* awaitTrue(
        Effect.map(Fiber.status(second), (status) => FiberStatus.isDone(status) || FiberStatus.isSuspended(status)),
        "the second send has run"
      )
      yield* server.resumeReading
      const firstExit = yield* Fiber.await(first)
      const secondExit = yield* Fiber.await(second)
      expect(Exit.isSuccess(firstExit)).toBe(true)
      expect(Exit.isFailure(secondExit) && Cause.squash(secondExit.cause)).toMatchObject({
        _tag: "SendError",
        reason: "WriteFailed",
        payload: view
      })
      yield* client.send("after")
      yield* server.awaitReceived(2)
      const received = yield* Effect.map(
        peer!.received,
        (frames) => frames.map((frame) => typeof frame === "string" ? frame : frame.byteLength)
      )
      expect(received).toEqual([8 * 1024 * 1024, "after"])
      // Refused at once (nothing was written), as a send ws throws on: not counted in `failed`.
      expect(yield* client.failed).toBe(0)
    }).pipe(Effect.scoped, provideBrowser))

  it.live("as a Client's app-level heartbeat message: Closed ConnectError InvalidOptions \"the heartbeat failed\" at the first probe (it timed out and reconnected at each probe: the probe was dropped unseen)", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ record: false })
      const client = yield* Client.make({
        url: server.url,
        heartbeat: { interval: "100 millis", timeout: "100 millis", message: sharedView() }
      })
      const states = Chunk.toArray(yield* Stream.runCollect(Stream.take(client.state.changes, 3)))
      expect(states.map((state) => state._tag)).toEqual(["Connecting", "Open", "Closed"])
      const last = states[2] as Extract<(typeof states)[number], { _tag: "Closed" }>
      const error = Option.getOrThrow(last.error)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "InvalidOptions" })
      expect(error.message).toContain("the heartbeat failed: ArrayBuffer: SharedArrayBuffer is not allowed.")
      expect(yield* server.accepted).toBe(1)
    }).pipe(Effect.scoped, provideBrowser))
})
