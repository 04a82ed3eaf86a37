/**
 * A Transport that knows the network (browsers: `navigator.onLine` and the `online` event): while
 * it says offline the Client makes no attempt, however short its backoff, and the `online` event
 * attempts at once, whatever is left of the backoff. Here the network is a switch the test holds,
 * over the Node transport and a real server on 127.0.0.1; the same in Chromium is in
 * chromium.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Ref, Schedule, Stream } from "effect"
import { BrowserTransport, Client, NodeTransport, Transport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { withBrowserNetwork } from "./support/browserGlobals.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { makeSwitch } from "./support/networkSwitch.js"
import { awaitTrue } from "./support/poll.js"

const provideWith = (network: Transport.Network) =>
  Effect.provide(Layer.merge(
    Layer.succeed(Transport.Transport, { ...NodeTransport.make, network }),
    Logger.remove(Logger.defaultLogger)
  ))

/** Counts the Client's Connecting transitions (attempts) from now on. */
const countAttempts = (client: Client.Client) =>
  Effect.gen(function*() {
    const attempts = yield* Ref.make(0)
    yield* client.state.changes.pipe(
      Stream.drop(1),
      Stream.runForEach((state) => state._tag === "Connecting" ? Ref.update(attempts, (n) => n + 1) : Effect.void),
      Effect.forkScoped
    )
    return attempts
  })

/**
 * A server, and a Client on it retrying by `retry` (its least delay 10 ms), open; its attempts
 * (Connecting transitions) counted from then on.
 */
const openClient = (retry: Schedule.Schedule<unknown, Client.ClientError>) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    const client = yield* Client.make({ url: server.url, retry, minRetryDelay: "10 millis" })
    yield* client.awaitOpen
    return { server, client, attempts: yield* countAttempts(client) }
  })

describe("Client: offline (a Transport with a network)", () => {
  it.scopedLive("no attempt while offline, however short the backoff; the online event attempts at once", () => {
    const net = makeSwitch()
    return withNoHandlesLeft(Effect.gen(function*() {
      const { attempts, client, server } = yield* openClient(Schedule.spaced("10 millis"))
      net.set(false)
      yield* server.kill
      yield* awaitState(client, isTag("Backoff"))
      // Thirty backoff delays: without the network check, about thirty attempts.
      yield* Effect.sleep("300 millis")
      expect(yield* Ref.get(attempts)).toBe(0)
      expect((yield* client.state.get)._tag).toBe("Backoff")
      expect(net.listeners.size).toBe(1)
      yield* server.restart
      net.set(true)
      yield* awaitState(client, isTag("Open"))
      expect(yield* Ref.get(attempts)).toBe(1)
      // The wait is over: its `online` listener is removed.
      expect(net.listeners.size).toBe(0)
      yield* client.close()
    })).pipe(provideWith(net.network))
  })

  it.scopedLive("the online event skips what is left of a long backoff", () => {
    const net = makeSwitch()
    return withNoHandlesLeft(Effect.gen(function*() {
      const { attempts, client, server } = yield* openClient(Schedule.spaced("1 hour"))
      net.set(false)
      yield* server.kill
      const backoff = yield* awaitState(client, isTag("Backoff"))
      expect(backoff).toMatchObject({ _tag: "Backoff", error: { _tag: "Disconnected", code: 1006 } })
      yield* server.restart
      net.set(true)
      // Without the online event this would wait the hour.
      yield* awaitState(client, isTag("Open"), "20 seconds")
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* client.close()
    })).pipe(provideWith(net.network))
  })

  it.scopedLive("online all along: the backoff runs as the Schedule says (the network changes nothing)", () => {
    const net = makeSwitch()
    return withNoHandlesLeft(Effect.gen(function*() {
      const { attempts, client, server } = yield* openClient(Schedule.spaced("10 millis"))
      yield* server.kill
      yield* awaitState(client, isTag("Backoff"))
      // A second attempt comes after one more backoff delay.
      yield* awaitTrue(Effect.map(Ref.get(attempts), (n) => n > 1), "a second attempt")
      yield* server.restart
      yield* awaitState(client, isTag("Open"))
      yield* client.close()
    })).pipe(provideWith(net.network))
  })

  it.scopedLive("close while waiting for the network: Closed at once, its online listener removed", () => {
    const net = makeSwitch()
    return withNoHandlesLeft(Effect.gen(function*() {
      const { client, server } = yield* openClient(Schedule.spaced("10 millis"))
      net.set(false)
      yield* server.kill
      yield* awaitState(client, isTag("Backoff"))
      yield* awaitTrue(Effect.sync(() => net.listeners.size === 1), "an online listener")
      yield* client.close()
      expect((yield* client.state.get)._tag).toBe("Closed")
      expect(net.listeners.size).toBe(0)
    })).pipe(provideWith(net.network))
  })

  it("the Node transport has no network (always online); the browser transport's is navigator.onLine (absent on Node: online)", () => {
    expect(NodeTransport.make.network).toBeUndefined()
    expect(BrowserTransport.make.network).toBe(BrowserTransport.network)
    expect(BrowserTransport.network.isOnline()).toBe(true)
    const remove = BrowserTransport.network.onOnline(() => {})
    remove()
  })

  it("the browser transport's network reads navigator.onLine and the global online event at each call", () =>
    withBrowserNetwork(({ dispatch, navigator }) => {
      navigator.onLine = false
      expect(BrowserTransport.network.isOnline()).toBe(false)
      navigator.onLine = true
      expect(BrowserTransport.network.isOnline()).toBe(true)
      let calls = 0
      const remove = BrowserTransport.network.onOnline(() => calls++)
      dispatch("online")
      dispatch("offline")
      expect(calls).toBe(1)
      remove()
      dispatch("online")
      expect(calls).toBe(1)
    }))
})
