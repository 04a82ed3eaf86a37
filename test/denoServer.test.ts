/**
 * Deno's own WebSocket server as the peer of a Client on Node (docs/trials.md, "round 36"): stopped
 * by its `AbortSignal`, it closes each link with code 1005 in its close frame, which may not be
 * sent. lifeline reads that as no valid close frame (1006, as a browser does) and reconnects once
 * the server is back; it was 1002 from this side, final, and the Client stopped for good.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schedule, Stream } from "effect"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import { Client } from "../src/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { quietNode } from "./support/node.js"
import { spawnChild } from "./support/opsSpawn.js"
import { awaitTrue } from "./support/poll.js"
import { present, runtimes } from "./support/runtimes.js"

const deno = runtimes.find((runtime) => runtime.name === "deno")!

/** test/support/denoServer.ts on Deno: the child, and its URL once it listens. */
const denoServer = Effect.gen(function*() {
  const server = yield* spawnChild("denoServer.ts", [], { runtime: deno.child!, bound: 25_000 })
  const line = yield* server.line((line) => line.startsWith("{\"port\""), "its port")
  return { server, url: `ws://127.0.0.1:${(JSON.parse(line) as { port: number }).port}/` }
})

describe.skipIf(!present(deno))("Deno.serve as a peer", () => {
  it.scopedLive(
    "stopped by its AbortSignal (close code 1005 on the wire): Backoff by Disconnected 1006 client, then Open again on the restarted server, the echo through both",
    () =>
      Effect.gen(function*() {
        const { server, url } = yield* denoServer
        const client = yield* Client.make({
          url,
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

  it.scopedLive(
    "the partysocket API as users write it (compat, its defaults but the delays): close 1006 with ws's reason, a close 1006 per attempt refused meanwhile, open again, every message echoed once, retryCount the retry that opened it",
    () =>
      Effect.gen(function*() {
        const { server, url } = yield* denoServer
        const socket = new ReconnectingWebSocket(url, [], { minReconnectionDelay: 100, maxReconnectionDelay: 200 })
        yield* Effect.addFinalizer(() => Effect.sync(() => socket.close()))
        const events: Array<string> = []
        socket.onopen = () => events.push("open")
        socket.onclose = (event) => events.push(`close ${event.code} ${event.reason}`)
        socket.onmessage = (event) => events.push(`message ${String(event.data)}`)
        yield* awaitTrue(Effect.sync(() => events.includes("open")), "open")
        socket.send("before")
        yield* server.line((line) => line.includes("restarted"), "the restart")
        yield* awaitTrue(Effect.sync(() => events.filter((event) => event === "open").length === 2), "open again")
        socket.send("after")
        yield* awaitTrue(Effect.sync(() => events.includes("message after")), "the echo after")
        // The link's end, then a close for each attempt refused while the server was down (as a
        // browser's WebSocket fires one per failed attempt), then the new link.
        const seen = [...events]
        expect(seen.slice(0, 3)).toEqual([
          "open",
          "message before",
          "close 1006 Invalid WebSocket frame: invalid status code 1005"
        ])
        expect(seen.slice(3, -2).every((event) => event === "close 1006 ")).toBe(true)
        expect(seen.slice(-2)).toEqual(["open", "message after"])
        // The retry that opened it is the one after the last close (0 again only after minUptime).
        expect(socket.retryCount).toBe(seen.filter((event) => event.startsWith("close")).length)
      }),
    40_000
  )
})
