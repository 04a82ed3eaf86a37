/**
 * Round 8 trials: a wall clock that jumps (an NTP step, a user setting the time, a VM restored, a
 * laptop resumed). Effect's live Clock reads the wall clock for its millis (`Date.now()`) and a
 * monotonic one for its nanos (`process.hrtime`, which no step of the wall clock moves). The Clock
 * here is that live Clock with its millis moved by an offset the test changes mid-run: what the
 * live Clock itself does when the machine's time is stepped. It is given as a user's runtime
 * would give it (`Effect.withClock`), and its timers are the live ones (real time).
 *
 * Each trial runs on both paths of the Client: the Node transport's attempts on callbacks (a static
 * URL, the default retry, no `onOpen`) and the fiber path (a user `onOpen`). A Client with a
 * breaker registry always runs its attempts on the fiber. Jumps: back 1 hour, forward 1 day,
 * forward then back, many small back-jumps; while Open with a short heartbeat, in Backoff, while
 * Connecting, while Suspended. What is asserted: a dead peer is still found within about
 * interval + timeout of real time, a live one is not cut, no wait much longer than its bound, no
 * hot loop, no negative or absurd connect latency, a breaker re-admits calls on time.
 * Loopback only; every loop bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Metric, Schedule, Stream } from "effect"
import { Client } from "../src/index.js"
import * as Metrics from "../src/internal/metrics.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { closedPort } from "./support/ports.js"

type State = Client.ClientState

const HOUR = 3_600_000
const DAY = 24 * HOUR

/** Effect's live Clock, its wall reading (millis) moved by `offset`; nanos, sleep and scheduler are the live ones. */
const jumpingClock = (): Clock.Clock & { offset: number } => {
  const live = Clock.make()
  const clock = Object.create(live) as Clock.Clock & { offset: number }
  clock.offset = 0
  const millis = () => live.unsafeCurrentTimeMillis() + clock.offset
  Object.defineProperty(clock, "unsafeCurrentTimeMillis", { value: millis })
  Object.defineProperty(clock, "currentTimeMillis", { value: Effect.sync(millis) })
  return clock
}

const paths = [
  { path: "callbacks", options: {} },
  { path: "fiber (onOpen)", options: { onOpen: () => Effect.void } }
] as const

/** Every state the client enters from now on (the current one first). */
const recordStates = (client: Client.Client) =>
  Effect.gen(function*() {
    const seen: Array<State> = []
    yield* Effect.forkScoped(Stream.runForEach(client.state.changes, (state) => Effect.sync(() => seen.push(state))))
    yield* awaitTrue(Effect.sync(() => seen.length > 0), "the current state")
    return seen
  })

/** On the callback path: no supervisor fiber while connecting or backing off. */
const noSupervisor = (client: Client.Client): boolean =>
  (client as unknown as { supervisor: unknown }).supervisor === undefined

const pingsAbove = (server: TestServer.TestServer, count: number) =>
  awaitTrue(Effect.map(server.pings, (pings) => pings > count), `more than ${count} pings`)

/** The connect latency histogram's count and sum. */
const latency = Effect.map(Metric.value(Metrics.connectLatency), ({ count, sum }) => ({ count, sum }))

const run = <A, E>(
  body: Effect.Effect<A, E, import("effect").Scope.Scope | import("../src/index.js").Transport.Transport>
) => withNoHandlesLeft(body.pipe(Effect.provide(quietNode)))

const heartbeat = { interval: "200 millis", timeout: "200 millis" } as const

for (const { options, path } of paths) {
  describe(`${path}: Open with a short heartbeat`, () => {
    it.live("back 1 hour, then the peer stops answering: found dead (TimeoutError heartbeat) within about interval + timeout", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, heartbeat, ...options }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        yield* pingsAbove(server, 0)
        clock.offset -= HOUR
        yield* server.stopPonging
        // interval + timeout is 400 ms: 3 s of real time is far past it, an hour is not.
        const down = yield* awaitState(client, isTag("Backoff"), "3 seconds")
        expect(down).toMatchObject({
          _tag: "Backoff",
          attempt: 1,
          error: { _tag: "TimeoutError", operation: "heartbeat" }
        })
        yield* client.close()
      })))

    it.live("forward 1 day, then back 1 day, then the peer stops answering: no false timeout, then found dead", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, heartbeat, ...options }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        const seen = yield* recordStates(client)
        yield* pingsAbove(server, 0)
        clock.offset += DAY
        // Probes go on and are answered across the jump.
        yield* pingsAbove(server, (yield* server.pings) + 1)
        expect(seen.map((state) => state._tag)).toEqual(["Open"])
        clock.offset -= DAY
        yield* server.stopPonging
        const down = yield* awaitState(client, isTag("Backoff"), "3 seconds")
        expect(down).toMatchObject({ error: { _tag: "TimeoutError", operation: "heartbeat" } })
        expect(seen.map((state) => state._tag)).toEqual(["Open", "Backoff"])
        yield* client.close()
      })))

    it.live("many small back-jumps (the wall clock runs backwards): the dead peer is still found", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, heartbeat, ...options }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        yield* pingsAbove(server, 0)
        // Back 40 ms every 20 ms of real time, at most 200 times (4 s).
        yield* Effect.forkScoped(
          Effect.repeat(
            Effect.sync(() => clock.offset -= 40),
            Schedule.intersect(Schedule.spaced("20 millis"), Schedule.recurs(200))
          )
        )
        yield* server.stopPonging
        const down = yield* awaitState(client, isTag("Backoff"), "3 seconds")
        expect(down).toMatchObject({ error: { _tag: "TimeoutError", operation: "heartbeat" } })
        yield* client.close()
      })))

    it.live("forward 800 ms while a probe's answer is on its way (a 300 ms link): no TimeoutError on the live peer", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        const proxy = yield* FaultProxy.make(server.port)
        const client = yield* Client.make({
          url: proxy.url,
          heartbeat: { interval: "400 millis", timeout: "1 second" },
          ...options
        }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        const seen = yield* recordStates(client)
        yield* proxy.latency(300)
        const before = yield* server.pings
        // The probe reached the server: its pong is 300 ms away, the wait for it has 700 ms left.
        yield* pingsAbove(server, before)
        clock.offset += 800
        // The next probe: the one before was answered.
        yield* pingsAbove(server, before + 1)
        expect(seen.map((state) => state._tag)).toEqual(["Open"])
        yield* client.close()
      })))
  })

  describe(`${path}: Backoff and Connecting`, () => {
    it.live("in Backoff, back 1 hour, then forward 1 day: each next attempt comes after its own delay in real time, no hot loop", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const port = yield* closedPort
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false, ...options }).pipe(
          Effect.withClock(clock)
        )
        const seen = yield* recordStates(client)
        const first = yield* awaitState(client, isTag("Backoff"))
        if (path === "callbacks") expect(noSupervisor(client)).toBe(true)
        clock.offset -= HOUR
        const delay1 = (first as Extract<State, { _tag: "Backoff" }>).delay
        yield* awaitState(
          client,
          (state) => state._tag === "Connecting" && state.attempt === 2,
          Duration.sum(delay1, "1500 millis")
        )
        const second = yield* awaitState(client, (state) => state._tag === "Backoff" && state.attempt === 2)
        clock.offset += DAY + HOUR
        const delay2 = (second as Extract<State, { _tag: "Backoff" }>).delay
        yield* awaitState(
          client,
          (state) => state._tag === "Connecting" && state.attempt === 3,
          Duration.sum(delay2, "1500 millis")
        )
        yield* client.close()
        // Three attempts, each after its backoff: no hot loop.
        expect(seen.filter(isTag("Connecting")).length).toBe(3)
      })))

    it.live("a hung handshake, back 1 hour then forward 1 day while Connecting: TimeoutError open after openTimeout of real time", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        yield* server.hangHandshake
        const before = yield* latency
        const client = yield* Client.make({
          url: server.url,
          heartbeat: false,
          connection: { openTimeout: "400 millis" },
          ...options
        }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Connecting"))
        clock.offset -= HOUR
        const down = yield* awaitState(client, isTag("Backoff"), "2 seconds")
        expect(down).toMatchObject({ attempt: 1, error: { _tag: "TimeoutError", operation: "open" } })
        clock.offset += DAY + HOUR
        yield* awaitState(client, (state) => state._tag === "Connecting" && state.attempt === 2, "3 seconds")
        const again = yield* awaitState(client, (state) => state._tag === "Backoff" && state.attempt === 2, "2 seconds")
        expect(again).toMatchObject({ error: { _tag: "TimeoutError", operation: "open" } })
        yield* client.close()
        expect((yield* latency).count).toBe(before.count)
      })))

    it.live("a slow handshake (a 150 ms link), back 1 hour then forward 1 day while Connecting: the connect latency recorded is between 0 and openTimeout", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        const proxy = yield* FaultProxy.make(server.port)
        yield* proxy.latency(150)
        const before = yield* latency
        const client = yield* Client.make({ url: proxy.url, heartbeat: false, ...options }).pipe(
          Effect.withClock(clock)
        )
        yield* awaitState(client, isTag("Connecting"))
        clock.offset -= HOUR
        yield* awaitState(client, isTag("Open"))
        const one = yield* latency
        expect(one.count).toBe(before.count + 1)
        expect(one.sum - before.sum).toBeGreaterThanOrEqual(0)
        expect(one.sum - before.sum).toBeLessThanOrEqual(10_000)
        yield* client.reconnect
        yield* awaitState(client, isTag("Connecting"))
        clock.offset += DAY
        yield* awaitState(client, isTag("Open"))
        yield* awaitTrue(Effect.map(latency, ({ count }) => count === before.count + 2), "the second open counted")
        const two = yield* latency
        expect(two.sum - one.sum).toBeGreaterThanOrEqual(0)
        expect(two.sum - one.sum).toBeLessThanOrEqual(10_000)
        yield* client.close()
      })))
  })
}
