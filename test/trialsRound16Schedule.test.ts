/**
 * Round 16 of trials: reconnect Schedules as users compose them, on `Client.make({ retry })` and on
 * `Connection.connect(url).pipe(Effect.retry(policy))`. Real sockets on 127.0.0.1 (TestServer),
 * delays driven exactly by the TestClock. docs/trials.md, "round 16", has the table.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Fiber,
  LogLevel,
  Option,
  Schedule,
  Stream,
  TestClock,
  TestServices
} from "effect"
import { Client, Connection, Reconnect } from "../src/index.js"
import type { ClientError, ConnectError, TimeoutError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { captureLogs } from "./support/logs.js"
import { provideNode } from "./support/node.js"
import { realUntil } from "./support/poll.js"
import { awaitSleeper } from "./support/testClock.js"

type State = Client.ClientState

const describeError = (error: ClientError): string =>
  error._tag === "ConnectError"
    ? `${error.reason}${error.status === undefined ? "" : ` ${error.status}`}`
    : error._tag === "Disconnected"
    ? `Disconnected ${error.code}`
    : error._tag

/** The next state (current or later) that satisfies `predicate`, bounded by 5 s of real time. */
const next = (client: Client.Client, predicate: (state: State) => boolean) =>
  client.state.changes.pipe(
    Stream.filter(predicate),
    Stream.runHead,
    Effect.flatMap(Option.match({
      onNone: () => Effect.dieMessage("the state stream ended"),
      onSome: (state) => Effect.succeed(state)
    })),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "no such state within 5 s of real time" }),
    Effect.orDie,
    TestServices.provideLive
  )

const describeEnd = (state: State): string =>
  state._tag === "Closed"
    ? `Closed ${Option.match(state.error, { onNone: () => "by close", onSome: describeError })}`
    : state._tag === "Open"
    ? `Open #${state.attempt}`
    : state._tag

/**
 * Drives a Client on the TestClock through its Backoffs, each waited out by exactly its delay:
 * `attempt:delay` for each, then how it ended (Open, Closed with which error), at most `max` Backoffs.
 */
const drive = (client: Client.Client, max = 12, after?: State) =>
  Effect.gen(function*() {
    const backoffs: Array<string> = []
    // `after`: a state already seen (the Open before a drop), not an end.
    let previous: State | undefined = after
    for (let turn = 0; turn < max; turn++) {
      const state: State = yield* next(
        client,
        (state) => state !== previous && (state._tag === "Backoff" || state._tag === "Open" || state._tag === "Closed")
      )
      previous = state
      if (state._tag !== "Backoff") return { backoffs, end: describeEnd(state) }
      backoffs.push(`${state.attempt}:${Duration.toMillis(state.delay)}`)
      yield* awaitSleeper
      yield* TestClock.adjust(state.delay)
    }
    return { backoffs, end: `still ${(yield* client.state.get)._tag}` }
  })

/** A server that refuses (killed: ConnectionRefused) and a Client with `retry`, driven to its end. */
const refused = (retry: Schedule.Schedule<unknown, ClientError>, max = 12, options: Partial<Client.Options> = {}) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    yield* server.kill
    const client = yield* Client.make({ url: server.url, retry, heartbeat: false, ...options })
    return { client, ...(yield* drive(client, max)) }
  })

/** The first `count` messages of `stream`, or fewer if it ends; bounded by 5 s of real time. */
const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  stream.pipe(
    Stream.runCollect,
    Effect.map(Chunk.toArray),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the stream did not end within 5 s" }),
    TestServices.provideLive
  )

/** What a user's code gets from a Client that is Closed: awaitOpen's error, send's, and what messages gives. */
const endsWith = (client: Client.Client) =>
  Effect.gen(function*() {
    const awaited = yield* Effect.flip(client.awaitOpen)
    const sent = yield* Effect.flip(client.send("late"))
    const messages = yield* Effect.either(collect(client.messages))
    return { awaited, sent, messages }
  })

const delayOf = (state: State): number => state._tag === "Backoff" ? Duration.toMillis(state.delay) : -1

describe("round 16: Client retry Schedules as users compose them (TestClock, refused connects)", () => {
  // Each against a killed server (every attempt `ConnectError ConnectionRefused`), each Backoff
  // waited out by exactly its delay; `attempt:delay`, then the end. The floor is minRetryDelay (100 ms).
  const cases: ReadonlyArray<
    readonly [string, Schedule.Schedule<unknown, ClientError>, ReadonlyArray<string>, string]
  > = [
    ["Schedule.recurs(3)", Schedule.recurs(3), ["1:100", "2:100", "3:100"], "Closed ConnectionRefused"],
    ["Schedule.recurs(0)", Schedule.recurs(0), [], "Closed ConnectionRefused"],
    ["Schedule.stop", Schedule.stop, [], "Closed ConnectionRefused"],
    ["Schedule.once", Schedule.once, ["1:100"], "Closed ConnectionRefused"],
    [
      "Schedule.spaced(1 s) (8 Backoffs of it)",
      Schedule.spaced("1 second"),
      Array.from({ length: 8 }, (_, i) => `${i + 1}:1000`),
      "still Backoff"
    ],
    [
      "Schedule.fixed(1 s)",
      Schedule.fixed("1 second"),
      Array.from({ length: 8 }, (_, i) => `${i + 1}:1000`),
      "still Backoff"
    ],
    ["Schedule.fibonacci(100 ms)", Schedule.fibonacci("100 millis"), [
      "1:100",
      "2:100",
      "3:200",
      "4:300",
      "5:500",
      "6:800",
      "7:1300",
      "8:2100"
    ], "still Backoff"],
    ["Schedule.fibonacci(10 ms): the floor until it grows past 100 ms", Schedule.fibonacci("10 millis"), [
      "1:100",
      "2:100",
      "3:100",
      "4:100",
      "5:100",
      "6:100",
      "7:130",
      "8:210"
    ], "still Backoff"],
    ["Schedule.spaced(1 s) + upTo(3 s)", Schedule.spaced("1 second").pipe(Schedule.upTo("3 seconds")), [
      "1:1000",
      "2:1000",
      "3:1000"
    ], "Closed ConnectionRefused"],
    [
      "Schedule.exponential(1 s) + upTo(10 s): the last delay is not cut to the bound",
      Schedule.exponential("1 second").pipe(Schedule.upTo("10 seconds")),
      ["1:1000", "2:2000", "3:4000", "4:8000"],
      "Closed ConnectionRefused"
    ],
    [
      "Schedule.union(exponential(200 ms), spaced(1 s)): the shorter",
      Schedule.union(Schedule.exponential("200 millis"), Schedule.spaced("1 second")),
      ["1:200", "2:400", "3:800", "4:1000", "5:1000", "6:1000", "7:1000", "8:1000"],
      "still Backoff"
    ],
    [
      "Schedule.intersect(exponential(200 ms), recurs(3))",
      Schedule.intersect(Schedule.exponential("200 millis"), Schedule.recurs(3)),
      ["1:200", "2:400", "3:800"],
      "Closed ConnectionRefused"
    ],
    [
      "spaced(250 ms) x2, andThen exponential(1 s) x2",
      Schedule.spaced("250 millis").pipe(
        Schedule.intersect(Schedule.recurs(2)),
        Schedule.andThen(Schedule.exponential("1 second").pipe(Schedule.intersect(Schedule.recurs(2))))
      ),
      ["1:250", "2:250", "3:1000", "4:2000"],
      "Closed ConnectionRefused"
    ],
    [
      "Schedule.whileOutput(n < 2) on spaced(1 s)",
      Schedule.spaced("1 second").pipe(Schedule.whileOutput((n: number) => n < 2)),
      ["1:1000", "2:1000"],
      "Closed ConnectionRefused"
    ],
    [
      "spaced(1 s) intersect Schedule.elapsed, while elapsed < 3 s",
      Schedule.spaced("1 second").pipe(
        Schedule.intersect(Schedule.elapsed),
        Schedule.whileOutput(([, elapsed]) => Duration.lessThan(elapsed, Duration.seconds(3)))
      ),
      ["1:1000", "2:1000", "3:1000"],
      "Closed ConnectionRefused"
    ],
    [
      "exponential(1 s) + resetAfter(3 s): reset 3 s after its start, not after 3 quiet seconds (Effect's)",
      Schedule.exponential("1 second").pipe(Schedule.resetAfter("3 seconds")),
      ["1:1000", "2:2000", "3:1000", "4:2000", "5:1000", "6:2000", "7:1000", "8:2000"],
      "still Backoff"
    ],
    [
      "Reconnect.exponentialBackoff({ base: 200 ms, jitter: 0 }) intersect recurs(2)",
      Reconnect.exponentialBackoff({ base: "200 millis", jitter: 0 }).pipe(Schedule.intersect(Schedule.recurs(2))),
      ["1:200", "2:400"],
      "Closed ConnectionRefused"
    ],
    [
      "a step that dies (modifyDelayEffect)",
      Schedule.spaced("1 second").pipe(Schedule.modifyDelayEffect(() => Effect.die("boom"))),
      [],
      "Closed InvalidOptions"
    ],
    [
      "a step that interrupts itself (tapInput: Effect.interrupt)",
      Schedule.spaced("1 second").pipe(Schedule.tapInput(() => Effect.interrupt)),
      [],
      "Closed InvalidOptions"
    ],
    [
      "an invalid exponentialBackoff composed (base 0)",
      Reconnect.exponentialBackoff({ base: "0 millis" }).pipe(Schedule.intersect(Schedule.recurs(2))),
      [],
      "Closed InvalidOptions"
    ]
  ]
  for (const [name, schedule, backoffs, end] of cases) {
    it.effect(`${name}: ${backoffs.join(", ") || "no Backoff"}; ${end}`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const run = yield* refused(schedule, 8)
        expect({ backoffs: run.backoffs, end: run.end }).toEqual({ backoffs, end })
        if (end.startsWith("Closed")) {
          // Whoever waits is told, nobody hangs: awaitOpen fails with the Closed error, send with
          // SendError Closed, messages ends.
          const closed = yield* run.client.state.get
          const error = closed._tag === "Closed" ? Option.getOrThrow(closed.error) : undefined
          const { awaited, messages, sent } = yield* endsWith(run.client)
          expect(awaited).toBe(error)
          expect(sent).toMatchObject({ _tag: "SendError", reason: "Closed", payload: "late" })
          expect(messages).toEqual(Either.right([]))
        }
        yield* run.client.close()
      })).pipe(provideNode))
  }

  it.effect("Schedule.exponential(100 ms) + Schedule.jittered: whole-millisecond delays within [0.8, 1.2] of the centre, never a fraction", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const run = yield* refused(Schedule.exponential("100 millis").pipe(Schedule.jittered), 8)
      expect(run.backoffs).toHaveLength(8)
      run.backoffs.forEach((backoff, index) => {
        const [attempt, delay] = backoff.split(":").map(Number) as [number, number]
        expect(attempt).toBe(index + 1)
        // Before: 223.843726 ms, shown as "223ms 843726ns" in the state and the log line.
        expect(Number.isInteger(delay)).toBe(true)
        expect(delay).toBeGreaterThanOrEqual(Math.max(100, Math.floor(80 * 2 ** index)))
        expect(delay).toBeLessThanOrEqual(Math.ceil(120 * 2 ** index))
      })
      yield* run.client.close()
    })).pipe(provideNode))

  it.effect("Schedule.tapInput(Effect.logWarning) logs each error once, the last one (that ended the schedule) too, through the logger of the fiber that made the Client", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const logs = captureLogs(LogLevel.Warning)
      const run = yield* refused(
        Schedule.recurs(2).pipe(
          Schedule.tapInput((error: ClientError) => Effect.logWarning(`retry policy saw ${describeError(error)}`))
        )
      ).pipe(Effect.provide(logs.layer))
      expect(run.backoffs).toEqual(["1:100", "2:100"])
      expect(run.end).toBe("Closed ConnectionRefused")
      expect(logs.lines.filter((line) => line.message.startsWith("retry policy")).map((line) => line.message)).toEqual([
        "retry policy saw ConnectionRefused",
        "retry policy saw ConnectionRefused",
        "retry policy saw ConnectionRefused"
      ])
    })).pipe(provideNode))

  it.effect("Schedule.spaced(Duration.infinity): one Backoff of Infinity, parked (30 days of TestClock: still Backoff) until reconnect", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.spaced(Duration.infinity),
        heartbeat: false
      })
      const parked = yield* next(client, (state) => state._tag === "Backoff")
      expect(parked).toMatchObject({ attempt: 1 })
      expect(delayOf(parked)).toBe(Infinity)
      yield* awaitSleeper
      yield* TestClock.adjust("30 days")
      expect(yield* client.state.get).toBe(parked)
      yield* client.reconnect
      expect(yield* next(client, (state) => state !== parked && state._tag === "Backoff")).toMatchObject({ attempt: 1 })
      yield* client.close()
    })).pipe(provideNode))

  it.effect("Schedule.fixed(1 s) counts the attempt's own time (a handshake that times out after 600 ms): 1 s, then 400 ms each; spaced(1 s) does not (1 s each)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      for (
        const [retry, expected] of [[Schedule.fixed("1 second"), [1000, 400, 400]], [Schedule.spaced("1 second"), [
          1000,
          1000,
          1000
        ]]] as const
      ) {
        const server = yield* TestServer.make()
        yield* server.hangHandshake
        const client = yield* Client.make({
          url: server.url,
          retry,
          heartbeat: false,
          connection: { openTimeout: "600 millis" }
        })
        const delays: Array<number> = []
        for (let attempt = 1; attempt <= 3; attempt++) {
          yield* next(client, (state) => state._tag === "Connecting" && state.attempt === attempt)
          yield* realUntil(Effect.map(server.requests, (count) => count === attempt), "the request arrived")
          yield* awaitSleeper
          yield* TestClock.adjust("600 millis")
          const backoff = yield* next(client, (state) => state._tag === "Backoff" && state.attempt === attempt)
          expect(backoff).toMatchObject({ error: { _tag: "TimeoutError", operation: "open" } })
          delays.push(delayOf(backoff))
          yield* awaitSleeper
          yield* TestClock.adjust(delayOf(backoff))
        }
        expect(delays).toEqual(expected)
        yield* client.close()
      }
    })).pipe(provideNode))

  it.effect("Schedule.spaced(0 millis) forever: bounded by minRetryDelay, 10 Backoffs in 1 s of TestClock (and 100 in 100 ms with minRetryDelay 1 ms)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      for (const [floor, within, expected] of [[undefined, 1000, 10], ["1 millis", 100, 100]] as const) {
        const server = yield* TestServer.make()
        yield* server.kill
        const client = yield* Client.make({
          url: server.url,
          retry: Schedule.spaced("0 millis"),
          heartbeat: false,
          ...(floor === undefined ? {} : { minRetryDelay: floor })
        })
        let elapsed = 0
        let backoffs = 0
        let previous: State | undefined = undefined
        // Bounded: at most 200 turns.
        for (let turn = 0; turn < 200 && elapsed < within; turn++) {
          const state: State = yield* next(client, (state) => state !== previous && state._tag !== "Connecting")
          previous = state
          expect(state._tag).toBe("Backoff")
          backoffs++
          expect(state).toMatchObject({ attempt: backoffs })
          yield* awaitSleeper
          yield* TestClock.adjust(delayOf(state))
          elapsed += delayOf(state)
        }
        expect({ backoffs, elapsed }).toEqual({ backoffs: expected, elapsed: within })
        yield* client.close()
      }
    })).pipe(provideNode))
})

describe("round 16: user code in a Schedule's step", () => {
  it.effect("a step that never ends (tapInput: Effect.never): Closed InvalidOptions at the open timeout, not Connecting for good; awaitOpen, send and messages end with it", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.spaced("1 second").pipe(Schedule.tapInput(() => Effect.never)),
        heartbeat: false,
        connection: { openTimeout: "2 seconds" }
      })
      // The attempt failed; its step hangs, the Client still Connecting (the failure is not on the state yet).
      yield* next(client, (state) => state._tag === "Connecting")
      yield* awaitSleeper
      yield* TestClock.adjust("1999 millis")
      expect((yield* client.state.get)._tag).toBe("Connecting")
      yield* TestClock.adjust("1 millis")
      const closed = yield* next(client, (state) => state._tag === "Closed")
      const error = closed._tag === "Closed" ? Option.getOrThrow(closed.error) : undefined
      expect(error).toMatchObject({
        _tag: "ConnectError",
        reason: "InvalidOptions",
        detail:
          "the client failed: the retry Schedule's step did not end within the open timeout; fix the option named above"
      })
      const { awaited, messages, sent } = yield* endsWith(client)
      expect(awaited).toBe(error)
      expect(sent).toMatchObject({ _tag: "SendError", reason: "Closed" })
      expect(messages).toEqual(Either.right([]))
    })).pipe(provideNode))

  it.live("close while a step hangs: Closed by close, the step's bound (a timer of the open timeout, 10 s) released with it: no handle left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const hanging = yield* Deferred.make<void>()
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.spaced("1 second").pipe(
          Schedule.tapInput(() => Effect.zipRight(Deferred.succeed(hanging, undefined), Effect.never))
        ),
        heartbeat: false
      })
      yield* Deferred.await(hanging)
      expect((yield* client.state.get)._tag).toBe("Connecting")
      expect(yield* client.close()).toEqual([])
      expect(describeEnd(yield* client.state.get)).toBe("Closed by close")
    })).pipe(provideNode))

  it.effect("a step that dies: Closed InvalidOptions, the defect as cause, named in the detail", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const run = yield* refused(
        Schedule.spaced("1 second").pipe(Schedule.modifyDelayEffect(() => Effect.die(new Error("no config"))))
      )
      expect(run.end).toBe("Closed InvalidOptions")
      const closed = yield* run.client.state.get
      expect(closed._tag === "Closed" && Option.getOrThrow(closed.error)).toMatchObject({
        reason: "InvalidOptions",
        detail: "the retry Schedule failed in its step: no config; fix the option named above",
        cause: new Error("no config")
      })
    })).pipe(provideNode))

  class Backoffs extends Context.Tag("test/Backoffs")<Backoffs, { readonly extra: Duration.Duration }>() {}
  it.effect("a schedule that reads a service (modifyDelayEffect): Client.make refuses its R at the type level; with Schedule.provideService it runs with that service", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const needsService: Schedule.Schedule<number, ClientError, Backoffs> = Schedule.spaced("1 second").pipe(
        Schedule.modifyDelayEffect((_, delay) =>
          Effect.map(Backoffs, (backoffs) => Duration.sum(delay, backoffs.extra))
        )
      )
      // @ts-expect-error: `retry` is a Schedule<unknown, ClientError> with no requirement (R = never)
      const typed: Client.Options = { url: server.url, retry: needsService }
      expect(typed.retry).toBe(needsService)
      const provided = needsService.pipe(Schedule.provideService(Backoffs, { extra: Duration.millis(500) }))
      const run = yield* refused(provided, 3)
      expect(run.backoffs).toEqual(["1:1500", "2:1500", "3:1500"])
      yield* run.client.close()
      // Cast past the type, the service given to the fiber that makes the Client: the step runs
      // with that fiber's context, and finds it.
      const cast = needsService as unknown as Schedule.Schedule<number, ClientError>
      const viaContext = yield* refused(cast, 2).pipe(Effect.provideService(Backoffs, { extra: Duration.millis(250) }))
      expect(viaContext.backoffs).toEqual(["1:1250", "2:1250"])
      yield* viaContext.client.close()
      // Without it: the step dies (the service is missing), InvalidOptions.
      const missing = yield* refused(cast, 2)
      expect(missing.end).toBe("Closed InvalidOptions")
    })).pipe(provideNode))
})

describe("round 16: minUptime, Retry-After, reconnect, whileInput (TestClock)", () => {
  it.effect("minUptime 5 s, exponential(1 s): a link that drops after 4,999 ms continues the series (Backoff #3, 4 s); after 5,000 ms it starts again (Backoff #1, 1 s)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 2)
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.exponential("1 second"),
        minUptime: "5 seconds",
        heartbeat: false
      })
      expect(yield* drive(client)).toEqual({ backoffs: ["1:1000", "2:2000"], end: "Open #3" })
      let open = yield* client.state.get
      yield* TestClock.adjust("4999 millis")
      yield* server.closeAll(4000)
      expect(yield* drive(client, 12, open)).toEqual({ backoffs: ["3:4000"], end: "Open #4" })
      open = yield* client.state.get
      yield* TestClock.adjust("5000 millis")
      yield* server.closeAll(4000)
      expect(yield* drive(client, 12, open)).toEqual({ backoffs: ["1:1000"], end: "Open #2" })
      yield* client.close()
    })).pipe(provideNode))

  it.effect("recurs(2), links shorter than minUptime: the series goes on across them, and the Client closes with the drop that had no retry left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 1)
      const client = yield* Client.make({ url: server.url, retry: Schedule.recurs(2), heartbeat: false })
      expect(yield* drive(client)).toEqual({ backoffs: ["1:100"], end: "Open #2" })
      let open = yield* client.state.get
      yield* server.closeAll(4000)
      expect(yield* drive(client, 12, open)).toEqual({ backoffs: ["2:100"], end: "Open #3" })
      open = yield* client.state.get
      yield* server.closeAll(4000)
      expect(yield* drive(client, 12, open)).toEqual({ backoffs: [], end: "Closed Disconnected 4000" })
    })).pipe(provideNode))

  it.effect("Retry-After 2 s with exponential(3 s): the schedule's longer delay wins (3 s, 6 s); with spaced(500 ms): Retry-After wins (2 s each)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, { "retry-after": "2" }, 2)
      const slow = yield* Client.make({ url: server.url, retry: Schedule.exponential("3 seconds"), heartbeat: false })
      expect(yield* drive(slow)).toEqual({ backoffs: ["1:3000", "2:6000"], end: "Open #3" })
      yield* slow.close()
      yield* server.rejectNext(503, { "retry-after": "2" }, 2)
      const quick = yield* Client.make({ url: server.url, retry: Schedule.spaced("500 millis"), heartbeat: false })
      expect(yield* drive(quick)).toEqual({ backoffs: ["1:2000", "2:2000"], end: "Open #3" })
      yield* quick.close()
    })).pipe(provideNode))

  it.effect("Retry-After stretches the waits that upTo counts: spaced(500 ms) + upTo(3 s) under three Retry-After: 2 gives up after two Backoffs of 2 s", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, { "retry-after": "2" }, 3)
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.spaced("500 millis").pipe(Schedule.upTo("3 seconds")),
        heartbeat: false
      })
      expect(yield* drive(client)).toEqual({ backoffs: ["1:2000", "2:2000"], end: "Closed HandshakeRejected 503" })
    })).pipe(provideNode))

  it.effect("reconnect during the last Backoff recurs(1) allows: the schedule starts again (one more Backoff #1), then Closed; from Closed after recurs(0), one attempt more", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const client = yield* Client.make({ url: server.url, retry: Schedule.recurs(1), heartbeat: false })
      const waiting = yield* next(client, (state) => state._tag === "Backoff")
      expect(waiting).toMatchObject({ attempt: 1 })
      yield* client.reconnect
      expect(yield* drive(client, 12, waiting)).toEqual({ backoffs: ["1:100"], end: "Closed ConnectionRefused" })
      const never = yield* Client.make({ url: server.url, retry: Schedule.recurs(0), heartbeat: false })
      const closed = yield* next(never, (state) => state._tag === "Closed")
      yield* never.reconnect
      const again = yield* next(never, (state) => state !== closed && state._tag === "Closed")
      expect(describeEnd(again)).toBe("Closed ConnectionRefused")
    })).pipe(provideNode))

  it.effect("reconnect during the last attempt a schedule allows (recurs(0), recurs(1)): the failure is followed at once by attempt #1 (Backoff of 0), not Closed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      for (const retries of [0, 1]) {
        const server = yield* TestServer.make()
        yield* server.hangHandshake
        const client = yield* Client.make({
          url: server.url,
          retry: Schedule.recurs(retries),
          heartbeat: false,
          connection: { openTimeout: "500 millis" }
        })
        const states: Array<string> = []
        yield* client.state.changes.pipe(
          Stream.runForEach((state) =>
            Effect.sync(() =>
              states.push(
                state._tag === "Backoff"
                  ? `Backoff #${state.attempt} ${Duration.toMillis(state.delay)}`
                  : state._tag === "Connecting" || state._tag === "Open"
                  ? `${state._tag} #${state.attempt}`
                  : describeEnd(state)
              )
            )
          ),
          Effect.forkScoped
        )
        for (let attempt = 1; attempt <= retries; attempt++) {
          yield* next(client, (state) => state._tag === "Connecting" && state.attempt === attempt)
          yield* awaitSleeper
          yield* TestClock.adjust("500 millis")
          const backoff = yield* next(client, (state) => state._tag === "Backoff" && state.attempt === attempt)
          yield* awaitSleeper
          yield* TestClock.adjust(delayOf(backoff))
        }
        const last = yield* next(client, (state) => state._tag === "Connecting" && state.attempt === retries + 1)
        // The last attempt the schedule allows hangs (its request at the server); the user presses
        // reconnect, and the server is back.
        yield* realUntil(Effect.map(server.requests, (count) => count === retries + 1), "the last request arrived")
        yield* client.reconnect
        yield* server.behave
        yield* awaitSleeper
        yield* TestClock.adjust("500 millis")
        const end = yield* next(client, (state) => state !== last && (state._tag === "Open" || state._tag === "Closed"))
        expect(describeEnd(end)).toBe("Open #1")
        expect(states).toEqual([
          ...(retries === 1 ? ["Connecting #1", "Backoff #1 100"] : []),
          `Connecting #${retries + 1}`,
          `Backoff #${retries + 1} 0`,
          "Connecting #1",
          "Open #1"
        ])
        yield* client.close()
      }
    })).pipe(provideNode))

  it.effect("whileInput: a schedule that stops at a retryable error (503) closes the Client with it, after the 502 before it", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(502)
      yield* server.rejectNext(503)
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.spaced("1 second").pipe(
          Schedule.whileInput((error: ClientError) => !(error._tag === "ConnectError" && error.status === 503))
        ),
        heartbeat: false
      })
      expect(yield* drive(client)).toEqual({ backoffs: ["1:1000"], end: "Closed HandshakeRejected 503" })
    })).pipe(provideNode))

  it.effect("whileInput(isRetryable) is never asked about a 401: shouldRetry closes the Client first (the schedule not stepped)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(401)
      const inputs: Array<string> = []
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.spaced("1 second").pipe(
          Schedule.tapInput((error: ClientError) => Effect.sync(() => inputs.push(describeError(error)))),
          Schedule.whileInput(Reconnect.isRetryable)
        ),
        heartbeat: false
      })
      expect(yield* drive(client)).toEqual({ backoffs: [], end: "Closed HandshakeRejected 401" })
      expect(inputs).toEqual([])
    })).pipe(provideNode))
})

describe("round 16: the same policies on Connection.connect(url).pipe(Effect.retry(policy))", () => {
  const policy = Schedule.exponential("100 millis").pipe(
    Schedule.intersect(Schedule.recurs(3)),
    Schedule.whileInput((error: ConnectError | TimeoutError) => Reconnect.isRetryable(error))
  )

  /**
   * The retry's wait, as a delay from now: the one wake-up on the TestClock under a second away.
   * (Each attempt's open timer, 10 s, stays in `TestClock.sleeps()` after it was cancelled: the
   * TestClock drops an entry only when it comes due.) Bounded in turns of the event loop.
   */
  const pendingDelays = Effect.gen(function*() {
    for (let turn = 0; turn < 10_000; turn++) {
      const now = yield* TestClock.currentTimeMillis
      const delays = Chunk.toArray(yield* TestClock.sleeps()).map((at) => at - now).filter((delay) => delay < 1000)
      if (delays.length > 0) return delays
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    return yield* Effect.dieMessage("the retry never waited on the TestClock")
  })

  it.effect("two 503s then open: waits of exactly 100 ms and 200 ms, 3 requests, the Connection usable; 503 then 401: ConnectError 401 typed, 2 requests; refused 4 times: ConnectionRefused after 100, 200, 400 ms; no socket left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, {}, 2)
      const opening = yield* Effect.fork(Effect.scoped(
        Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url).pipe(Effect.retry(policy))
          yield* connection.send("hello")
          return Chunk.toArray(yield* Stream.runCollect(Stream.take(connection.messages, 1)))
        })
      ))
      expect(yield* pendingDelays).toEqual([100])
      yield* TestClock.adjust("100 millis")
      expect(yield* pendingDelays).toEqual([200])
      expect(yield* server.requests).toBe(2)
      yield* TestClock.adjust("200 millis")
      expect(yield* Fiber.join(opening)).toEqual(["hello"])
      expect(yield* server.requests).toBe(3)

      yield* server.rejectNext(503)
      yield* server.rejectNext(401)
      const rejected = yield* Effect.fork(
        Effect.scoped(Effect.flip(Connection.connect(server.url).pipe(Effect.retry(policy))))
      )
      expect(yield* pendingDelays).toEqual([100])
      yield* TestClock.adjust("100 millis")
      const error = yield* Fiber.join(rejected)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 401 })
      expect(yield* server.requests).toBe(5)

      yield* server.kill
      const refusedAll = yield* Effect.fork(
        Effect.scoped(Effect.flip(Connection.connect(server.url).pipe(Effect.retry(policy))))
      )
      const waits: Array<number> = []
      for (let turn = 0; turn < 3; turn++) {
        const [delay] = yield* pendingDelays
        waits.push(delay!)
        yield* TestClock.adjust(delay!)
      }
      expect(waits).toEqual([100, 200, 400])
      expect(yield* Fiber.join(refusedAll)).toMatchObject({ _tag: "ConnectError", reason: "ConnectionRefused" })
    })).pipe(provideNode))
})
