/**
 * lifeline in a real browser: Debian's Chromium (headless, driven by playwright-core), a page that
 * bundles `effect-lifeline/browser` (test/browser/client.ts) and runs Clients on the browser
 * transport, against TestServers on 127.0.0.1 that Node controls. Node drives the page with
 * `page.evaluate` (`window.lab`); every test expects no `pageerror` and no console error.
 * Skipped, with one warning, where there is no Chromium (see test/support/chromium.ts).
 */
import { Effect } from "effect"
import type { Page } from "playwright-core"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { Lab, Spec, Wire } from "./browser/client.js"
import type { ControlMethod } from "./browser/compat.js"
import type { TestPage } from "./support/chromium.js"
import { bundlePage, chromiumSession, describeChromium, eventually, openPage } from "./support/chromium.js"
import { compatExpected, serverControl } from "./support/compatInBrowser.js"
import { slowPipe } from "./support/slowPipe.js"

/** Calls `window.lab[method](...args)` in the page. */
const call = <K extends keyof Lab>(
  page: Page,
  method: K,
  ...args: Parameters<Lab[K]>
): Promise<Awaited<ReturnType<Lab[K]>>> =>
  page.evaluate(
    ([method, args]) =>
      (globalThis as unknown as { lab: Record<string, (...args: ReadonlyArray<unknown>) => unknown> }).lab[method]!(
        ...args
      ),
    [method, args] as const
  ) as Promise<Awaited<ReturnType<Lab[K]>>>

const wire = (message: string | Uint8Array): Wire =>
  typeof message === "string" ? { text: message } : { bytes: [...message] }

const session = chromiumSession(["client", "compat"])
const page = () => session.page("client")

/** A TestServer on 127.0.0.1, closed after the test. */
const server = async (options?: TestServer.Options) => {
  const made = await session.inScope(TestServer.make(options))
  return { ...made, run: <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect) }
}

const spec = (url: string, extra: Partial<Spec> = {}): Spec => ({ url, retryMillis: 50, ...extra })

describeChromium("Chromium: a Client in a page", () => {
  session.hooks()

  it("the page bundles pull no Node module; one that would is refused", async () => {
    // The bundles served here passed the check (startChromium); a page that imports the Node entry fails it.
    await expect(bundlePage("refusedNode")).rejects.toThrow(/Could not resolve "node:net"/)
  })

  // The full Client and the small one (effect-lifeline/LiteClient), the same scenarios in the page.
  for (const lite of [false, true]) {
    const label = lite ? "LiteClient: " : ""
    const specOf = (url: string, extra: Partial<Spec> = {}) => spec(url, { ...extra, lite })

    it(`${label}text and binary both ways, in order, each kind kept`, async () => {
      const { page: p } = await page()
      const echo = await server()
      await call(p, "open", "c", specOf(echo.url))
      await call(p, "awaitCount", "c", "Open", 1)
      const sent: Array<Wire> = [{ text: "one" }, { bytes: [0, 1, 2, 255] }, { text: "" }, { bytes: [] }, {
        text: "héllo ✓"
      }]
      for (const message of sent) await call(p, "send", "c", message)
      await call(p, "awaitMessages", "c", sent.length)
      expect(await call(p, "messages", "c")).toEqual(sent)
      expect((await echo.run(echo.received)).map(wire)).toEqual(sent)
      expect(await call(p, "transitions", "c")).toEqual([{ tag: "Connecting" }, { tag: "Open" }])
    })

    it(`${label}server killed and restarted: reconnects and flushes its outbox, exact messages in order, none twice`, async () => {
      const { page: p, socketErrors } = await page()
      const echo = await server({ handler: "ignore" })
      await call(p, "open", "c", specOf(echo.url))
      await call(p, "awaitCount", "c", "Open", 1)
      await call(p, "send", "c", { text: "before" })
      await eventually("the first message", async () => (await echo.run(echo.received)).length === 1)
      await echo.run(echo.kill)
      await call(p, "awaitCount", "c", "Backoff", 1)
      const queued = Array.from({ length: 10 }, (_, index): Wire => ({ text: `down-${index}` }))
      await call(p, "enqueue", "c", queued)
      expect(await call(p, "outboxSize", "c")).toBe(10)
      await echo.run(echo.restart)
      await call(p, "awaitCount", "c", "Open", 2)
      await eventually("the outbox flushed", async () => (await call(p, "outboxSize", "c")) === 0)
      await call(p, "close", "c")
      expect((await echo.run(echo.received)).map(wire)).toEqual([{ text: "before" }, ...queued])
      // The attempts while the server was down: Chrome logs each failed handshake.
      expect(socketErrors.every((line) => line.includes(`127.0.0.1:${echo.port}`))).toBe(true)
    })

    it(`${label}app-level heartbeat: a server that stops answering is found, TimeoutError heartbeat, then reconnected`, async () => {
      const { page: p } = await page()
      let answering = true
      let pings = 0
      const echo = await server({
        handler: (message, reply) => {
          if (message !== "ping") return reply(message)
          pings++
          if (answering) reply("pong")
        }
      })
      // A timeout with room for a loaded machine (a pong 150 ms late was a false timeout there).
      const heartbeat = { interval: 150, timeout: 1_000, message: "ping", pong: "pong" }
      await call(p, "open", "c", specOf(echo.url, { heartbeat }))
      await call(p, "awaitCount", "c", "Open", 1)
      await eventually("three answered probes", () => pings >= 3)
      expect(await call(p, "count", "c", "Backoff")).toBe(0)
      answering = false
      await call(p, "awaitCount", "c", "Backoff", 1)
      const backoff = (await call(p, "transitions", "c")).find((state) => state.tag === "Backoff")
      expect(backoff).toEqual({ tag: "Backoff", error: { _tag: "TimeoutError", operation: "heartbeat" } })
      answering = true
      await call(p, "awaitCount", "c", "Open", 2)
      // The pongs are the heartbeat's: none reached `messages`.
      expect(await call(p, "messages", "c")).toEqual([])
    })

    it(`${label}server close codes: 1008 is fatal (Closed, no new attempt), 1012 is retried (Open again)`, async () => {
      const { page: p } = await page()
      const echo = await server()
      await call(p, "open", "policy", specOf(echo.url))
      await call(p, "awaitCount", "policy", "Open", 1)
      await echo.run(echo.closeAll(1008, "policy"))
      await call(p, "awaitCount", "policy", "Closed", 1)
      expect(await call(p, "transitions", "policy")).toEqual([
        { tag: "Connecting" },
        { tag: "Open" },
        { tag: "Closed", error: { _tag: "Disconnected", reason: "policy", code: 1008 } }
      ])
      expect(await echo.run(echo.requests)).toBe(1)

      await call(p, "open", "restart", specOf(echo.url))
      await call(p, "awaitCount", "restart", "Open", 1)
      await echo.run(echo.closeAll(1012, "restarting"))
      await call(p, "awaitCount", "restart", "Open", 2)
      expect(await call(p, "transitions", "restart")).toEqual([
        { tag: "Connecting" },
        { tag: "Open" },
        { tag: "Backoff", error: { _tag: "Disconnected", reason: "restarting", code: 1012 } },
        { tag: "Connecting" },
        { tag: "Open" }
      ])
      expect(await echo.run(echo.requests)).toBe(3)
    })

    it(`${label}offline (context.setOffline): no attempt while navigator.onLine is false, however short the backoff; online attempts at once`, async () => {
      const { context, page: p, socketErrors } = await page()
      const echo = await server()
      // Every handshake refused: the Client goes round Connecting / Backoff every 20 ms.
      await echo.run(echo.rejectNext(503, {}, 1_000_000))
      // A handshake under way when the network goes may be held by the emulation: bounded.
      await call(
        p,
        "open",
        "c",
        specOf(echo.url, { retryMillis: 20, minRetryDelayMillis: 20, openTimeoutMillis: 1_000 })
      )
      await call(p, "awaitCount", "c", "Backoff", 2)
      await context.setOffline(true)
      expect(await p.evaluate(() => navigator.onLine)).toBe(false)
      // An attempt under way when the network went fails; then the Client waits.
      await call(p, "awaitCurrent", "c", "Backoff")
      const attempts = await call(p, "count", "c", "Connecting")
      const handshakes = await echo.run(echo.requests)
      const failures = socketErrors.length
      // Twenty-five backoff delays: without the network check, about twenty-five attempts, each
      // failing at once in Chrome (net::ERR_INTERNET_DISCONNECTED, logged as a console error).
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await call(p, "count", "c", "Connecting")).toBe(attempts)
      expect(await call(p, "current", "c")).toMatchObject({ tag: "Backoff" })
      expect(await echo.run(echo.requests)).toBe(handshakes)
      expect(socketErrors.length).toBe(failures)
      await echo.run(echo.clearRejections)
      await context.setOffline(false)
      await call(p, "awaitCount", "c", "Open", 1)
      expect(await call(p, "count", "c", "Connecting")).toBe(attempts + 1)
      expect(await echo.run(echo.requests)).toBe(handshakes + 1)
    })

    it(`${label}offline then online: the online event skips what is left of a long backoff`, async () => {
      const { context, page: p } = await page()
      const echo = await server()
      await call(p, "open", "c", specOf(echo.url, { retryMillis: 3_600_000 }))
      await call(p, "awaitCount", "c", "Open", 1)
      await echo.run(echo.kill)
      await call(p, "awaitCurrent", "c", "Backoff")
      await context.setOffline(true)
      await echo.run(echo.restart)
      await context.setOffline(false)
      // Without the online event this is an hour away.
      await call(p, "awaitCount", "c", "Open", 2)
      expect((await call(p, "transitions", "c")).map((state) => state.tag)).toEqual([
        "Connecting",
        "Open",
        "Backoff",
        "Connecting",
        "Open"
      ])
    })

    it(`${label}a page stalled past interval + timeout while its probe is out: a new probe, not a false timeout (0 transitions)`, async () => {
      const testPage = await page()
      const p = testPage.page
      let pings = 0
      let stallNext = false
      let stalled: Promise<void> | undefined
      const echo = await server({
        handler: (message, reply) => {
          if (message !== "ping") return reply(message)
          pings++
          if (!stallNext) return reply("pong")
          stallNext = false
          // The page's main thread blocks right after this probe went out (a frozen or throttled
          // tab, a long task), and its answer reaches the page only after the stall: the
          // heartbeat's timer fires long past the timeout, before the answer is read.
          stalled = call(p, "stall", 1_800).then(() => reply("pong"))
        }
      })
      const heartbeat = { interval: 300, timeout: 1_000, message: "ping", pong: "pong" }
      await call(p, "open", "c", specOf(echo.url, { heartbeat }))
      await call(p, "awaitCount", "c", "Open", 1)
      await eventually("two answered probes", () => pings >= 2)
      stallNext = true
      await eventually("the stall", () => stalled !== undefined)
      await stalled
      const after = pings
      // The heartbeat goes on: probes answered after the stall, the link up all along.
      await eventually("two more probes", () => pings >= after + 2)
      expect(await call(p, "transitions", "c")).toEqual([{ tag: "Connecting" }, { tag: "Open" }])
    })
  }

  it(
    "a backlog on a slow uplink: the app-level probe waits behind it while it drains, no false heartbeat timeout, every frame arrives",
    async () => {
      const { page: p } = await page()
      const arrived: Array<number> = []
      let pings = 0
      const echo = await server({
        record: false,
        handler: (message, reply) => {
          if (message === "ping") {
            pings++
            return reply("pong")
          }
          if (typeof message !== "string") arrived.push(new DataView(message.buffer, message.byteOffset).getUint32(0))
        }
      })
      // About 3 MiB/s through the pipe (less on a loaded machine): the 24 MiB backlog takes more than
      // interval + timeout to drain, while the browser's steps of progress (about 1.5 MB, half a
      // second) stay well under the timeout. The outbox holds the backlog past 1 MiB buffered in the
      // page, so a probe goes out every interval behind that 1 MiB and what Chromium holds below the
      // page (about 5.5 MB, unseen: 2 s at 3 MiB/s, 4 s on a loaded machine): the timeout must exceed
      // that (the heartbeat's rule), hence 5 s.
      const pipe = await session.inScope(slowPipe(echo.port, 64 * 1024, 20))
      const heartbeat = { interval: 500, timeout: 5_000, message: "ping", pong: "pong" }
      await call(
        p,
        "open",
        "c",
        spec(`ws://127.0.0.1:${pipe.port}`, { heartbeat, outbox: { capacity: 1024, maxBytes: 64 * 1024 * 1024 } })
      )
      await call(p, "awaitCount", "c", "Open", 1)
      await eventually("an answered probe", () => pings >= 1)
      await call(p, "enqueueBacklog", "c", 384, 64 * 1024)
      await eventually("the whole backlog at the server", () => arrived.length >= 384, 40_000)
      expect(arrived).toEqual(Array.from({ length: 384 }, (_, index) => index))
      expect(await call(p, "failed", "c")).toBe(0)
      // The link was up all along, and the probes went on after the backlog.
      expect(await call(p, "transitions", "c")).toEqual([{ tag: "Connecting" }, { tag: "Open" }])
      const after = pings
      await eventually("a probe after the backlog", () => pings > after)
    },
    60_000
  )

  describe("effect-lifeline/compat: the portable scenarios (test/compat/scenarios.ts) in the page", () => {
    const expected = compatExpected

    // One page for the scenarios, in turn (each closes what it opened): a page load per scenario
    // would cost more than most scenarios take. Each has its own server, bridged as `current`.
    let shared: TestPage | undefined
    let current: ReturnType<typeof serverControl> | undefined

    beforeAll(async () => {
      shared = await openPage(session.kit(), "compat")
      await shared.page.exposeFunction(
        "serverControl",
        (method: ControlMethod, args: ReadonlyArray<unknown>) =>
          (current![method] as (...args: ReadonlyArray<unknown>) => Promise<unknown>)(...args)
      )
    }, 20_000)

    afterAll(async () => {
      await shared?.close()
    })

    afterEach(() => {
      current = undefined
      expect(shared!.errors.splice(0)).toEqual([])
    })

    it("every scenario of the page has its expectation here", async () => {
      const names = await shared!.page.evaluate(() =>
        (globalThis as unknown as { scenarioNames: Array<string> }).scenarioNames
      )
      expect([...names].sort()).toEqual(expected.map((each) => each.name).sort())
    })

    for (const { name, seen, server: serverOptions } of expected) {
      it(name, async () => {
        const opened = shared!
        const echo = await server(serverOptions)
        current = serverControl(echo)
        const result = await opened.page.evaluate(
          ([name, url]) =>
            (globalThis as unknown as { runScenario: (name: string, url: string) => Promise<unknown> }).runScenario(
              name,
              url
            ),
          [name, echo.url] as const
        )
        expect(result).toEqual(seen)
        if (name === "throwingListener") {
          // A listener that throws is reported as browsers report listener errors (reportError:
          // an uncaught error for the page), each once, and nothing else went wrong.
          const thrown = opened.errors.splice(0)
          expect(thrown.map((line) => /^pageerror: Error: (.*)$/m.exec(line)?.[1])).toEqual([
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
