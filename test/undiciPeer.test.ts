/**
 * The browser transport over another implementation of the WHATWG WebSocket than Chromium's:
 * Node's own (undici's, behind `--experimental-websocket` on Node 20; the one Deno, Bun and
 * workers resemble), in a child process (test/undici/browserClient.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runNodeScript } from "./support/nodeScript.js"

const run = runNodeScript(new URL("./undici/browserClient.ts", import.meta.url), [
  "--experimental-websocket",
  "--no-warnings"
])

describe("BrowserTransport over Node's own WebSocket (undici)", () => {
  it.live(
    "echo, a restart with sends queued, a 401, a server's close code, a hung handshake: as in a browser, nothing escapes",
    () =>
      Effect.gen(function*() {
        const { code, stderr, stdout } = yield* run
        expect(stderr).toBe("")
        expect(code).toBe(0)
        expect(JSON.parse(stdout.trim())).toEqual({
          echoed: ["a", "b", "c"],
          binaryEcho: [1, 2, 3],
          afterRestart: ["d", "e", "f"],
          unsent: [],
          states: ["Connecting", "Open", "Backoff Disconnected 1006", "Connecting", "Open", "Closed"],
          received: ["a", "b", "c", "d", "e", "f"],
          // Browsers hide why a handshake failed: every pre-open failure is ClosedBeforeOpen.
          rejected: { tag: "ConnectError", reason: "ClosedBeforeOpen" },
          closedByServer: { code: 4001, reason: "bye", initiator: "server" },
          hung: { tag: "TimeoutError", operation: "open" },
          escaped: 0
        })
      }),
    60_000
  )
})
