/**
 * The scenarios the driverless browser trials run alike in Firefox (round 20,
 * test/trialsRound20Firefox.test.ts) and WebKit (round 21, test/trialsRound21WebKit.test.ts), over
 * the page kit of test/support/polledBrowser.ts: one module, called once by each engine's file
 * inside its own `describeFirefox` / `describeWebKit` (which skips loudly when the engine is
 * missing) after `session.hooks()`. What an engine does differently is a field of `BrowserEngine`,
 * with why; the tests only one engine has stay in its file, in their place (`BrowserEngine.own`).
 * The page scripts: test/browser/client.ts, firefox.ts, refused.ts, burst.ts, compat.ts, webkit.ts.
 */
import { Effect } from "effect"
import { afterAll, afterEach, describe, expect, it } from "vitest"
import { TestServer } from "../../src/testing/index.js"
import type { burst as Burst } from "../browser/burst.js"
import type { Lab, Wire } from "../browser/client.js"
import type { firefoxPage as EnginePage } from "../browser/firefox.js"
import type { refusedPage as RefusedPage } from "../browser/refused.js"
import type { webkitPage as WebKitPage } from "../browser/webkit.js"
import { compatExpected, serverControl } from "./compatInBrowser.js"
import type { PolledPage, PolledSession } from "./polledBrowser.js"
import { polledApi } from "./polledBrowser.js"

/** The page bundles both files load. */
export const SCENARIO_PAGES = ["client", "firefox", "refused", "burst", "compat", "webkit"] as const

/** Cross-origin isolated (COOP/COEP on every answer): a page can make a SharedArrayBuffer only then. */
export const ISOLATED: Readonly<Record<string, string>> = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp"
}

export const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

/** The page APIs of an engine's session, and a TestServer on 127.0.0.1 closed after the test. */
export const scenarioKit = (session: PolledSession) => ({
  lab: polledApi<Lab>(session, "lab"),
  /** test/browser/firefox.ts: written for round 20, engine-neutral (WebKit runs it too). */
  engine: polledApi<typeof EnginePage>(session, "firefoxPage"),
  refused: polledApi<typeof RefusedPage>(session, "refusedPage"),
  burst: polledApi<typeof Burst>(session, "burst"),
  webkit: polledApi<typeof WebKitPage>(session, "webkitPage"),
  server: (options?: TestServer.Options) => session.inScope(TestServer.make(options))
})

export type ScenarioKit = ReturnType<typeof scenarioKit>

/**
 * The platform's own WebSocket to a port where nothing listens, `attempts` times in a row: each
 * fires error then close 1006 (readyState 3 at both); how long each took (ms).
 */
export const deadPortMillis = async (kit: ScenarioKit, page: PolledPage, url: string, attempts: number) => {
  const millis: Array<number> = []
  for (let attempt = 0; attempt < attempts; attempt++) {
    const { events, millis: took } = await kit.engine(page, "rawEvents", url)
    expect(events).toEqual(["error:3", "close:1006::unclean:3"])
    millis.push(took)
  }
  return millis
}

/** What an engine does where engines differ, each with why; and its own tests, by where they go. */
export interface BrowserEngine {
  /** "Firefox", "WebKit": in the test names. */
  readonly name: string
  readonly session: PolledSession
  /** The engines it is the same as where nothing below says otherwise, for the test names: "Chromium and Firefox". */
  readonly sameAs: string
  /**
   * 1: while the server is down, does each attempt fail at once (WebKit, as Chromium), so that the
   * test can wait for a few of them and see both states; or does the engine hold the attempt
   * (Firefox delays a handshake after a failed one, RFC 6455 7.2.3: mostly one attempt, held until
   * the restart), so that only the kinds of state in between are known?
   */
  readonly downAttemptsFailAtOnce: boolean
  /**
   * 2: how many of the storm's 60 handshakes reach the hanging server (Firefox lets one handshake
   * per host:port be under way at a time, 6 at the most; WebKit sends most of them), and what the
   * name says of it.
   */
  readonly stormRequests: { readonly over?: number; readonly atMost: number; readonly note?: string }
  /** 3: what the platform's own `close(1001)` / `close(999)` and `close(1000, 124 bytes)` throw, in its own words. */
  readonly closeThrows: { readonly code: string; readonly reason: string; readonly note?: string }
  /**
   * 4: the platform's `send` of a view over shared memory: whether the page has a global
   * `SharedArrayBuffer` when cross-origin isolated (WebKitGTK has not: its shared frame is a
   * shared WebAssembly memory's buffer), what the name calls that frame, the TypeError's message
   * (each engine's own), and what the raw test's name says of it.
   */
  readonly sharedSend: {
    readonly global: boolean
    readonly frame: string
    readonly message: string
    readonly note: string
  }
  /**
   * 6: failed handshakes in a row to a port where nothing listens: WebKit does not delay them
   * (`notDelayed`: measured in test 6, each under `under` ms); Firefox does, more and more (its own
   * test 6b, `deadPortMillis`).
   */
  readonly failedAttempts: { readonly notDelayed: { readonly under: number; readonly note: string } } | {
    readonly delayed: true
  }
  /** The engine's own tests (in its file), in their place among the shared ones. */
  readonly own?: {
    readonly afterStorm?: () => void
    readonly afterRefusedHandshake?: () => void
  }
}

/** What the server received: text as is, a binary frame as its length. */
const lengths = (frames: ReadonlyArray<string | Uint8Array>) =>
  frames.map((frame) => typeof frame === "string" ? frame : frame.byteLength)
const wire = (message: string | Uint8Array): Wire =>
  typeof message === "string" ? { text: message } : { bytes: [...message] }
const CLOSED_BEFORE_OPEN = { tag: "Backoff", error: { _tag: "ConnectError", reason: "ClosedBeforeOpen" } } as const
const note = (text: string | undefined) => text === undefined ? "" : `; ${text}`

/**
 * The shared scenarios (1 to 6 and the compat scenarios), registered in the caller's describe
 * (after its `session.hooks()`); `engine.own`'s tests go in between.
 */
export const describeBrowserScenarios = (engine: BrowserEngine): void => {
  const { name, session, sameAs } = engine
  const kit = scenarioKit(session)
  const { burst, lab, refused, server } = kit

  it(`1. a Client echoing text and binary; the server killed and restarted: it reconnects, the outbox is flushed, exact messages in order, none twice (as in ${sameAs})`, async () => {
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
    // Down long enough for a few attempts (50 ms apart), where each fails at once (as in Chromium).
    if (engine.downAttemptsFailAtOnce) await lab(p, "awaitCount", "c", "Backoff", 3)
    await run(echo.restart)
    await lab(p, "awaitCount", "c", "Open", 2, 8_000)
    await lab(p, "awaitMessages", "c", sent.length + queued.length)
    expect(await lab(p, "outboxSize", "c")).toBe(0)
    expect((await run(echo.received)).map(wire)).toEqual([...sent, ...queued])
    expect(await lab(p, "messages", "c")).toEqual([...sent, ...queued])
    const transitions = await lab(p, "transitions", "c")
    // The link's end (1006: killed, no close frame), then the attempts while the server was down:
    // the browser, as Chromium, tells nothing of why a handshake failed.
    expect(transitions.slice(0, 3)).toEqual([
      { tag: "Connecting" },
      { tag: "Open" },
      { tag: "Backoff", error: { _tag: "Disconnected", reason: "", code: 1006 } }
    ])
    expect(transitions.slice(-2)).toEqual([{ tag: "Connecting" }, { tag: "Open" }])
    const between = [...new Set(transitions.slice(3, -2).map((state) => JSON.stringify(state)))].sort()
    const kinds = [JSON.stringify(CLOSED_BEFORE_OPEN), JSON.stringify({ tag: "Connecting" })]
    if (engine.downAttemptsFailAtOnce) expect(between).toEqual(kinds)
    else for (const state of between) expect(kinds).toContain(state)
    await lab(p, "close", "c")
  })

  it(
    `2. the crash pattern: 20 Connections interrupted, 20 Clients closed and 20 compat sockets closed while CONNECTING (a server that hangs handshakes): each ends typed, no error or unhandledrejection in the page (as in ${sameAs})${
      note(engine.stormRequests.note)
    }`,
    async () => {
      const p = await session.page("firefox")
      const hanging = await server()
      await run(hanging.hangHandshake)
      const result = await kit.engine(p, "storm", hanging.url, 20)
      expect({ ...result, millis: 0 }).toEqual({
        connections: { interrupted: 20 },
        clients: { success: 20 },
        clientStates: { Closed: 20 },
        // A close event each (as partysocket dispatches at once), and no error event.
        compat: { "close:1000": 20 },
        compatReadyStates: { "3": 20 },
        millis: 0
      })
      const { atMost, over } = engine.stormRequests
      const requests = await run(hanging.requests)
      if (over !== undefined) expect(requests).toBeGreaterThan(over)
      expect(requests).toBeLessThanOrEqual(atMost)
    }
  )

  engine.own?.afterStorm?.()

  it(
    `3. close codes and reasons ${name} refuses: its own close throws (InvalidAccessError, SyntaxError${
      note(engine.closeThrows.note)
    }); Connection.close, Client.close and compat close never throw, send 1000 for 1001/999 and cut the reason to 123 bytes (as in ${sameAs})`,
    async () => {
      const p = await session.page("firefox")
      const raw = await server()
      expect(await kit.engine(p, "rawClose", raw.url, 1001, "")).toBe(engine.closeThrows.code)
      expect(await kit.engine(p, "rawClose", raw.url, 999, "")).toBe(engine.closeThrows.code)
      expect(await kit.engine(p, "rawClose", raw.url, 1000, "x".repeat(124))).toBe(engine.closeThrows.reason)
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
          seen.push(await kit.engine(p, "closeWith", echo.url, via, code, reason))
          const closed = await run(peers[0]!.awaitClosed())
          atServer.push({ code: closed.code, bytes: Buffer.byteLength(closed.reason) })
        }
        expect(seen).toEqual(expected[via])
        // "é" x 100 is 200 bytes: cut between characters, 61 of them.
        expect(atServer).toEqual([{ code: 1000, bytes: 5 }, { code: 1000, bytes: 1 }, { code: 4000, bytes: 122 }])
      }
    }
  )

  it(`4. ${name}'s own send: ${engine.sharedSend.note}; a Uint8Array whose buffer went to a Worker does NOT throw: an empty binary frame goes (as in ${sameAs})`, async () => {
    const p = await session.page("refused")
    expect(await refused(p, "crossOriginIsolated")).toBe(true)
    expect(await refused(p, "hasSharedArrayBuffer")).toBe(engine.sharedSend.global)
    expect(await refused(p, "sharedKind")).toBe("[object SharedArrayBuffer]")
    const echo = await server()
    expect(await refused(p, "raw", echo.url, "shared")).toEqual({
      thrown: { threw: true, name: "TypeError", message: engine.sharedSend.message },
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
        kind === "shared" ? engine.sharedSend.frame : "whose buffer went to a Worker"
      }: SendError WriteFailed with that frame, never an empty frame on the wire; the next frames all arrive (as in ${sameAs})`,
      async () => {
        const p = await session.page("refused")
        const echo = await server()
        const cause = kind === "shared"
          ? engine.sharedSend.message
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
        const started = await refused(p, "clientStart", paused.url, kind, large)
        // The refused frame fails at once. The large one is still in the outbox (1), waiting on the
        // mark, unless the browser took it whole meanwhile (0: seen once in WebKit, on a loaded
        // machine); the outcomes below hold either way.
        expect(started.refused).toBe("SendError WriteFailed")
        expect([0, 1]).toContain(started.outboxSize)
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

  it(`5. 5,000 enqueues of 1 kB to a peer that stopped reading: past the 1 MiB buffered and the outbox's 1,024, refused OutboxFull at once; once it reads, every one taken arrives once, in order; failed 0 (as in ${sameAs})`, async () => {
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

  const notDelayed = "notDelayed" in engine.failedAttempts ? engine.failedAttempts.notDelayed : undefined
  it(
    `6. a refused handshake (403, 503 with Retry-After, nothing listening): ${name} fires error then close 1006, the Client reports ConnectError ClosedBeforeOpen and retries (as in ${sameAs}: no status)${
      note(notDelayed?.note)
    }`,
    async () => {
      const p = await session.page("firefox")
      const c = await session.page("client")
      const refusing = await server()
      await run(refusing.rejectNext(403, {}, 1))
      const forbidden = await kit.engine(p, "rawEvents", refusing.url)
      expect(forbidden.events).toEqual(["error:3", "close:1006::unclean:3"])
      for (const [status, headers] of [[403, {}], [503, { "retry-after": "1" }]] as const) {
        const echo = await server()
        await run(echo.rejectNext(status, headers, 1))
        await lab(c, "open", `c${status}`, { url: echo.url, retryMillis: 50 })
        await lab(c, "awaitCount", `c${status}`, "Open", 1)
        expect(await lab(c, "transitions", `c${status}`)).toEqual([
          { tag: "Connecting" },
          CLOSED_BEFORE_OPEN,
          { tag: "Connecting" },
          { tag: "Open" }
        ])
        await lab(c, "close", `c${status}`)
      }
      const dead = await server()
      await run(dead.kill)
      if (notDelayed !== undefined) {
        // 50 to 200 ms each in WebKit here, in no order (Firefox: longer and longer, its test 6b).
        expect(Math.max(...await deadPortMillis(kit, p, dead.url, 5))).toBeLessThan(notDelayed.under)
      }
      await lab(c, "open", "dead", { url: dead.url, retryMillis: 50 })
      await lab(c, "awaitCount", "dead", "Backoff", 2)
      expect((await lab(c, "transitions", "dead")).slice(0, 4)).toEqual([
        { tag: "Connecting" },
        CLOSED_BEFORE_OPEN,
        { tag: "Connecting" },
        CLOSED_BEFORE_OPEN
      ])
      await lab(c, "close", "dead")
    }
  )

  engine.own?.afterRefusedHandshake?.()

  describe(`effect-lifeline/compat: the portable scenarios (test/compat/scenarios.ts) in ${name}, with Chromium's expectations`, () => {
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

    for (const { name: scenario, seen, server: serverOptions } of compatExpected) {
      it(scenario, async () => {
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
          args: [scenario, echo.url]
        }, 20_000)
        expect(result).toEqual(seen)
        if (scenario === "throwingListener") {
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
}
