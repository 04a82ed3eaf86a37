/**
 * The heartbeat when this process is held up right after a probe went out (a loaded machine, a
 * GC pause, a synchronous handler), while the peer, in a process of its own, answers at once.
 * The turn that ends the stall runs its timers before its I/O: the probe's wait has run out, and
 * the answer sits unread in the socket. A fresh-clone run found a Client "dead" so, its pong
 * there (round 13's blocked-loop trial, a 1 s timeout, on a loaded machine). The wait that ran out
 * late is now looked at once more, a turn later, after that I/O.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Schedule, Stream } from "effect"
import { Client, NodeTransport, Transport } from "../src/index.js"
import { spawnChild } from "./support/opsSpawn.js"
import { withSocket } from "./support/wrappedTransport.js"

/** Holds this process for `millis`, as a synchronous handler or a stall of the machine would. */
const holdUp = (millis: number) => {
  const until = performance.now() + millis
  while (performance.now() < until) {
    // held
  }
}

describe("the heartbeat when this process is held up after a probe", () => {
  it.scopedLive(
    "held up 450 ms just after each probe (timeout 300 ms), the answer arriving meanwhile: no TimeoutError heartbeat, Open throughout",
    () =>
      Effect.gen(function*() {
        const child = yield* spawnChild("pongChild.ts", [])
        const port = (yield* child.line((line) => line.startsWith("PORT "), "its port")).slice("PORT ".length)
        let probes = 0
        // The real socket; each of the first six probes (a protocol ping) holds this process up once
        // it went out, in the turn's check phase: after the I/O that found nothing yet, before the
        // timers and I/O of the next turn. (Held up in the timer's own callback, the next step
        // would fall due only after the next turn's I/O: libuv's loop time is read once a turn.)
        const transport = withSocket(NodeTransport.make, (socket) => ({
          ping: () => {
            const sent = socket.ping()
            if (sent && probes++ < 6) setImmediate(holdUp, 450)
            return sent
          }
        }))
        const client = yield* Client.make({
          url: `ws://127.0.0.1:${port}`,
          retry: Schedule.stop,
          heartbeat: { interval: "200 millis", timeout: "300 millis" }
        }).pipe(Effect.provide(Layer.succeed(Transport.Transport, transport)))
        yield* client.awaitOpen
        const transitions: Array<string> = []
        yield* Effect.forkScoped(Stream.runForEach(client.events, (event) =>
          Effect.sync(() => {
            if (event._tag === "Transition") transitions.push(event.to._tag)
          })))
        // Six held-up probes, then two more answered on time.
        for (let i = 0; i < 100 && probes < 8; i++) yield* Effect.sleep("50 millis")
        yield* Effect.sleep("100 millis")
        expect((yield* client.state.get)._tag).toBe("Open")
        // The states seen so far, replayed to a new subscriber, and nothing after them.
        expect(transitions).toEqual(["Connecting", "Open"])
      }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger))),
    30_000
  )
})
