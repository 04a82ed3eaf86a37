/**
 * Nothing lifeline runs in a socket's or a timer's callback may throw into it (invariant 1): on
 * Node, a throw there is an uncaught exception and the process dies. Each test here reaches one
 * such entry point with a user-replaceable service that throws once (a Clock) and checks that the
 * throw becomes a typed outcome (the Client Closed with `ConnectError InvalidOptions` "the client
 * failed: ...") and that nothing reached the process (`uncaughtException`). The attempt's steps
 * and the heartbeat are covered in test/callbacks.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Context } from "effect"
import { Clock, Effect, Exit, Fiber, Layer, Logger, LogLevel, Option, Stream, Supervisor } from "effect"
import { Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode, quietNode } from "./support/node.js"
import { breakingClock, catchingStrays } from "./support/throwing.js"

/** Effect's live Clock, but one that throws when read by the heartbeat's start, once `armed`. */
const heartbeatStartBreaksClock = (): Clock.Clock & { armed: boolean } => {
  const live = Clock.make()
  const clock = Object.create(live) as Clock.Clock & { armed: boolean }
  clock.armed = false
  // The heartbeat reads the monotonic reading (nanos).
  Object.defineProperty(clock, "unsafeCurrentTimeNanos", {
    value: () => {
      if (!clock.armed || !(new Error().stack ?? "").includes("startHeartbeat")) return live.unsafeCurrentTimeNanos()
      clock.armed = false
      throw new Error("the clock broke")
    }
  })
  return clock
}

/**
 * A Supervisor (a service a runtime carries, which `Runtime.runFork` calls at once) whose
 * `onStart` throws once, when `armed`, for a root fiber (no parent: one forked from a callback,
 * such as the Client's supervisor fiber); fibers forked by the test's own are left alone.
 */
class BreakingSupervisor extends Supervisor.AbstractSupervisor<void> {
  armed = false
  /** Throws for every root fiber while armed, not once. */
  always = false
  readonly value = Effect.void
  override onStart<A, E, R>(
    _context: Context.Context<R>,
    _effect: Effect.Effect<A, E, R>,
    parent: Option.Option<Fiber.RuntimeFiber<any, any>>,
    _fiber: Fiber.RuntimeFiber<A, E>
  ): void {
    if (!this.armed || Option.isSome(parent)) return
    if (!this.always) this.armed = false
    throw new Error("the supervisor broke")
  }
}

const withSupervisor = (supervisor: Supervisor.Supervisor<unknown>) =>
  Effect.provide(Layer.merge(Supervisor.addSupervisor(supervisor), quietNode))

type ClosedError = { readonly _tag: string; readonly reason: string; readonly detail: string }

/** The Closed state a wait returned: a wait that died (timed out) fails the test here. */
const closedOf = <A>(exit: Exit.Exit<A>): A => {
  if (Exit.isFailure(exit)) throw new Error("the Client never closed")
  return exit.value
}

const closedError = (state: unknown): ClosedError =>
  Option.getOrThrow((state as { error: Option.Option<ClosedError> }).error)

describe("a throw in lifeline's own code on a callback closes, never reaches the process", () => {
  // These two hold without a guard of their own (kept as pins): Ending shows as the Open it ends,
  // so the close event's `enter` reads no Clock; the supervisor fiber's reading (the session's
  // uptime) throws, and its defect closes the Client.
  const paths = [
    { path: "attempts on callbacks", options: {} },
    { path: "the supervisor fiber's path (onOpen given)", options: { onOpen: () => Effect.void } }
  ] as const
  for (const { options, path } of paths) {
    it.live(`${path}: the session's end in the socket's close event, with a Clock that throws: Closed InvalidOptions 'the client failed'; no uncaught exception`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const clock = breakingClock()
        const client = yield* Client.make({ url: server.url, ...options }).pipe(Effect.withClock(clock))
        yield* client.awaitOpen
        const [outcome, strays] = yield* catchingStrays(Effect.gen(function*() {
          // The next call of the Clock is the session's end, in ws's 'close' event or on the fiber.
          clock.armed = true
          yield* server.closeAll(4000, "bye")
          return yield* Effect.exit(awaitState(client, isTag("Closed"), "2 seconds"))
        }))
        // First: what reached the process (it died there, outside a test).
        expect(strays.map(String)).toEqual([])
        const closed = closedOf(outcome)
        expect(clock.armed).toBe(false)
        const error = closedError(closed)
        expect([error._tag, error.reason]).toEqual(["ConnectError", "InvalidOptions"])
        expect(error.detail).toContain("the client failed: the clock broke")
        // The session's connection was released, and no other was made.
        expect(yield* server.accepted).toBe(1)
        expect(yield* client.close()).toEqual([])
      })).pipe(provideNode))
  }

  // Without the guard the throw reached the process, or, when ws's 'close' came from its
  // receiver's 'finish', Node's stream swallowed it and the Client stayed Ending for ever.
  it.live("a runtime's Supervisor that throws when the session's end forks the supervisor (in the socket's close event): Closed InvalidOptions 'the client failed', the socket released; no uncaught exception", () => {
    const supervisor = new BreakingSupervisor()
    return withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({ url: server.url })
      yield* client.awaitOpen
      const [outcome, strays] = yield* catchingStrays(Effect.gen(function*() {
        supervisor.armed = true
        yield* server.closeAll(4000, "bye")
        return yield* Effect.exit(awaitState(client, isTag("Closed"), "2 seconds"))
      }))
      // First: what reached the process (it died there, outside a test).
      expect(strays.map(String)).toEqual([])
      const closed = closedOf(outcome)
      expect(supervisor.armed).toBe(false)
      const error = closedError(closed)
      expect([error._tag, error.reason]).toEqual(["ConnectError", "InvalidOptions"])
      expect(error.detail).toContain("the client failed: the supervisor broke")
      expect(yield* server.accepted).toBe(1)
      expect(yield* client.close()).toEqual([])
    })).pipe(withSupervisor(supervisor))
  })

  it.live("a runtime's Supervisor that throws when the primary probe's timer forks the probe (ordered, returnToPrimary): Closed InvalidOptions 'the client failed'; no uncaught exception", () => {
    const supervisor = new BreakingSupervisor()
    return withNoHandlesLeft(Effect.gen(function*() {
      const primary = yield* TestServer.make()
      const secondary = yield* TestServer.make()
      yield* primary.kill
      const client = yield* Client.make({
        url: [primary.url, secondary.url],
        strategy: "ordered",
        returnToPrimary: "50 millis"
      })
      yield* awaitState(client, (state) => state._tag === "Open" && state.endpoint === `${secondary.url}/`)
      const [outcome, strays] = yield* catchingStrays(Effect.gen(function*() {
        // The next root fiber is the probe's, forked in its timer's callback.
        supervisor.armed = true
        return yield* Effect.exit(awaitState(client, isTag("Closed"), "2 seconds"))
      }))
      expect(strays.map(String)).toEqual([])
      expect(supervisor.armed).toBe(false)
      const error = closedError(closedOf(outcome))
      expect([error._tag, error.reason]).toEqual(["ConnectError", "InvalidOptions"])
      expect(error.detail).toContain("the client failed: the supervisor broke")
      // The secondary's connection was released.
      expect(yield* secondary.accepted).toBe(1)
      yield* awaitState(client, isTag("Closed"))
      expect(yield* client.close()).toEqual([])
    })).pipe(withSupervisor(supervisor))
  })

  // Without the guard the throw came after the Client entered Open: the attempt's catch took the
  // session's close watch away and terminated its socket, and Closed is no move from Open, so the
  // Client stayed Open for ever on a dead socket (`messages` never ended, nothing reconnected).
  it.live("a runtime's Supervisor that throws when the Open's log line is forked (the socket's open callback, the Client Open already): Closed InvalidOptions 'the client failed', the socket released, a reader's messages end; no uncaught exception", () => {
    const supervisor = new BreakingSupervisor()
    return withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const [outcome, strays] = yield* catchingStrays(Effect.gen(function*() {
        // At Debug the Open's log line is forked too (the Connecting's was, by `make`, unarmed).
        const client = yield* Client.make({ url: server.url }).pipe(Logger.withMinimumLogLevel(LogLevel.Debug))
        const reader = yield* Effect.fork(Stream.runCollect(client.messages))
        // The next root fiber is the Open's log line, forked in the socket's open callback.
        supervisor.armed = true
        const closed = yield* Effect.exit(awaitState(client, isTag("Closed"), "2 seconds"))
        const read = yield* Fiber.join(reader).pipe(Effect.timeout("1 second"), Effect.exit)
        return { client, closed, read }
      }))
      expect(strays.map(String)).toEqual([])
      const { client, closed, read } = outcome
      expect(supervisor.armed).toBe(false)
      const error = closedError(closedOf(closed))
      expect([error._tag, error.reason]).toEqual(["ConnectError", "InvalidOptions"])
      expect(error.detail).toContain("the client failed: the supervisor broke")
      expect(read).toMatchObject({ _tag: "Success" })
      expect(yield* server.accepted).toBe(1)
      expect(yield* client.close()).toEqual([])
    })).pipe(withSupervisor(supervisor))
  })

  // The heartbeat starts once the Client is Open, and Closed is no move from Open. On callbacks,
  // without the guard the Client stayed Open for ever on a terminated socket. On the fiber it
  // holds without a guard of its own (a pin): the attempt's scope, closed with the defect, releases
  // the socket, whose close ends the session (Ending), and the supervisor's defect closes that.
  for (const path of ["attempts on callbacks", "the supervisor fiber's path (onOpen given)"] as const) {
    it.live(`${path}: a Clock that throws when the heartbeat starts (the Client Open already): Closed InvalidOptions 'the client failed', the socket released; no uncaught exception`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const clock = heartbeatStartBreaksClock()
        clock.armed = true
        const [outcome, strays] = yield* catchingStrays(Effect.gen(function*() {
          const client = yield* Client.make({
            url: server.url,
            heartbeat: { interval: "10 seconds", timeout: "10 seconds" },
            ...(path === "attempts on callbacks" ? {} : { onOpen: () => Effect.void })
          }).pipe(Effect.withClock(clock))
          const closed = yield* Effect.exit(awaitState(client, isTag("Closed"), "2 seconds"))
          return { client, closed }
        }))
        expect(strays.map(String)).toEqual([])
        const { client, closed } = outcome
        expect(clock.armed).toBe(false)
        const error = closedError(closedOf(closed))
        expect([error._tag, error.reason]).toEqual(["ConnectError", "InvalidOptions"])
        expect(error.detail).toContain("the client failed: the clock broke")
        expect(yield* server.accepted).toBe(1)
        expect(yield* client.close()).toEqual([])
      })).pipe(provideNode))
  }

  it.live("a runtime's Supervisor that throws for every fiber the Client forks from a callback (its log lines): Closed InvalidOptions 'the client failed' on the first attempt's failure, and a send queued meanwhile fails Closed instead of waiting for ever", () => {
    const supervisor = new BreakingSupervisor()
    supervisor.armed = true
    supervisor.always = true
    return withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.kill
      const [outcome, strays] = yield* catchingStrays(Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url })
        // Queued while Connecting (the attempt's failure is a socket event, later).
        const sent = yield* Effect.fork(client.send("queued"))
        const closed = yield* Effect.exit(awaitState(client, isTag("Closed"), "2 seconds"))
        const send = yield* Fiber.join(sent).pipe(Effect.flip, Effect.timeout("1 second"), Effect.exit)
        supervisor.armed = false
        return { client, closed, send }
      }))
      expect(strays.map(String)).toEqual([])
      const { client, closed, send } = outcome
      // The Backoff's WARN line could not be forked: the Client closed with it.
      const error = closedError(closedOf(closed))
      expect([error._tag, error.reason]).toEqual(["ConnectError", "InvalidOptions"])
      expect(error.detail).toContain("the client failed: the supervisor broke")
      expect(send).toMatchObject({ _tag: "Success", value: { _tag: "SendError", reason: "Closed", payload: "queued" } })
      expect(yield* client.failed).toBe(1)
      expect(yield* client.close()).toEqual([])
    })).pipe(withSupervisor(supervisor))
  })
})
