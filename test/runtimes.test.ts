/**
 * lifeline on Bun and Deno (docs/trials.md, "round 35"): the Connection and the Client run there
 * (test/support/runtimeChild.ts), over the Node transport (Bun's own `ws` on Bun, the npm `ws` on
 * Deno) and over the browser transport (the runtime's global `WebSocket`), against TestServers in
 * this process. Each run must exit 0 by itself with nothing on stderr: an error thrown past
 * lifeline would print there or end the process.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as FaultProxy from "../src/testing/FaultProxy.js"
import * as TestServer from "../src/testing/TestServer.js"
import type { ChildExit } from "./support/opsSpawn.js"
import { closedPort } from "./support/ports.js"
import { echoScript, hasWebsockets, listen, pythonEcho, scriptFile, spawnPython } from "./support/python.js"
import { onRuntime, present, runtimes } from "./support/runtimes.js"

const transports = ["node", "browser"] as const

/** The child exited 0 by itself, nothing on stderr. */
const cleanly = (exit: ChildExit) => {
  expect(exit.bounded, "killed by the bound: it did not exit by itself").toBe(false)
  expect(exit.stderr).toBe("")
  expect(exit.code).toBe(0)
}

for (const runtime of runtimes) {
  describe.skipIf(!present(runtime))(`on ${runtime.name}`, () => {
    for (const transport of transports) {
      describe(`over the ${transport} transport`, () => {
        it.scopedLive(
          "echo, and the typed errors of a refused port, a 503 with Retry-After and a hung upgrade",
          () =>
            Effect.gen(function*() {
              const echo = yield* TestServer.make()
              const rejected = yield* TestServer.make()
              yield* rejected.rejectNext(503, { "Retry-After": "7" }, 100)
              const hung = yield* TestServer.make()
              yield* hung.hangHandshake
              const child = yield* onRuntime(runtime, "basics", {
                transport,
                echo: echo.url,
                rejected: rejected.url,
                hung: hung.url,
                refused: `ws://127.0.0.1:${yield* closedPort}/`
              })
              cleanly(yield* child.exit)
              expect(yield* child.reports).toEqual([{
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
              }])
            }),
          60_000
        )

        it.scopedLive("connects given up while CONNECTING never throw past lifeline", () =>
          Effect.gen(function*() {
            const echo = yield* TestServer.make()
            const hung = yield* TestServer.make()
            yield* hung.hangHandshake
            const child = yield* onRuntime(runtime, "abandoned", {
              transport,
              echo: echo.url,
              hung: hung.url,
              count: 60
            })
            cleanly(yield* child.exit)
            const [outcomes] = (yield* child.reports) as ReadonlyArray<Record<string, number>>
            expect(outcomes!["hung interrupted"]).toBe(60)
            expect((outcomes!["echo interrupted"] ?? 0) + (outcomes!["echo opened"] ?? 0)).toBe(60)
          }), 60_000)

        // Deno's WebSocket cannot be made to let go of such a socket: its process lives on until
        // the peer ends TCP (docs/guide.md, "Deno and Bun").
        it.scopedLive.skipIf(runtime.name === "deno" && transport === "browser")(
          "a close the peer never answers: given up after closeTimeout, and the process exits by itself at once",
          () =>
            Effect.gen(function*() {
              const server = yield* TestServer.make()
              yield* server.pauseReading
              // Bun's WebSocket held the process about 36 s: 15 s is a hang guard, not a timing.
              const child = yield* onRuntime(runtime, "unanswered", { transport, url: server.url }, 15_000)
              cleanly(yield* child.exit)
              expect(yield* child.reports).toEqual([{ code: 1006, initiator: "client", wasClean: false }])
            }),
          60_000
        )

        // The heartbeat follows a backlog's drain by the socket's byte counts: Bun's own ws has
        // none, and is read by its bufferedAmount (round 35); Deno's count whole writes only, and a
        // backlog goes out as one (docs/guide.md, "Deno and Bun"); browsers need an app-level probe.
        it.scopedLive.skipIf(runtime.name === "deno" || transport === "browser")(
          "a slow link's backlog that keeps draining: the heartbeat keeps the link up, every frame written",
          () =>
            Effect.gen(function*() {
              const server = yield* TestServer.make({ handler: "ignore" })
              const proxy = yield* FaultProxy.make(server.port)
              const child = yield* onRuntime(runtime, "slowLink", { transport, url: proxy.url, count: 256 })
              yield* child.line((line) => line === "throttle", "throttle")
              yield* proxy.throttle(2 * 1024 * 1024)
              yield* child.write("go\n")
              cleanly(yield* child.exit)
              expect(yield* child.reports).toEqual([{ written: 256, down: null }])
              expect((yield* server.received).length).toBe(256)
            }),
          60_000
        )

        // Python websockets negotiates permessage-deflate: each runtime's compression against a real peer's.
        it.scopedLive.skipIf(!hasWebsockets)(
          "a burst through Stream.run(client.sink) to Python websockets' echo: every frame back once, in order",
          () =>
            Effect.gen(function*() {
              const url = yield* pythonEcho
              const child = yield* onRuntime(runtime, "sinkBurst", { transport, url, count: 3000 })
              cleanly(yield* child.exit)
              expect(yield* child.reports).toEqual([{ echoed: 3000, inOrder: true, failed: 0 }])
            }),
          60_000
        )

        // A frozen peer (its kernel still takes bytes until its buffers fill) under a burst: on Deno
        // too, where the heartbeat cannot see a backlog drain, nothing drains here.
        it.scopedLive.skipIf(!hasWebsockets || transport === "browser")(
          "a sink burst into Python websockets frozen by SIGSTOP: TimeoutError heartbeat, and the process exits by itself",
          () =>
            Effect.gen(function*() {
              const server = yield* spawnPython(yield* scriptFile("echo.py", echoScript(false)), () => {})
              const port = yield* listen(server, 0)
              const child = yield* onRuntime(runtime, "frozenSink", { transport, url: `ws://127.0.0.1:${port}` })
              yield* child.line((line) => line === "freeze", "freeze")
              server.child.kill("SIGSTOP")
              yield* child.write("go\n")
              cleanly(yield* child.exit)
              expect(yield* child.reports).toEqual([{ down: { tag: "TimeoutError", operation: "heartbeat" } }])
            }),
          60_000
        )

        it.scopedLive(
          "a connection whose server is killed: Disconnected 1006 from the transport",
          () =>
            Effect.gen(function*() {
              const server = yield* TestServer.make()
              const child = yield* onRuntime(runtime, "dropped", { transport, url: server.url })
              yield* child.line((line) => line === "kill", "kill")
              yield* server.kill
              cleanly(yield* child.exit)
              // Deno's WebSocket says code 0 (round 35)
              expect(yield* child.reports).toEqual([{ code: 1006, initiator: "transport", wasClean: false }])
            }),
          60_000
        )

        it.scopedLive(
          "a Client through a server killed and restarted: every message once, in order",
          () =>
            Effect.gen(function*() {
              const server = yield* TestServer.make()
              const child = yield* onRuntime(runtime, "restart", { transport, url: server.url, first: 50, second: 50 })
              yield* child.line((line) => line === "kill", "kill")
              // "Written" is in the kernel: the server reads all 50 first, then dies.
              yield* server.awaitReceived(50)
              yield* server.kill
              yield* child.write("go\n")
              yield* Effect.sleep(300)
              yield* server.restart
              cleanly(yield* child.exit)
              expect(yield* child.reports).toEqual([{ down: "Backoff", failed: 0, outboxSize: 0 }])
              expect(yield* server.received).toEqual([...Array.from({ length: 100 }, (_, i) => String(i + 1)), "end"])
            }),
          60_000
        )
      })
    }
  })
}
