/**
 * Deno's own WebSocket server as the peer of a Client on Node (docs/trials.md, "round 36"): stopped
 * by its `AbortSignal`, it closes each link with code 1005 in its close frame, which may not be
 * sent. lifeline reads that as no valid close frame (1006, as a browser does) and reconnects once
 * the server is back; it was 1002 from this side, final, and the Client stopped for good.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schedule, Stream } from "effect"
import { Client } from "../src/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"
import { spawnChild } from "./support/opsSpawn.js"
import { present, runtimes } from "./support/runtimes.js"

const deno = runtimes.find((runtime) => runtime.name === "deno")!

describe.skipIf(!present(deno))("Deno.serve as a peer", () => {
  it.scopedLive(
    "stopped by its AbortSignal (close code 1005 on the wire): Backoff by Disconnected 1006 client, then Open again on the restarted server, the echo through both",
    () =>
      Effect.gen(function*() {
        const server = yield* spawnChild("denoServer.ts", [], { runtime: deno.child!, bound: 25_000 })
        const port = (JSON.parse(yield* server.line((line) => line.startsWith("{\"port\""), "its port")) as {
          port: number
        }).port
        const client = yield* Client.make({
          url: `ws://127.0.0.1:${port}/`,
          retry: Schedule.spaced("100 millis"),
          heartbeat: false
        })
        const echoes = yield* client.messages.pipe(Stream.take(2), Stream.runCollect, Effect.fork)
        yield* client.awaitOpen
        yield* client.send("before")
        const backoff = yield* awaitState(client, isTag("Backoff"), "15 seconds")
        expect(backoff).toMatchObject({
          error: {
            _tag: "Disconnected",
            code: 1006,
            reason: "Invalid WebSocket frame: invalid status code 1005",
            initiator: "client",
            wasClean: false
          }
        })
        yield* server.line((line) => line.includes("restarted"), "the restart")
        yield* awaitState(client, (state) => state._tag === "Open" && state.attempt > 1, "15 seconds")
        yield* client.send("after")
        expect(Array.from(yield* Fiber.join(echoes))).toEqual(["before", "after"])
        expect(yield* client.failed).toBe(0)
        expect((yield* client.state.get)._tag).toBe("Open")
      }).pipe(Effect.provide(quietNode)),
    40_000
  )
})
