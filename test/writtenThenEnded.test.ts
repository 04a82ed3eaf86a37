/**
 * A frame the kernel took, its socket ended in the same tick (`send` then `terminate`): the frame
 * was delivered, and its write must say so. Node calls a write the kernel took at once back on
 * the next tick, and calls back a destroyed socket's writes with no error, so the Node transport
 * had reported such a frame "the connection ended before the frame was written": a `send` failed
 * `WriteFailed` (or an `enqueue` published `MessageFailed`) for a message the server had. What is
 * still buffered when the socket ends is not written and is reported so. Real sockets on
 * 127.0.0.1 against the TestServer, ws:// and wss://.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Logger, Redacted, Schedule, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Client, NodeTransport, Transport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import type { Message, SocketListener, TransportSocket } from "../src/Transport.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { echoScript, hasWebsockets, listen, scriptFile, spawnPython } from "./support/python.js"
import { hasOpenssl, makeMaterial } from "./support/tlsMaterial.js"
import { withSend } from "./support/wrappedTransport.js"

const tlsDir = hasOpenssl ? mkdtempSync(join(tmpdir(), "lifeline-written-")) : undefined
afterAll(() => {
  if (tlsDir !== undefined) rmSync(tlsDir, { recursive: true, force: true })
})

/** What each frame's write callback said ("ok" or the error's message), and bufferedAmount after each send. */
interface Outcome {
  readonly reports: ReadonlyArray<string>
  readonly buffered: ReadonlyArray<number>
}

/** Opens one socket of the Node transport to `url`, trusting `ca` over TLS; permessage-deflate offered unless `false`. */
const openNode = (url: string, ca: string | undefined, listener: SocketListener, perMessageDeflate?: boolean) =>
  NodeTransport.make.open({
    url: new URL(url),
    protocols: [],
    headers: {},
    maxPayload: 1 << 30,
    perMessageDeflate,
    tls: ca === undefined ? undefined : Redacted.make({ ca })
  }, listener)

/**
 * Opens one socket of the Node transport, sends `frames` and terminates it in the same tick, then
 * waits for its close and for every write's report.
 */
const sendThenTerminate = (url: string, frames: ReadonlyArray<Message>, ca?: string, perMessageDeflate?: boolean) =>
  Effect.async<Outcome>((resume) => {
    const reports: Array<string> = new Array(frames.length).fill("none")
    const buffered: Array<number> = []
    let reported = 0
    let closed = false
    const settle = () => {
      if (closed && reported === frames.length) resume(Effect.succeed({ reports, buffered }))
    }
    const listener: SocketListener = {
      onOpen: () => {
        frames.forEach((frame, i) => {
          socket.send(frame, (error) => {
            reports[i] = error === undefined
              ? "ok"
              : Reflect.get(error, "notWritten") === true
              ? `not written: ${error.message} (${(error.cause as Error).message})`
              : error.message
            reported++
            settle()
          })
          buffered.push(socket.bufferedAmount())
        })
        socket.terminate()
      },
      onMessage: () => {},
      onPong: () => {},
      onHandshakeFailure: (failure) => resume(Effect.die(new Error(`handshake failed: ${failure.detail}`))),
      onProtocolError: () => {},
      onClose: () => {
        closed = true
        settle()
      }
    }
    const opened = openNode(url, ca, listener, perMessageDeflate)
    if (opened._tag === "Left") return resume(Effect.die(new Error(opened.left.detail)))
    // The listener runs from later events only, once this is set.
    const socket: TransportSocket = opened.right
  })

/** The TestServer's received messages once `count` arrived (within 2 s), then 100 ms more for any late one. */
const receivedAfter = (server: TestServer.TestServer, count: number) =>
  Effect.gen(function*() {
    if (count > 0) yield* server.awaitReceived(count, "2 seconds")
    yield* Effect.sleep("100 millis")
    return yield* server.received
  })

const quiet = Logger.remove(Logger.defaultLogger)

/** A TestServer that keeps what it receives and answers nothing; over TLS, with its CA's certificate. */
const ignoringServer = (tls: boolean) =>
  Effect.gen(function*() {
    const material = tls ? makeMaterial(tlsDir!) : undefined
    const server = yield* TestServer.make({
      handler: "ignore",
      ...(material === undefined ? {} : { tls: { cert: material.serverCert, key: material.serverKey } })
    })
    return { server, ca: material?.caCert }
  })

describe("the Node transport: a frame the kernel took, its socket ended in the same tick", () => {
  for (const scheme of ["ws", "wss"] as const) {
    const tls = scheme === "wss"
    it.live.skipIf(tls && tlsDir === undefined)(
      `${scheme}://: a small frame is reported written and the server has it; frames corked behind it fail and the server has none of them`,
      () =>
        withNoHandlesLeft(
          Effect.gen(function*() {
            const { ca, server } = yield* ignoringServer(tls)
            // The first small frame of a tick leaves at once; the next two are corked until the tick's end.
            const outcome = yield* sendThenTerminate(server.url, ["first", "second", "third"], ca)
            // Under TLS the stream keeps the first write until TLS calls it done, a turn later.
            if (!tls) expect(outcome.buffered[0]).toBe(0)
            expect(outcome.buffered[1]).toBeGreaterThan(outcome.buffered[0]!)
            expect(outcome.reports).toEqual([
              "ok",
              "Cannot call write after a stream was destroyed",
              "Cannot call write after a stream was destroyed"
            ])
            expect(yield* receivedAfter(server, 1)).toEqual(["first"])
          }).pipe(Effect.scoped)
        )
    )

    it.live.skipIf(tls && tlsDir === undefined)(
      `${scheme}://: a 32 MiB frame the kernel could not take whole is reported not written, and the server has no message`,
      () =>
        withNoHandlesLeft(
          Effect.gen(function*() {
            const { ca, server } = yield* ignoringServer(tls)
            const outcome = yield* sendThenTerminate(server.url, [new Uint8Array(32 << 20)], ca)
            expect(outcome.buffered[0]).toBeGreaterThan(0)
            expect(outcome.reports).toEqual(["the connection ended before the frame was written"])
            expect(yield* receivedAfter(server, 0)).toEqual([])
          }).pipe(Effect.scoped)
        )
    )
  }
})

/** A seeded generator (linear congruential): the same plans at every run. */
const seeded = (start: number) => {
  let seed = start
  return (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

const SIZES = [1, 10, 100, 1000, 16_000, 70_000, 300_000, 2_000_000]

/**
 * One socket of the Node transport: 1 to 8 frames of mixed sizes, each named `<run>-<index>-`,
 * some in later turns (`setImmediate`, `nextTick`), ended by `terminate` right after one of them,
 * at the end, or a few milliseconds later. Each frame's reports (a written frame: "ok"; else
 * "lost"), once the socket closed.
 */
const randomRun = (url: string, ca: string | undefined, random: () => number, run: number) =>
  Effect.async<ReadonlyArray<{ readonly name: string; readonly reports: ReadonlyArray<string> }>>((resume) => {
    const frames: Array<{ readonly name: string; readonly reports: Array<string> }> = []
    const count = 1 + Math.floor(random() * 8)
    const cut = Math.floor(random() * (count + 1))
    const step = () => {
      while (frames.length < count) {
        const frame = { name: `${run}-${frames.length}`, reports: [] as Array<string> }
        frames.push(frame)
        const size = SIZES[Math.floor(random() * SIZES.length)]!
        socket.send(
          `${frame.name}-${"x".repeat(size)}`,
          (error) => frame.reports.push(error === undefined ? "ok" : "lost")
        )
        if (frames.length === cut) return socket.terminate()
        if (random() < 0.3) return (random() < 0.5 ? setImmediate : process.nextTick)(step)
      }
      if (random() < 0.5) return socket.terminate()
      setTimeout(() => socket.terminate(), Math.floor(random() * 5))
    }
    const listener: SocketListener = {
      onOpen: step,
      onMessage: () => {},
      onPong: () => {},
      onHandshakeFailure: (failure) => resume(Effect.die(new Error(`handshake failed: ${failure.detail}`))),
      onProtocolError: () => {},
      // Every write is called back by the close (Transport's contract: exactly once, before it).
      onClose: () => resume(Effect.succeed(frames))
    }
    const opened = openNode(url, ca, listener)
    if (opened._tag === "Left") return resume(Effect.die(new Error(opened.left.detail)))
    // The listener runs from later events only, once this is set.
    const socket: TransportSocket = opened.right
  })

describe("the Node transport: sockets ended at random among their writes (seeded)", () => {
  for (const scheme of ["ws", "wss"] as const) {
    const tls = scheme === "wss"
    it.live.skipIf(tls && tlsDir === undefined)(
      `${scheme}://: 50 sockets; every frame reported once; every one reported written is at the server`,
      () =>
        withNoHandlesLeft(
          Effect.gen(function*() {
            const { ca, server } = yield* ignoringServer(tls)
            const random = seeded(tls ? 2 : 1)
            const reportedOnce: Array<string> = []
            const writtenNotThere: Array<string> = []
            let written = 0
            for (let run = 0; run < 50; run++) {
              const frames = yield* randomRun(server.url, ca, random, run)
              // The server has read all there was once its side closed.
              yield* server.awaitConnections(0)
              const there = new Set((yield* server.received).map((message) => String(message).split("-", 2).join("-")))
              for (const { name, reports } of frames) {
                if (reports.length !== 1) reportedOnce.push(`${name}: ${reports.join(",") || "none"}`)
                if (reports[0] !== "ok") continue
                written++
                if (!there.has(name)) writtenNotThere.push(name)
              }
            }
            expect(reportedOnce).toEqual([])
            expect(writtenNotThere).toEqual([])
            // Not all lost: the seeds write some whole before the end.
            expect(written).toBeGreaterThan(50)
          }).pipe(Effect.scoped)
        )
    )
  }
})

describe("a real peer: Python websockets 10.4 (it prints each message it reads)", () => {
  /** Python's echo server printing each message; the lines it printed. */
  const printingPython = Effect.gen(function*() {
    const printed: Array<string> = []
    const script = yield* scriptFile("echo.py", echoScript(true))
    const port = yield* listen(yield* spawnPython(script, (line) => printed.push(line)), 0)
    return { url: `ws://127.0.0.1:${port}`, printed }
  })

  /** Python's lines once its first came (bounded) and 100 ms more; or after 300 ms if none is due. */
  const linesOf = (printed: Array<string>, expected: number) =>
    Effect.gen(function*() {
      for (let turn = 0; turn < 200 && printed.length < expected; turn++) yield* Effect.sleep("10 millis")
      yield* Effect.sleep(expected === 0 ? "300 millis" : "100 millis")
      return printed
    })

  it.live.skipIf(!hasWebsockets)(
    "without permessage-deflate: a small frame then terminate, in one block: reported written, and Python read it; the frame corked behind it: not written, never read",
    () =>
      withNoHandlesLeft(
        Effect.gen(function*() {
          const python = yield* printingPython
          const outcome = yield* sendThenTerminate(python.url, ["first", "second"], undefined, false)
          expect(outcome.reports).toEqual(["ok", "Cannot call write after a stream was destroyed"])
          expect(yield* linesOf(python.printed, 1)).toEqual(["M first"])
        }).pipe(Effect.scoped)
      )
  )

  it.live.skipIf(!hasWebsockets)(
    "with permessage-deflate (Python accepts it): ws compresses on a later turn, so a terminate in the same block writes nothing: both frames fail not written (ws: closed while compressing), and Python read none",
    () =>
      withNoHandlesLeft(
        Effect.gen(function*() {
          const python = yield* printingPython
          const outcome = yield* sendThenTerminate(python.url, ["first", "second"])
          expect(outcome.buffered[0]).toBeGreaterThan(0)
          // Transport's `notWritten`, ws's own error as the cause: a Client sends them again.
          expect(outcome.reports).toEqual([
            "not written: the connection ended before the frame reached the network (The socket was closed while data was being compressed)",
            "not written: the connection ended before the frame reached the network (The socket was closed while data was being compressed)"
          ])
          expect(yield* linesOf(python.printed, 0)).toEqual([])
        }).pipe(Effect.scoped)
      )
  )
})

describe("the Client: a message written, its socket ended in the same tick", () => {
  /** The Node transport, its socket terminated right after the write of "last". */
  const endsAfterLast = Layer.merge(
    Layer.succeed(
      Transport.Transport,
      withSend(NodeTransport.make, (socket, data, callback) => {
        socket.send(data, callback)
        if (data === "last") socket.terminate()
      })
    ),
    quiet
  )

  for (const way of ["send", "enqueue"] as const) {
    it.live(`${way}: succeeds, no MessageFailed, failed 0; the server has the message`, () =>
      withNoHandlesLeft(
        Effect.gen(function*() {
          const server = yield* TestServer.make({ handler: "ignore" })
          const client = yield* Client.make({ url: server.url, heartbeat: false })
          yield* client.awaitOpen
          yield* client[way]("last")
          expect(yield* receivedAfter(server, 1)).toEqual(["last"])
          yield* client.close()
          const events = yield* Stream.runCollect(client.events)
          expect([...events].filter((event) => event._tag === "MessageFailed")).toEqual([])
          expect(yield* client.failed).toBe(0)
        }).pipe(Effect.scoped, Effect.provide(endsAfterLast))
      ))
  }
})

/**
 * The Node transport, each socket terminated (at once or a turn later) after about 1 in 40 writes,
 * seeded; and how many it terminated.
 */
const cuttingTransport = (seed: number) => {
  const cuts = seeded(seed)
  const counted = { terminated: 0 }
  const layer = Layer.merge(
    Layer.succeed(
      Transport.Transport,
      withSend(NodeTransport.make, (socket, data, callback) => {
        socket.send(data, callback)
        if (cuts() >= 0.025) return
        counted.terminated++
        if (cuts() < 0.5) socket.terminate()
        else setImmediate(() => socket.terminate())
      })
    ),
    quiet
  )
  return { layer, counted }
}

/** A Client to `url` that reconnects every 2 ms, and the payloads of its MessageFailed events, read as they come. */
const reconnectingClient = (url: string) =>
  Effect.gen(function*() {
    const client = yield* Client.make({
      url,
      heartbeat: false,
      retry: Schedule.spaced("2 millis"),
      minRetryDelay: "2 millis",
      eventsCapacity: 10_000
    })
    const messageFailed: Array<string> = []
    const reader = yield* Effect.fork(Stream.runForEach(client.events, (event) =>
      Effect.sync(() => {
        if (event._tag === "MessageFailed") messageFailed.push(String(event.error.payload))
      })))
    yield* client.awaitOpen
    return { client, messageFailed, reader }
  })

/** Waits (bounded) until the Client is Open again with nothing waiting, then closes it: what `close` returned. */
const settleAndClose = (client: Client.Client) =>
  Effect.gen(function*() {
    for (
      let turn = 0;
      turn < 500 && ((yield* client.outboxSize) > 0 || (yield* client.state.get)._tag !== "Open");
      turn++
    ) {
      yield* Effect.sleep("2 millis")
    }
    return (yield* client.close()).map(String)
  })

describe("the Client: sends and enqueues while its sockets are ended at random (seeded)", () => {
  it.live("600 messages of 1 B to 100 kB, each socket terminated after about 1 in 40 writes: every message has one outcome, and every one reported written is at the server once", () => {
    const { counted, layer: cutting } = cuttingTransport(11)
    return withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const { client, messageFailed, reader } = yield* reconnectingClient(server.url)
        const random = seeded(12)
        // Per message: "send ok", "send failed <reason>", "enqueue accepted", "enqueue refused <reason>".
        const outcomes = new Map<string, string>()
        const sends: Array<Fiber.RuntimeFiber<void>> = []
        for (let index = 0; index < 600; index++) {
          // Small frames (corked together in a tick) and large ones (ws writes them in two parts).
          const message = `m${index}-${"x".repeat([1, 100, 20_000, 100_000][Math.floor(random() * 4)]!)}`
          if (random() < 0.5) {
            const enqueued = yield* Effect.either(client.enqueue(message))
            outcomes.set(
              message,
              enqueued._tag === "Right" ? "enqueue accepted" : `enqueue refused ${enqueued.left._tag}`
            )
          } else {
            sends.push(
              yield* Effect.fork(
                Effect.either(client.send(message)).pipe(Effect.map((sent) => {
                  outcomes.set(
                    message,
                    sent._tag === "Right"
                      ? "send ok"
                      : `send failed ${"reason" in sent.left ? sent.left.reason : sent.left._tag}`
                  )
                }))
              )
            )
          }
          if (random() < 0.1) yield* Effect.sleep("1 millis")
        }
        yield* Fiber.joinAll(sends)
        // Open again with nothing waiting (bounded), then closed: what is still queued comes back.
        const returned = yield* settleAndClose(client)
        yield* Fiber.join(reader)
        yield* server.awaitConnections(0)
        const received = (yield* server.received).map(String)
        const atServer = new Set(received)

        const problems: Array<string> = []
        if (atServer.size !== received.length) problems.push("a message arrived twice")
        const failedOnce = new Set(messageFailed)
        if (failedOnce.size !== messageFailed.length) problems.push("a MessageFailed twice")
        let sendFailures = 0
        for (const [message, outcome] of outcomes) {
          const failed = failedOnce.has(message)
          const back = returned.includes(message)
          if (outcome.startsWith("send failed")) sendFailures++
          if (outcome === "enqueue accepted") {
            if (failed && back) problems.push(`${message}: MessageFailed and returned by close`)
            if (!failed && !back && !atServer.has(message)) {
              problems.push(`${message}: accepted, written, not at the server`)
            }
          } else if (failed || back) problems.push(`${message}: ${outcome}, and also failed later`)
          if (outcome === "send ok" && !atServer.has(message)) problems.push(`${message}: send ok, not at the server`)
          if (outcome.startsWith("enqueue refused") && atServer.has(message)) {
            problems.push(`${message}: refused, at the server`)
          }
        }
        expect(problems).toEqual([])
        expect(outcomes.size).toBe(600)
        expect(yield* client.failed).toBe(sendFailures + messageFailed.length + returned.length)
        // The seed ends sockets under the writes (several reconnects; a burst corked in one tick
        // fails whole with its socket), and many messages arrive.
        expect(counted.terminated).toBeGreaterThan(3)
        expect(received.length).toBeGreaterThan(100)
      }).pipe(Effect.scoped, Effect.provide(cutting))
    )
  })
})

describe("the Client: a Stream run into its sink while its sockets are ended at random (seeded)", () => {
  it.live("600 messages of 1 B to 100 kB through Stream.run(client.sink): the sink completes; each message at the server once, in order, or a MessageFailed, or returned by close; failed exact", () => {
    const { counted, layer: cutting } = cuttingTransport(21)
    return withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const { client, messageFailed, reader } = yield* reconnectingClient(server.url)
        const random = seeded(22)
        const messages = Array.from(
          { length: 600 },
          (_, index) => `m${index}-${"x".repeat([1, 100, 20_000, 100_000][Math.floor(random() * 4)]!)}`
        )
        // As an app writes a feed: a Stream in chunks of 16, run into the sink.
        yield* Stream.run(Stream.fromIterable(messages).pipe(Stream.rechunk(16)), client.sink)
        const returned = yield* settleAndClose(client)
        yield* Fiber.join(reader)
        yield* server.awaitConnections(0)
        const index = (message: string) => Number(message.slice(1, message.indexOf("-")))
        const received = (yield* server.received).map((message) => index(String(message)))
        const failed = new Set(messageFailed.map(index))
        const back = new Set(returned.map(index))
        // In order and once: each a later message than the one before it.
        expect(received.filter((value, k) => k > 0 && value <= received[k - 1]!)).toEqual([])
        const atServer = new Set(received)
        const problems = messages.map((_, k) => k).flatMap((k) => {
          const outcomes = [atServer.has(k), failed.has(k), back.has(k)].filter(Boolean).length
          // Reported failed and at the server is the safe side (the head of a write cut short).
          if (outcomes === 0) return [`m${k}: no outcome`]
          if (failed.has(k) && back.has(k)) return [`m${k}: MessageFailed and returned`]
          if (atServer.has(k) && back.has(k)) return [`m${k}: at the server and returned`]
          return []
        })
        expect(problems).toEqual([])
        expect(failed.size).toBe(messageFailed.length)
        expect(yield* client.failed).toBe(messageFailed.length + returned.length)
        // A sink keeps the outbox full, so a cut fails much in flight (113 of 600 arrive in a run).
        expect(counted.terminated).toBeGreaterThan(3)
        expect(received.length).toBeGreaterThan(50)
      }).pipe(Effect.scoped, Effect.provide(cutting))
    )
  })
})
