/**
 * Two faults of the Client's `url: Effect` found while trying the compat facade, which reaches
 * them through its URL providers: a URL (or headers) Effect that never completes kept the Client
 * Connecting for ever, and one that failed was told to "use a ws:// URL without a fragment".
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Schedule } from "effect"
import { Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState } from "./support/clientKit.js"
import { provideNode } from "./support/node.js"

describe("Client: a url Effect", () => {
  it.live("a url Effect that never completes is bounded by connection.openTimeout: TimeoutError open, retried", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make({
        url: Effect.never,
        connection: { openTimeout: "100 millis" },
        retry: Schedule.spaced("50 millis")
      })
      const backoff = yield* awaitState(client, (state) => state._tag === "Backoff", "20 seconds")
      expect(backoff).toMatchObject({ _tag: "Backoff", attempt: 1, error: { _tag: "TimeoutError", operation: "open" } })
      yield* awaitState(client, (state) => state._tag === "Connecting" && state.attempt === 2, "20 seconds")
    })).pipe(provideNode))

  it.live("a headers Effect that never completes is bounded the same way", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const client = yield* Client.make({
        url: server.url,
        headers: Effect.never,
        connection: { openTimeout: "100 millis" },
        shouldRetry: () => false
      })
      const closed = yield* awaitState(client, (state) => state._tag === "Closed", "20 seconds")
      expect(closed).toMatchObject({
        error: Option.some(expect.objectContaining({ _tag: "TimeoutError", operation: "open" }))
      })
      expect(yield* server.accepted).toBe(0)
    })).pipe(provideNode))

  it.live("a url Effect that fails is not told to use a ws:// URL without a fragment (its hint is for a URL that does not parse)", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make({ url: Effect.die(new Error("token service down")) })
      const error = yield* Effect.flip(client.awaitOpen)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "InvalidUrl" })
      expect(error.message).toContain("token service down")
      expect(error.message).not.toContain("without a fragment")
    })).pipe(provideNode))
})
