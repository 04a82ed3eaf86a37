/**
 * Round 13: the single-socket API (`Connection.connect`, `Connection.layer`) as application code
 * uses it, against real peers on 127.0.0.1: the test kit's TestServer and FaultProxy, hand-written
 * TCP peers that stall at each point of the handshake, Python `websockets` and nginx (each skipped
 * with one warning when missing). docs/trials.md, "round 13", has the table of what was tried.
 * Bounded loops, no timed assertions.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  Option,
  Schedule,
  Schema,
  Scope,
  Stream
} from "effect"
import { Client, Codec, Connection } from "../src/index.js"
import type { ConnectError, SendError } from "../src/index.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { hasNginx, nginx, proxyTo } from "./support/nginx.js"
import { provideNode, quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { closedPort } from "./support/ports.js"
import { hasWebsockets, pythonEcho } from "./support/python.js"
import { makeRecordingTransport } from "./support/recordingTransport.js"
import { tcpServer, upgradingServer } from "./support/tcpServer.js"

/** The Node transport recording every socket it opens, without the default logger. */
const recorded = () => {
  const recording = makeRecordingTransport()
  return {
    states: () => recording.sockets.map((socket) => socket.readyState()),
    layer: Layer.merge(recording.layer, Logger.remove(Logger.defaultLogger))
  }
}

const range = (count: number) => Array.from({ length: count }, (_, index) => index)

/** What an effect ended with: "opened" (success), its failure's `_tag`, or the Cause's tag. */
const tagOf = (exit: Exit.Exit<unknown, unknown>): string => {
  const cause = Option.getOrUndefined(Exit.causeOption(exit))
  if (cause === undefined) return "opened"
  return cause._tag === "Fail" ? String((cause.error as { _tag?: unknown })._tag) : cause._tag
}

describe("round 13: connecting", () => {
  it.live(
    "Effect.timeout at 0, 1, 5, 20 and 50 ms around connect to peers that stall at each point of the handshake (silent TCP, request read and unanswered, half a 101, a 101 without its blank line): TimeoutException each time, every socket CLOSED, no handle left",
    () => {
      const recording = recorded()
      return Effect.gen(function*() {
        const requests = { count: 0 }
        const outcomes: Array<string> = []
        yield* withNoHandlesLeft(Effect.gen(function*() {
          const silent = yield* tcpServer((socket) => socket.on("error", () => {}))
          const hung = yield* TestServer.make()
          yield* hung.hangHandshake
          const halfHead = yield* upgradingServer(requests, (socket, head) => socket.write(head.subarray(0, 40)))
          const noBlankLine = yield* upgradingServer(
            requests,
            (socket, head) => socket.write(head.subarray(0, head.length - 2))
          )
          for (const url of [silent.url, hung.url, halfHead.url, noBlankLine.url]) {
            for (const millis of [0, 1, 5, 20, 50]) {
              const exit = yield* Effect.exit(
                Connection.connect(url).pipe(Effect.timeout(`${millis} millis`), Effect.scoped)
              )
              outcomes.push(tagOf(exit))
            }
          }
          // Every socket the loop opened is CLOSED as soon as its scope ended, the servers still up.
          expect(recording.states()).toEqual(range(20).map(() => 3))
        })).pipe(Effect.provide(recording.layer))
        expect(outcomes).toEqual(range(20).map(() => "TimeoutException"))
      })
    }
  )

  it.live(
    "interrupted at 50 points of a handshake whose 101 arrives one byte per event-loop turn (before the request, inside the status line, the headers, after the head): interrupted each time, every socket CLOSED, no handle left",
    () => {
      const recording = recorded()
      return Effect.gen(function*() {
        const outcomes: Array<string> = []
        let opened = 0
        yield* withNoHandlesLeft(Effect.gen(function*() {
          const requests = { count: 0 }
          const peer = yield* upgradingServer(requests, (socket, head) => {
            let index = 0
            const next = () => {
              if (socket.destroyed) return
              // The whole head sent: end TCP at the client's close frame (the release, 1001).
              if (index >= head.length) return void socket.on("data", () => socket.end())
              socket.write(head.subarray(index, ++index))
              setImmediate(next)
            }
            next()
          })
          for (let turns = 0; turns < 200; turns += 4) {
            const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
              yield* Connection.connect(peer.url, { closeTimeout: "100 millis" })
              opened++
              return yield* Effect.never
            })))
            for (let turn = 0; turn < turns; turn++) {
              yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
            }
            const exit = yield* Fiber.interrupt(fiber)
            outcomes.push(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? "interrupted" : tagOf(exit))
          }
        })).pipe(Effect.provide(recording.layer))
        expect(outcomes).toEqual(range(50).map(() => "interrupted"))
        // Interrupted at once (0 turns), connect had not begun: no socket then.
        expect(recording.states()).toEqual(range(49).map(() => 3))
        // Both kinds were interrupted: mid-handshake and once open (the head is about 130 bytes).
        expect(opened).toBeGreaterThan(0)
        expect(opened).toBeLessThan(49)
      })
    }
  )

  it.live(
    "a 101, a text frame and a close frame in one TCP write: connect succeeds, messages yields the frame and ends, closed is Disconnected 4000 by the server",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const requests = { count: 0 }
        // Unmasked server frames: text "hello" (0x81, length 5), close 4000 "bye" (0x88, length 5).
        const frames = Buffer.from([0x81, 5, ...Buffer.from("hello"), 0x88, 5, 0x0f, 0xa0, ...Buffer.from("bye")])
        const peer = yield* upgradingServer(requests, (socket, head) => socket.write(Buffer.concat([head, frames])))
        const connection = yield* Connection.connect(peer.url)
        expect(Chunk.toArray(yield* Stream.runCollect(connection.messages))).toEqual(["hello"])
        expect(yield* connection.closed).toMatchObject({ code: 4000, reason: "bye", initiator: "server" })
        expect(yield* connection.readyState).toBe(3)
      })).pipe(provideNode)
  )

  it.live(
    "Effect.retry(Schedule.recurs(4)) of connect with Effect.timeout(30 ms), in one scope, to a server that never answers: 5 attempts, each socket CLOSED before the retry gives up (not at the scope's end)",
    () => {
      const recording = recorded()
      return withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* server.hangHandshake
        const error = yield* Connection.connect(server.url).pipe(
          Effect.timeout("30 millis"),
          Effect.retry(Schedule.recurs(4)),
          Effect.flip
        )
        expect(error._tag).toBe("TimeoutException")
        // Still inside the scope: nothing waits for it to end.
        expect(recording.states()).toEqual([3, 3, 3, 3, 3])
        yield* awaitTrue(Effect.map(server.requests, (count) => count === 5), "the server saw 5 requests")
        expect(yield* server.accepted).toBe(0)
      })).pipe(Effect.provide(recording.layer))
    }
  )

  it.live(
    "Effect.raceAll to a stalled endpoint, a live one and a refused port: the live one wins, the stalled handshake is aborted at once (its socket CLOSED while the scope is open), the winner echoes",
    () => {
      const recording = recorded()
      return withNoHandlesLeft(Effect.gen(function*() {
        const stalled = yield* TestServer.make()
        yield* stalled.hangHandshake
        const live = yield* TestServer.make()
        const refused = `ws://127.0.0.1:${yield* closedPort}`
        const winner = yield* Effect.raceAll(
          [stalled.url, live.url, refused].map((url) => Connection.connect(url))
        )
        expect(winner.url).toBe(new URL(live.url).href)
        yield* winner.send("won")
        expect(Chunk.toArray(yield* Stream.runCollect(Stream.take(winner.messages, 1)))).toEqual(["won"])
        // Opened in this order: the stalled one and the refused one are CLOSED, the winner OPEN.
        expect(recording.states()).toEqual([3, 1, 3])
        yield* awaitTrue(Effect.map(stalled.requests, (count) => count === 1), "the stalled server saw the request")
        expect(yield* stalled.accepted).toBe(0)
      })).pipe(Effect.provide(recording.layer))
    }
  )

  it.live(
    "Effect.race of two connects to one server, one of them through a FaultProxy adding 40 ms each way: the direct one wins, the proxied handshake is released at once (its socket CLOSED, the proxy's connection gone) while the scope is open",
    () => {
      const recording = recorded()
      return withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const proxy = yield* FaultProxy.make(server.port)
        yield* proxy.latency(40)
        const winner = yield* Effect.race(Connection.connect(proxy.url), Connection.connect(server.url))
        expect(winner.url).toBe(new URL(server.url).href)
        expect(recording.states()).toEqual([3, 1])
        yield* awaitTrue(Effect.map(proxy.connections, (count) => count === 0), "the proxied connection closed")
        yield* winner.send("direct")
        expect(Chunk.toArray(yield* Stream.runCollect(Stream.take(winner.messages, 1)))).toEqual(["direct"])
      })).pipe(Effect.provide(recording.layer))
    }
  )

  it.live(
    "Effect.forEach of 50 connects (concurrency 10), each in Effect.either, to a server that refuses the first 25 with 503: 25 echo their own index, 25 fail HandshakeRejected 503; 50 sockets, all CLOSED",
    () => {
      const recording = recorded()
      return withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* server.rejectNext(503, {}, 25)
        const results = yield* Effect.forEach(
          range(50),
          (index) =>
            Effect.either(Effect.scoped(Effect.gen(function*() {
              const connection = yield* Connection.connect(server.url)
              yield* connection.send(`#${index}`)
              return Chunk.toArray(yield* Stream.runCollect(Stream.take(connection.messages, 1)))
            }))),
          { concurrency: 10 }
        )
        const echoed = results.flatMap((result, index) => Either.isRight(result) ? [[index, result.right]] : [])
        const refused = results.flatMap((result) => Either.isLeft(result) ? [result.left] : [])
        expect(echoed.length).toBe(25)
        expect(echoed.every(([index, echo]) => (echo as Array<string>)[0] === `#${index as number}`)).toBe(true)
        expect(refused.map((error) => [error._tag, (error as ConnectError).reason, (error as ConnectError).status]))
          .toEqual(range(25).map(() => ["ConnectError", "HandshakeRejected", 503]))
        expect(recording.states()).toEqual(range(50).map(() => 3))
        expect(yield* server.accepted).toBe(25)
      })).pipe(Effect.provide(recording.layer))
    }
  )

  it.live(
    "Effect.forEach of connects (concurrency 10) without Effect.either, to a peer that opens 4, refuses the 5th with 503 and stalls the rest: fails with HandshakeRejected 503; the stalled connects are released at once (CLOSED, none CONNECTING), the 4 open ones stay OPEN until the scope ends",
    () => {
      const recording = recorded()
      return Effect.gen(function*() {
        yield* withNoHandlesLeft(Effect.gen(function*() {
          const requests = { count: 0 }
          const peer = yield* upgradingServer(requests, (socket, head) => {
            if (requests.count <= 4) {
              socket.write(head)
              // The client's close frame at release: end TCP (the client then reports 1006).
              socket.on("data", () => socket.end())
            } else if (requests.count === 5) {
              socket.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            }
          })
          const error = yield* Effect.forEach(range(50), () => Connection.connect(peer.url), { concurrency: 10 }).pipe(
            Effect.flip
          )
          expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 503 })
          const states = recording.states()
          expect(states.filter((state) => state === 1).length).toBe(4)
          expect(states.filter((state) => state !== 1 && state !== 3)).toEqual([])
        })).pipe(Effect.provide(recording.layer))
        expect(recording.states().filter((state) => state !== 3)).toEqual([])
      })
    }
  )

  it.scopedLive.skipIf(!hasNginx)(
    "through nginx to an upstream that stalls the handshake: Effect.timeout at 0 to 30 ms gives TimeoutException and CLOSED sockets; the upstream killed, HandshakeRejected 502 from nginx",
    () => {
      const recording = recorded()
      return Effect.gen(function*() {
        const server = yield* TestServer.make()
        const port = yield* closedPort
        yield* nginx(() => `
  server {
    listen 127.0.0.1:${port};${proxyTo(server.port)}
  }`, [port])
        const url = `ws://127.0.0.1:${port}`
        const outcomes = yield* Effect.gen(function*() {
          yield* server.hangHandshake
          const tags: Array<string> = []
          for (const millis of [0, 2, 10, 30]) {
            tags.push(
              tagOf(yield* Effect.exit(Connection.connect(url).pipe(Effect.timeout(`${millis} millis`), Effect.scoped)))
            )
          }
          yield* server.behave
          yield* server.kill
          const error = yield* Effect.flip(Effect.scoped(Connection.connect(url)))
          return { tags, error }
        }).pipe(Effect.provide(recording.layer))
        expect(outcomes.tags).toEqual(["TimeoutException", "TimeoutException", "TimeoutException", "TimeoutException"])
        expect(outcomes.error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 502 })
        expect(recording.states()).toEqual([3, 3, 3, 3, 3])
      })
    },
    30_000
  )
})

describe("round 13: exchanging", () => {
  it.live(
    "request/response over one connection: send then Stream.take(messages, 1), twice; messages read again after the peer closed gives the frames it sent before, then ends; a third run is empty",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        const ask = (question: string) =>
          Effect.zipRight(connection.send(question), Stream.runCollect(Stream.take(connection.messages, 1)))
        expect(Chunk.toArray(yield* ask("first"))).toEqual(["first"])
        expect(Chunk.toArray(yield* ask("second"))).toEqual(["second"])
        const [peer] = yield* server.peers
        yield* peer!.send("last words")
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 3), "the last frame arrived")
        yield* peer!.close(4000, "bye")
        yield* connection.closed
        expect(Chunk.toArray(yield* Stream.runCollect(connection.messages))).toEqual(["last words"])
        expect(Chunk.toArray(yield* Stream.runCollect(connection.messages))).toEqual([])
      })).pipe(provideNode)
  )

  it.live(
    "Stream.take(messages, 1) when two frames wait unread takes the first and leaves the second for the next reader (each run hands its first frames over one at a time; before round 31 the whole waiting chunk was pulled and the second dropped); one reader kept with Stream.toPull loses nothing either",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        // Two answers per request: an ack, then the data.
        const server = yield* TestServer.make({
          handler: (message, reply) => {
            reply(`ack ${String(message)}`)
            reply(`data ${String(message)}`)
          }
        })
        const connection = yield* Connection.connect(server.url)
        yield* connection.send("a")
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 2), "both answers arrived")
        expect(Chunk.toArray(yield* Stream.runCollect(Stream.take(connection.messages, 1)))).toEqual(["ack a"])
        yield* connection.send("b")
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 4), "both answers arrived")
        // "data a" waited behind "ack a": the first take left it.
        expect(Chunk.toArray(yield* Stream.runCollect(Stream.take(connection.messages, 3)))).toEqual([
          "data a",
          "ack b",
          "data b"
        ])

        // One pull for the connection's life, its chunks handed out one frame at a time.
        const pull = yield* Stream.toPull(connection.messages)
        let pending: Array<unknown> = []
        const next = Effect.suspend(() =>
          pending.length > 0
            ? Effect.succeed(pending.shift())
            : Effect.map(Effect.orDie(pull), (chunk) => {
              pending = Chunk.toArray(chunk)
              return pending.shift()
            })
        )
        yield* connection.send("c")
        yield* awaitTrue(Effect.map(connection.activity, (count) => count === 6), "both answers arrived")
        expect(yield* next).toBe("ack c")
        yield* connection.send("d")
        expect([yield* next, yield* next, yield* next]).toEqual(["data c", "ack d", "data d"])
      })).pipe(provideNode)
  )

  it.live(
    "messages read by two fibers at once: the frames are split between them, each exactly once, each reader's share in order",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        const shares: [Array<number>, Array<number>] = [[], []]
        const readers = yield* Effect.forEach([0, 1] as const, (reader) =>
          Effect.fork(Stream.runForEach(connection.messages, (message) =>
            Effect.sync(() => {
              shares[reader].push(Number(message))
            }))))
        const [peer] = yield* server.peers
        for (const index of range(200)) {
          yield* peer!.send(String(index))
        }
        yield* awaitTrue(
          Effect.sync(() =>
            shares[0].length + shares[1].length === 200
          ),
          "200 frames read"
        )
        yield* Fiber.interruptAll(readers)
        expect([...shares[0], ...shares[1]].sort((a, b) => a - b)).toEqual(range(200))
        for (const share of shares) expect(share).toEqual([...share].sort((a, b) => a - b))
      })).pipe(provideNode)
  )

  it.live(
    "Stream.runForEach(messages) forked with Effect.forkScoped while the main fiber writes 100 requests, waits for the answers and leaves: the reader saw all 100 in order and is interrupted before the release (socket still OPEN then), which closes with 1000",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const seen: Array<unknown> = []
        const reader: { exit?: Exit.Exit<void>; readyState?: number } = {}
        const connection = yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url)
          yield* Stream.runForEach(connection.messages, (message) => Effect.sync(() => seen.push(message))).pipe(
            Effect.onExit((exit) =>
              Effect.map(connection.readyState, (state) => {
                reader.exit = exit
                reader.readyState = state
              })
            ),
            Effect.forkScoped
          )
          yield* Effect.forEach(range(100), (index) => connection.write(`m${index}`), { discard: true })
          yield* awaitTrue(Effect.sync(() => seen.length === 100), "100 answers read")
          return connection
        }))
        expect(seen).toEqual(range(100).map((index) => `m${index}`))
        expect(reader.exit !== undefined && Exit.isInterrupted(reader.exit)).toBe(true)
        expect(reader.readyState).toBe(1)
        expect(yield* connection.closed).toMatchObject({ code: 1000, initiator: "client", wasClean: true })
      })).pipe(provideNode)
  )

  it.live(
    "with a codec: request/response of values; a frame that does not decode fails messages with DecodeError, the connection stays OPEN and the next run reads on; a value the schema refuses fails send with EncodeFailed and writes nothing",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const Quote = Schema.Struct({ symbol: Schema.String, price: Schema.Number.pipe(Schema.nonNegative()) })
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url, { codec: Codec.json(Quote) })
        yield* connection.send({ symbol: "ACME", price: 1 })
        expect(Chunk.toArray(yield* Stream.runCollect(Stream.take(connection.messages, 1)))).toEqual([
          { symbol: "ACME", price: 1 }
        ])
        const [peer] = yield* server.peers
        yield* peer!.send("not json")
        yield* peer!.send(JSON.stringify({ symbol: "NEXT", price: 2 }))
        const error = yield* Effect.flip(Stream.runDrain(connection.messages))
        expect(error).toMatchObject({ _tag: "DecodeError", frame: "not json" })
        expect(yield* connection.readyState).toBe(1)
        expect(Chunk.toArray(yield* Stream.runCollect(Stream.take(connection.messages, 1)))).toEqual([
          { symbol: "NEXT", price: 2 }
        ])
        const refused = yield* Effect.flip(connection.send({ symbol: "BAD", price: -1 }))
        expect(refused).toMatchObject({
          _tag: "SendError",
          reason: "EncodeFailed",
          payload: { symbol: "BAD", price: -1 }
        })
        yield* connection.close()
        expect(yield* server.received).toEqual([JSON.stringify({ symbol: "ACME", price: 1 })])
      })).pipe(provideNode)
  )
})

describe("round 13: writing", () => {
  it.live(
    "Stream.run(10,000 frames, sink) through a FaultProxy throttled to 1 MB/s, writeHighWaterMark 4 KiB: the sink completes and the server got all 10,000 in order",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const proxy = yield* FaultProxy.make(server.port)
        yield* proxy.throttle(1_000_000)
        const connection = yield* Connection.connect(proxy.url, { writeHighWaterMark: 4096 })
        const frames = range(10_000).map((index) => `frame ${index}`)
        yield* Stream.run(Stream.fromIterable(frames), connection.sink)
        yield* server.awaitReceived(10_000)
        expect(yield* server.received).toEqual(frames)
      })).pipe(provideNode)
  )

  /**
   * 10,000 x 2 KB through `sink` to a peer that stopped reading; once the sink waits on a write
   * that does not complete, the peer ends (`end`): what the sink failed with, and how it closed.
   */
  const sinkToStalledPeer = (end: (peer: TestServer.Peer) => Effect.Effect<void>) =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore", record: false })
      yield* server.pauseReading
      const connection = yield* Connection.connect(server.url, { writeHighWaterMark: 64 * 1024 })
      const frames = Stream.range(1, 10_000).pipe(Stream.map((index) => `frame ${index} ${"y".repeat(2000)}`))
      const writing = yield* Effect.fork(Stream.run(frames, connection.sink))
      // The kernel's buffers fill, then the sink waits on a write that does not complete.
      yield* awaitTrue(Effect.map(connection.bufferedAmount, (buffered) => buffered > 64 * 1024), "the sink waits")
      const [peer] = yield* server.peers
      yield* end(peer!)
      return { error: yield* Effect.flip(Fiber.join(writing)), closed: yield* connection.closed }
    })

  it.live(
    "the sink of 10,000 x 2 KB to a peer that stops reading and then sends its close frame: the sink fails with SendError WriteFailed carrying the frame it waited on; closed is Disconnected 4002 by the server",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const { closed, error } = yield* sinkToStalledPeer((peer) => peer.close(4002, "bye"))
        // The cause is Node's or lifeline's, by where the write was when the socket went.
        expect(error.reason).toBe("WriteFailed")
        expect(error.cause).toBeInstanceOf(Error)
        expect(String(error.payload)).toMatch(/^frame \d+ y+$/)
        expect(closed).toMatchObject({ code: 4002, reason: "bye", initiator: "server" })
      })).pipe(provideNode)
  )

  it.live(
    "the same, the peer killed (TCP destroyed) instead: SendError WriteFailed; Disconnected 1006 by the transport",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const { closed, error } = yield* sinkToStalledPeer((peer) => peer.terminate)
        expect(error).toMatchObject({ _tag: "SendError", reason: "WriteFailed" })
        expect(closed).toMatchObject({ code: 1006, wasClean: false, initiator: "transport" })
      })).pipe(provideNode)
  )

  it.live(
    "1,000 writes, then the scope ends at once: the close frame leaves after every frame, the server got all 1,000 in order and the close 1000",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const frames = range(1000).map((index) => `w${index}`)
        const connection = yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url)
          for (const frame of frames) yield* connection.write(frame)
          return connection
        }))
        expect(yield* connection.closed).toMatchObject({ code: 1000, wasClean: true, initiator: "client" })
        expect(yield* server.received).toEqual(frames)
      })).pipe(provideNode)
  )

  it.live(
    "write in a tight loop (a burst writer), 5,000 x 4 KiB to a peer that never reads: every write succeeds and the frames pile up in the process (bufferedAmount over 10 MiB; nothing bounds write); the release is bounded by closeTimeout: Disconnected 1006 by the client",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore", record: false })
        yield* server.pauseReading
        const frame = new Uint8Array(4096)
        let failed = 0
        const connection = yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url, { closeTimeout: "200 millis" })
          for (let index = 0; index < 5000; index++) {
            if (Either.isLeft(yield* Effect.either(connection.write(frame)))) failed++
          }
          expect(yield* connection.bufferedAmount).toBeGreaterThan(10 * 1024 * 1024)
          return connection
        }))
        expect(failed).toBe(0)
        expect(yield* connection.closed).toMatchObject({ code: 1006, wasClean: false, initiator: "client" })
      })).pipe(provideNode)
  )

  it.live(
    "send of a 64 MiB frame: with maxMessageSize unset it is written and arrives whole; with maxMessageSize 1 MiB it fails SendError TooLarge carrying the same array, nothing written, the connection still usable",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const sizes: Array<number> = []
        const server = yield* TestServer.make({
          record: false,
          handler: (message) => void sizes.push(typeof message === "string" ? -message.length : message.byteLength)
        })
        const big = new Uint8Array(64 * 1024 * 1024).fill(7)
        const unbounded = yield* Connection.connect(server.url)
        yield* unbounded.send(big)
        yield* unbounded.close()
        const bounded = yield* Connection.connect(server.url, { maxMessageSize: 1024 * 1024 })
        const error = yield* Effect.flip(bounded.send(big))
        expect(error.reason).toBe("TooLarge")
        expect(error.payload).toBe(big)
        yield* bounded.send("still open")
        yield* bounded.close()
        expect(sizes).toEqual([64 * 1024 * 1024, -"still open".length])
      })).pipe(provideNode),
    30_000
  )

  it.live(
    "the scope closed from another fiber while a send of 32 MiB waits for its write (the peer does not read): the release ends in closeTimeout + terminate, the send fails SendError WriteFailed with its payload; Disconnected 1006 by the client",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore", record: false })
        yield* server.pauseReading
        const scope = yield* Scope.make()
        const connection = yield* Connection.connect(server.url, { closeTimeout: "200 millis" }).pipe(
          Scope.extend(scope)
        )
        const big = new Uint8Array(32 * 1024 * 1024)
        const sending = yield* Effect.fork(connection.send(big))
        yield* awaitTrue(Effect.map(connection.bufferedAmount, (buffered) => buffered > 0), "the send waits")
        const closer = yield* Effect.fork(Scope.close(scope, Exit.void))
        const error = yield* Effect.flip(Fiber.join(sending))
        expect(error.reason).toBe("WriteFailed")
        expect(error.cause).toBeInstanceOf(Error)
        expect(error.payload).toBe(big)
        yield* Fiber.join(closer)
        expect(yield* connection.closed).toMatchObject({ code: 1006, wasClean: false, initiator: "client" })
        expect(yield* connection.readyState).toBe(3)
      })).pipe(provideNode)
  )
})

describe("round 13: a real peer with a message limit (Python websockets, max_size 1 MiB)", () => {
  it.scopedLive.skipIf(!hasWebsockets)(
    "request/response, then send of 64 MiB of zeros: compressed (the default) it is written and the peer closes with 1009; with perMessageDeflate false the send fails SendError WriteFailed (the peer stopped reading) and closed is the same 1009",
    () =>
      Effect.gen(function*() {
        const url = yield* pythonEcho
        const big = new Uint8Array(64 * 1024 * 1024)
        const outcomes = yield* Effect.forEach([{}, { perMessageDeflate: false }], (options) =>
          Effect.scoped(Effect.gen(function*() {
            const connection = yield* Connection.connect(url, options)
            yield* connection.send("ping?")
            const answer = Chunk.toArray(yield* Stream.runCollect(Stream.take(connection.messages, 1)))
            const sent = yield* Effect.either(connection.send(big))
            const closed = yield* connection.closed
            return {
              answer,
              sent: Either.match(sent, {
                onLeft: (error) =>
                  error.reason,
                onRight: () => "written"
              }),
              closed: [closed.code, closed.initiator]
            }
          })))
        expect(outcomes).toEqual([
          { answer: ["ping?"], sent: "written", closed: [1009, "server"] },
          { answer: ["ping?"], sent: "WriteFailed", closed: [1009, "server"] }
        ])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsockets)(
    "a Stream of text run into a Client's sink with maxMessageSize at the peer's 1 MiB, counted in UTF-8 bytes: 524,288 'é' (1 MiB) goes and is echoed; 524,289 (1 MiB + 2) fails the sink with SendError TooLarge carrying it, before any write; the peer never sees it (no 1009), the Client stays Open on one connection and the next send is echoed",
    () =>
      Effect.gen(function*() {
        const url = yield* pythonEcho
        const client = yield* Client.make({
          url,
          heartbeat: false,
          connection: { maxMessageSize: 1024 * 1024 }
        })
        const echoes: Array<number> = []
        yield* Effect.forkScoped(
          Stream.runForEach(client.messages, (message) => Effect.sync(() => echoes.push(String(message).length)))
        )
        const fits = "é".repeat(512 * 1024)
        const over = "é".repeat(512 * 1024 + 1)
        const run = yield* Effect.either(Stream.run(Stream.make("ok", fits, over, "never"), client.sink))
        expect(Either.isLeft(run) && run.left).toMatchObject({ _tag: "SendError", reason: "TooLarge" })
        expect(Either.isLeft(run) && (run.left as SendError).payload).toBe(over)
        yield* client.send("after")
        yield* awaitTrue(Effect.sync(() => echoes.length === 3), "three echoes")
        expect(echoes).toEqual(["ok".length, fits.length, "after".length])
        expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
        expect(yield* client.failed).toBe(0)
      }).pipe(provideNode),
    30_000
  )
})

describe("round 13: closing", () => {
  it.live(
    "close(code, reason) with odd inputs: 4999 kept; 5000, 1005 and 4000.5 become 1000; a 200-character reason is cut to 123 bytes; 100 emoji to 30 whole ones (not 30 and half of one); 100 'é' to 61",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const cases: ReadonlyArray<readonly [number, string]> = [
          [4999, "last valid"],
          [5000, "too high"],
          [1005, "reserved"],
          [4000.5, "not an integer"],
          [1000, "x".repeat(200)],
          [4001, "😀".repeat(100)],
          [4002, "é".repeat(100)]
        ]
        const seen: Array<unknown> = []
        for (const [code, reason] of cases) {
          const connection = yield* Connection.connect(server.url)
          const peers = yield* server.peers
          const ended = yield* connection.close(code, reason)
          const got = yield* peers[peers.length - 1]!.awaitClosed()
          expect(ended).toMatchObject({ code: got.code, reason: got.reason, initiator: "client", wasClean: true })
          seen.push([got.code, got.reason])
        }
        expect(seen).toEqual([
          [4999, "last valid"],
          [1000, "too high"],
          [1000, "reserved"],
          [1000, "not an integer"],
          [1000, "x".repeat(123)],
          [4001, "😀".repeat(30)],
          [4002, "é".repeat(61)]
        ])
      })).pipe(provideNode)
  )

  it.live(
    "close with a reason that is not a string (untyped code: null, a number): closes with the code and no reason, never a defect; a Client's close the same",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const untypedClose = (close: (code?: number, reason?: string) => Effect.Effect<unknown>, reason: unknown) =>
          Effect.exit(close(4000, reason as string))
        for (const reason of [null, 42]) {
          const connection = yield* Connection.connect(server.url)
          const peers = yield* server.peers
          const exit = yield* untypedClose(connection.close, reason)
          expect(exit).toMatchObject({ _tag: "Success", value: { code: 4000, reason: "", initiator: "client" } })
          expect(yield* peers[peers.length - 1]!.awaitClosed()).toEqual({ code: 4000, reason: "" })
        }
        const client = yield* Client.make({ url: server.url })
        yield* client.awaitOpen
        const peers = yield* server.peers
        expect(yield* untypedClose(client.close, null)).toMatchObject({ _tag: "Success", value: [] })
        expect(yield* peers[peers.length - 1]!.awaitClosed()).toEqual({ code: 4000, reason: "" })
      })).pipe(provideNode)
  )

  it.live(
    "close twice, after the scope closed, and from three fibers awaiting closed: each gets the first close's Disconnected; readyState CLOSED, ping false",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url)
          const waiting = yield* Effect.forEach(range(3), () => Effect.fork(connection.closed))
          const first = yield* connection.close(4010, "first")
          const second = yield* connection.close(4011, "second")
          const awaited = yield* Fiber.joinAll(waiting)
          expect([second, ...awaited]).toEqual([first, first, first, first])
          expect(first).toMatchObject({ code: 4010, reason: "first", initiator: "client", wasClean: true })
          return connection
        }))
        expect(yield* connection.close(4012, "after the scope")).toMatchObject({ code: 4010, reason: "first" })
        expect(yield* connection.readyState).toBe(3)
        expect(yield* connection.ping).toBe(false)
        expect(yield* server.accepted).toBe(1)
      })).pipe(provideNode)
  )

  it.live(
    "close cut short by Effect.timeout (the peer does not read, so its close frame waits behind 8 MiB): TimeoutException, the socket CLOSING; a second close waits closeTimeout, terminates and returns Disconnected 1006 by the client",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore", record: false })
        yield* server.pauseReading
        const connection = yield* Connection.connect(server.url, { closeTimeout: "200 millis" })
        yield* connection.write(new Uint8Array(8 * 1024 * 1024))
        const cut = yield* Effect.flip(connection.close(4000).pipe(Effect.timeout("20 millis")))
        expect(cut._tag).toBe("TimeoutException")
        expect(yield* connection.readyState).toBe(2)
        expect(yield* connection.ping).toBe(false)
        expect(yield* connection.close(4001)).toMatchObject({ code: 1006, wasClean: false, initiator: "client" })
      })).pipe(provideNode)
  )

  it.live(
    "close called while the peer closes too (both close frames cross): close returns, the connection ends CLOSED and clean, the peer got the client's code",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        for (const _ of range(5)) {
          const connection = yield* Connection.connect(server.url)
          const peers = yield* server.peers
          const peer = peers[peers.length - 1]!
          const [ended] = yield* Effect.all([connection.close(4005, "mine"), peer.close(4006, "theirs")], {
            concurrency: 2
          })
          expect(ended).toMatchObject({ wasClean: true, initiator: "client" })
          expect([4005, 4006]).toContain(ended.code)
          expect(yield* peer.awaitClosed()).toEqual({ code: 4005, reason: "mine" })
          expect(yield* connection.readyState).toBe(3)
        }
      })).pipe(provideNode)
  )
})

describe("round 13: leaving a busy feed", () => {
  it.live(
    "the README's quick start against a busy feed: Stream.take(messages, 10), then the scope ends while the feed sends on (20,000 frames queued): a clean close, 1000, and the server got 1000 (not 1006 after closeTimeout: the paused socket held the peer's close frame back)",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ record: false })
        const [connection, peer] = yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url, { inboundCapacity: 64, closeTimeout: "3 seconds" })
          const [peer] = yield* server.peers
          yield* server.flood(20_000, 100, { text: true })
          expect(Chunk.size(yield* Stream.runCollect(Stream.take(connection.messages, 10)))).toBe(10)
          return [connection, peer!] as const
        }))
        expect(yield* connection.closed).toMatchObject({ code: 1000, wasClean: true, initiator: "client" })
        expect(yield* peer.awaitClosed()).toEqual({ code: 1000, reason: "" })
      })).pipe(provideNode)
  )

  it.live(
    "close() with the inbound buffer full (64 frames unread or more, 20,000 queued by the peer): closes clean (4000 \"enough\", the server got it); messages then gives every frame buffered before the close and ends (what came over the bound after the close was asked for is dropped)",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ record: false })
        const connection = yield* Connection.connect(server.url, { inboundCapacity: 64, closeTimeout: "3 seconds" })
        const [peer] = yield* server.peers
        yield* server.flood(20_000, 100, { text: true })
        expect(Chunk.size(yield* Stream.runCollect(Stream.take(connection.messages, 10)))).toBe(10)
        yield* awaitTrue(Effect.map(connection.activity, (count) => count >= 10 + 64), "the buffer refilled")
        // The socket is paused at the bound, but ws hands over the rest of the read it was in
        // (hundreds of frames of 100 B): all buffered, none taken but the 10.
        const buffered = (yield* connection.activity) - 10
        expect(buffered).toBeGreaterThanOrEqual(64)
        expect(yield* connection.close(4000, "enough")).toMatchObject({ code: 4000, wasClean: true })
        expect(yield* peer!.awaitClosed()).toEqual({ code: 4000, reason: "enough" })
        expect(yield* Stream.runCount(connection.messages)).toBe(buffered)
        // Every frame the peer sent before its close frame was read (counted), not left unread.
        expect(yield* connection.activity).toBe(20_000)
      })).pipe(provideNode)
  )
})

describe("round 13: Connection.layer in an app", () => {
  it.live(
    "two services depending on one Connection.layer: one connection for the app, closed with 1000 when it ends; the app run twice (the layer built twice): two connections, each closed",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        class Feed extends Context.Tag("round13/Feed")<Feed, Connection.Connection>() {}
        class Quotes extends Context.Tag("round13/Quotes")<Quotes, {
          readonly ask: (symbol: string) => Effect.Effect<string, SendError>
        }>() {}
        class Audit extends Context.Tag("round13/Audit")<Audit, {
          readonly log: (line: string) => Effect.Effect<void, SendError>
        }>() {}
        const QuotesLive = Layer.effect(
          Quotes,
          Effect.map(Feed, (feed) => ({
            ask: (symbol: string) =>
              feed.send(symbol).pipe(
                Effect.zipRight(Stream.runHead(feed.messages)),
                Effect.map(Option.match({ onNone: () => "none", onSome: String }))
              )
          }))
        )
        const AuditLive = Layer.effect(Audit, Effect.map(Feed, (feed) => ({ log: (line: string) => feed.write(line) })))
        const AppLive = Layer.merge(QuotesLive, AuditLive).pipe(
          Layer.provide(Connection.layer(Feed, server.url)),
          Layer.provide(quietNode)
        )
        const app = Effect.gen(function*() {
          const answer = yield* (yield* Quotes).ask("ACME")
          yield* (yield* Audit).log("asked")
          return answer
        })
        expect(yield* Effect.provide(app, AppLive)).toBe("ACME")
        expect(yield* server.accepted).toBe(1)
        expect(yield* Effect.provide(app, AppLive)).toBe("ACME")
        expect(yield* server.accepted).toBe(2)
        yield* server.awaitReceived(4)
        expect(yield* server.received).toEqual(["ACME", "asked", "ACME", "asked"])
        expect(yield* server.connections).toBe(0)
      }))
  )
})

describe("review of round 29: a release interrupted", () => {
  // A user bounds the shutdown (`Effect.timeout` around closing the scope) and the peer never answers
  // the close frame: the release's wait for it is interruptible (its own timeout needs that), and an
  // interrupt used to end it before its terminate, leaving the socket open to ws's own 30 s timer.
  it.live("a Connection's scope closed under a 200 ms timeout, the peer never answering the close frame: the socket is ended at the interrupt, not left open", () =>
    Effect.gen(function*() {
      const requests = { count: 0 }
      let closeFrames = 0
      let ended = false
      const peer = yield* upgradingServer(requests, (socket, head) => {
        socket.on("data", (data: Buffer) => (data[0]! & 0x0f) === 0x8 && closeFrames++)
        socket.on("close", () => ended = true)
        socket.write(head)
      })
      const scope = yield* Scope.make()
      yield* Connection.connect(peer.url).pipe(Scope.extend(scope))
      const closing = yield* Effect.exit(Effect.timeout(Scope.close(scope, Exit.void), "200 millis"))
      expect(Exit.isFailure(closing) && Cause.isFailType(closing.cause) ? closing.cause.error._tag : "").toBe(
        "TimeoutException"
      )
      expect(closeFrames).toBe(1)
      // Ended by the interrupt's terminate: well before closeTimeout (5 s) or ws's 30 s (a hang
      // guard of 2 s; before, it stayed open past both).
      yield* awaitTrue(Effect.sync(() => ended), "the socket ended", 400)
    }).pipe(Effect.scoped, provideNode))
})
