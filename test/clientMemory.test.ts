/**
 * Idle memory per Client (issue #15: heap per idle Client within 1.5x raw ws's) held by counts
 * that cannot flake: the objects and fields one open Client keeps, read from the internals, as
 * test/connectionMemory.test.ts does for the Connection. Each guard fails if a per-client object
 * or field that was folded away comes back. The figures are in bench/README.md
 * (`bench/abMemory.ts ... client`, `bench/heapCount.ts client 1000 --shapes`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Effect, Exit, Fiber, Runtime, Scope, Stream } from "effect"
import { Client } from "../src/index.js"
import { Observer } from "../src/internal/client/observe.js"
import { HeartbeatCore } from "../src/internal/heartbeat.js"
import { Outbox } from "../src/internal/primitives/outbox.js"
import { timersOn } from "../src/internal/primitives/timers.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"

interface Internals {
  readonly settings: object
  readonly labels: ReadonlyArray<string>
  readonly inbound: object
  readonly recent: ReadonlyArray<{ readonly _tag: string }>
  readonly outbound: object
  readonly phase: {
    readonly _tag: string
    readonly session: Record<string, unknown> & {
      readonly timer: unknown
      readonly finalizers: unknown
      readonly opened: object
    }
  }
}

const internals = (client: Client.Client): Internals => client as unknown as Internals

/** The fields of `value` that hold arrays. */
const arrays = (value: object) => Object.values(value).filter((field) => Array.isArray(field))

/** Node timers now (the live clock). */
const timeouts = () => process.getActiveResourcesInfo().filter((name) => name === "Timeout").length

const openClient = (url: string) =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url })
    yield* client.awaitOpen
    return client
  })

describe("Client: idle memory (objects and fields per client)", () => {
  it.live("Clients made with { url } alone share their settings and their endpoints' labels", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const first = internals(yield* openClient(server.url))
        const second = internals(yield* openClient(server.url))
        expect(second.settings).toBe(first.settings)
        expect(second.labels).toBe(first.labels)
        expect(first.labels).toEqual([`${server.url}/`])
        // Other options: settings of their own (decoded from them).
        const other = internals(yield* Client.make({ url: server.url, heartbeat: false }))
        expect(other.settings).not.toBe(first.settings)
      })
    ).pipe(provideNode))

  it.live("an open Client's inbound reader keeps no array: the one buffer it reads is a field", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* openClient(server.url)
        const { inbound, phase } = internals(client)
        expect(arrays(inbound)).toEqual([])
        expect((inbound as { reading?: unknown }).reading).toBe(
          (phase.session.opened as { listener: { inbound: unknown } }).listener.inbound
        )
      })
    ).pipe(provideNode))

  it.live("the outbound side is its outbox (one object), and holds no number object for an absent maxMessageSize", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const { outbound } = internals(yield* openClient(server.url))
        // One object: the outbound side holds no separate outbox.
        expect(outbound).toBeInstanceOf(Outbox)
        expect(Object.values(outbound).some((field) => field instanceof Outbox)).toBe(false)
        expect(Object.values(outbound)).not.toContain(Number.POSITIVE_INFINITY)
      })
    ).pipe(provideNode))

  it.live("the events kept for replay are the states (no Transition objects), and replay gives what was published", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* openClient(server.url)
        expect(internals(client).recent.map((kept) => kept._tag)).toEqual(["Connecting", "Open"])
        const replayed = yield* client.events.pipe(Stream.take(2), Stream.runCollect)
        expect(Chunk.toReadonlyArray(replayed).map((event) => event._tag)).toEqual(["Transition", "Transition"])
      })
    ).pipe(provideNode))

  it.live("past 16 events, with failures among the transitions, a new subscriber gets the 16 a live one saw last", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({
          url: server.url,
          heartbeat: false,
          outbox: { capacity: 1, overflow: "dropOldest" }
        })
        const live: Array<Client.ClientEvent> = []
        const watcher = yield* client.events.pipe(
          Stream.runForEach((event) => Effect.sync(() => live.push(event))),
          Effect.fork
        )
        yield* client.awaitOpen
        // Each round: Open -> Connecting -> Open, and between them a message dropped from the
        // outbox (MessageFailed): three events a round.
        for (let round = 0; round < 8; round++) {
          const session = internals(client).phase.session
          yield* client.reconnect
          yield* client.enqueue(`dropped ${round}`)
          yield* client.enqueue(`sent ${round}`)
          for (let poll = 0; poll < 400; poll++) {
            const phase = internals(client).phase
            if (phase._tag === "Open" && phase.session !== session) break
            yield* Effect.sleep("5 millis")
          }
        }
        yield* Effect.yieldNow()
        const replayed = Chunk.toReadonlyArray(yield* client.events.pipe(Stream.take(16), Stream.runCollect))
        yield* Fiber.interrupt(watcher)
        expect(live.filter((event) => event._tag === "MessageFailed").length).toBe(8)
        expect(live.length).toBe(2 + 8 * 3)
        expect(replayed).toEqual(live.slice(-16))
        expect(internals(client).recent.length).toBe(16)
      })
    ).pipe(provideNode))

  it.live("the heartbeat reads the socket through its session and keeps its times as small integers", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const { phase } = internals(yield* openClient(server.url))
        // The heartbeat is the session's base class: its fields are the session's.
        const heartbeat = phase.session
        expect(Object.keys(heartbeat)).not.toContain("socket")
        expect(Object.keys(heartbeat)).not.toContain("listener")
        expect(Object.keys(heartbeat)).not.toContain("url")
        // Clock millis since a first reading, not since 1970: small integers (V8 keeps those in the
        // field; Clock millis each took a number object).
        for (const field of ["lastLife", "sampledAt", "dueAt"]) {
          const value = heartbeat[field] as number
          expect(Number.isInteger(value)).toBe(true)
          expect(value).toBeLessThan(2 ** 30)
        }
        // Its timer is a shared slot, not a Timeout of its own.
        expect(typeof (heartbeat.timer as { ref?: unknown }).ref).not.toBe("function")
      })
    ).pipe(provideNode))

  it.live("the session's scope keeps the connection itself as its finalizer, not a closure", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const { phase } = internals(yield* openClient(server.url))
        expect(phase.session.finalizers).toBe(phase.session.opened)
      })
    ).pipe(provideNode))

  it.live("the session is its scope, its heartbeat and the Open phase: one object, with no field for what it derives", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const { phase } = internals(yield* openClient(server.url))
        const session = phase.session
        expect(session).toBe(phase)
        expect(session).toBeInstanceOf(HeartbeatCore)
        expect(Scope.ScopeTypeId in session).toBe(true)
        expect(Object.keys(session)).toEqual(expect.arrayContaining(["finalizers", "lastLife", "timer", "view"]))
        for (const field of ["_tag", "session", "scope", "heartbeat", "openedAt", "options", "clock", "timers"]) {
          expect(Object.keys(session)).not.toContain(field)
        }
        // The scope's 2, the heartbeat's 10 (with the session's monotonic start, `upSince`: its
        // uptime for `minUptime`), the session's 9 (its connection, view, probe, owner and the
        // in-flight writes).
        expect(Object.keys(session).length).toBe(21)
      })
    ).pipe(provideNode))

  it.live("the session's connection is its own OpenedConnection: no second object holds its socket and listener", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const { phase } = internals(yield* openClient(server.url))
        const opened = phase.session.opened as { connection: unknown; socket: unknown; listener: unknown }
        expect(opened.connection).toBe(opened)
        expect(opened.socket).toBeDefined()
        expect(opened.listener).toBeDefined()
      })
    ).pipe(provideNode))

  it.live("the Client is its own observer: state listeners and kept events are its fields, not another object's", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* openClient(server.url)
        expect(client).toBeInstanceOf(Observer)
        expect(Object.keys(client)).not.toContain("observer")
        expect(Object.keys(client)).toContain("recent")
      })
    ).pipe(provideNode))

  it.live("the Client's finalizer in the caller's scope is a bound function, not a closure with a context", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const scope = yield* Scope.make()
        yield* openClient(server.url).pipe(Scope.extend(scope))
        const state = (scope as unknown as { state: { finalizers: Map<unknown, { name: string }> } }).state
        expect([...state.finalizers.values()].map((finalizer) => finalizer.name)).toEqual(["bound closeOnExit"])
        yield* Scope.close(scope, Exit.void)
      })
    ).pipe(provideNode))
})

describe("timers on setTimeout: one per slot", () => {
  it.live("timers set together share one setTimeout; cancelled, the last one leaves no handle; a cancelled one never fires", () =>
    Effect.gen(function*() {
      const timers = timersOn(Clock.make(), Runtime.defaultRuntime)
      const before = timeouts()
      const fired: Array<number> = []
      const targets = Array.from({ length: 100 }, (_, index) => ({ fire: () => fired.push(index) }))
      const handles = targets.map((target) => timers.after(50, target))
      // Within one 10 ms slot, or two if the loop crossed a slot's end.
      expect(timeouts() - before).toBeLessThanOrEqual(2)
      for (let index = 1; index < 100; index += 2) timers.cancel(handles[index], targets[index]!)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
      expect(fired).toEqual(Array.from({ length: 50 }, (_, index) => 2 * index))
      // All cancelled: no Timeout left behind.
      const now = timeouts()
      const lone = targets.map((target) => timers.after(1000, target))
      expect(timeouts()).toBeGreaterThan(now)
      targets.forEach((target, index) => timers.cancel(lone[index], target))
      expect(timeouts()).toBe(now)
    }))

  it.live("a timer longer than setTimeout can hold (2^31 ms) does not fire at once", () =>
    Effect.gen(function*() {
      const timers = timersOn(Clock.make(), Runtime.defaultRuntime)
      const fired: Array<string> = []
      const target = { fire: () => fired.push("long") }
      const handle = timers.after(2 ** 31 + 1000, target)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 30)))
      expect(fired).toEqual([])
      timers.cancel(handle, target)
    }))
})
