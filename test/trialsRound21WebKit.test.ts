/**
 * Round 21: WebKit (Safari's engine) as a third browser engine: Debian's WebKitGTK 2.50 on Xvfb,
 * driven with no driver (test/support/webkit.ts: the page kit Firefox's uses, one WebKit for the
 * file, each test in a fresh iframe). The scenarios round 20's Firefox file runs too are
 * test/support/browserScenarios.ts, with WebKit's differences below; the tests here are WebKit's
 * own (they use this round's page script, test/browser/webkit.ts). What Chromium and Firefox do,
 * where WebKit differs, is said at each test (docs/trials.md, round 21).
 */
import { expect, it } from "vitest"
import { describeBrowserScenarios, ISOLATED, run, SCENARIO_PAGES, scenarioKit } from "./support/browserScenarios.js"
import { describeWebKit, webkitSession } from "./support/webkit.js"

// Cross-origin isolated, as the Firefox file: WebKitGTK says it is, but still has no global
// SharedArrayBuffer (test 4).
const session = webkitSession(SCENARIO_PAGES, ISOLATED)
const { engine, lab, server, webkit } = scenarioKit(session)

describeWebKit("round 21: lifeline in WebKit (WebKitGTK)", () => {
  session.hooks()

  it("0. it is WebKit: a Safari user agent (AppleWebKit/605.1.15), started in under 15 s", async () => {
    const p = await session.page("firefox")
    expect(await engine(p, "userAgent")).toMatch(/AppleWebKit\/605\.1\.15 .*Safari\/605\.1\.15$/)
    expect(session.kit().startup).toBeLessThan(15_000)
  })

  describeBrowserScenarios({
    name: "WebKit",
    session,
    sameAs: "Chromium and Firefox",
    // Each attempt while the server is down fails at once, as in Chromium (Firefox holds it).
    downAttemptsFailAtOnce: true,
    // 54 of the 60 here: those closed before WebKit's network process sent them never went.
    stormRequests: { over: 20, atMost: 60, note: "most handshakes reach the server (Firefox: at most 6)" },
    closeThrows: {
      code: "InvalidAccessError: The object does not support the operation or argument.",
      reason: "SyntaxError: The string did not match the expected pattern.",
      note: "its own messages"
    },
    // No global SharedArrayBuffer although cross-origin isolated: the page's shared frame is a
    // shared WebAssembly memory's buffer, and the TypeError does not say why it is refused.
    sharedSend: {
      global: false,
      frame: "over a shared WebAssembly memory",
      message: "Argument 1 ('data') to WebSocket.send must be an instance of ArrayBufferView",
      note:
        "no global SharedArrayBuffer although cross-origin isolated (Chromium, Firefox: there is); a view over a shared WebAssembly memory throws a TypeError that names no SharedArrayBuffer"
    },
    // 50 to 200 ms each here, in no order; bounded at 1 s (Firefox: the fifth over 500 ms).
    failedAttempts: {
      notDelayed: {
        under: 1_000,
        note: "failed attempts in a row are not delayed more and more (Firefox: the fifth over 500 ms)"
      }
    },
    own: {
      afterStorm: () => {
        it("2b. handshakes abandoned while the server holds them take nothing from later ones: a Client (openTimeout 150 ms) reaches the server on every attempt, and opens as soon as it answers (as in Chromium; Firefox: 6 held, then none reaches it)", async () => {
          const p = await session.page("client")
          const hanging = await server()
          await run(hanging.hangHandshake)
          await lab(p, "open", "h", { url: hanging.url, retryMillis: 50, openTimeoutMillis: 150 })
          // Firefox's 6 slots, and one more: WebKit holds none back.
          await lab(p, "awaitCount", "h", "Backoff", 7, 8_000)
          expect(await run(hanging.requests)).toBeGreaterThanOrEqual(7)
          const last = await lab(p, "transitions", "h")
          expect(last.filter((state) => state.tag === "Backoff").at(-1)).toEqual({
            tag: "Backoff",
            error: { _tag: "TimeoutError", operation: "open" }
          })
          await run(hanging.behave)
          await lab(p, "awaitCount", "h", "Open", 1, 5_000)
          expect(await lab(p, "count", "h", "Open")).toBe(1)
          await lab(p, "close", "h")
        })
      },
      afterRefusedHandshake: () => {
        it("7. WebKit's own WebSocket: binaryType \"blob\" as made; it offers \"permessage-deflate; client_max_window_bits\" (Firefox: \"permessage-deflate\"); after close() each send adds its frame's size with header to bufferedAmount (16 for 10 bytes; Chromium and Firefox: 10), while open only its payload", async () => {
          const p = await session.page("webkit")
          const echo = await server({ protocols: ["b"] })
          expect(await webkit(p, "defaults", echo.url, ["a", "b"])).toEqual({
            binaryType: "blob",
            protocol: "b",
            extensions: "",
            events: ["open:1", "close:1005::clean:3"],
            buffered: ["closing: sent, bufferedAmount 16", "closed: sent, bufferedAmount 32"]
          })
          const headers = await run(echo.lastRequestHeaders)
          expect([headers["sec-websocket-protocol"], headers["sec-websocket-extensions"]]).toEqual([
            "a, b",
            "permessage-deflate; client_max_window_bits"
          ])
          const sink = await server({ handler: "ignore" })
          await run(sink.pauseReading)
          expect(await webkit(p, "bufferedWhileOpen", sink.url, [10, 10, 200, 0])).toEqual([10, 20, 220, 220])
          expect(await webkit(p, "connectWith", echo.url, ["a", "b"])).toBe("open \"b\"")
        })

        it("7b. a server that accepts none of the offered subprotocols (no Sec-WebSocket-Protocol): WebKit opens the socket, protocol \"\" (as Firefox; Chromium fails the handshake); a Connection fails ConnectError ProtocolViolation there, as on Node, a Client stops Closed with it, a compat socket closes 1006 \"ProtocolViolation; not retrying\" (all three were: open, protocol \"\")", async () => {
          const p = await session.page("webkit")
          const c = await session.page("client")
          const none = await server({ protocols: ["z"] })
          expect(await webkit(p, "defaults", none.url, ["a"])).toEqual({
            binaryType: "blob",
            protocol: "",
            extensions: "",
            events: ["open:1", "close:1005::clean:3"],
            buffered: ["closing: sent, bufferedAmount 16", "closed: sent, bufferedAmount 32"]
          })
          expect(await webkit(p, "connectWith", none.url, ["a"])).toBe("ConnectError ProtocolViolation")
          await lab(c, "open", "none", { url: none.url, retryMillis: 50, protocols: ["a"] })
          await lab(c, "awaitCount", "none", "Closed", 1)
          expect(await lab(c, "transitions", "none")).toEqual([
            { tag: "Connecting" },
            { tag: "Closed", error: { _tag: "ConnectError", reason: "ProtocolViolation" } }
          ])
          expect(await run(none.accepted)).toBe(3)
          // The compat facade: a final failure, as on Node (was: open, protocol "").
          expect(await webkit(p, "compatWith", none.url, ["a"])).toEqual({
            events: ["error", "close:1006:ProtocolViolation; not retrying"],
            readyState: 3
          })
          expect(await run(none.accepted)).toBe(4)
          // A subprotocol that was not offered: WebKit fails the handshake itself (error, close 1006).
          const wrong = await server()
          await run(wrong.wrongSubprotocol)
          expect(await webkit(p, "connectWith", wrong.url, ["a"])).toBe("ConnectError ClosedBeforeOpen")
        })
      }
    }
  })
})
