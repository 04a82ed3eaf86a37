/**
 * lifeline on Bun and Deno (docs/trials.md, "round 35"): the Connection and the Client run there
 * (test/support/runtimeChild.ts), over the Node transport (Bun's own `ws` on Bun, the npm `ws` on
 * Deno) and over the browser transport (the runtime's global `WebSocket`), against TestServers in
 * this process. Each run must exit 0 with nothing on stderr: an error thrown past lifeline would
 * print there or end the process.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as TestServer from "../src/testing/TestServer.js"
import { closedPort } from "./support/ports.js"
import { present, runScenario, runtimes } from "./support/runtimes.js"

const transports = ["node", "browser"] as const

for (const runtime of runtimes) {
  describe.skipIf(!present(runtime))(`on ${runtime.name}`, () => {
    for (const transport of transports) {
      describe(`over the ${transport} transport`, () => {
        it.scoped(
          "echo, and the typed errors of a refused port, a 503 with Retry-After and a hung upgrade",
          () =>
            Effect.gen(function*() {
              const echo = yield* TestServer.make()
              const rejected = yield* TestServer.make()
              yield* rejected.rejectNext(503, { "Retry-After": "7" }, 100)
              const hung = yield* TestServer.make()
              yield* hung.hangHandshake
              const run = yield* runScenario(runtime, "basics", {
                transport,
                echo: echo.url,
                rejected: rejected.url,
                hung: hung.url,
                refused: `ws://127.0.0.1:${yield* closedPort}/`
              })
              expect(run.stderr).toBe("")
              expect(run.code).toBe(0)
              expect(run.result).toEqual({
                echoed: {
                  messages: ["hello", { binary: [1, 2, 3] }],
                  close: { code: 4000, reason: "bye", initiator: "client" }
                },
                // A browser's WebSocket says only that the handshake failed, not why (as in Chromium).
                ...(transport === "node" ?
                  {
                    refused: { tag: "ConnectError", reason: "ConnectionRefused" },
                    rejected: { tag: "ConnectError", reason: "HandshakeRejected", status: 503, retryAfter: 7000 }
                  } :
                  {
                    refused: { tag: "ConnectError", reason: "ClosedBeforeOpen" },
                    rejected: { tag: "ConnectError", reason: "ClosedBeforeOpen" }
                  }),
                hung: { tag: "TimeoutError", operation: "open" }
              })
            }),
          60_000
        )

        it.scoped("connects given up while CONNECTING never throw past lifeline", () =>
          Effect.gen(function*() {
            const echo = yield* TestServer.make()
            const hung = yield* TestServer.make()
            yield* hung.hangHandshake
            const run = yield* runScenario(runtime, "abandoned", {
              transport,
              echo: echo.url,
              hung: hung.url,
              count: 60
            })
            expect(run.stderr).toBe("")
            expect(run.code).toBe(0)
            const outcomes = run.result as Record<string, number>
            expect(outcomes["hung interrupted"]).toBe(60)
            expect((outcomes["echo interrupted"] ?? 0) + (outcomes["echo opened"] ?? 0)).toBe(60)
          }), 60_000)

        // Deno's WebSocket cannot be made to let go of such a socket: its process lives on until
        // the peer ends TCP (docs/guide.md, "Deno and Bun").
        it.scoped.skipIf(runtime.name === "deno" && transport === "browser")(
          "a close the peer never answers: given up after closeTimeout, and the process exits by itself at once",
          () =>
            Effect.gen(function*() {
              const server = yield* TestServer.make()
              yield* server.pauseReading
              let closedAt = 0
              const run = yield* runScenario(runtime, "unanswered", { transport, url: server.url }, {
                onLine: (line) => {
                  if (line === "closed") closedAt = Date.now()
                }
              })
              const exitedAfter = Date.now() - closedAt
              expect(run.stderr).toBe("")
              expect(run.code).toBe(0)
              expect(run.result).toEqual({ code: 1006, initiator: "client", wasClean: false })
              // A hang guard, not a timing: Bun's WebSocket held the process about 36 s.
              expect(exitedAfter).toBeLessThan(15_000)
            }),
          60_000
        )

        it.scoped(
          "a connection whose server is killed: Disconnected 1006 from the transport",
          () =>
            Effect.gen(function*() {
              const server = yield* TestServer.make()
              const run = yield* runScenario(runtime, "dropped", { transport, url: server.url }, {
                onLine: (line) => {
                  if (line === "kill") Effect.runFork(server.kill)
                }
              })
              expect(run.stderr).toBe("")
              expect(run.code).toBe(0)
              // Deno's WebSocket says code 0 (round 35)
              expect(run.result).toEqual({ code: 1006, initiator: "transport", wasClean: false })
            }),
          60_000
        )

        it.scoped(
          "a Client through a server killed and restarted: every message once, in order",
          () =>
            Effect.gen(function*() {
              const server = yield* TestServer.make()
              const run = yield* runScenario(
                runtime,
                "restart",
                { transport, url: server.url, first: 50, second: 50 },
                {
                  onLine: (line, answer) => {
                    if (line === "kill") {
                      // "written" is in the kernel: the server reads all 50 first, then dies.
                      Effect.runFork(Effect.gen(function*() {
                        yield* server.awaitReceived(50)
                        yield* server.kill
                        answer("go")
                        yield* Effect.sleep(300)
                        yield* server.restart
                      }))
                    }
                  }
                }
              )
              expect(run.stderr).toBe("")
              expect(run.code).toBe(0)
              expect(run.result).toEqual({ down: "Backoff", failed: 0, outboxSize: 0 })
              const received = yield* server.received
              expect(received).toEqual([...Array.from({ length: 100 }, (_, i) => String(i + 1)), "end"])
            }),
          60_000
        )
      })
    }
  })
}
