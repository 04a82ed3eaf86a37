/**
 * `effect-lifeline/platform`: an `@effect/platform` Socket over a lifeline Client, against real
 * servers on 127.0.0.1: what a platform user reads and writes, across a server restart, and how
 * lifeline's errors arrive as SocketErrors with lifeline's error as cause.
 */
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { CircuitBreaker, Client } from "effect-lifeline"
import * as LifelinePlatform from "effect-lifeline/platform"
import { TestServer } from "effect-lifeline/testing"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { hasWebsockets, listen, scriptFile, SERVE_HANDLER, spawnPython } from "./support/python.js"

const fast = { retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis", heartbeat: false } as const

/** The Socket of a Client with `options`, for `body`. */
const withSocket = <A, E>(options: LifelinePlatform.Options, body: (socket: Socket.Socket) => Effect.Effect<A, E>) =>
  Effect.flatMap(Socket.Socket, body).pipe(
    Effect.provide(LifelinePlatform.layer(options).pipe(Layer.provide(quietNode)))
  )

/** The run's error when the server closes with 1008 "policy": the platform's close error, lifeline's as cause. */
const policyClose = {
  _tag: "SocketError",
  reason: "Close",
  code: 1008,
  closeReason: "policy",
  cause: { _tag: "Disconnected", code: 1008 }
}

describe("effect-lifeline/platform: a Socket.Socket over a Client", () => {
  it.live("runRaw reads every echo of what writer wrote, across a server kill and restart, onOpen run at each open; a CloseEvent ends it cleanly", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const received: Array<string | Uint8Array> = []
      yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          let opened = 0
          const reader = yield* Effect.fork(socket.runRaw((data) => {
            received.push(data)
          }, { onOpen: Effect.sync(() => opened++) }))
          yield* write("one")
          // Written is not echoed: let the echo come back before the server dies.
          yield* awaitTrue(Effect.sync(() => received.length >= 1), "1 received")
          yield* server.kill
          // Written while the server is down: it waits in the Client's outbox.
          const queued = yield* Effect.fork(write("two"))
          yield* server.restart
          yield* Fiber.join(queued)
          yield* write(new Uint8Array([3]))
          yield* awaitTrue(Effect.sync(() => received.length >= 3), "3 received")
          yield* write(new Socket.CloseEvent(1000, "done"))
          yield* Fiber.join(reader)
          // At the run's start and at the reconnect, as a platform run's at each socket's open.
          expect(opened).toBe(2)
        })))
      expect(received.map((data) => typeof data === "string" ? data : Array.from(data))).toEqual(["one", "two", [3]])
    })))

  it.live("run hands the handler bytes, text encoded", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const received: Array<Uint8Array> = []
      yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          const reader = yield* Effect.fork(socket.run((data) => {
            received.push(data)
          }))
          yield* write("hé")
          yield* awaitTrue(Effect.sync(() => received.length >= 1), "1 received")
          yield* write(new Socket.CloseEvent())
          yield* Fiber.join(reader)
        })))
      expect(received.map((data) => Array.from(data))).toEqual([[104, 195, 169]])
    })))

  it.live("a fatal answer (HTTP 401): run fails with SocketGenericError Open, lifeline's ConnectError as cause", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(401)
      const error = yield* withSocket({ url: server.url, ...fast }, (socket) => Effect.flip(socket.runRaw(() => {})))
      expect(error).toMatchObject({
        _tag: "SocketError",
        reason: "Open",
        cause: { _tag: "ConnectError", reason: "HandshakeRejected", status: 401 }
      })
    })))

  it.live("the server closes with 1008 after open: run fails with SocketCloseError 1008 and its reason, lifeline's Disconnected as cause", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const error = yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.gen(function*() {
          const reader = yield* Effect.fork(Effect.flip(socket.runRaw(() => {})))
          yield* awaitTrue(Effect.map(server.connections, (n) => n >= 1), "1 connections")
          yield* server.closeAll(1008, "policy")
          return yield* Fiber.join(reader)
        }))
      expect(error).toMatchObject(policyClose)
      expect(Socket.SocketCloseError.is(error)).toBe(true)
    })))

  it.live("a handler's failure ends run with it", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const error = yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          const reader = yield* Effect.fork(
            Effect.flip(socket.runRaw((data) => data === "bad" ? Effect.fail("handler failed" as const) : Effect.void))
          )
          yield* write("bad")
          return yield* Fiber.join(reader)
        })))
      expect(error).toBe("handler failed")
    })))
})

describe("effect-lifeline/platform: perConnection", () => {
  it.live("a run reads one connection: the server killed, it fails with SocketGenericError Read (lifeline's Disconnected 1006 as cause); the next run reads the next connection; a CloseEvent ends that one cleanly", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const received: Array<string | Uint8Array> = []
      yield* withSocket(
        { url: server.url, ...fast, perConnection: true },
        (socket) =>
          Effect.scoped(Effect.gen(function*() {
            const write = yield* socket.writer
            let opened = 0
            const onOpen = Effect.sync(() => opened++)
            const first = yield* Effect.fork(Effect.flip(socket.runRaw((data) => {
              received.push(data)
            }, { onOpen })))
            yield* write("one")
            yield* awaitTrue(Effect.sync(() => received.length >= 1), "1 received")
            yield* server.kill
            // Bounded: a run that spans reconnects would never end here.
            const error = yield* Fiber.join(first).pipe(
              Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the run did not end" })
            )
            expect(error).toMatchObject({
              _tag: "SocketError",
              reason: "Read",
              cause: { _tag: "Disconnected", code: 1006, initiator: "transport" }
            })

            yield* server.restart
            const second = yield* Effect.fork(socket.runRaw((data) => {
              received.push(data)
            }, { onOpen }))
            yield* write("two")
            yield* awaitTrue(Effect.sync(() => received.length >= 2), "2 received")
            yield* write(new Socket.CloseEvent(1000, "done"))
            yield* Fiber.join(second)
            expect(opened).toBe(2)
          }))
      )
      expect(received).toEqual(["one", "two"])
    })))

  it.live("perConnection: a fatal close (1008) still fails the run with the Client's error", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const error = yield* withSocket(
        { url: server.url, ...fast, perConnection: true },
        (socket) =>
          Effect.gen(function*() {
            const reader = yield* Effect.fork(Effect.flip(socket.runRaw(() => {})))
            yield* awaitTrue(Effect.map(server.connections, (n) => n >= 1), "1 connections")
            yield* server.closeAll(1008, "policy")
            return yield* Fiber.join(reader)
          })
      )
      expect(error).toMatchObject(policyClose)
    })))
})

describe("effect-lifeline/platform: perConnection and reconnect", () => {
  it.live("client.reconnect drops the connection a run reads: the run fails with SocketGenericError Read, the Client's Connecting state as cause; the next run reads the new connection", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, ...fast })
        const socket = LifelinePlatform.fromClient(client, { perConnection: true })
        const write = yield* socket.writer
        const opened = yield* Deferred.make<void>()
        const first = yield* Effect.fork(
          Effect.flip(socket.runRaw(() => {}, { onOpen: Deferred.succeed(opened, undefined) }))
        )
        yield* Deferred.await(opened)
        yield* client.reconnect
        const error = yield* Fiber.join(first).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the run did not end" })
        )
        expect(error).toMatchObject({ _tag: "SocketError", reason: "Read", cause: { _tag: "Connecting", attempt: 1 } })

        const received: Array<string | Uint8Array> = []
        const second = yield* Effect.fork(socket.runRaw((data) => {
          received.push(data)
        }))
        yield* write("again")
        yield* awaitTrue(Effect.sync(() => received.length >= 1), "1 received")
        yield* write(new Socket.CloseEvent(1000, "done"))
        yield* Fiber.join(second)
        expect(received).toEqual(["again"])
        expect(yield* server.accepted).toBe(2)
      }).pipe(Effect.provide(quietNode))
    ))
})

describe("effect-lifeline/platform: options from untyped code", () => {
  it.live("layer(null) does not throw: the Socket's run fails with SocketGenericError Open, cause ConnectError InvalidOptions", () =>
    Effect.gen(function*() {
      const layer = yield* Effect.sync(() => LifelinePlatform.layer(null as unknown as LifelinePlatform.Options))
      const error = yield* Effect.flatMap(Socket.Socket, (socket) => Effect.flip(socket.runRaw(() => {}))).pipe(
        Effect.provide(layer.pipe(Layer.provide(quietNode)))
      )
      expect(error).toMatchObject({
        _tag: "SocketError",
        reason: "Open",
        cause: {
          _tag: "ConnectError",
          reason: "InvalidOptions",
          detail: "options: must be an object; fix the option named above"
        }
      })
    }))
})

describe("effect-lifeline/platform: layer's options as given", () => {
  it.live("options from a settings class (url read by a getter) with perConnection: the Socket opens and reads, as Client.make's would", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        class Settings {
          readonly perConnection = true
          readonly heartbeat = false
          get url(): string {
            return server.url
          }
        }
        const received: Array<string | Uint8Array> = []
        yield* withSocket(new Settings() as LifelinePlatform.Options, (socket) =>
          Effect.gen(function*() {
            const write = yield* socket.writer
            const reader = yield* Effect.fork(socket.runRaw((data) => {
              received.push(data)
            }))
            yield* write("hi")
            yield* awaitTrue(Effect.sync(() => received.length >= 1), "1 received")
            yield* write(new Socket.CloseEvent(1000, "done"))
            yield* Fiber.join(reader)
          }).pipe(Effect.scoped))
        expect(received).toEqual(["hi"])
        expect(yield* server.accepted).toBe(1)
      }).pipe(Effect.provide(quietNode))
    ))
})

/**
 * A server whose first connection sends `old 0` .. `old <count - 1>` and then ends by `end`; every
 * later one sends `fresh <n>` (its number). `connections.count`: how many it accepted.
 */
const burstThenEnd = (count: number, end: (peer: TestServer.Peer) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const connections = { count: 0 }
    const server = yield* TestServer.make({
      onConnect: (peer) => {
        connections.count++
        if (connections.count > 1) return peer.send(`fresh ${connections.count}`)
        return Effect.gen(function*() {
          for (let i = 0; i < count; i++) yield* peer.send(`old ${i}`)
          yield* end(peer)
        })
      }
    })
    return { connections, server }
  })

// Round 34: platform code run side by side over the platform's own WebSocket Socket and over this
// one found a subscription that did not follow a reconnect, a server's last words never handed
// over, a perConnection run given a dead connection's frames, and errors no platform match sees.
describe("round 34: platform Socket code as its users write it", () => {
  it.live("a subscription in run's onOpen follows every reconnect (the guide's pattern): the restarted server is subscribed again and its feed arrives", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      let subscribes = 0
      const server = yield* TestServer.make({
        handler: (message, reply) => {
          if (message === "subscribe") {
            subscribes++
            reply(`subscribed ${subscribes}`)
          }
        }
      })
      const received: Array<string | Uint8Array> = []
      yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          const reader = yield* Effect.fork(socket.runRaw((data) => {
            received.push(data)
          }, { onOpen: write("subscribe").pipe(Effect.orDie) }))
          yield* awaitTrue(Effect.sync(() => received.length >= 1), "subscribed once")
          yield* server.kill
          yield* server.restart
          yield* awaitTrue(Effect.sync(() => received.length >= 2), "subscribed again after the restart")
          yield* write(new Socket.CloseEvent(1000, "done"))
          yield* Fiber.join(reader)
        })))
      expect(received).toEqual(["subscribed 1", "subscribed 2"])
      expect(subscribes).toBe(2)
    })))

  for (const handler of ["sync", "Effect"] as const) {
    it.live(`a server's last words before its 1008, sent before any run (handler ${handler}): a run started on the closed Client is handed them, then fails with SocketCloseError 1008`, () =>
      withNoHandlesLeft(
        Effect.gen(function*() {
          const server = yield* TestServer.make({
            onConnect: (peer) => Effect.andThen(peer.send("goodbye: bad token"), peer.close(1008, "bad token"))
          })
          const client = yield* Client.make({ url: server.url, ...fast })
          yield* awaitState(client, isTag("Closed"))
          const received: Array<string | Uint8Array> = []
          const socket = LifelinePlatform.fromClient(client)
          const error = yield* Effect.flip(socket.runRaw((data) =>
            handler === "sync"
              ? void received.push(data)
              : Effect.delay(Effect.sync(() => void received.push(data)), "20 millis")
          ))
          expect(received).toEqual(["goodbye: bad token"])
          expect(error).toMatchObject({
            _tag: "SocketError",
            reason: "Close",
            code: 1008,
            closeReason: "bad token",
            cause: { _tag: "Disconnected", code: 1008, reason: "bad token", initiator: "server" }
          })
          // perConnection: no connection to read, so nothing handed over; the same error.
          const again = yield* Effect.flip(
            LifelinePlatform.fromClient(client, { perConnection: true }).runRaw(() => {})
          )
          expect(again).toMatchObject({ _tag: "SocketError", reason: "Close", code: 1008 })
        }).pipe(Effect.provide(quietNode))
      ))
  }

  it.live("perConnection: a run that starts on the next connection is not handed the 300 frames a dropped one left unread (default: they come first)", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const { connections, server } = yield* burstThenEnd(300, (peer) => peer.close(4000, "bye"))
        for (const perConnection of [true, false]) {
          connections.count = 0
          const outcome = yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* Client.make({ url: server.url, ...fast })
            // the first connection delivered its 300 frames and closed; the second is open
            yield* awaitState(client, (state) => state._tag === "Open" && state.attempt >= 1 && connections.count >= 2)
            const received: Array<string | Uint8Array> = []
            const run = yield* Effect.fork(
              LifelinePlatform.fromClient(client, { perConnection }).runRaw((data) => {
                received.push(data)
              })
            )
            yield* awaitTrue(Effect.sync(() => received.includes("fresh 2")), "the open connection's frame")
            yield* Fiber.interrupt(run)
            return received
          }))
          expect(outcome.filter((data) => String(data).startsWith("old")).length).toBe(perConnection ? 0 : 300)
          expect(outcome.at(-1)).toBe("fresh 2")
        }
      }).pipe(Effect.provide(quietNode))
    ))

  it.live("an open that times out, not retried: the run fails with SocketGenericError OpenTimeout, lifeline's TimeoutError open as cause", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.hangHandshake
      const error = yield* withSocket(
        { url: server.url, ...fast, shouldRetry: () => false, connection: { openTimeout: "200 millis" } },
        (socket) => Effect.flip(socket.runRaw(() => {}))
      )
      expect(error).toMatchObject({
        _tag: "SocketError",
        reason: "OpenTimeout",
        cause: { _tag: "TimeoutError", operation: "open" }
      })
    })))
})

// Round 34's review: what the first version of the round's changes got wrong, each shown here.
describe("round 34 review: a run's onOpen belongs to its link; runs the Socket cannot open fail", () => {
  it.live("a slow onOpen whose link drops while it runs: its write fails on that link (never queued for the next), and the next link's onOpen subscribes once: one subscribe per connection", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const perConnection = new Map<number, number>()
      let connections = 0
      const server = yield* TestServer.make({
        onConnect: () => void connections++,
        handler: (message, reply) => {
          if (message !== "subscribe") return
          perConnection.set(connections, (perConnection.get(connections) ?? 0) + 1)
          reply("subscribed")
        }
      })
      const received: Array<string | Uint8Array> = []
      const writeFailures: Array<unknown> = []
      yield* withSocket({ url: server.url, ...fast }, (socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          const onOpen = Effect.sleep("200 millis").pipe(
            Effect.zipRight(write("subscribe")),
            Effect.catchAll((error) => Effect.sync(() => void writeFailures.push(error)))
          )
          const reader = yield* Effect.fork(socket.runRaw((data) => {
            received.push(data)
          }, { onOpen }))
          yield* Effect.sleep("50 millis")
          yield* server.closeAll(4000, "drop while onOpen runs")
          yield* awaitTrue(Effect.sync(() => received.length >= 1), "subscribed on the next link")
          // time for a second subscribe, if one were coming
          yield* Effect.sleep("300 millis")
          yield* write(new Socket.CloseEvent(1000, "done"))
          yield* Fiber.join(reader)
        })))
      expect([...perConnection.entries()]).toEqual([[2, 1]])
      expect(received).toEqual(["subscribed"])
      expect(writeFailures).toMatchObject([{ _tag: "SocketError", reason: "Write", cause: { _tag: "SendError" } }])
    })))

  it.live("whenSuspended failFast: a run started while Suspended fails at once with SocketGenericError Open, CircuitOpenError as cause", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* server.rejectNext(503, {}, 1000)
        const client = yield* Client.make({ url: server.url, ...fast, whenSuspended: "failFast" })
        yield* awaitState(client, isTag("Suspended"))
        let opened = 0
        const error = yield* Effect.flip(
          LifelinePlatform.fromClient(client).runRaw(() => {}, { onOpen: Effect.sync(() => opened++) })
        ).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the run did not end" }))
        expect(error).toMatchObject({ _tag: "SocketError", reason: "Open", cause: { _tag: "CircuitOpenError" } })
        expect(opened).toBe(0)
        yield* server.clearRejections
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(
          quietNode,
          CircuitBreaker.layer({
            policy: CircuitBreaker.consecutiveFailures(1),
            openFor: Schedule.spaced("10 seconds")
          })
        ))
      )
    ))

  it.live("after close() or a CloseEvent, a later run fails with SocketGenericError Open in both modes: a loop of runs stops", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        for (const how of ["close()", "CloseEvent"] as const) {
          const client = yield* Client.make({ url: server.url, ...fast })
          yield* client.awaitOpen
          const socket = LifelinePlatform.fromClient(client)
          if (how === "close()") yield* client.close()
          else yield* Effect.flatMap(socket.writer, (write) => write(new Socket.CloseEvent(4001, "bye")))
          for (const perConnection of [false, true]) {
            const error = yield* Effect.flip(LifelinePlatform.fromClient(client, { perConnection }).runRaw(() => {}))
            expect(error).toMatchObject({
              _tag: "SocketError",
              reason: "Open",
              // the Client's `awaitOpen` once closed on purpose, whatever code the close sent
              cause: { _tag: "Disconnected", code: 1000, reason: "client closed", initiator: "client" }
            })
          }
        }
      }).pipe(Effect.scoped, Effect.provide(quietNode))
    ))

  it.live("perConnection: a dropped link left the inbound full (its socket paused), so the next starts paused: the run that starts on it drops the old frames and the new link reads again", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const { connections, server } = yield* burstThenEnd(
          100,
          (peer) => Effect.zipRight(Effect.sleep("100 millis"), peer.terminate)
        )
        const client = yield* Client.make({
          url: server.url,
          ...fast,
          heartbeat: { interval: "200 millis", timeout: "200 millis" },
          connection: { inboundCapacity: 16 }
        })
        yield* awaitState(client, (state) => state._tag === "Open" && connections.count >= 2)
        const received: Array<string | Uint8Array> = []
        const run = yield* Effect.fork(
          LifelinePlatform.fromClient(client, { perConnection: true }).runRaw((data) => {
            received.push(data)
          })
        )
        yield* awaitTrue(Effect.sync(() => received.length >= 1), "the new link's frame")
        yield* Fiber.interrupt(run)
        expect(received).toEqual(["fresh 2"])
      }).pipe(Effect.scoped, Effect.provide(quietNode))
    ))
})

// Round 34, a second reading: the pattern against a real peer that drops its clients itself, as a
// rolling restart does, faster than a slow onOpen subscribes (a token fetched first).
const flappingScript = `import asyncio, sys, websockets
port = int(sys.stdin.readline())
count = 0
async def handler(ws):
    global count
    count += 1
    n = count
    subs = 0
    async def reader():
        nonlocal subs
        async for message in ws:
            if message == "subscribe":
                subs += 1
                sys.stdout.write("SUB %d %d\\n" % (n, subs))
                await ws.send("feed %d" % n)
    task = asyncio.create_task(reader())
    if n <= 4:
        await asyncio.sleep(0.1)
        await ws.close(1012, "restart")
    try:
        await task
    except Exception:
        pass
${SERVE_HANDLER}`

describe.skipIf(!hasWebsockets)(
  "round 34: a run's onOpen against Python websockets closing its first four connections (1012) 100 ms in",
  () => {
    it.live(
      "a slow onOpen (300 ms, then subscribe) on each: no connection is subscribed twice, and the one that stays is subscribed once and feeds the run",
      () =>
        withNoHandlesLeft(
          Effect.gen(function*() {
            const lines: Array<string> = []
            const server = yield* spawnPython(yield* scriptFile("flapping.py", flappingScript), (line) =>
              lines.push(line))
            const port = yield* listen(server, 0)
            const received: Array<string | Uint8Array> = []
            yield* withSocket({ url: `ws://127.0.0.1:${port}`, ...fast }, (socket) =>
              Effect.scoped(Effect.gen(function*() {
                const write = yield* socket.writer
                const onOpen = Effect.zipRight(Effect.sleep("300 millis"), Effect.ignore(write("subscribe")))
                const reader = yield* Effect.fork(socket.runRaw((data) => {
                  received.push(data)
                }, { onOpen }))
                yield* awaitTrue(
                  Effect.sync(() =>
                    received.includes("feed 5")
                  ),
                  "the fifth connection's feed"
                )
                // time for a second subscribe there, if one were coming
                yield* Effect.sleep("400 millis")
                yield* Fiber.interrupt(reader)
              })))
            const subscribes = lines.filter((line) =>
              line.startsWith("SUB ")
            )
            // each connection at most once; the fifth, which stays, exactly once
            expect(subscribes.every((line) => line.endsWith(" 1"))).toBe(true)
            expect(subscribes).toContain("SUB 5 1")
            expect(received.filter((data) => data === "feed 5")).toEqual(["feed 5"])
          }).pipe(Effect.provide(quietNode))
        ),
      30_000
    )
  }
)
