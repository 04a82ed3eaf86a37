/**
 * Round 20: Firefox ESR as a second browser engine. Every browser test before ran in Chromium (or
 * over Node's own WebSocket); here the same page scripts run in Debian's Firefox, driven with no
 * driver (test/support/firefox.ts: playwright-core 1.65's WebDriver BiDi cannot open a page in
 * Firefox ESR 153), each test in a fresh iframe of one Firefox started for the file. The scenarios
 * WebKit runs too are test/support/browserScenarios.ts, with Firefox's differences below; the
 * tests here are Firefox's own. What Chromium does, where it differs, is said at each test
 * (docs/trials.md, round 20).
 */
import { expect, it } from "vitest"
import {
  deadPortMillis,
  describeBrowserScenarios,
  ISOLATED,
  run,
  SCENARIO_PAGES,
  scenarioKit
} from "./support/browserScenarios.js"
import { describeFirefox, firefoxSession } from "./support/firefox.js"

const session = firefoxSession(SCENARIO_PAGES, ISOLATED)
const kit = scenarioKit(session)
const { lab, server, webkit } = kit
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

describeFirefox("round 20: lifeline in Firefox ESR", () => {
  session.hooks()

  describeBrowserScenarios({
    name: "Firefox",
    session,
    sameAs: "Chromium",
    // Firefox delays a handshake after a failed one: mostly one attempt while the server is
    // down, held until the restart.
    downAttemptsFailAtOnce: false,
    // Firefox lets one handshake per host:port be under way at a time; most never reached the server.
    stormRequests: { atMost: 6 },
    closeThrows: {
      code: "InvalidAccessError: A parameter or an operation is not supported by the underlying object",
      reason: "SyntaxError: An invalid or illegal string was specified"
    },
    sharedSend: {
      global: true,
      frame: "over a SharedArrayBuffer",
      message:
        "WebSocket.send: Argument 1 can't be a SharedArrayBuffer or an ArrayBufferView backed by a SharedArrayBuffer",
      note: "a view over a SharedArrayBuffer throws a TypeError (as in Chromium; only the message differs)"
    },
    // Each failed handshake to a host:port delays the next one: test 6b.
    failedAttempts: { delayed: true },
    own: {
      afterStorm: () => {
        it("2b. Firefox only: handshakes abandoned while the server holds them take Firefox's 6 connections to that host:port; a Client (openTimeout 300 ms) then never reaches the server again, even once it answers, until the server drops them (Chromium: every attempt reaches it)", async () => {
          const p = await session.page("client")
          const hanging = await server()
          await run(hanging.hangHandshake)
          await lab(p, "open", "h", { url: hanging.url, retryMillis: 50, openTimeoutMillis: 300 })
          await lab(p, "awaitCount", "h", "Backoff", 7, 8_000)
          expect(await run(hanging.requests)).toBe(6)
          await run(hanging.behave)
          await sleep(1_000)
          // The server answers again: the Client's attempts time out in Firefox, none reaches it.
          expect(await lab(p, "count", "h", "Open")).toBe(0)
          expect(await run(hanging.requests)).toBe(6)
          const last = await lab(p, "transitions", "h")
          expect(last.filter((state) => state.tag === "Backoff").at(-1)).toEqual({
            tag: "Backoff",
            error: { _tag: "TimeoutError", operation: "open" }
          })
          // The server drops every connection (restart): the next attempt reaches it and opens.
          await run(hanging.kill)
          await run(hanging.restart)
          await lab(p, "awaitCount", "h", "Open", 1, 5_000)
          // Attempts reach it again, and more: Firefox had kept the handshakes the Client gave up on
          // queued, and now makes them (the server accepts connections the page closed long ago).
          expect(await run(hanging.requests)).toBeGreaterThan(6)
          expect(await run(hanging.accepted)).toBeGreaterThanOrEqual(1)
          expect(await lab(p, "count", "h", "Open")).toBe(1)
          await lab(p, "close", "h")
        })
      },
      afterRefusedHandshake: () => {
        it("6b. Firefox only: each failed handshake to a host:port delays the next one (RFC 6455 7.2.3): 5 attempts in a row to a port with nothing listening take longer and longer, the fifth over 500 ms (Chromium: a few ms each)", async () => {
          const p = await session.page("firefox")
          const dead = await server()
          await run(dead.kill)
          const millis = await deadPortMillis(kit, p, dead.url, 5)
          expect(millis[4]!).toBeGreaterThan(500)
          expect(millis[4]!).toBeGreaterThan(millis[1]!)
        })

        it("7b (round 21). a server that accepts none of the offered subprotocols (no Sec-WebSocket-Protocol): Firefox opens the socket, protocol \"\" (as WebKit; Chromium fails the handshake); a Connection fails ConnectError ProtocolViolation, as on Node (was: open, protocol \"\")", async () => {
          const p = await session.page("webkit")
          const none = await server({ protocols: ["z"] })
          expect((await webkit(p, "defaults", none.url, ["a"])).protocol).toBe("")
          expect(await webkit(p, "connectWith", none.url, ["a"])).toBe("ConnectError ProtocolViolation")
          expect(await run(none.accepted)).toBe(2)
        })
      }
    }
  })
})
