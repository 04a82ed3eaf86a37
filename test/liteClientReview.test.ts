/**
 * Review of the small Client (LiteClient) against the full Client: each scenario runs against
 * both (`Client.make` and `LiteClient.make`), over real sockets on 127.0.0.1, every wait bounded,
 * each in `withNoHandlesLeft`. The test names are what both should do (the `Client` interface's
 * docs, src/Client.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Deferred, Effect, Exit, Fiber, Option, Schedule, Stream } from "effect"
import type { Transport } from "../src/index.js"
import { Client, LiteClient } from "../src/index.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"
import { awaitSuspended, awaitTrue } from "./support/poll.js"

const YIELD_EVERY = Number(process.env.YIELD_EVERY ?? 16)

type Make = (options: Client.Options) => Effect.Effect<Client.Client, never, Scope.Scope | Transport.Transport>

const clients: ReadonlyArray<readonly [string, Make]> = [
  ["Client", Client.make as Make],
  ["LiteClient", LiteClient.make as Make]
]

/** Every transition's target tag, from now on (replayed ones included). */
const recordTags = (client: Client.Client) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    yield* Effect.forkScoped(Stream.runForEach(client.events, (event) =>
      Effect.sync(() => {
        if (event._tag === "Transition") seen.push(event.to._tag)
      })))
    return seen
  })

for (const [name, make] of clients.filter(([name]) => process.env.ONLY === undefined || process.env.ONLY === name)) {
  describe(`${name}: review of the small Client`, () => {
    describe("reconnect", () => {
      it.live("reconnect twice on a Client Closed by an error: one new link (a button pressed twice costs one handshake), none left after close", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false, retry: Schedule.spaced("10 millis") })
          yield* client.awaitOpen
          yield* server.closeAll(1008, "final")
          yield* awaitState(client, isTag("Closed"))
          yield* client.reconnect
          yield* client.reconnect
          yield* awaitState(client, isTag("Open"))
          yield* Effect.sleep("300 millis")
          expect(yield* server.accepted).toBe(2)
          expect(yield* server.connections).toBe(1)
          yield* client.close()
          // Every link the client made is closed by `close`.
          yield* server.awaitConnections(0, "5 seconds")
        })).pipe(provideNode))

      it.live("reconnect twice on a Client Closed by an error, then close: no link, socket or fiber left (the server sees every link closed)", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false, retry: Schedule.spaced("10 millis") })
          yield* client.awaitOpen
          yield* server.closeAll(1008, "final")
          yield* awaitState(client, isTag("Closed"))
          yield* client.reconnect
          yield* client.reconnect
          yield* awaitState(client, isTag("Open"))
          yield* Effect.sleep("300 millis")
          expect(yield* client.close()).toEqual([])
          yield* Effect.sleep("300 millis")
          expect(yield* server.connections).toBe(0)
          expect((yield* client.state.get)._tag).toBe("Closed")
        })).pipe(provideNode))

      it.live("reconnect on a Client Closed by an error: it has left Closed when reconnect returns (awaitOpen after it waits for the new attempt)", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false, retry: Schedule.spaced("10 millis") })
          yield* client.awaitOpen
          yield* server.closeAll(1008, "final")
          yield* awaitState(client, isTag("Closed"))
          yield* client.reconnect
          expect((yield* client.state.get)._tag).not.toBe("Closed")
        })).pipe(provideNode))

      it.live("reconnect after the retry Schedule is done (Closed): a new series, as many attempts as the first", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.kill
          const client = yield* make({
            url: server.url,
            heartbeat: false,
            retry: Schedule.recurs(2),
            minRetryDelay: "10 millis"
          })
          const seen = yield* recordTags(client)
          yield* awaitState(client, isTag("Closed"))
          yield* awaitTrue(Effect.sync(() => seen.at(-1) === "Closed"), "Closed recorded")
          const first = seen.filter((tag) => tag === "Connecting").length
          seen.length = 0
          yield* client.reconnect
          yield* awaitTrue(Effect.sync(() => seen.at(-1) === "Closed"), "Closed again", 2_000)
          expect(first).toBe(3)
          expect(seen.filter((tag) => tag === "Connecting").length).toBe(first)
        })).pipe(provideNode))

      it.live("reconnect while Backoff resets the backoff: a retry Schedule of one recurrence is not used up by it", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.kill
          const client = yield* make({
            url: server.url,
            heartbeat: false,
            retry: Schedule.intersect(Schedule.spaced("1 hour"), Schedule.recurs(1))
          })
          const seen = yield* recordTags(client)
          yield* awaitState(client, isTag("Backoff"))
          yield* client.reconnect
          // The woken attempt fails too (nothing listens): a new series has its one recurrence left.
          yield* awaitTrue(
            Effect.sync(() => seen.filter((tag) => tag === "Connecting").length === 2 && seen.at(-1) !== "Connecting"),
            "the second attempt's end"
          )
          expect(seen.at(-1)).toBe("Backoff")
        })).pipe(provideNode))

      it.live("make returns a Client that has left Idle (Connecting), as the full Client does", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false })
          expect((yield* client.state.get)._tag).toBe("Connecting")
        })).pipe(provideNode))

      it.live("an isPong that throws while Backoff (a frame of the last link read late): no attempt before the delay", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({
            url: server.url,
            retry: Schedule.spaced("1 hour"),
            heartbeat: {
              isPong: () => {
                throw new Error("boom")
              }
            }
          })
          yield* client.awaitOpen
          const [peer] = yield* server.peers
          yield* peer!.send("late")
          yield* Effect.sleep("100 millis")
          yield* server.kill
          yield* awaitState(client, isTag("Backoff"))
          const seen = yield* recordTags(client)
          yield* awaitTrue(Effect.sync(() => seen.length > 0), "the replay")
          const before = seen.length
          const read = yield* client.messages.pipe(Stream.take(1), Stream.runCollect)
          expect([...read]).toEqual(["late"])
          yield* Effect.sleep("300 millis")
          expect(seen.slice(before)).toEqual([])
        })).pipe(provideNode))

      it.live("reconnect while Connecting: the attempt goes on, and if it fails the next follows at once", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.hangHandshake
          const client = yield* make({
            url: server.url,
            heartbeat: false,
            retry: Schedule.spaced("1 hour"),
            connection: { openTimeout: "300 millis" }
          })
          const seen = yield* recordTags(client)
          yield* awaitState(client, isTag("Connecting"))
          yield* awaitTrue(Effect.map(server.requests, (n) => n >= 1), "the handshake request")
          yield* client.reconnect
          // The attempt times out after 300 ms; the next one starts at once, not in an hour.
          yield* awaitTrue(
            Effect.sync(() => seen.filter((tag) => tag === "Connecting").length >= 2),
            "a second attempt",
            600
          )
        })).pipe(provideNode))
    })

    describe("the outbox", () => {
      it.live(`a client made under maxOpsBeforeYield ${YIELD_EVERY} (an app's runtime setting): a send right after awaitOpen that the server receives completes as written, never reported failed`, () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          // Inherited by the client's own fibers: its run loop yields every few steps.
          const client = yield* make({ url: server.url, heartbeat: false }).pipe(
            Effect.withMaxOpsBeforeYield(YIELD_EVERY)
          )
          const outcomes: Array<string> = []
          for (let round = 0; round < 3; round++) {
            yield* client.awaitOpen
            const sent = yield* Effect.fork(client.send(`m${round}`))
            yield* awaitTrue(Effect.map(server.received, (all) => all.includes(`m${round}`)), "the server got it")
            // Written: its send completes (the full Client: at once).
            const early = yield* Fiber.join(sent).pipe(Effect.either, Effect.timeout("1 second"), Effect.option)
            yield* client.reconnect
            const outcome = Option.isSome(early) ? early.value : yield* Effect.either(Fiber.join(sent))
            outcomes.push(
              `${Option.isSome(early) ? "at once" : "after the link ended"}: ${
                outcome._tag === "Right"
                  ? "written"
                  : `${outcome.left._tag} ${(outcome.left as { reason?: string }).reason}`
              }`
            )
            yield* awaitState(client, (state) => state._tag !== "Open")
          }
          expect(outcomes).toEqual(["at once: written", "at once: written", "at once: written"])
        })).pipe(provideNode))
    })

    describe("close", () => {
      it.live("close from the Client's own onOpen: it closes the Client (no deadlock), onOpen is interrupted", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const holder: { client?: Client.Client } = {}
          const client = yield* make({
            url: server.url,
            heartbeat: false,
            onOpenTimeout: "2 seconds",
            onOpen: () => Effect.asVoid(holder.client!.close())
          })
          holder.client = client
          const closed = yield* awaitState(client, (state) => state._tag === "Closed", "10 seconds")
          expect(closed).toEqual({ _tag: "Closed", error: Option.none() })
        })).pipe(provideNode))

      it.live("close from the Client's own URL Effect: it closes the Client (no deadlock)", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const holder: { client?: Client.Client } = {}
          const started = yield* Deferred.make<void>()
          const client = yield* make({
            url: Effect.zipRight(
              Deferred.await(started),
              Effect.as(Effect.suspend(() => holder.client!.close()), server.url)
            ),
            heartbeat: false,
            connection: { openTimeout: "2 seconds" }
          })
          holder.client = client
          yield* Deferred.succeed(started, undefined)
          const closed = yield* awaitState(client, (state) => state._tag === "Closed", "10 seconds")
          expect(closed).toEqual({ _tag: "Closed", error: Option.none() })
        })).pipe(provideNode))

      it.live("close while a close is under way: the second returns once the Client is Closed (it waits for the first)", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const proxy = yield* FaultProxy.make(server.port)
          const client = yield* make({ url: proxy.url, heartbeat: false })
          yield* client.awaitOpen
          // The peer's answer to the close frame takes about 600 ms.
          yield* proxy.latency(300)
          const first = yield* Effect.fork(client.close(4001, "bye"))
          yield* Effect.sleep("50 millis")
          expect(yield* client.close()).toEqual([])
          expect((yield* client.state.get)._tag).toBe("Closed")
          yield* Fiber.join(first)
        })).pipe(provideNode))

      it.live("the scope ends while a close is under way (a daemon fiber's): its finalizer waits for it, the Client is Closed", () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make()
          const proxy = yield* FaultProxy.make(server.port)
          const client = yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* make({ url: proxy.url, heartbeat: false })
            yield* client.awaitOpen
            yield* proxy.latency(300)
            yield* Effect.forkDaemon(client.close())
            yield* Effect.sleep("50 millis")
            return client
          }))
          // The scope has ended: the Client it made is Closed.
          expect((yield* client.state.get)._tag).toBe("Closed")
        }).pipe(Effect.scoped, provideNode))
    })

    describe("streams after close", () => {
      it.live("close ends state.changes and events, for readers before it and after it", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false })
          yield* client.awaitOpen
          const changes = yield* Effect.fork(Stream.runDrain(client.state.changes))
          const events = yield* Effect.fork(Stream.runDrain(client.events))
          yield* Effect.sleep("50 millis")
          yield* client.close()
          const ended = (fiber: Fiber.RuntimeFiber<void>) =>
            Fiber.join(fiber).pipe(
              Effect.timeout("5 seconds"),
              Effect.as("ended"),
              Effect.orElseSucceed(() => "not ended")
            )
          expect([yield* ended(changes), yield* ended(events)]).toEqual(["ended", "ended"])
          const later = [
            yield* ended(yield* Effect.fork(Stream.runDrain(client.state.changes))),
            yield* ended(yield* Effect.fork(Stream.runDrain(client.events)))
          ]
          expect(later).toEqual(["ended", "ended"])
        })).pipe(provideNode))
    })

    describe("no handles left after the scope ends", () => {
      it.live("closed while Connecting (a handshake that hangs)", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.hangHandshake
          const client = yield* make({ url: server.url, heartbeat: false })
          yield* awaitState(client, isTag("Connecting"))
          yield* awaitTrue(Effect.map(server.requests, (n) => n >= 1), "the handshake request")
        })).pipe(provideNode))

      it.live("closed while in onOpen (one that never ends)", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const entered = yield* Deferred.make<void>()
          yield* make({
            url: server.url,
            onOpenTimeout: "1 hour",
            onOpen: () => Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never)
          })
          yield* Deferred.await(entered)
        })).pipe(provideNode))

      it.live("closed while Backoff, frames queued", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, retry: Schedule.spaced("1 hour") })
          yield* client.awaitOpen
          yield* server.kill
          yield* awaitState(client, isTag("Backoff"))
          yield* client.enqueue("a")
          const waiting = yield* Effect.fork(client.send("b"))
          yield* awaitSuspended(waiting)
          const exit = yield* client.close().pipe(Effect.zipLeft(Effect.sleep("10 millis")))
          expect(exit).toEqual(["a", "b"])
          expect(Exit.isFailure(yield* Fiber.await(waiting))).toBe(true)
        })).pipe(provideNode))

      it.live("closed by its scope with writes in flight to a peer that stopped reading", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false, connection: { closeTimeout: "300 millis" } })
          yield* client.awaitOpen
          yield* server.pauseReading
          const big = "x".repeat(256 * 1024)
          for (let i = 0; i < 40; i++) yield* client.enqueue(big)
          yield* Effect.sleep("100 millis")
        })).pipe(provideNode))

      it.live("closed by its scope while Closed by an error", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false })
          yield* client.awaitOpen
          yield* server.closeAll(1008, "final")
          yield* awaitState(client, isTag("Closed"))
        })).pipe(provideNode))

      it.live("closed twice concurrently while open", () =>
        withNoHandlesLeft(Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* make({ url: server.url, heartbeat: false })
          yield* client.awaitOpen
          yield* Effect.all([client.close(), client.close(4001)], { concurrency: "unbounded" })
        })).pipe(provideNode))
    })
  })
}
