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
import { Clock, Duration, Effect, Layer, Logger, Metric, Option, Schedule, Stream } from "effect"
import type { Scope } from "effect"
import { CircuitBreaker, Client, NodeTransport } from "../src/index.js"
import type { Transport } from "../src/index.js"
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

const run = <A, E>(body: Effect.Effect<A, E, Scope.Scope | Transport.Transport>) =>
  withNoHandlesLeft(body.pipe(Effect.provide(quietNode)))

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
        // A timeout with room for a loaded machine, where a pong 200 ms late is a timeout of its
        // own: any step of a day is far past it all the same.
        const client = yield* Client.make({
          url: server.url,
          heartbeat: { interval: "200 millis", timeout: "1 second" },
          ...options
        }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        const seen = yield* recordStates(client)
        yield* pingsAbove(server, 0)
        clock.offset += DAY
        // Probes go on and are answered across the jump.
        yield* pingsAbove(server, (yield* server.pings) + 1)
        expect(seen.map((state) => state._tag)).toEqual(["Open"])
        clock.offset -= DAY
        yield* server.stopPonging
        // interval + timeout is 1.2 s: 5 s of real time is far past it, a day is not.
        const down = yield* awaitState(client, isTag("Backoff"), "5 seconds")
        expect(down).toMatchObject({ error: { _tag: "TimeoutError", operation: "heartbeat" } })
        expect(seen.map((state) => state._tag)).toEqual(["Open", "Backoff"])
        yield* client.close()
      })))

    it.live("a machine that slept an hour (the wall clock ahead, the monotonic one not) with a dead peer: probed at the next sample, found within a quarter interval + timeout, not a whole interval", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        // A long interval: without the probe on waking, the dead peer waits for it (5 s).
        const client = yield* Client.make({
          url: server.url,
          heartbeat: { interval: "5 seconds", timeout: "300 millis" },
          ...options
        }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        yield* server.stopPonging
        // What a sleep looks like to this process: the wall clock an hour on, the monotonic one not.
        clock.offset += HOUR
        // At most a quarter interval (1.25 s) to the next sample, then the timeout (0.3 s).
        const down = yield* awaitState(client, isTag("Backoff"), "3500 millis")
        expect(down).toMatchObject({ _tag: "Backoff", error: { _tag: "TimeoutError", operation: "heartbeat" } })
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
          heartbeat: { interval: "200 millis", timeout: "1 second" },
          ...options
        }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        const seen = yield* recordStates(client)
        yield* proxy.latency(300)
        const before = yield* server.pings
        // The probe reached the server: its pong is 300 ms away, the wait for it has 700 ms left.
        yield* pingsAbove(server, before)
        clock.offset += 800
        // An echo sent now comes back after the pong (one TCP stream each way), 600 ms on: past
        // the samples that found the wait run out.
        yield* client.send("after the jump")
        const echo = yield* Stream.runHead(client.messages).pipe(Effect.timeout("3 seconds"), Effect.option)
        expect(seen.map((state) => state._tag)).toEqual(["Open"])
        expect(echo).toEqual(Option.some(Option.some("after the jump")))
        yield* client.close()
      })))
  })

  describe(`${path}: Backoff and Connecting`, () => {
    it.live("in Backoff, back 1 hour, then forward 1 day: the next attempt comes after the delay in real time, no hot loop", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const port = yield* closedPort
        // The fiber path with a user's schedule; the callbacks path with the default one.
        const retry = path === "callbacks" ? {} : { retry: Schedule.exponential("300 millis") }
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false, ...retry, ...options })
          .pipe(Effect.withClock(clock))
        const seen = yield* recordStates(client)
        const first = yield* awaitState(client, isTag("Backoff"))
        expect(noSupervisor(client)).toBe(path === "callbacks")
        clock.offset -= HOUR
        yield* Effect.sleep("50 millis")
        clock.offset += DAY + HOUR
        // Its delay of real time (at most 2.09 s on the default schedule) and a margin for a loaded
        // machine: an hour would not do, nor would an attempt at once. Read from the recorded
        // states: the attempt to a closed port is refused at once, so a subscription made now could
        // come after Connecting 2 (the first delay can be 0.11 s; a fresh-clone run saw that).
        const delay = (first as Extract<State, { _tag: "Backoff" }>).delay
        const entered = (tag: State["_tag"], attempt: number) =>
          Effect.sync(() => seen.some((state) => state._tag === tag && "attempt" in state && state.attempt === attempt))
        yield* awaitTrue(entered("Connecting", 2), "Connecting, attempt 2").pipe(
          Effect.timeoutFail({ duration: Duration.sum(delay, "5 seconds"), onTimeout: () => "no attempt 2 in time" })
        )
        yield* awaitTrue(entered("Backoff", 2), "Backoff, attempt 2")
        yield* client.close()
        // Two attempts, the second after the backoff: no hot loop.
        expect(seen.filter(isTag("Connecting")).length).toBe(2)
      })))

    it.live("a hung handshake, back 1 hour then forward 1 day while Connecting: TimeoutError open after openTimeout of real time, nothing counted as opened", () =>
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
        yield* Effect.sleep("100 millis")
        clock.offset += DAY + HOUR
        // 400 ms of real time after the attempt began: 2 s is far past it, an hour or none is not.
        const down = yield* awaitState(client, isTag("Backoff"), "2 seconds")
        expect(down).toMatchObject({ attempt: 1, error: { _tag: "TimeoutError", operation: "open" } })
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

    // minUptime 2 s (it was 300 ms): "a moment" is from an Open to the close the server sends, which
    // a fresh-clone CI run on 2 loaded cores once stretched past 300 ms (the series started again).
    it.live("minUptime 2 s: a session past it, back 1 hour, then 1012: the series starts again; a session of a moment, forward 1 day, then 1012: it goes on", () =>
      run(Effect.gen(function*() {
        const clock = jumpingClock()
        const server = yield* TestServer.make()
        // The fiber path can have a fast schedule; the callbacks path keeps the default one.
        const fast = path === "callbacks" ? {} : { retry: Schedule.spaced("50 millis") }
        const client = yield* Client.make({
          url: server.url,
          heartbeat: false,
          minUptime: "2 seconds",
          ...fast,
          ...options
        }).pipe(Effect.withClock(clock))
        yield* awaitState(client, isTag("Open"))
        // A session of a moment: the series goes on (attempt 2 next).
        yield* server.closeAll(1012)
        yield* awaitState(client, (state) => state._tag === "Backoff" && state.attempt === 1)
        const second = yield* awaitState(client, isTag("Open"), "4 seconds")
        expect(second).toMatchObject({ attempt: 2 })
        // Up past minUptime of real time, then the wall clock goes back an hour: it stayed up.
        yield* Effect.sleep("2100 millis")
        clock.offset -= HOUR
        yield* server.closeAll(1012)
        const reset = yield* awaitState(client, isTag("Backoff"))
        expect(reset).toMatchObject({ attempt: 1, error: { _tag: "Disconnected", code: 1012 } })
        const third = yield* awaitState(client, isTag("Open"), "4 seconds")
        expect(third).toMatchObject({ attempt: 2 })
        // Up a moment, the wall clock a day on: it did not stay up.
        clock.offset += DAY
        yield* server.closeAll(1012)
        const goesOn = yield* awaitState(client, isTag("Backoff"))
        expect(goesOn).toMatchObject({ attempt: 2, error: { _tag: "Disconnected", code: 1012 } })
        yield* client.close()
      })))
  })
}

describe("fiber (a breaker registry): Suspended by an open breaker", () => {
  const breakers = CircuitBreaker.layer({
    policy: CircuitBreaker.consecutiveFailures(1),
    openFor: Schedule.spaced("600 millis")
  })
  const runWithBreakers = <A, E>(
    body: Effect.Effect<A, E, Scope.Scope | Transport.Transport | CircuitBreaker.Registry>
  ) =>
  (clock: Clock.Clock) =>
    // One Clock for the whole runtime, the breakers' layer included, as a user's would be.
    withNoHandlesLeft(body.pipe(Effect.provide(Layer.merge(quietNode, breakers)), Effect.withClock(clock)))

  it.live("back 1 hour before the refusal: Suspended until the open period's end, not the 5 s recheck; forward 1 day while Open: no early trial; both heal", () =>
    Effect.suspend(() => {
      const clock = jumpingClock()
      return runWithBreakers(Effect.gen(function*() {
        const server = yield* TestServer.make()
        yield* server.kill
        const client = yield* Client.make({ url: server.url, heartbeat: false, retry: Schedule.spaced("200 millis") })
        const seen = yield* recordStates(client)
        // The refused handshake opened the breaker (600 ms); the schedule's 200 ms wait comes first.
        yield* awaitState(client, (state) => state._tag === "Backoff" && state.error._tag === "ConnectError")
        clock.offset -= HOUR
        const suspended = yield* awaitState(client, isTag("Suspended"))
        // The open period has at most 600 ms left, whatever the wall clock did.
        const left = (suspended as Extract<State, { _tag: "Suspended" }>).retryAt - clock.unsafeCurrentTimeMillis()
        expect(left).toBeLessThanOrEqual(600)
        yield* server.restart
        yield* awaitState(client, isTag("Open"), "2 seconds")

        // Again, and the wall clock a day on while the breaker is open.
        const registry = yield* CircuitBreaker.Registry
        const breaker = yield* registry.forEndpoint(server.url)
        yield* server.kill
        yield* awaitState(client, isTag("Suspended"))
        clock.offset += DAY
        expect((yield* breaker.state.get)._tag).toBe("Open")
        yield* server.restart
        yield* awaitState(client, isTag("Open"), "2 seconds")
        // Each outage: a refused handshake, an attempt the breaker refused, the trial that healed it
        // (the second also a first attempt after the server's close): no hot loop. Six on a quiet
        // machine; a slow one, where a restart takes longer than a schedule step, made a seventh.
        expect(seen.filter(isTag("Connecting")).length).toBeLessThanOrEqual(8)
        yield* client.close()
      }))(clock)
    }))
})

describe("a breaker's failure ratio", () => {
  it.live("over a 1 s window: a failure, back 1 hour, another 1.15 s of real time later: the first is out of the window, Closed", () =>
    Effect.gen(function*() {
      const clock = jumpingClock()
      const breaker = yield* CircuitBreaker.make({
        policy: CircuitBreaker.failureRatio({ threshold: 1, window: "1 second", minimumCalls: 2, buckets: 10 })
      }).pipe(Effect.withClock(clock))
      yield* Effect.either(breaker.run(Effect.fail("down")))
      clock.offset -= HOUR
      yield* Effect.sleep("1150 millis")
      yield* Effect.either(breaker.run(Effect.fail("down")))
      // On the wall clock the first failure's slice, an hour "ahead", stayed in the window.
      expect((yield* breaker.state.get)._tag).toBe("Closed")
    }).pipe(Effect.scoped))
})

describe("the rest of what reads the Clock", () => {
  it.live("a user's retry with Schedule.upTo(1 minute), forward 1 day in Backoff: the Schedule counts the step as time passed, and the Client gives up (Effect's convention, left)", () =>
    run(Effect.gen(function*() {
      const clock = jumpingClock()
      const port = yield* closedPort
      const client = yield* Client.make({
        url: `ws://127.0.0.1:${port}`,
        heartbeat: false,
        retry: Schedule.upTo(Schedule.spaced("100 millis"), "1 minute")
      }).pipe(Effect.withClock(clock))
      yield* awaitState(client, isTag("Backoff"))
      clock.offset += DAY
      const closed = yield* awaitState(client, isTag("Closed"), "2 seconds")
      const error = Option.getOrThrow((closed as Extract<State, { _tag: "Closed" }>).error)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "ConnectionRefused" })
    })))

  it.live("a Clock without a scheduler (the heartbeat's timers are fibers sleeping on it), back 1 hour while Open: the dead peer is found", () =>
    run(Effect.gen(function*() {
      const jumping = jumpingClock()
      // A user's Clock that only delegates: no `scheduler`.
      const clock: Clock.Clock = {
        [Clock.ClockTypeId]: Clock.ClockTypeId,
        unsafeCurrentTimeMillis: () => jumping.unsafeCurrentTimeMillis(),
        currentTimeMillis: Effect.sync(() => jumping.unsafeCurrentTimeMillis()),
        unsafeCurrentTimeNanos: () => jumping.unsafeCurrentTimeNanos(),
        currentTimeNanos: Effect.sync(() => jumping.unsafeCurrentTimeNanos()),
        sleep: (duration) => jumping.sleep(duration)
      }
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url, heartbeat }).pipe(Effect.withClock(clock))
      yield* awaitState(client, isTag("Open"))
      yield* pingsAbove(server, 0)
      jumping.offset -= HOUR
      yield* server.stopPonging
      const down = yield* awaitState(client, isTag("Backoff"), "3 seconds")
      expect(down).toMatchObject({ error: { _tag: "TimeoutError", operation: "heartbeat" } })
      yield* client.close()
    })))

  for (const { options, path } of paths) {
    it.live(`${path}: the 'link back' line after an outage, back 1 hour then forward 1 day: never a negative duration`, () => {
      const lines: Array<string> = []
      const capture = Logger.make(({ message }) => {
        lines.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      return withNoHandlesLeft(
        Effect.gen(function*() {
          const clock = jumpingClock()
          const server = yield* TestServer.make()
          yield* server.kill
          const client = yield* Client.make({ url: server.url, heartbeat: false, ...options }).pipe(
            Effect.withClock(clock)
          )
          yield* awaitState(client, isTag("Backoff"))
          clock.offset -= HOUR
          yield* server.restart
          yield* client.reconnect
          yield* awaitState(client, isTag("Open"))
          yield* server.kill
          yield* awaitState(client, isTag("Backoff"))
          clock.offset += DAY + HOUR
          yield* server.restart
          yield* client.reconnect
          yield* awaitState(client, isTag("Open"))
          yield* awaitTrue(
            Effect.sync(() => lines.filter((line) => line.includes("link back")).length === 2),
            "two lines"
          )
          const back = lines.filter((line) => line.includes("link back"))
          // Never negative, but the wall clock's step is in them: an outage of a moment reads "0"
          // after a step back, "1d 1h" after a step forward (observe.ts dates the outage on the wall
          // clock: docs/trials.md, round 8; left as it is).
          for (const line of back) expect(line).toMatch(/down for \d/)
          expect(back[0]).toMatch(/down for 0$/)
          expect(back[1]).toMatch(/down for 1d 1h /)
          yield* client.close()
        }).pipe(Effect.provide(Layer.merge(NodeTransport.layer, Logger.replace(Logger.defaultLogger, capture))))
      )
    })
  }
})
