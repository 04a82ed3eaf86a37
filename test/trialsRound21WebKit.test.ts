/**
 * Round 21: WebKit (Safari's engine) as a third browser engine: Debian's WebKitGTK 2.50 on Xvfb,
 * driven with no driver (test/support/webkit.ts: the page kit Firefox's uses, one WebKit for the
 * file, each test in a fresh iframe). The same page scripts as round 20's Firefox file
 * (test/browser/client.ts, firefox.ts, refused.ts, burst.ts, compat.ts) and this round's
 * test/browser/webkit.ts. What Chromium and Firefox do, where WebKit differs, is said at each test
 * (docs/trials.md, round 21).
 */
import { Effect } from "effect"
import { afterAll, afterEach, describe, expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { burst as Burst } from "./browser/burst.js"
import type { Lab, Wire } from "./browser/client.js"
import type { firefoxPage as EnginePage } from "./browser/firefox.js"
import type { refusedPage as RefusedPage } from "./browser/refused.js"
import type { webkitPage as WebKitPage } from "./browser/webkit.js"
import { compatExpected, serverControl } from "./support/compatInBrowser.js"
import { polledApi } from "./support/polledBrowser.js"
import { describeWebKit, webkitSession } from "./support/webkit.js"

// Cross-origin isolated (COOP/COEP on every answer), as the Firefox file: WebKitGTK says it is,
// but still has no global SharedArrayBuffer (test 4).
const session = webkitSession(["client", "firefox", "refused", "burst", "compat", "webkit"], {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp"
})
const lab = polledApi<Lab>(session, "lab")
const engine = polledApi<typeof EnginePage>(session, "firefoxPage")
const refused = polledApi<typeof RefusedPage>(session, "refusedPage")
const burst = polledApi<typeof Burst>(session, "burst")
const webkit = polledApi<typeof WebKitPage>(session, "webkitPage")

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
const server = (options?: TestServer.Options) => session.inScope(TestServer.make(options))
const wire = (message: string | Uint8Array): Wire =>
  typeof message === "string" ? { text: message } : { bytes: [...message] }
/** What the server received: text as is, a binary frame as its length. */
const lengths = (frames: ReadonlyArray<string | Uint8Array>) =>
  frames.map((frame) => typeof frame === "string" ? frame : frame.byteLength)

describeWebKit("round 21: lifeline in WebKit (WebKitGTK)", () => {
  session.hooks()

  it("0. it is WebKit: a Safari user agent (AppleWebKit/605.1.15), started in under 15 s", async () => {
    const p = await session.page("firefox")
    expect(await engine(p, "userAgent")).toMatch(/AppleWebKit\/605\.1\.15 .*Safari\/605\.1\.15$/)
    expect(session.kit().startup).toBeLessThan(15_000)
  })

  it("1. a Client echoing text and binary; the server killed and restarted: it reconnects, the outbox is flushed, exact messages in order, none twice (as in Chromium and Firefox)", async () => {
    const p = await session.page("client")
    const echo = await server()
    await lab(p, "open", "c", { url: echo.url, retryMillis: 50 })
    await lab(p, "awaitCount", "c", "Open", 1)
    const sent: Array<Wire> = [{ text: "one" }, { bytes: [0, 1, 2, 255] }, { text: "" }, { bytes: [] }, {
      text: "héllo ✓"
    }]
    for (const message of sent) await lab(p, "send", "c", message)
    await lab(p, "awaitMessages", "c", sent.length)
    expect(await lab(p, "messages", "c")).toEqual(sent)
    await run(echo.kill)
    await lab(p, "awaitCount", "c", "Backoff", 1)
    const queued = Array.from({ length: 10 }, (_, index): Wire => ({ text: `down-${index}` }))
    await lab(p, "enqueue", "c", queued)
    expect(await lab(p, "outboxSize", "c")).toBe(10)
    // Down long enough for a few attempts (50 ms apart): each fails at once, as in Chromium.
    await lab(p, "awaitCount", "c", "Backoff", 3)
    await run(echo.restart)
    await lab(p, "awaitCount", "c", "Open", 2, 8_000)
    await lab(p, "awaitMessages", "c", sent.length + queued.length)
    expect(await lab(p, "outboxSize", "c")).toBe(0)
    expect((await run(echo.received)).map(wire)).toEqual([...sent, ...queued])
    expect(await lab(p, "messages", "c")).toEqual([...sent, ...queued])
    const transitions = await lab(p, "transitions", "c")
    expect(transitions.slice(0, 3)).toEqual([
      { tag: "Connecting" },
      { tag: "Open" },
      { tag: "Backoff", error: { _tag: "Disconnected", reason: "", code: 1006 } }
    ])
    expect(transitions.slice(-2)).toEqual([{ tag: "Connecting" }, { tag: "Open" }])
    const between = new Set(transitions.slice(3, -2).map((state) => JSON.stringify(state)))
    expect([...between].sort()).toEqual([
      JSON.stringify({ tag: "Backoff", error: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } }),
      JSON.stringify({ tag: "Connecting" })
    ])
    await lab(p, "close", "c")
  })

  it("2. the crash pattern: 20 Connections interrupted, 20 Clients closed and 20 compat sockets closed while CONNECTING (a server that hangs handshakes): each ends typed, no error or unhandledrejection in the page (as in Chromium and Firefox); most handshakes reach the server (Firefox: at most 6)", async () => {
    const p = await session.page("firefox")
    const hanging = await server()
    await run(hanging.hangHandshake)
    const result = await engine(p, "storm", hanging.url, 20)
    expect({ ...result, millis: 0 }).toEqual({
      connections: { interrupted: 20 },
      clients: { success: 20 },
      clientStates: { Closed: 20 },
      compat: { "close:1000": 20 },
      compatReadyStates: { "3": 20 },
      millis: 0
    })
    // 54 of the 60 here: those closed before WebKit's network process sent them never went.
    const requests = await run(hanging.requests)
    expect(requests).toBeGreaterThan(20)
    expect(requests).toBeLessThanOrEqual(60)
  })

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

  it("3. close codes and reasons WebKit refuses: its own close throws (InvalidAccessError, SyntaxError; its own messages); Connection.close, Client.close and compat close never throw, send 1000 for 1001/999 and cut the reason to 123 bytes (as in Chromium and Firefox)", async () => {
    const p = await session.page("firefox")
    const raw = await server()
    expect(await engine(p, "rawClose", raw.url, 1001, "")).toBe(
      "InvalidAccessError: The object does not support the operation or argument."
    )
    expect(await engine(p, "rawClose", raw.url, 999, "")).toBe(
      "InvalidAccessError: The object does not support the operation or argument."
    )
    expect(await engine(p, "rawClose", raw.url, 1000, "x".repeat(124))).toBe(
      "SyntaxError: The string did not match the expected pattern."
    )
    const cases = [[1001, "going"], [999, "x"], [4000, "é".repeat(100)]] as const
    const expected = {
      connection: [
        "Disconnected 1000 reason 5 bytes client clean",
        "Disconnected 1000 reason 1 bytes client clean",
        "Disconnected 4000 reason 122 bytes client clean"
      ],
      client: ["success Closed", "success Closed", "success Closed"],
      compat: [
        "threw \"\"; close:1001:5:clean; ",
        "threw \"\"; close:999:1:clean; ",
        "threw \"\"; close:4000:100:clean; "
      ]
    }
    for (const via of ["connection", "client", "compat"] as const) {
      const seen: Array<string> = []
      const atServer: Array<{ code: number; bytes: number }> = []
      for (const [code, reason] of cases) {
        const peers: Array<TestServer.Peer> = []
        const echo = await server({ onConnect: (peer) => void peers.push(peer) })
        seen.push(await engine(p, "closeWith", echo.url, via, code, reason))
        const closed = await run(peers[0]!.awaitClosed())
        atServer.push({ code: closed.code, bytes: Buffer.byteLength(closed.reason) })
      }
      expect(seen).toEqual(expected[via])
      expect(atServer).toEqual([{ code: 1000, bytes: 5 }, { code: 1000, bytes: 1 }, { code: 4000, bytes: 122 }])
    }
  })

  it("4. WebKit's own send: no global SharedArrayBuffer although cross-origin isolated (Chromium, Firefox: there is); a view over a shared WebAssembly memory throws a TypeError that names no SharedArrayBuffer; a Uint8Array whose buffer went to a Worker does NOT throw: an empty binary frame goes (as in Chromium and Firefox)", async () => {
    const p = await session.page("refused")
    expect(await refused(p, "crossOriginIsolated")).toBe(true)
    expect(await refused(p, "hasSharedArrayBuffer")).toBe(false)
    expect(await refused(p, "sharedKind")).toBe("[object SharedArrayBuffer]")
    const echo = await server()
    expect(await refused(p, "raw", echo.url, "shared")).toEqual({
      thrown: {
        threw: true,
        name: "TypeError",
        message: "Argument 1 ('data') to WebSocket.send must be an instance of ArrayBufferView"
      },
      byteLength: 8,
      buffered: 0
    })
    expect(await refused(p, "raw", echo.url, "detached")).toEqual({
      thrown: { threw: false, name: "", message: "" },
      byteLength: 0,
      buffered: 0
    })
    await run(echo.awaitReceived(3))
    expect(lengths(await run(echo.received))).toEqual(["after", 0, "after"])
  })

  for (const kind of ["shared", "detached"] as const) {
    it(
      `4. Connection.write/send and a Client's send of a frame ${
        kind === "shared" ? "over a shared WebAssembly memory" : "whose buffer went to a Worker"
      }: SendError WriteFailed with that frame, never an empty frame on the wire; the next frames all arrive (as in Chromium and Firefox)`,
      async () => {
        const p = await session.page("refused")
        const echo = await server()
        const cause = kind === "shared"
          ? "Argument 1 ('data') to WebSocket.send must be an instance of ArrayBufferView"
          : "the frame's ArrayBuffer is detached (transferred to another thread)"
        expect(await refused(p, "connection", echo.url, kind)).toEqual({
          write: { exit: "SendError WriteFailed", payloadIsFrame: true, cause },
          send: { exit: "SendError WriteFailed", payloadIsFrame: true, cause },
          readyState: 1,
          after: "success",
          empty: ["success", "success"]
        })
        await run(echo.awaitReceived(3))
        expect(lengths(await run(echo.received))).toEqual(["after", 0, 0])
        const paused = await server()
        await run(paused.pauseReading)
        const large = 8 * 1024 * 1024
        expect(await refused(p, "clientStart", paused.url, kind, large)).toEqual({
          outboxSize: 1,
          refused: "SendError WriteFailed"
        })
        await run(paused.resumeReading)
        expect(await refused(p, "clientFinish")).toEqual({
          large: { exit: "success", payloadIsFrame: false, cause: "" },
          refused: { exit: "SendError WriteFailed", payloadIsFrame: true, cause },
          after: "success",
          failed: 0
        })
        await run(paused.awaitReceived(4, "10 seconds"))
        expect(lengths(await run(paused.received))).toEqual(["one", "two", large, "after"])
      }
    )
  }

  it("5. 5,000 enqueues of 1 kB to a peer that stopped reading: past the 1 MiB buffered and the outbox's 1,024, refused OutboxFull at once; once it reads, every one taken arrives once, in order; failed 0 (as in Chromium and Firefox)", async () => {
    const p = await session.page("burst")
    const sink = await server({ handler: "ignore" })
    await run(sink.pauseReading)
    const { refusals, taken } = await burst(p, "enqueue", sink.url, 5_000, 1000)
    expect(refusals).toEqual(["SendError OutboxFull"])
    expect(taken.length).toBeGreaterThanOrEqual(1024 + 1024)
    expect(taken.length).toBeLessThan(5_000)
    expect(taken).toEqual(Array.from({ length: taken.length }, (_, index) => index))
    await run(sink.resumeReading)
    const received = await run(sink.awaitReceived(taken.length, "10 seconds"))
    expect(received).toEqual(taken.map((index) => `${index}:${"x".repeat(1000)}`))
    expect(await burst(p, "finish")).toEqual({ sink: "none", failed: 0, outbox: 0 })
  })

  it("6. a refused handshake (403, 503 with Retry-After, nothing listening): WebKit fires error then close 1006, the Client reports ConnectError ClosedBeforeOpen and retries (as in Chromium and Firefox: no status); failed attempts in a row are not delayed more and more (Firefox: the fifth over 500 ms)", async () => {
    const p = await session.page("firefox")
    const c = await session.page("client")
    const refusing = await server()
    await run(refusing.rejectNext(403, {}, 1))
    const forbidden = await engine(p, "rawEvents", refusing.url)
    expect(forbidden.events).toEqual(["error:3", "close:1006::unclean:3"])
    for (const [status, headers] of [[403, {}], [503, { "retry-after": "1" }]] as const) {
      const echo = await server()
      await run(echo.rejectNext(status, headers, 1))
      await lab(c, "open", `c${status}`, { url: echo.url, retryMillis: 50 })
      await lab(c, "awaitCount", `c${status}`, "Open", 1)
      expect(await lab(c, "transitions", `c${status}`)).toEqual([
        { tag: "Connecting" },
        { tag: "Backoff", error: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } },
        { tag: "Connecting" },
        { tag: "Open" }
      ])
      await lab(c, "close", `c${status}`)
    }
    const dead = await server()
    await run(dead.kill)
    const millis: Array<number> = []
    for (let attempt = 0; attempt < 5; attempt++) {
      const { events, millis: took } = await engine(p, "rawEvents", dead.url)
      expect(events).toEqual(["error:3", "close:1006::unclean:3"])
      millis.push(took)
    }
    // 50 to 200 ms each here, in no order.
    expect(Math.max(...millis)).toBeLessThan(1_000)
    await lab(c, "open", "dead", { url: dead.url, retryMillis: 50 })
    await lab(c, "awaitCount", "dead", "Backoff", 2)
    expect((await lab(c, "transitions", "dead")).slice(0, 4)).toEqual([
      { tag: "Connecting" },
      { tag: "Backoff", error: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } },
      { tag: "Connecting" },
      { tag: "Backoff", error: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } }
    ])
    await lab(c, "close", "dead")
  })

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

  describe("effect-lifeline/compat: the portable scenarios (test/compat/scenarios.ts) in WebKit, with Chromium's expectations", () => {
    let frame: number | undefined
    const command = session.kit
    const shared = async () => {
      if (frame !== undefined) return frame
      frame = 10_000
      await command().command({ op: "open", frame, name: "compat" }, 15_000)
      return frame
    }

    afterEach(async () => {
      command().setControl(undefined)
      if (frame === undefined) return
      expect(await command().command({ op: "errors", frame })).toEqual([])
    })

    afterAll(async () => {
      if (frame !== undefined) await command().command({ op: "close", frame })
    })

    for (const { name, seen, server: serverOptions } of compatExpected) {
      it(name, async () => {
        const opened = await shared()
        const echo = await server(serverOptions)
        const control = serverControl(echo) as unknown as Record<
          string,
          (...args: ReadonlyArray<unknown>) => Promise<unknown>
        >
        command().setControl((method, args) => control[method]!(...args))
        const result = await command().command({
          op: "call",
          frame: opened,
          api: "runScenario",
          method: "",
          args: [name, echo.url]
        }, 20_000)
        expect(result).toEqual(seen)
        if (name === "throwingListener") {
          const thrown = await command().command({ op: "errors", frame: opened }) as Array<string>
          expect(thrown.map((line) => /^error: (.*)$/m.exec(line)?.[1])).toEqual([
            "a bug in the app",
            "another bug in the app",
            "a bug in the app",
            "another bug in the app"
          ])
        }
      })
    }
  })
})
