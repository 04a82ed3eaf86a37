/**
 * Round 14 trials: a Client's observable surface as UI and ops code wires it (a connection
 * indicator, a "reconnect now" button, a toast on failures, a dashboard), against real
 * TestServers on 127.0.0.1:
 * - `state.changes` and `events` subscribed and dropped 4,000 times (taken or interrupted): no
 *   listener left, each first element the current state;
 * - 200 subscribers, one stalled: the others unaffected, what the stalled one gets when it resumes;
 * - a flapping server: every public state in order, no duplicate, the Transition chain, the replay;
 * - `awaitOpen` from 100 fibers across a restart, after `close`, interrupted, while Suspended;
 * - `reconnect` pressed 1,000 times at every state: the handshakes it costs;
 * - re-entrancy: `close` from a `state.changes` handler, `reconnect` from an `events` handler, a
 *   subscriber that dies; `state.get` run from a plain callback; `toAsyncIterable` /
 *   `toReadableStream` broken out of early.
 * Round 9 did apps that start and stop, round 10 logs, metrics and traces: not repeated here.
 * Loopback only; every loop bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, Option, Schedule, Scope, Stream } from "effect"
import { CircuitBreaker, Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { collect } from "./support/gc.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode, quietNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { closedPort } from "./support/ports.js"

type State = Client.ClientState
type Event = Client.ClientEvent

/** Fast retries: a flap costs a handshake, not a backoff. */
const fast = { retry: Schedule.spaced("1 millis"), minRetryDelay: "1 millis", heartbeat: false } as const

/** How many listeners the Client holds now, state and events: no public way says it. */
const listenerCounts = (client: Client.Client): { readonly state: number; readonly events: number } => {
  const internals = client as unknown as {
    readonly set?: Set<unknown>
    readonly eventListeners?: { readonly set?: Set<unknown> }
  }
  return { state: internals.set?.size ?? 0, events: internals.eventListeners?.set?.size ?? 0 }
}

const noListeners = (client: Client.Client) =>
  awaitTrue(
    Effect.sync(() => {
      const counts = listenerCounts(client)
      return counts.state === 0 && counts.events === 0
    }),
    "every listener removed"
  )

/** Every state from now on, as `_tag`s, in an array: subscribed (its first element in) when this returns. */
const recordTags = (client: Client.Client) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    const ready = yield* Deferred.make<void>()
    yield* Effect.fork(Stream.runForEach(client.state.changes, (state) =>
      Effect.sync(() => {
        seen.push(state._tag)
      }).pipe(Effect.zipRight(Deferred.succeed(ready, undefined)))))
    yield* Deferred.await(ready)
    return seen
  })

const transitions = (events: ReadonlyArray<Event>) =>
  events.filter((event): event is Extract<Event, { _tag: "Transition" }> => event._tag === "Transition")

/** Each Transition's `from` is the `to` of the one before it (the same object). */
const chained = (events: ReadonlyArray<Event>): boolean => {
  const list = transitions(events)
  return list.every((event, index) => index === 0 || event.from === list[index - 1]!.to)
}

describe("round 14: state and events as apps use them", () => {
  it.live("state.changes and events subscribed and dropped 4,000 times (1,000 each taken and interrupted): no listener left, each first element the current state, heap flat", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, ...fast })
        yield* client.awaitOpen
        const open = yield* client.state.get
        const rounds = 1_000
        let firstsCurrent = 0
        let replayed = 0
        const before = listenerCounts(client)
        for (let round = 0; round < rounds; round++) {
          const first = yield* Stream.runHead(client.state.changes)
          if (Option.getOrUndefined(first) === open) firstsCurrent++
          const firstEvent = yield* Stream.runHead(client.events)
          if (Option.isSome(firstEvent) && firstEvent.value._tag === "Transition") replayed++
        }
        expect([firstsCurrent, replayed]).toEqual([rounds, rounds])
        expect(before).toEqual({ state: 0, events: 0 })
        expect(listenerCounts(client)).toEqual({ state: 0, events: 0 })
        // Interrupted once it runs, each: the first element seen, then the fiber interrupted. The
        // heap is measured over the last 800 (the first 200 warm up the code).
        let heapBefore = 0
        for (let round = 0; round < rounds; round++) {
          if (round === 200) {
            yield* collect
            heapBefore = process.memoryUsage().heapUsed
          }
          const seen = yield* Deferred.make<State>()
          const fiber = yield* Effect.fork(
            Stream.runForEach(client.state.changes, (state) => Deferred.succeed(seen, state))
          )
          const seenEvent = yield* Deferred.make<Event>()
          const events = yield* Effect.fork(
            Stream.runForEach(client.events, (event) => Deferred.succeed(seenEvent, event))
          )
          if ((yield* Deferred.await(seen)) === open) firstsCurrent++
          yield* Deferred.await(seenEvent)
          expect(listenerCounts(client)).toEqual({ state: 1, events: 1 })
          yield* Fiber.interrupt(fiber)
          yield* Fiber.interrupt(events)
        }
        yield* collect
        const grown = process.memoryUsage().heapUsed - heapBefore
        expect(firstsCurrent).toBe(2 * rounds)
        expect(listenerCounts(client)).toEqual({ state: 0, events: 0 })
        // Flat: under 1 MB over 800 pairs of subscriptions, 1.25 KB a pair (none is expected: what
        // is left is the code V8 compiles meanwhile, about 0.5 MB whatever the count; a
        // subscription's fiber, scope and mailbox, were they kept, are kilobytes each).
        expect(grown).toBeLessThan(1_000_000)
        expect(yield* client.state.get).toBe(open)
      }).pipe(provideNode)
    ))

  const flapping = (flaps: number, restarts: number, watchers: number) =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, ...fast, eventsCapacity: 64 })
        const record = <A>(stream: Stream.Stream<A>) =>
          Effect.fork(Stream.runFold(stream, [] as Array<A>, (seen, value) => {
            seen.push(value)
            return seen
          }))
        // The first subscribers, before the first Open: the reference record.
        const states = yield* record(client.state.changes)
        const events = yield* record(client.events)
        const stateWatchers = yield* Effect.forEach(
          Array.from({ length: watchers }),
          () => record(client.state.changes)
        )
        const eventWatchers = yield* Effect.forEach(Array.from({ length: watchers }), () => record(client.events))
        // Stalled: each pulled once (its first chunk), then not again until the end.
        const stalledScope = yield* Scope.make()
        const stalledStates = yield* Stream.toPull(client.state.changes).pipe(Scope.extend(stalledScope))
        const stalledEvents = yield* Stream.toPull(client.events).pipe(Scope.extend(stalledScope))
        const stalledFirst = (yield* Effect.orDie(stalledStates)).pipe((chunk) => [...chunk])
        const stalledFirstEvents = [...(yield* Effect.orDie(stalledEvents))]
        // One that wants only the latest state, as the doc says: a sliding buffer of one before it.
        const stalledLatest = yield* Stream.toPull(
          Stream.buffer(client.state.changes, { capacity: 1, strategy: "sliding" })
        ).pipe(Scope.extend(stalledScope))
        yield* Effect.orDie(stalledLatest)
        let open = yield* awaitState(client, isTag("Open"))
        expect(listenerCounts(client)).toEqual({ state: watchers + 3, events: watchers + 2 })
        for (let flap = 0; flap < flaps; flap++) {
          yield* server.closeAll(4000, "flap")
          const previous = open
          open = yield* awaitState(client, (state) => state._tag === "Open" && state !== previous)
        }
        // And restarts of the server: refused attempts between (how many, the timing says).
        for (let restart = 0; restart < restarts; restart++) {
          yield* server.kill
          yield* awaitState(client, isTag("Backoff"))
          yield* server.restart
          const previous = open
          open = yield* awaitState(client, (state) => state._tag === "Open" && state !== previous)
        }
        const late = yield* Stream.runCollect(Stream.take(client.events, 16))
        expect(yield* client.close()).toEqual([])
        const seen = yield* Fiber.join(states)
        const seenEvents = yield* Fiber.join(events)
        // Every public state once: no two in a row alike, the Closed of the close last.
        expect(seen.every((state, index) => index === 0 || state._tag !== seen[index - 1]!._tag)).toBe(true)
        const firstOpen = seen.findIndex(isTag("Open"))
        const flapped = seen.slice(firstOpen, firstOpen + 1 + 3 * flaps).map((state) => state._tag)
        expect(flapped).toEqual([
          "Open",
          ...Array.from({ length: flaps }, () => ["Backoff", "Connecting", "Open"]).flat()
        ])
        expect(seen.at(-1)).toEqual(Client.ClientState.Closed({ error: Option.none() }))
        // events: the same states as Transitions, chained, from Idle.
        const chain = transitions(seenEvents)
        expect(chained(seenEvents)).toBe(true)
        expect(chain[0]!.from._tag).toBe("Idle")
        expect(chain.map((event) => event.to)).toEqual(seen.slice(seen.length - chain.length))
        // The late subscriber's replay: the last 16 Transitions, the same states.
        const replay = transitions([...late])
        expect(replay.length).toBe(16)
        expect(chained([...late])).toBe(true)
        expect(replay.map((event) => [event.from, event.to])).toEqual(
          chain.slice(chain.length - 17, chain.length - 1).map((event) => [event.from, event.to])
        )
        expect(replay.every((event, index) => event.to === chain[chain.length - 17 + index]!.to)).toBe(true)
        // Every other subscriber saw exactly what the first did.
        for (const watcher of stateWatchers) expect(yield* Fiber.join(watcher)).toEqual(seen)
        for (const watcher of eventWatchers) expect(yield* Fiber.join(watcher)).toEqual(seenEvents)
        // The stalled ones, resumed after the close: state.changes kept every state (unbounded),
        // events the last 64 (sliding), then each ends.
        const drain = <A>(pull: Effect.Effect<import("effect").Chunk.Chunk<A>, Option.Option<never>>) =>
          Effect.gen(function*() {
            const got: Array<A> = []
            for (let turn = 0; turn < 10_000; turn++) {
              const chunk = yield* Effect.option(pull)
              if (Option.isNone(chunk)) return got
              got.push(...chunk.value)
            }
            return yield* Effect.dieMessage("a stalled stream never ended")
          })
        expect((yield* drain(stalledLatest)).map((state) => state._tag)).toEqual(["Closed"])
        const restStates = yield* drain(stalledStates)
        expect([...stalledFirst, ...restStates]).toEqual(seen)
        const restEvents = yield* drain(stalledEvents)
        expect(restEvents.length).toBe(64)
        expect(restEvents).toEqual(seenEvents.slice(seenEvents.length - 64))
        expect(stalledFirstEvents).toEqual(seenEvents.slice(0, stalledFirstEvents.length))
        yield* Scope.close(stalledScope, Exit.void)
        yield* noListeners(client)
      }).pipe(provideNode)
    )

  it.live("a server flapping 200 times (and restarted 4 times), one subscriber of each stream stalled: every state once and in order, the chain, the replay, what the stalled ones get", () =>
    flapping(200, 4, 0))

  it.live("200 subscribers of each stream, one of each stalled, through 50 flaps: each sees every state and event, the stalled ones theirs when they resume", () =>
    flapping(50, 2, 99))

  it.live("awaitOpen from 100 fibers, Open and across a restart; after close and while Closing; interrupted", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, ...fast, connection: { closeTimeout: "300 millis" } })
        const hundred = () =>
          Effect.forEach(Array.from({ length: 100 }), () => Effect.fork(Effect.either(client.awaitOpen)))
        yield* client.awaitOpen
        const atOnce = yield* hundred()
        for (const fiber of atOnce) expect((yield* Fiber.join(fiber))._tag).toBe("Right")
        yield* server.kill
        yield* awaitState(client, isTag("Backoff"))
        const waiting = yield* hundred()
        yield* awaitTrue(Effect.sync(() => listenerCounts(client).state === 100), "100 awaitOpen listening")
        yield* server.restart
        for (const fiber of waiting) expect((yield* Fiber.join(fiber))._tag).toBe("Right")
        expect((yield* client.state.get)._tag).toBe("Open")
        expect(listenerCounts(client)).toEqual({ state: 0, events: 0 })
        // Interrupted while it waits: its listener goes.
        yield* server.kill
        yield* awaitState(client, isTag("Backoff"))
        const interrupted = yield* Effect.fork(client.awaitOpen)
        yield* awaitTrue(Effect.sync(() => listenerCounts(client).state === 1), "awaitOpen listening")
        expect(Exit.isInterrupted(yield* Fiber.interrupt(interrupted))).toBe(true)
        expect(listenerCounts(client)).toEqual({ state: 0, events: 0 })
        yield* server.restart
        yield* client.awaitOpen
        // One waiting when the Client is closed (from Backoff), one asked while Closing (a peer that
        // does not read: the close waits closeTimeout) and after: the same error, whatever code.
        const closedByUser = {
          _tag: "Disconnected",
          code: 1000,
          reason: "client closed",
          wasClean: true,
          initiator: "client"
        }
        const other = yield* Client.make({ url: `ws://127.0.0.1:${yield* closedPort}`, ...fast })
        yield* awaitState(other, isTag("Backoff"))
        const waitingForClose = yield* Effect.fork(Effect.flip(other.awaitOpen))
        yield* awaitTrue(Effect.sync(() => listenerCounts(other).state === 1), "awaitOpen listening")
        yield* other.close(4001, "logout")
        expect(yield* Fiber.join(waitingForClose)).toMatchObject(closedByUser)
        expect(listenerCounts(other)).toEqual({ state: 0, events: 0 })
        yield* server.pauseReading
        const closing = yield* Effect.fork(client.close(4001, "logout"))
        yield* awaitTrue(
          Effect.sync(() => (client as unknown as { phase: { _tag: string } }).phase._tag === "Closing"),
          "Closing"
        )
        expect(yield* Effect.flip(client.awaitOpen)).toMatchObject(closedByUser)
        yield* Fiber.join(closing)
        expect(yield* Effect.flip(client.awaitOpen)).toMatchObject(closedByUser)
        expect(listenerCounts(client)).toEqual({ state: 0, events: 0 })
      }).pipe(provideNode)
    ))

  const withBreakers = <A, E>(
    options: CircuitBreaker.Options,
    body: Effect.Effect<A, E, Scope.Scope | import("../src/index.js").Transport.Transport | CircuitBreaker.Registry>
  ) =>
    withNoHandlesLeft(body.pipe(Effect.scoped, Effect.provide(Layer.merge(quietNode, CircuitBreaker.layer(options)))))

  for (const whenSuspended of ["queue", "failFast"] as const) {
    it.live(`awaitOpen while Suspended, whenSuspended ${whenSuspended}; reconnect pressed 1,000 times while Suspended`, () =>
      withBreakers(
        { policy: CircuitBreaker.consecutiveFailures(1), openFor: Schedule.spaced("1 seconds") },
        Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.rejectNext(503, {}, 1)
          const client = yield* Client.make({ url: server.url, ...fast, whenSuspended })
          // One waiting from before: it hears of the Suspended too.
          const before = yield* Effect.fork(Effect.either(client.awaitOpen))
          const suspended = yield* awaitState(client, isTag("Suspended"))
          const recorded = yield* recordTags(client)
          const during = yield* Effect.fork(Effect.either(client.awaitOpen))
          expect(yield* server.requests).toBe(1)
          for (let press = 0; press < 1000; press++) yield* client.reconnect
          // Nothing at once; the attempt it wakes is refused by the breaker, no handshake, and the
          // Client is Suspended again until retryAt; then one trial opens it.
          expect(yield* client.state.get).toBe(suspended)
          const outcome = yield* Effect.either(client.awaitOpen)
          const outcomes = [outcome, yield* Fiber.join(before), yield* Fiber.join(during)]
          if (whenSuspended === "queue") {
            expect(outcomes.map((either) => either._tag)).toEqual(["Right", "Right", "Right"])
          } else {
            for (const either of outcomes) {
              expect(either).toMatchObject({
                _tag: "Left",
                left: { _tag: "CircuitOpenError", endpoint: `${server.url}/` }
              })
            }
          }
          yield* awaitState(client, isTag("Open"))
          yield* awaitTrue(Effect.sync(() => recorded.at(-1) === "Open"), "the recorder hears of Open")
          // The press's refused attempt, then the trial at retryAt. Once in a loaded full run the
          // Client was refused twice more just before its trial (a Connecting and a Suspended
          // each, no handshake): what counts is that no refusal reaches the server.
          expect(recorded.join(" ")).toMatch(/^Suspended (Connecting Suspended )+Connecting Open$/)
          expect(recorded.length).toBeLessThanOrEqual(9)
          expect(yield* server.requests).toBe(2)
        })
      ))
  }

  it.live("reconnect pressed 1,000 times in a tight loop at each state: the handshakes it costs, the states it leads to", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const press = (client: Client.Client) =>
          Effect.gen(function*() {
            for (let press = 0; press < 1000; press++) yield* client.reconnect
          })
        const log: Record<string, unknown> = {}
        const client = yield* Client.make({
          url: server.url,
          heartbeat: false,
          retry: Schedule.spaced("1 hours"),
          connection: { openTimeout: "300 millis", closeTimeout: "300 millis" }
        })
        yield* client.awaitOpen
        const recorded = yield* recordTags(client)
        const step = (name: string, body: Effect.Effect<void>) =>
          Effect.gen(function*() {
            const requests = yield* server.requests
            recorded.length = 0
            yield* body
            log[name] = [(yield* server.requests) - requests, recorded.join(" ")]
          })
        // Open.
        yield* step(
          "open",
          Effect.gen(function*() {
            const open = yield* client.state.get
            yield* press(client)
            yield* awaitState(client, (state) => state._tag === "Open" && state !== open)
          })
        )
        // Backoff (an hour), the server back.
        yield* server.kill
        yield* awaitState(client, isTag("Backoff"))
        yield* server.restart
        yield* step(
          "backoff",
          Effect.gen(function*() {
            yield* press(client)
            yield* awaitState(client, isTag("Open"))
          })
        )
        // Connecting (a handshake that hangs until openTimeout).
        yield* server.hangHandshake
        const hung = (yield* server.requests) + 1
        yield* client.reconnect
        yield* awaitTrue(Effect.map(server.requests, (requests) => requests === hung), "the handshake hangs")
        yield* step(
          "connecting",
          Effect.gen(function*() {
            yield* press(client)
            yield* server.behave
            yield* awaitState(client, isTag("Open"))
          })
        )
        // Closed by an error (a close code this Client does not retry): restarted, once.
        const strict = yield* Client.make({ url: server.url, heartbeat: false, shouldRetry: () => false })
        yield* strict.awaitOpen
        yield* server.closeAll(4000, "go away")
        yield* awaitState(strict, isTag("Closed"))
        yield* awaitState(client, isTag("Backoff"))
        yield* client.reconnect
        yield* client.awaitOpen
        const strictTags = yield* recordTags(strict)
        let requests = yield* server.requests
        yield* press(strict)
        yield* strict.awaitOpen
        yield* awaitTrue(Effect.sync(() => strictTags.at(-1) === "Open"), "the recorder hears of Open")
        log.closedByError = [(yield* server.requests) - requests, strictTags.join(" ")]
        // Closing (a peer that does not read: the close waits closeTimeout), then Closed by close.
        yield* server.pauseReading
        recorded.length = 0
        requests = yield* server.requests
        const closing = yield* Effect.fork(client.close())
        yield* awaitTrue(
          Effect.sync(() => (client as unknown as { phase: { _tag: string } }).phase._tag === "Closing"),
          "Closing"
        )
        yield* press(client)
        yield* Fiber.join(closing)
        yield* press(client)
        log.closing = [(yield* server.requests) - requests, recorded.join(" ")]
        yield* server.resumeReading
        // [handshakes, the states that followed]: one handshake wherever a press may connect, none
        // while Closing or Closed by close.
        expect(log).toEqual({
          open: [1, "Connecting Open"],
          backoff: [1, "Connecting Open"],
          connecting: [1, "Backoff Connecting Open"],
          closedByError: [1, "Closed Connecting Open"],
          closing: [0, "Closed"]
        })
        expect(yield* client.state.get).toEqual(Client.ClientState.Closed({ error: Option.none() }))
        // Closed by an error each attempt meets at once (an invalid URL): each press is a whole
        // attempt, synchronously (Connecting, then Closed again), no handshake.
        const invalid = yield* Client.make({ url: "ws://127.0.0.1:99999", heartbeat: false })
        const invalidStates: Array<State> = []
        yield* Effect.fork(
          Stream.runForEach(invalid.state.changes, (state) => Effect.sync(() => invalidStates.push(state)))
        )
        yield* awaitTrue(Effect.sync(() => invalidStates.length === 1), "the recorder subscribed")
        requests = yield* server.requests
        yield* press(invalid)
        yield* awaitTrue(Effect.sync(() => invalidStates.length === 2001), "every state heard")
        expect(invalidStates.filter(isTag("Connecting")).length).toBe(1000)
        expect(invalidStates.filter(isTag("Closed")).length).toBe(1001)
        expect(yield* invalid.state.get).toMatchObject({
          _tag: "Closed",
          error: { value: { _tag: "ConnectError", reason: "InvalidUrl" } }
        })
        expect(yield* server.requests).toBe(requests)
      }).pipe(provideNode)
    ))

  it.live("re-entrant: reconnect from an events handler, close from a state.changes handler, a subscriber that dies, make again in the same scope", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, ...fast })
        // A handler that presses "reconnect" on each of the first 5 Opens it hears of.
        let pressed = 0
        const presser = yield* Effect.fork(
          Stream.runForEach(
            client.events,
            (event) =>
              event._tag === "Transition" && event.to._tag === "Open" && pressed < 5
                ? Effect.zipRight(
                  Effect.sync(() => pressed++),
                  client.reconnect
                )
                : Effect.void
          )
        )
        // A subscriber that dies on the third state it sees, one that throws in a Stream.map.
        const dies = yield* Effect.fork(
          Stream.runForEach(
            client.state.changes,
            (state) => state._tag === "Open" ? Effect.dieMessage("the indicator broke") : Effect.void
          )
        )
        const throws = yield* Effect.fork(Stream.runDrain(Stream.map(client.events, (event) => {
          if (event._tag === "Transition" && event.to._tag === "Open") {
            throw new Error("toast failed")
          }
          return event
        })))
        // A handler that closes the Client on the sixth Open.
        let opens = 0
        const closer = yield* Effect.fork(
          Stream.runForEach(
            client.state.changes,
            (state) =>
              state._tag === "Open" && ++opens === 6 ? Effect.asVoid(client.close(4000, "enough")) : Effect.void
          )
        )
        const tags = yield* Effect.fork(Stream.runCollect(Stream.map(client.state.changes, (state) => state._tag)))
        expect(Exit.isSuccess(yield* Fiber.await(closer))).toBe(true)
        expect(yield* Fiber.join(presser)).toBeUndefined()
        expect(pressed).toBe(5)
        expect(Cause.pretty((yield* Fiber.await(dies)).pipe((exit) => Exit.isFailure(exit) ? exit.cause : Cause.empty)))
          .toContain("the indicator broke")
        const thrown = yield* Fiber.await(throws)
        expect(Exit.isFailure(thrown) && Cause.isDie(thrown.cause)).toBe(true)
        expect(yield* server.accepted).toBe(6)
        const seen = [...(yield* Fiber.join(tags))]
        expect(seen.filter((tag) => tag === "Open").length).toBe(6)
        expect(seen.at(-1)).toBe("Closed")
        expect(seen.every((tag, index) => index === 0 || tag !== seen[index - 1])).toBe(true)
        expect(listenerCounts(client)).toEqual({ state: 0, events: 0 })
        // A new Client in the same scope, after the close.
        const again = yield* Client.make({ url: server.url, ...fast })
        yield* again.awaitOpen
        expect((yield* again.state.get)._tag).toBe("Open")
      }).pipe(provideNode)
    ))

  it.live("state.get run from plain callbacks (a server event, a timer) with runSync and runPromise; state.changes as an AsyncIterable and a ReadableStream broken out of early", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const holder: { client?: Client.Client } = {}
        const readInConnect: Array<string> = []
        const server = yield* TestServer.make({
          onConnect: () => {
            // A plain callback outside the runtime: the handshake is under way on the Client's side.
            if (holder.client !== undefined) readInConnect.push(Effect.runSync(holder.client.state.get)._tag)
          }
        })
        const client = yield* Client.make({ url: server.url, ...fast })
        holder.client = client
        yield* client.awaitOpen
        const fromPromise = yield* Effect.promise(() =>
          new Promise<string>((resolve) =>
            setImmediate(() => Effect.runPromise(client.state.get).then((state) => resolve(state._tag)))
          )
        )
        expect(fromPromise).toBe("Open")
        yield* server.closeAll(4000)
        yield* awaitState(client, (state) => state._tag === "Open" && readInConnect.length === 1)
        expect(readInConnect).toEqual(["Connecting"])
        // A UI loop: for await over the states, out at the first Open after a flap.
        const iterated = yield* Effect.promise(async () => {
          const seen: Array<string> = []
          let flapped = false
          for await (const state of Stream.toAsyncIterable(client.state.changes)) {
            seen.push(state._tag)
            if (!flapped) {
              flapped = true
              await Effect.runPromise(server.closeAll(4000))
            } else if (state._tag === "Open") break
          }
          return seen
        })
        expect(iterated).toEqual(["Open", "Backoff", "Connecting", "Open"])
        yield* noListeners(client)
        const read = yield* Effect.promise(async () => {
          const seen: Array<string> = []
          // Node's ReadableStream is async iterable (the DOM typings here do not say so).
          const readable = Stream.toReadableStream(client.events) as unknown as AsyncIterable<Event>
          for await (const event of readable) {
            seen.push(event._tag)
            if (seen.length === 3) break
          }
          return seen
        })
        expect(read).toEqual(["Transition", "Transition", "Transition"])
        yield* noListeners(client)
      }).pipe(provideNode)
    ))

  /** The Client's attempts on callbacks (the default schedule), or on the supervisor fiber (a Schedule of the user's). */
  const paths = [
    ["on callbacks", { minRetryDelay: "1 hours" }],
    ["on the supervisor fiber", { retry: Schedule.spaced("1 hours") }]
  ] as const

  for (const [path, options] of paths) {
    it.live(`reconnect in Connecting (${path}): the failure shows as a Backoff of no delay, and its line says so`, () => {
      const lines: Array<string> = []
      return withNoHandlesLeft(
        Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.hangHandshake
          const client = yield* Client.make({
            url: server.url,
            heartbeat: false,
            ...options,
            // Long enough that the request reaches the server and the presses land while
            // Connecting on a loaded machine (100 ms once timed the attempt out before the server
            // had read the request: no request, then the hour's wait).
            connection: { openTimeout: "1 second" }
          })
          const states: Array<State> = []
          yield* Effect.fork(Stream.runForEach(client.state.changes, (state) => Effect.sync(() => states.push(state))))
          yield* awaitTrue(Effect.map(server.requests, (requests) => requests === 1), "the handshake hangs")
          for (let press = 0; press < 1000; press++) yield* client.reconnect
          yield* server.behave
          // 15 s: a hang guard well under the hour's wait that a lost press would leave.
          yield* awaitState(client, isTag("Open"), "20 seconds")
          const backoff = states.find(isTag("Backoff"))
          // Not the schedule's delay (an hour): the wait was skipped.
          expect(backoff).toMatchObject({
            _tag: "Backoff",
            attempt: 1,
            error: { _tag: "TimeoutError", operation: "open" }
          })
          expect(Duration.toMillis(backoff!.delay)).toBe(0)
          expect(states.map((state) => state._tag)).toEqual(["Connecting", "Backoff", "Connecting", "Open"])
          expect(yield* server.requests).toBe(2)
          expect(lines.filter((line) => line.includes("retrying"))).toEqual([
            `lifeline: cannot connect: ${(backoff!.error as { message: string }).message}; retrying now`
          ])
        }).pipe(Effect.provide(Layer.merge(
          quietNode,
          Logger.add(Logger.make(({ message }) => lines.push(String(Array.isArray(message) ? message[0] : message))))
        )))
      )
    })
  }

  it.live("a failure toast that mounts twice: each mount gets the failures kept for replay again; after close, the replay and the end", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({
          url: server.url,
          ...fast,
          retry: Schedule.spaced("1 hours"),
          outbox: { capacity: 1, overflow: "dropOldest" }
        })
        yield* client.awaitOpen
        yield* server.kill
        yield* awaitState(client, isTag("Backoff"))
        // Three queued while the link is down, one room: the first two dropped, each a MessageFailed.
        for (const message of ["a", "b", "c"]) yield* client.enqueue(message)
        expect(yield* client.failed).toBe(2)
        // A mount: its first chunk is the replay, all of it (put in at once when it subscribes).
        const failuresSeenByAMount = Effect.scoped(
          Effect.flatMap(Stream.toPull(client.events), (pull) => Effect.orDie(pull))
        ).pipe(Effect.map((events) => [...events].filter((event) => event._tag === "MessageFailed").length))
        // Mounted, unmounted, mounted again: the same two failures each time (old ones, replayed).
        expect(yield* failuresSeenByAMount).toBe(2)
        expect(yield* failuresSeenByAMount).toBe(2)
        expect(yield* client.close()).toEqual(["c"])
        // After close: state.changes is the Closed and ends; events the last 16 and ends.
        expect([...(yield* Stream.runCollect(client.state.changes))]).toEqual([
          Client.ClientState.Closed({ error: Option.none() })
        ])
        const after = [...(yield* Stream.runCollect(client.events))]
        expect(after.length).toBe(7)
        expect(after.map((event) => event._tag === "Transition" ? `${event.from._tag}>${event.to._tag}` : event._tag))
          .toEqual([
            "Idle>Connecting",
            "Connecting>Open",
            "Open>Backoff",
            "MessageFailed",
            "MessageFailed",
            "Backoff>Closed",
            "MessageFailed"
          ])
        expect(yield* client.failed).toBe(3)
      }).pipe(provideNode)
    ))
})
