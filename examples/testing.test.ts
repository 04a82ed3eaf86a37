/**
 * Testing your own app with `effect-lifeline/testing`, `@effect/vitest` and `TestClock`.
 *
 * The app is `examples/service.ts`: a `Greeter` service over a `Chat` Client. Each test runs it
 * against a real `TestServer` on 127.0.0.1 (behind a `FaultProxy` for the network fault) and
 * scripts the fault: the server killed and restarted, the network blackholed, a handshake
 * answered 503 with Retry-After. Real sockets need real time (`it.scopedLive`); the backoff,
 * heartbeat and timeouts use Effect's Clock, so `it.scoped` with `TestClock` drives them exactly.
 *
 * Run: `npx vitest run examples/testing.test.ts`.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Duration,
  Effect,
  Fiber,
  Layer,
  Logger,
  Option,
  Schedule,
  Stream,
  TestClock,
  TestServices
} from "effect"
import type { Client } from "effect-lifeline"
import { NodeTransport } from "effect-lifeline"
import { FaultProxy, TestServer } from "effect-lifeline/testing"
import { Chat, ChatLive, Greeter, GreeterLive } from "./service.js"

/** The app's layers over a test URL, the Chat Client visible to the test too, and no log lines. */
const appFor = (url: string, options: Partial<Client.Options> = {}) =>
  GreeterLive.pipe(
    Layer.provideMerge(ChatLive(url, options)),
    Layer.provide(Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger)))
  )

/**
 * The first state (now or later) with this tag; bounded, so a broken app fails the test instead of
 * hanging it. The bound is real time (`TestServices.provideLive`): under `it.scoped` Effect's Clock
 * is the TestClock, and an `Effect.timeout` on it would never fire.
 */
const awaitTag = <T extends Client.ClientState["_tag"]>(client: Client.Client, tag: T) =>
  client.state.changes.pipe(
    Stream.filter((state): state is Extract<Client.ClientState, { _tag: T }> => state._tag === tag),
    Stream.runHead,
    Effect.flatMap(Option.match({ onNone: () => Effect.dieMessage("the state stream ended"), onSome: Effect.succeed })),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => `no ${tag} state within 5 s` }),
    Effect.orDie,
    TestServices.provideLive
  )

/** Waits (bounded, real time) until a fiber sleeps on the TestClock, so that `TestClock.adjust` reaches it. */
const awaitSleeper = Effect.gen(function*() {
  for (let turn = 0; turn < 10_000; turn++) {
    if (Chunk.isNonEmpty(yield* TestClock.sleeps())) return
    yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
  }
  return yield* Effect.dieMessage("no fiber ever slept on the TestClock")
})

const fast = { retry: Schedule.spaced("20 millis"), minRetryDelay: "20 millis" } as const

describe("the Greeter app under faults", () => {
  it.scopedLive("server killed and restarted: a greeting asked while it is down is answered once it is back", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const app = yield* Layer.build(appFor(server.url, fast))
      const client = yield* Effect.provide(Chat, app)
      const greeter = yield* Effect.provide(Greeter, app)
      yield* client.awaitOpen
      yield* server.kill
      const backoff = yield* awaitTag(client, "Backoff")
      expect(backoff.error).toMatchObject({ _tag: "Disconnected", code: 1006, initiator: "transport" })
      const asked = yield* Effect.fork(greeter.greet("carol")) // waits in the outbox
      yield* server.restart
      expect(yield* Fiber.join(asked)).toBe("hello carol")
      expect(yield* server.received).toEqual(["hello carol"])
    }))

  it.scopedLive("network blackholed: the heartbeat finds the silent peer (TimeoutError heartbeat); restored, the app works again", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      const proxy = yield* FaultProxy.make(server.port)
      const app = yield* Layer.build(
        appFor(proxy.url, { ...fast, heartbeat: { interval: "100 millis", timeout: "100 millis" } })
      )
      const client = yield* Effect.provide(Chat, app)
      const greeter = yield* Effect.provide(Greeter, app)
      expect(yield* greeter.greet("dave")).toBe("hello dave")
      yield* proxy.blackhole
      const backoff = yield* awaitTag(client, "Backoff")
      expect(backoff.error).toMatchObject({ _tag: "TimeoutError", operation: "heartbeat" })
      yield* proxy.restore
      yield* client.awaitOpen
      expect(yield* greeter.greet("erin")).toBe("hello erin")
      expect(yield* server.received).toEqual(["hello dave", "hello erin"])
    }))

  it.scoped("503 + Retry-After: 5 (TestClock): no second attempt before 5 s, then the app works", () =>
    Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* server.rejectNext(503, { "retry-after": "5" })
      const app = yield* Layer.build(appFor(server.url, { ...fast, heartbeat: false }))
      const client = yield* Effect.provide(Chat, app)
      const greeter = yield* Effect.provide(Greeter, app)
      const backoff = yield* awaitTag(client, "Backoff")
      expect(backoff.error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status: 503 })
      expect(Duration.toMillis(backoff.delay)).toBe(5000) // the server's delay, over the policy's 20 ms
      yield* awaitSleeper
      yield* TestClock.adjust("4999 millis")
      expect((yield* client.state.get)._tag).toBe("Backoff")
      expect(yield* server.requests).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* awaitTag(client, "Open")
      expect(yield* server.requests).toBe(2)
      expect(yield* greeter.greet("frank")).toBe("hello frank")
    }))
})
