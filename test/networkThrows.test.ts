/**
 * A transport's `network` that throws tells nothing: the backoff waits on its timer (the guide).
 * One whose `onOnline` throws will never report `online`, so its `isOnline` must not hold the
 * timer back either.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Schedule, Stream } from "effect"
import { Client, NodeTransport, Transport } from "../src/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { closedPort } from "./support/ports.js"

/** `onOnline` throws; `isOnline` says offline. */
const deafOffline: Transport.Network = {
  isOnline: () => false,
  onOnline: () => {
    throw new Error("onOnline broke")
  }
}

const withNetwork = (network: Transport.Network) =>
  Effect.provide(Layer.merge(
    Layer.succeed(Transport.Transport, { ...NodeTransport.make, network }),
    Logger.remove(Logger.defaultLogger)
  ))

describe("a network whose onOnline throws", () => {
  // Without it the timer's end was dropped as offline, and no `online` could come: Backoff for ever.
  for (const path of ["the supervisor fiber's path (a retry Schedule)", "attempts on callbacks"] as const) {
    it.scopedLive(`${path}: the backoff ends by its timer, though isOnline says offline`, () =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const client = yield* Client.make({
          url: `ws://127.0.0.1:${port}`,
          ...(path === "attempts on callbacks" ? {} : { retry: Schedule.spaced("20 millis") })
        })
        const first = yield* awaitState(client, isTag("Backoff"))
        expect(first).toMatchObject({ attempt: 1, error: { _tag: "ConnectError", reason: "ConnectionRefused" } })
        // The default schedule's first delay is at most 2.09 s.
        const second = yield* awaitState(client, (s) => s._tag === "Backoff" && s.attempt === 2, "20 seconds")
        expect(second).toMatchObject({ error: { _tag: "ConnectError", reason: "ConnectionRefused" } })
        expect(yield* client.close()).toEqual([])
      }).pipe(withNetwork(deafOffline)), 30_000)
  }
})

/** `onOnline` calls back at once, while subscribing (a custom network); counts its listeners. */
const eagerNetwork = () => {
  const counts = { subscribed: 0, unsubscribed: 0 }
  const network: Transport.Network = {
    isOnline: () => true,
    onOnline: (callback) => {
      counts.subscribed++
      callback()
      return () => {
        counts.unsubscribed++
      }
    }
  }
  return { counts, network }
}

describe("a network whose onOnline calls back while subscribing", () => {
  // That call is no `online` event: before, it woke every backoff at once (attempts with no wait, a
  // hot loop against a refused port) and its listener was never removed.
  for (const path of ["the supervisor fiber's path (a retry Schedule)", "attempts on callbacks"] as const) {
    it.live(`${path}: the backoff waits its delay; every listener is removed`, () => {
      const { counts, network } = eagerNetwork()
      return Effect.gen(function*() {
        const port = yield* closedPort
        let attempts = 0
        yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Client.make({
            url: `ws://127.0.0.1:${port}`,
            minRetryDelay: 1000,
            ...(path === "attempts on callbacks" ? {} : { retry: Schedule.spaced("1 second") })
          })
          yield* client.state.changes.pipe(
            Stream.filter((state) => state._tag === "Connecting"),
            Stream.runForEach(() => Effect.sync(() => attempts++)),
            Effect.forkScoped
          )
          const first = yield* awaitState(client, isTag("Backoff"))
          expect(first).toMatchObject({ attempt: 1, error: { _tag: "ConnectError", reason: "ConnectionRefused" } })
          // Less than the first delay (at least minRetryDelay).
          yield* Effect.sleep("300 millis")
          expect(yield* client.close()).toEqual([])
        }))
        expect(attempts).toBe(1)
        expect(counts.unsubscribed).toBe(counts.subscribed)
      }).pipe(withNetwork(network))
    }, 30_000)
  }
})
