/**
 * A transport's `network` that throws tells nothing: the backoff waits on its timer (the guide).
 * One whose `onOnline` throws will never report `online`, so its `isOnline` must not hold the
 * timer back either.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Schedule } from "effect"
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
        const second = yield* awaitState(client, (s) => s._tag === "Backoff" && s.attempt === 2, "4 seconds")
        expect(second).toMatchObject({ error: { _tag: "ConnectError", reason: "ConnectionRefused" } })
        expect(yield* client.close()).toEqual([])
      }).pipe(withNetwork(deafOffline)), 8_000)
  }
})
