/**
 * Two faults of the Client's `url: Effect` found while trying the compat facade, which reaches
 * them through its URL providers. They live in the Client's internals
 * (src/internal/client/supervisor.ts), not fixed here: each test is `it.fails` (it passes while
 * the fault is there) and documents the expected behaviour. The compat facade works around both
 * (a time limit of its own, and its own retry of a provider that failed).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Client } from "../src/index.js"
import { awaitState } from "./support/clientKit.js"
import { provideNode } from "./support/node.js"

describe("Client: a url Effect", () => {
  it.live.fails("a url Effect that never completes is bounded by connection.openTimeout (it stays Connecting for ever)", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make({ url: Effect.never, connection: { openTimeout: "100 millis" }, shouldRetry: () => false })
      // Expected: the attempt fails (a TimeoutError or a ConnectError) within openTimeout; the
      // wait below is only a bound for the test.
      const left = yield* awaitState(client, (state) => state._tag !== "Connecting" && state._tag !== "Idle", "1 second")
      expect(left._tag).not.toBe("Connecting")
    })).pipe(provideNode))

  it.live.fails("a url Effect that fails is not told to use a ws:// URL without a fragment (its hint is for a URL that does not parse)", () =>
    Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make({ url: Effect.die(new Error("token service down")) })
      const error = yield* Effect.flip(client.awaitOpen)
      expect(error).toMatchObject({ _tag: "ConnectError", reason: "InvalidUrl" })
      expect(error.message).toContain("token service down")
      expect(error.message).not.toContain("without a fragment")
    })).pipe(provideNode))
})
