/**
 * What a user writes, through what round 11 added: a burst written as a Stream into `client.sink`
 * through an HTTP proxy (https-proxy-agent, `NodeTransport.layerWith`), and the tunnel frozen in
 * the middle of it (a FaultProxy between the proxy and the server drops everything, TCP stays up):
 * the heartbeat finds the frozen link through the tunnel, the Client reconnects through the proxy,
 * and the burst ends with every frame accounted for.
 *
 * Tried first with a writer faster than the freeze is found (the whole burst in about 250 ms):
 * the 4,000 frames after the freeze were all "written" (handed to the kernel, which the frozen
 * path still took) before the heartbeat's timeout, and were lost with the link, no failure
 * reported: the at-most-once rule of docs/guide.md ("What was written was written"), not a new
 * bug. A heartbeat bounds how much a frozen link can swallow only by time, not by bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Logger, Schedule, Stream } from "effect"
import { HttpsProxyAgent } from "https-proxy-agent"
import { Client, NodeTransport } from "../src/index.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import { awaitState } from "./support/clientKit.js"
import * as ConnectProxy from "./support/connectProxy.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"

const COUNT = 5_000

describe("review 13: a Stream burst through an HTTP proxy whose tunnel freezes", () => {
  it.live(
    "Stream.run(client.sink) of 5,000 frames; the tunnel frozen after 1,000 echoes: TimeoutError heartbeat, reopened through the proxy, the sink completes, the server gets an in-order subsequence ending with the last frame, nothing failed",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make()
        const fault = yield* FaultProxy.make(server.port)
        const proxy = yield* ConnectProxy.make()
        const agent = new HttpsProxyAgent(proxy.url())
        yield* Effect.gen(function*() {
          const client = yield* Client.make({
            url: fault.url,
            retry: Schedule.spaced("50 millis"),
            heartbeat: { interval: "200 millis", timeout: "300 millis" }
          })
          const echoes: Array<number> = []
          const states: Array<string> = []
          yield* Effect.forkScoped(Stream.runForEach(client.state.changes, (state) =>
            Effect.sync(() => {
              states.push(state._tag === "Backoff" ? `Backoff ${state.error._tag}` : state._tag)
            })))
          yield* Effect.forkScoped(Stream.runForEach(client.messages, (message) =>
            Effect.sync(() => {
              echoes.push(Number(message))
            })))
          yield* client.awaitOpen
          const burst = yield* Effect.fork(
            Stream.range(1, COUNT).pipe(
              Stream.map(String),
              Stream.tap((frame) =>
                // a writer slower than the link (about 2.5 s in all), so that the freeze, its finding
                // and the reconnect all come mid-burst
                frame.endsWith("0") ? Effect.sleep("5 millis") : Effect.void
              ),
              Stream.run(client.sink)
            )
          )
          yield* awaitTrue(Effect.sync(() => echoes.length >= 1_000), "1,000 echoes before the freeze")
          yield* fault.blackhole
          yield* awaitState(client, (state) => state._tag === "Backoff", "20 seconds")
          yield* fault.restore
          yield* Fiber.join(burst)
          yield* awaitTrue(Effect.sync(() => echoes.at(-1) === COUNT), "the last frame echoed", 2_000)

          expect(states).toContain("Backoff TimeoutError")
          expect(states.filter((state) => state === "Open").length).toBeGreaterThanOrEqual(2)
          // Frames the frozen tunnel swallowed were written (handed to the kernel) and are lost
          // with it; every other one arrives once, in order.
          expect(echoes.every((value, index) => index === 0 || value > echoes[index - 1]!)).toBe(true)
          expect(echoes[0]).toBe(1)
          expect(echoes.length).toBeGreaterThan(1_000)
          expect(yield* client.failed).toBe(0)
          expect(proxy.tunnels()).toBeGreaterThanOrEqual(2)
          expect(proxy.requests().every((request) => request === `127.0.0.1:${fault.port}`)).toBe(true)
          expect(yield* client.close()).toEqual([])
        }).pipe(
          Effect.scoped,
          Effect.provide(Layer.merge(NodeTransport.layerWith({ agent }), Logger.remove(Logger.defaultLogger)))
        )
        agent.destroy()
      })),
    30_000
  )
})
