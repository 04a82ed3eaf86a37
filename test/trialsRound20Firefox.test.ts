/**
 * Round 20: Firefox ESR as a second browser engine. Every browser test before ran in Chromium (or
 * over Node's own WebSocket); here the same page scripts run in Debian's Firefox, driven with no
 * driver (test/support/firefox.ts: playwright-core 1.65's WebDriver BiDi cannot open a page in
 * Firefox ESR 153), each test in a fresh iframe of one Firefox started for the file. Page scripts:
 * test/browser/client.ts, refused.ts, burst.ts (as in Chromium) and firefox.ts (this round's).
 * What Chromium does, where it differs, is said at each test (docs/trials.md, round 20).
 */
import { Effect } from "effect"
import { afterAll, afterEach, describe, expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { burst as Burst } from "./browser/burst.js"
import type { Lab, Wire } from "./browser/client.js"
import type { firefoxPage as FirefoxPage } from "./browser/firefox.js"
import type { refusedPage as RefusedPage } from "./browser/refused.js"
import type { webkitPage as WebKitPage } from "./browser/webkit.js"
import { compatExpected, serverControl } from "./support/compatInBrowser.js"
import { describeFirefox, firefoxApi, firefoxSession } from "./support/firefox.js"

// Cross-origin isolated (COOP/COEP on every answer): a page can make a SharedArrayBuffer only then.
const session = firefoxSession(["client", "firefox", "refused", "burst", "compat", "webkit"], {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp"
})
const lab = firefoxApi<Lab>(session, "lab")
const page20 = firefoxApi<typeof FirefoxPage>(session, "firefoxPage")
const refused = firefoxApi<typeof RefusedPage>(session, "refusedPage")
const burst = firefoxApi<typeof Burst>(session, "burst")
const webkit = firefoxApi<typeof WebKitPage>(session, "webkitPage")

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
const server = (options?: TestServer.Options) => session.inScope(TestServer.make(options))
const wire = (message: string | Uint8Array): Wire =>
  typeof message === "string" ? { text: message } : { bytes: [...message] }
/** What the server received: text as is, a binary frame as its length. */
const lengths = (frames: ReadonlyArray<string | Uint8Array>) =>
  frames.map((frame) => typeof frame === "string" ? frame : frame.byteLength)
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

describeFirefox("round 20: lifeline in Firefox ESR", () => {
  session.hooks()

  it("1. a Client echoing text and binary; the server killed and restarted: it reconnects, the outbox is flushed, exact messages in order, none twice (as in Chromium)", async () => {
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
    await run(echo.restart)
    await lab(p, "awaitCount", "c", "Open", 2, 8_000)
    await lab(p, "awaitMessages", "c", sent.length + queued.length)
    expect(await lab(p, "outboxSize", "c")).toBe(0)
    expect((await run(echo.received)).map(wire)).toEqual([...sent, ...queued])
    expect(await lab(p, "messages", "c")).toEqual([...sent, ...queued])
    const transitions = await lab(p, "transitions", "c")
    // The link's end (1006: killed, no close frame), then the attempts while the server was down
    // (mostly one, held by Firefox until the restart): Firefox, as Chromium, tells nothing of why
    // a handshake failed.
    expect(transitions.slice(0, 3)).toEqual([
      { tag: "Connecting" },
      { tag: "Open" },
      { tag: "Backoff", error: { _tag: "Disconnected", reason: "", code: 1006 } }
    ])
    expect(transitions.slice(-2)).toEqual([{ tag: "Connecting" }, { tag: "Open" }])
    const between = new Set(transitions.slice(3, -2).map((state) => JSON.stringify(state)))
    for (const state of between) {
      expect([
        JSON.stringify({ tag: "Connecting" }),
        JSON.stringify({ tag: "Backoff", error: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } })
      ]).toContain(state)
    }
    await lab(p, "close", "c")
  })

  it("2. the crash pattern: 20 Connections interrupted, 20 Clients closed and 20 compat sockets closed while CONNECTING (a server that hangs handshakes): each ends typed, no error or unhandledrejection in the page (as in Chromium)", async () => {
    const p = await session.page("firefox")
    const hanging = await server()
    await run(hanging.hangHandshake)
    const result = await page20(p, "storm", hanging.url, 20)
    expect({ ...result, millis: 0 }).toEqual({
      connections: { interrupted: 20 },
      clients: { success: 20 },
      clientStates: { Closed: 20 },
      // A close event each (as partysocket dispatches at once), and no error event.
      compat: { "close:1000": 20 },
      compatReadyStates: { "3": 20 },
      millis: 0
    })
    // Firefox lets one handshake per host:port be under way at a time; most never reached the server.
    expect(await run(hanging.requests)).toBeLessThanOrEqual(6)
  })

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

  it("3. close codes and reasons Firefox refuses: its own close throws (InvalidAccessError, SyntaxError); Connection.close, Client.close and compat close never throw, send 1000 for 1001/999 and cut the reason to 123 bytes (as in Chromium)", async () => {
    const p = await session.page("firefox")
    const raw = await server()
    expect(await page20(p, "rawClose", raw.url, 1001, "")).toBe(
      "InvalidAccessError: A parameter or an operation is not supported by the underlying object"
    )
    expect(await page20(p, "rawClose", raw.url, 999, "")).toBe(
      "InvalidAccessError: A parameter or an operation is not supported by the underlying object"
    )
    expect(await page20(p, "rawClose", raw.url, 1000, "x".repeat(124))).toBe(
      "SyntaxError: An invalid or illegal string was specified"
    )
    const cases = [[1001, "going"], [999, "x"], [4000, "é".repeat(100)]] as const
    const expected = {
      connection: [
        "Disconnected 1000 reason 5 bytes client clean",
        "Disconnected 1000 reason 1 bytes client clean",
        "Disconnected 4000 reason 122 bytes client clean"
      ],
      client: ["success Closed", "success Closed", "success Closed"],
      // The close event carries the code and reason as passed (docs/compat.md).
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
        seen.push(await page20(p, "closeWith", echo.url, via, code, reason))
        const closed = await run(peers[0]!.awaitClosed())
        atServer.push({ code: closed.code, bytes: Buffer.byteLength(closed.reason) })
      }
      expect(seen).toEqual(expected[via])
      // "é" x 100 is 200 bytes: cut between characters, 61 of them.
      expect(atServer).toEqual([{ code: 1000, bytes: 5 }, { code: 1000, bytes: 1 }, { code: 4000, bytes: 122 }])
    }
  })

  it("4. Firefox's own send: a view over a SharedArrayBuffer throws a TypeError; a Uint8Array whose buffer went to a Worker does NOT throw: it sends an empty binary frame (both as in Chromium; only the message differs)", async () => {
    const p = await session.page("refused")
    expect(await refused(p, "crossOriginIsolated")).toBe(true)
    const echo = await server()
    expect(await refused(p, "raw", echo.url, "shared")).toEqual({
      thrown: {
        threw: true,
        name: "TypeError",
        message:
          "WebSocket.send: Argument 1 can't be a SharedArrayBuffer or an ArrayBufferView backed by a SharedArrayBuffer"
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
        kind === "shared" ? "over a SharedArrayBuffer" : "whose buffer went to a Worker"
      }: SendError WriteFailed with that frame, never an empty frame on the wire; the next frames all arrive`,
      async () => {
        const p = await session.page("refused")
        const echo = await server()
        const cause = kind === "shared"
          ? "WebSocket.send: Argument 1 can't be a SharedArrayBuffer or an ArrayBufferView backed by a SharedArrayBuffer"
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
        // A Client, the frame refused while a large one (8 MiB) waits on the mark (the server paused).
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

  it("5. 5,000 enqueues of 1 kB to a peer that stopped reading: past the 1 MiB buffered and the outbox's 1,024, refused OutboxFull at once; once it reads, every one taken arrives once, in order; failed 0 (as in Chromium)", async () => {
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

  it("6. a refused handshake (403, 503 with Retry-After, nothing listening): Firefox fires error then close 1006, the Client reports ConnectError ClosedBeforeOpen and retries (as in Chromium: no status)", async () => {
    const p = await session.page("firefox")
    const c = await session.page("client")
    const refusing = await server()
    await run(refusing.rejectNext(403, {}, 1))
    const forbidden = await page20(p, "rawEvents", refusing.url)
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

  it("6b. Firefox only: each failed handshake to a host:port delays the next one (RFC 6455 7.2.3): 5 attempts in a row to a port with nothing listening take longer and longer, the fifth over 500 ms (Chromium: a few ms each)", async () => {
    const p = await session.page("firefox")
    const dead = await server()
    await run(dead.kill)
    const millis: Array<number> = []
    for (let attempt = 0; attempt < 5; attempt++) {
      const { events, millis: took } = await page20(p, "rawEvents", dead.url)
      expect(events).toEqual(["error:3", "close:1006::unclean:3"])
      millis.push(took)
    }
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

  describe("effect-lifeline/compat: the portable scenarios (test/compat/scenarios.ts) in Firefox, with Chromium's expectations", () => {
    // One frame for the scenarios, in turn (each closes what it opened), as in chromium.test.ts.
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
          // A listener that throws is reported as browsers report listener errors: an uncaught
          // error in the page, each once, and nothing else went wrong.
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
