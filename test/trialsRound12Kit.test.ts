/**
 * Round 12: the test kit (`effect-lifeline/testing`) used the way an app's own tests use it: a
 * Client against TestServer / FaultProxy under `@effect/vitest`, with and without `TestClock`.
 * Written against the published entries only. See docs/trials.md (round 12).
 */
import { describe, expect, it } from "@effect/vitest"
import type { Exit } from "effect"
import { Cause, Chunk, Duration, Effect, Fiber, Option, Schedule, Stream, TestClock, TestServices } from "effect"
import { Client } from "effect-lifeline"
import { FaultProxy, TestServer } from "effect-lifeline/testing"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"

type State = Client.ClientState

/**
 * The first state (now or later) that passes. The bound is Effect's Clock: real in `it.scopedLive`,
 * the TestClock (so no bound at all) in `it.scoped`, where vitest's own timeout is what is left.
 */
const awaitState = <S extends State>(client: Client.Client, predicate: (state: State) => state is S) =>
  client.state.changes.pipe(
    Stream.filter(predicate),
    Stream.runHead,
    Effect.map(Option.getOrThrow),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "no such state within 5 s" }),
    Effect.orDie
  )
const isTag = <T extends State["_tag"]>(tag: T) => (state: State): state is Extract<State, { _tag: T }> =>
  state._tag === tag
const backoffAt = (attempt: number) => (state: State): state is Extract<State, { _tag: "Backoff" }> =>
  state._tag === "Backoff" && state.attempt === attempt

/** The next `count` messages of a Client, in a fiber started before the sends; 5 s bound (live clock). */
const takeMessages = <A, E>(client: { readonly messages: Stream.Stream<A, E> }, count: number) =>
  Stream.take(client.messages, count).pipe(
    Stream.runCollect,
    Effect.map(Chunk.toReadonlyArray),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => `fewer than ${count} messages within 5 s` }),
    Effect.orDie,
    Effect.fork
  )

/** What a user writes to reach a fiber through TestClock: wait (bounded) until one sleeps on it. */
const awaitSleeper = Effect.gen(function*() {
  for (let turn = 0; turn < 10_000; turn++) {
    if (Chunk.isNonEmpty(yield* TestClock.sleeps())) return
    yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
  }
  return yield* Effect.dieMessage("no fiber ever slept on the TestClock")
})

/** The message of the one defect an exit died with. */
const defectOf = (exit: Exit.Exit<unknown, unknown>): string =>
  exit._tag === "Failure" ? String(Chunk.unsafeHead(Cause.defects(exit.cause))) : "no failure"

const fast = { retry: Schedule.spaced("1 millis"), minRetryDelay: "1 millis", heartbeat: false } as const

describe("round 12: TestClock drives the Client, real sockets underneath (it.scoped)", () => {
  it.scoped("default retry: kill, adjust past the announced delay, restart: Open again, 2 upgrades, no sleep", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, heartbeat: false })
      yield* client.awaitOpen
      yield* server.kill
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff.error).toMatchObject({ _tag: "Disconnected", code: 1006, initiator: "transport" })
      yield* server.restart
      yield* awaitSleeper
      yield* TestClock.adjust(backoff.delay)
      yield* client.awaitOpen
      // awaitConnections waits on the server's events with a real timer: fine under TestClock,
      // where a poll with Effect.sleep would never wake up.
      yield* server.awaitConnections(1)
      expect([yield* server.accepted, yield* server.requests]).toEqual([2, 2])
    }).pipe(provideNode))

  it.scoped("custom exponential retry: one refused attempt per adjust, each delay the schedule's, then Open", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, heartbeat: false, retry: Schedule.exponential("1 second") })
      yield* client.awaitOpen
      yield* server.kill
      const first = yield* awaitState(client, backoffAt(1))
      expect(Duration.toMillis(first.delay)).toBe(1000)
      yield* awaitSleeper
      yield* TestClock.adjust("1 second")
      const second = yield* awaitState(client, backoffAt(2))
      expect(second.error).toMatchObject({ _tag: "ConnectError", reason: "ConnectionRefused" })
      expect(Duration.toMillis(second.delay)).toBe(2000)
      yield* server.restart
      yield* awaitSleeper
      yield* TestClock.adjust("1999 millis")
      expect((yield* client.state.get)._tag).toBe("Backoff")
      yield* TestClock.adjust("1 millis")
      yield* client.awaitOpen
      expect([yield* server.accepted, yield* server.requests]).toEqual([2, 2])
    }).pipe(provideNode))

  it.scoped("rejectNext(503, retry-after 2, 3): exactly 3 rejected upgrades 2 s apart, the 4th opens; headers reach the server", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, { "retry-after": "2" }, 3)
      const client = yield* Client.make({
        url: server.url,
        ...fast,
        headers: { authorization: "Bearer t0k3n" }
      })
      for (let attempt = 1; attempt <= 3; attempt++) {
        const backoff = yield* awaitState(client, backoffAt(attempt))
        expect(backoff.error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 503 })
        expect(Duration.toMillis(backoff.delay)).toBe(2000)
        expect(yield* server.requests).toBe(attempt)
        yield* awaitSleeper
        yield* TestClock.adjust("2 seconds")
      }
      yield* client.awaitOpen
      expect([yield* server.requests, yield* server.accepted]).toEqual([4, 1])
      // Not redacted: an app's test can check its Authorization header arrives.
      expect((yield* server.lastRequestHeaders)["authorization"]).toBe("Bearer t0k3n")
    }).pipe(provideNode))
})

describe("round 12: the heartbeat on TestClock, a FaultProxy blackhole underneath", () => {
  it.scoped("interval 10 s + timeout 5 s: still Open at 14.999 s (quarter-interval steps), TimeoutError heartbeat at 15 s", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* Client.make({ url: proxy.url, heartbeat: { interval: "10 seconds", timeout: "5 seconds" } })
      yield* client.awaitOpen
      yield* proxy.blackhole
      // The heartbeat samples every quarter interval: one adjust per sample, each to a sleeping fiber.
      for (const step of [2500, 2500, 2500, 2500, 2500, 2499]) {
        yield* awaitSleeper
        yield* TestClock.adjust(Duration.millis(step))
      }
      yield* awaitSleeper
      expect((yield* client.state.get)._tag).toBe("Open")
      expect(yield* server.pings).toBe(0) // the probe went into the blackhole
      yield* TestClock.adjust("1 millis")
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff.error).toMatchObject({ _tag: "TimeoutError", operation: "heartbeat" })
    }).pipe(provideNode))
})

describe("round 12: what bounds a wait under TestClock", () => {
  it.scoped("Effect.timeout on the TestClock never fires; under TestServices.provideLive it does; the kit's waits do", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const onTestClock = Effect.never.pipe(Effect.timeoutFail({ duration: "20 millis", onTimeout: () => "fired" }))
      const realTime = Effect.as(TestServices.provideLive(Effect.sleep("200 millis")), "still waiting")
      expect(yield* Effect.raceFirst(Effect.flip(onTestClock), realTime)).toBe("still waiting")
      expect(yield* Effect.flip(TestServices.provideLive(onTestClock))).toBe("fired")
      expect(defectOf(yield* Effect.exit(server.awaitConnections(1, "20 millis")))).toBe(
        "RuntimeException: TestServer.awaitConnections(1): 0 open after 20 ms"
      )
    }))
})

describe("round 12: restart, closeAll and handshakes, live", () => {
  it.scopedLive("50 kill/restart cycles on the same port: the Client, dialled once to server.url, is back each time", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const port = server.port
      const client = yield* Client.make({ url: server.url, ...fast })
      yield* client.awaitOpen
      for (let cycle = 0; cycle < 50; cycle++) {
        yield* server.kill
        yield* server.kill // twice: a no-op
        yield* awaitState(client, isTag("Backoff"))
        yield* server.restart
        yield* server.restart // without kill: a no-op
        yield* server.awaitConnections(1)
      }
      expect(server.port).toBe(port)
      expect(yield* server.accepted).toBe(51)
      yield* client.send("after 50")
      expect(yield* server.awaitReceived(1)).toEqual(["after 50"])
    }).pipe(provideNode))

  it.scopedLive("closeAll(4000, reason): the Client sees it, reconnects, and a send then reaches the server", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, ...fast })
      yield* client.awaitOpen
      yield* server.closeAll(4000, "maintenance")
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff.error).toMatchObject({
        _tag: "Disconnected",
        code: 4000,
        reason: "maintenance",
        initiator: "server"
      })
      yield* client.send("after 4000")
      expect(yield* server.awaitReceived(1)).toEqual(["after 4000"])
      expect(yield* server.accepted).toBe(2)
    }).pipe(provideNode))

  it.scopedLive("clearRejections drops pending answers; hangHandshake then behave: the open timeout, then Open", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(500, {}, 5)
      yield* server.clearRejections
      yield* server.hangHandshake
      const client = yield* Client.make({ url: server.url, ...fast, connection: { openTimeout: "100 millis" } })
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff.error).toMatchObject({ _tag: "TimeoutError", operation: "open" })
      // Every request so far was read and left unanswered (none of the 500s): none accepted.
      expect(yield* server.requests).toBeGreaterThanOrEqual(1)
      expect(yield* server.accepted).toBe(0)
      yield* server.behave
      yield* client.awaitOpen
      yield* server.awaitConnections(1)
    }).pipe(provideNode))
})

describe("round 12: the server's view", () => {
  it.scopedLive("a burst of 10,000 sends is received exactly and in order; awaitReceived returns it", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const client = yield* Client.make({ url: server.url, ...fast })
      yield* client.awaitOpen
      const sent = Array.from({ length: 10_000 }, (_, index) => `m${index}`)
      yield* Effect.forEach(sent, (message) => client.send(message), { discard: true })
      expect(yield* server.awaitReceived(10_000)).toEqual(sent)
    }).pipe(provideNode))

  it.scopedLive("awaitConnections / awaitReceived die with what they saw, in real time; record: false dies at once", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const waited = yield* Effect.exit(server.awaitConnections(1, "50 millis"))
      expect(defectOf(waited)).toBe(
        "RuntimeException: TestServer.awaitConnections(1): 0 open after 50 ms"
      )
      const quiet = yield* TestServer.make({ record: false })
      const unrecorded = yield* Effect.exit(quiet.awaitReceived(1))
      expect(defectOf(unrecorded)).toBe(
        "RuntimeException: TestServer.awaitReceived(1): the server was made with record: false"
      )
    }))
})

describe("round 12: the app's own server logic as a handler", () => {
  it.scopedLive("an echo with a transform, and request/response by id from an Effect handler, in order", () =>
    Effect.gen(function*() {
      const upper = yield* TestServer.make({
        handler: (message, reply) => reply(typeof message === "string" ? message.toUpperCase() : message)
      })
      const shouting = yield* Client.make({ url: upper.url, ...fast })
      const echoed = yield* takeMessages(shouting, 2)
      yield* shouting.send("abc")
      yield* shouting.send(new Uint8Array([1, 2]))
      // The Client hands binary frames over as Node Buffers: compare the bytes, not the class.
      const [text, binary] = yield* Fiber.join(echoed)
      expect([text, new Uint8Array(binary as Uint8Array)]).toEqual(["ABC", new Uint8Array([1, 2])])

      const rpc = yield* TestServer.make({
        handler: (message, reply) =>
          Effect.gen(function*() {
            const request = JSON.parse(String(message)) as { id: number; add: [number, number] }
            yield* Effect.yieldNow()
            reply(JSON.stringify({ id: request.id, sum: request.add[0] + request.add[1] }))
          })
      })
      const caller = yield* Client.make({ url: rpc.url, ...fast })
      const answers = yield* takeMessages(caller, 3)
      for (const id of [1, 2, 3]) yield* caller.send(JSON.stringify({ id, add: [id, 10] }))
      expect((yield* Fiber.join(answers)).map((text) => JSON.parse(String(text)))).toEqual([
        { id: 1, sum: 11 },
        { id: 2, sum: 12 },
        { id: 3, sum: 13 }
      ])
      expect(yield* rpc.handlerErrors).toEqual([])
    }).pipe(provideNode))

  const failing: ReadonlyArray<readonly [string, TestServer.Handler, unknown]> = [
    ["an async handler that rejects", async () => {
      throw new Error("bad request")
    }, new Error("bad request")],
    ["an Effect handler that fails", () => Effect.fail("bad request"), "bad request"],
    ["an Effect handler that dies", () => Effect.die("bug"), "bug"]
  ]
  for (const [name, handler, why] of failing) {
    it.scopedLive(`${name}: that connection closes with 1011, nothing uncaught, the server serves the reconnect`, () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ handler })
        const client = yield* Client.make({ url: server.url, ...fast })
        yield* client.send("x")
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff.error).toMatchObject({
          _tag: "Disconnected",
          code: 1011,
          reason: "test handler failed",
          initiator: "server"
        })
        yield* client.awaitOpen
        yield* server.awaitConnections(1)
        expect([yield* server.accepted, (yield* server.received).length]).toEqual([2, 1])
        expect(yield* server.handlerErrors).toEqual([why])
      }).pipe(provideNode))
  }
})

describe("round 12: FaultProxy in front of a TestServer", () => {
  it.live("latency, throttle, reset and blackhole, each undone; the heartbeat finds the blackhole; no handle left with links up", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const client = yield* Client.make({
        url: proxy.url,
        ...fast,
        heartbeat: { interval: "100 millis", timeout: "1 second" }
      })
      const echoed = yield* takeMessages(client, 4)
      yield* client.awaitOpen
      yield* proxy.latency(30)
      yield* client.send("slow 1")
      yield* client.send("slow 2")
      yield* proxy.latency(0)
      yield* proxy.throttle(4096)
      yield* client.send("x".repeat(1024))
      yield* proxy.throttle(undefined)
      yield* client.send("fast")
      expect(yield* Fiber.join(echoed)).toEqual(["slow 1", "slow 2", "x".repeat(1024), "fast"])

      yield* proxy.reset
      const cut = yield* awaitState(client, isTag("Backoff"))
      expect(cut.error).toMatchObject({ _tag: "Disconnected", code: 1006, initiator: "transport" })
      yield* client.awaitOpen
      yield* server.awaitConnections(1)

      yield* proxy.blackhole
      const silent = yield* awaitState(client, isTag("Backoff"))
      expect(silent.error).toMatchObject({ _tag: "TimeoutError", operation: "heartbeat" })
      yield* proxy.restore
      yield* client.awaitOpen
      yield* server.awaitConnections(1)
      expect(yield* server.accepted).toBe(3)
      expect(yield* proxy.connections).toBe(1)
    })).pipe(provideNode))
})

describe("round 12: failover between two TestServers", () => {
  it.scopedLive("url [a, b]: a killed, the Client opens on b; b killed and a back, it returns to a", () =>
    Effect.gen(function*() {
      const a = yield* TestServer.make()
      const b = yield* TestServer.make()
      const client = yield* Client.make({ url: [a.url, b.url], ...fast })
      // The Client reports endpoints as parsed URLs (a trailing "/"); server.url has none.
      const endpointOf = (server: TestServer.TestServer) => new URL(server.url).href
      const first = yield* awaitState(client, isTag("Open"))
      expect(first.endpoint).toBe(endpointOf(a))
      yield* a.kill
      const onB = yield* awaitState(
        client,
        (state): state is Extract<State, { _tag: "Open" }> => state._tag === "Open" && state.endpoint === endpointOf(b)
      )
      expect(onB.attempt).toBeGreaterThanOrEqual(1)
      yield* client.send("to b")
      expect(yield* b.awaitReceived(1)).toEqual(["to b"])
      yield* a.restart
      yield* b.kill
      yield* a.awaitConnections(1)
      yield* client.send("to a")
      expect(yield* a.awaitReceived(1)).toEqual(["to a"])
      expect([yield* a.accepted, yield* b.accepted]).toEqual([2, 1])
    }).pipe(provideNode))
})

describe("round 12: one connection among several (peers)", () => {
  it.scopedLive("two users: each one's messages and headers apart, a frame to one only, one dropped alone", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const alice = yield* Client.make({ url: server.url, ...fast, headers: { "x-user": "alice" } })
      yield* alice.awaitOpen
      const bob = yield* Client.make({ url: server.url, ...fast, headers: { "x-user": "bob" } })
      yield* bob.awaitOpen
      yield* server.awaitConnections(2)
      const peers = yield* server.peers
      expect(peers).toHaveLength(2)
      const [first, second] = peers as readonly [TestServer.Peer, TestServer.Peer]
      expect([first.id, first.requestHeaders["x-user"], second.id, second.requestHeaders["x-user"]]).toEqual([
        1,
        "alice",
        2,
        "bob"
      ])
      yield* alice.send("a1")
      yield* bob.send("b1")
      yield* alice.send("a2")
      yield* server.awaitReceived(3)
      expect([yield* first.received, yield* second.received]).toEqual([["a1", "a2"], ["b1"]])

      const toAlice = yield* takeMessages(alice, 2)
      const toBob = yield* takeMessages(bob, 1)
      yield* first.send("for alice only")
      yield* server.broadcast("for everyone")
      expect(yield* Fiber.join(toAlice)).toEqual(["for alice only", "for everyone"])
      expect(yield* Fiber.join(toBob)).toEqual(["for everyone"])

      yield* second.terminate
      const dropped = yield* awaitState(bob, isTag("Backoff"))
      expect(dropped.error).toMatchObject({ _tag: "Disconnected", code: 1006 })
      expect(yield* second.isOpen).toBe(false)
      expect((yield* alice.state.get)._tag).toBe("Open")
      yield* bob.awaitOpen
      yield* server.awaitConnections(2)
      expect((yield* server.peers).map((peer) => [peer.id, peer.requestHeaders["x-user"]])).toEqual([
        [1, "alice"],
        [3, "bob"]
      ])
      yield* first.close(4001, "kicked")
      const kicked = yield* awaitState(alice, isTag("Backoff"))
      expect(kicked.error).toMatchObject({ _tag: "Disconnected", code: 4001, reason: "kicked", initiator: "server" })
    }).pipe(provideNode))
})

describe("round 12: server logic per connection (onConnect, the handler's peer)", () => {
  it.scopedLive("a feed pushes a snapshot to every (re)connected Client; a chat relays each line to the others only", () =>
    Effect.gen(function*() {
      const feed = yield* TestServer.make({ onConnect: (peer) => peer.send(`snapshot for connection ${peer.id}`) })
      const consumer = yield* Client.make({ url: feed.url, ...fast })
      const snapshots = yield* takeMessages(consumer, 2)
      yield* consumer.awaitOpen
      yield* feed.kill
      yield* feed.restart
      expect(yield* Fiber.join(snapshots)).toEqual(["snapshot for connection 1", "snapshot for connection 2"])

      const room: { server?: TestServer.TestServer } = {}
      const chat = yield* TestServer.make({
        handler: (line, _reply, from) =>
          Effect.flatMap(
            room.server!.peers,
            (peers) =>
              Effect.forEach(peers.filter((peer) => peer.id !== from.id), (peer) =>
                peer.send(`${from.requestHeaders["x-user"]}: ${line}`))
          )
      })
      room.server = chat
      const alice = yield* Client.make({ url: chat.url, ...fast, headers: { "x-user": "alice" } })
      const bob = yield* Client.make({ url: chat.url, ...fast, headers: { "x-user": "bob" } })
      yield* chat.awaitConnections(2)
      const atAlice = yield* takeMessages(alice, 1)
      const atBob = yield* takeMessages(bob, 2)
      yield* alice.send("hi")
      yield* alice.send("anyone?")
      yield* bob.send("here")
      expect(yield* Fiber.join(atBob)).toEqual(["alice: hi", "alice: anyone?"])
      expect(yield* Fiber.join(atAlice)).toEqual(["bob: here"])
    }).pipe(provideNode))

  it.scopedLive("an onConnect that throws or fails closes that connection with 1011", () =>
    Effect.gen(function*() {
      const throwing = yield* TestServer.make({
        onConnect: () => {
          throw new Error("no snapshot")
        }
      })
      const failing = yield* TestServer.make({ onConnect: () => Effect.fail("no snapshot") })
      for (const [server, reason] of [[throwing, "test handler threw"], [failing, "test handler failed"]] as const) {
        const client = yield* Client.make({ url: server.url, ...fast })
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff.error).toMatchObject({ _tag: "Disconnected", code: 1011, reason, initiator: "server" })
        yield* client.close()
        // One per connection it was given (the Client may have reconnected meanwhile).
        const errors = yield* server.handlerErrors
        expect(errors[0]).toEqual(server === throwing ? new Error("no snapshot") : "no snapshot")
      }
    }).pipe(provideNode))
})

describe("round 12: how the app says goodbye, as the server sees it", () => {
  it.scopedLive("a Client closed with 4001 \"logout\": the server's peer got exactly that; one cut by a proxy reset: 1006", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const leaving = yield* Client.make({ url: server.url, ...fast })
      yield* leaving.awaitOpen
      const cut = yield* Client.make({ url: proxy.url, ...fast })
      yield* cut.awaitOpen
      yield* server.awaitConnections(2)
      const [first, second] = (yield* server.peers) as readonly [TestServer.Peer, TestServer.Peer]
      yield* leaving.close(4001, "logout")
      expect(yield* first.awaitClosed()).toEqual({ code: 4001, reason: "logout" })
      yield* proxy.reset
      expect(yield* second.awaitClosed()).toEqual({ code: 1006, reason: "" })
      yield* server.awaitConnections(1) // the cut one is back, the one that left is not
      expect((yield* server.peers).map((peer) => peer.id)).toEqual([3])
    }).pipe(provideNode))
})
