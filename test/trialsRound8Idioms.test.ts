/**
 * Round 8 trials: the Effect idioms a user writes around a default Node Client (a TestServer echo,
 * killed and restarted where it matters), and a process that lives for weeks:
 * - `messages` fanned out (`Stream.broadcast`, `Stream.share`, `Stream.toPubSub`), batched
 *   (`groupedWithin`), cut (`interruptWhen`, `take` then read again), `runHead` in a loop, a reader
 *   forked into a daemon or another scope that outlives the Client's;
 * - request/reply by hand over `Stream.toPull(messages)` with a timeout per reply, through a restart;
 * - `state.changes` / `events` with `debounce`, `changes`, 50 watchers, and one that never reads;
 * - 20,000 Clients made and closed to ever new endpoints (a child process with --expose-gc:
 *   test/support/churnChild.ts): lifeline's metric tag tables and Effect's metric registry.
 * Loopback only; every loop bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Metric, Stream } from "effect"
import { execFile } from "node:child_process"
import * as Path from "node:path"
import { Client } from "../src/index.js"
import * as Metrics from "../src/internal/metrics.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"
import { closedPort } from "./support/ports.js"

/** lifeline's metric keys in Effect's global registry, and the `endpoint` values they carry. */
const lifelineKeys = () => Metric.unsafeSnapshot().filter((pair) => pair.metricKey.name.startsWith("lifeline_"))
const endpointValues = (): Set<string> => {
  const values = new Set<string>()
  for (const pair of lifelineKeys()) {
    for (const tag of pair.metricKey.tags) if (tag.key === "endpoint") values.add(tag.value)
  }
  return values
}
const counterOf = (name: string, tags: Record<string, string>): number => {
  for (const pair of lifelineKeys()) {
    if (pair.metricKey.name !== name) continue
    const keyTags = pair.metricKey.tags
    if (keyTags.length !== Object.keys(tags).length) continue
    if (keyTags.every((tag) => tags[tag.key] === tag.value)) return (pair.metricState as { count: number }).count
  }
  return 0
}

describe("round 8: a process that lives for weeks", () => {
  it.live(
    "300 Clients to new endpoints (a path each, refused): past 256 endpoints, the attempts count under endpoint 'other'; the registry keeps no key per endpoint beyond",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const port = yield* closedPort
        const before = Metrics.tagTableSizes().endpoints
        const room = Metrics.MAX_ENDPOINT_TAGS - before
        const otherBefore = counterOf("lifeline_connect_failures", {
          reason: "ConnectionRefused",
          endpoint: Metrics.OTHER_ENDPOINT
        })
        const total = 300
        yield* Effect.forEach(
          Array.from({ length: total }, (_, n) => n),
          (n) =>
            Effect.scoped(Effect.gen(function*() {
              const client = yield* Client.make({ url: `ws://127.0.0.1:${port}/r8/room/${n}` })
              yield* awaitState(client, isTag("Backoff"))
            })),
          { concurrency: 25, discard: true }
        )
        // Every endpoint past the bound shares one key: at most 256 values and "other".
        const values = endpointValues()
        expect(values.size).toBeLessThanOrEqual(Metrics.MAX_ENDPOINT_TAGS + 1)
        expect(values.has(Metrics.OTHER_ENDPOINT)).toBe(true)
        // Each Client failed once (closed in its first Backoff): the others counted exactly.
        expect(
          counterOf("lifeline_connect_failures", { reason: "ConnectionRefused", endpoint: Metrics.OTHER_ENDPOINT }) -
            otherBefore
        ).toBe(total - Math.max(0, room))
        // lifeline's own table of tags: full, and no larger.
        expect(Metrics.tagTableSizes().endpoints).toBe(Metrics.MAX_ENDPOINT_TAGS)
      })).pipe(provideNode)
  )
})
