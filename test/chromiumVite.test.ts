/**
 * The page of test/chromium.test.ts (test/browser/client.ts) as Vite builds an app for production
 * (Rollup, which keeps only what is used of Effect's index, and esbuild's minifier), in Debian's
 * Chromium: the build most browser apps use, and the one `npm run bench:bundle` measures beside
 * esbuild's. The same scenarios for the full Client and the small one. Skipped, with one warning,
 * where there is no Chromium.
 */
import { Effect } from "effect"
import type { Page } from "playwright-core"
import { describe, expect, it } from "vitest"
import { TestServer } from "../src/testing/index.js"
import type { Lab, Spec, Wire } from "./browser/client.js"
import { chromiumSession, describeChromium, eventually } from "./support/chromium.js"

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

const session = chromiumSession(["client-vite"])

/** A TestServer on 127.0.0.1, closed after the test. */
const server = async (options?: TestServer.Options) => {
  const made = await session.inScope(TestServer.make(options))
  return { ...made, run: <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect) }
}

describeChromium("Chromium: a Client in a page that Vite built", () => {
  session.hooks()

  for (const lite of [false, true]) {
    describe(lite ? "LiteClient" : "Client", () => {
      const spec = (url: string): Spec => ({ url, retryMillis: 50, lite })

      it("text and binary both ways, in order; a server killed and restarted: the outbox flushed, each message once, in order", async () => {
        const { page: p } = await session.page("client-vite")
        const echo = await server()
        await call(p, "open", "c", spec(echo.url))
        await call(p, "awaitCount", "c", "Open", 1)
        const sent: Array<Wire> = [{ text: "one" }, { bytes: [0, 1, 2, 255] }, { text: "héllo ✓" }]
        for (const message of sent) await call(p, "send", "c", message)
        await call(p, "awaitMessages", "c", sent.length)
        expect(await call(p, "messages", "c")).toEqual(sent)
        await echo.run(echo.kill)
        await call(p, "awaitCount", "c", "Backoff", 1)
        const queued = Array.from({ length: 10 }, (_, index): Wire => ({ text: `down-${index}` }))
        await call(p, "enqueue", "c", queued)
        expect(await call(p, "outboxSize", "c")).toBe(10)
        await echo.run(echo.restart)
        await call(p, "awaitCount", "c", "Open", 2)
        await eventually("the outbox flushed", async () => (await call(p, "outboxSize", "c")) === 0)
        await call(p, "awaitMessages", "c", sent.length + queued.length)
        expect(await call(p, "messages", "c")).toEqual([...sent, ...queued])
        await call(p, "close", "c")
        expect((await echo.run(echo.received)).map(wire)).toEqual([...sent, ...queued])
      })

      it("a server's 1008 is fatal: Closed with Disconnected 1008, no new attempt", async () => {
        const { page: p } = await session.page("client-vite")
        const echo = await server()
        await call(p, "open", "c", spec(echo.url))
        await call(p, "awaitCount", "c", "Open", 1)
        await echo.run(echo.closeAll(1008, "policy"))
        await call(p, "awaitCount", "c", "Closed", 1)
        expect(await call(p, "transitions", "c")).toEqual([
          { tag: "Connecting" },
          { tag: "Open" },
          { tag: "Closed", error: { _tag: "Disconnected", reason: "policy", code: 1008 } }
        ])
        expect(await echo.run(echo.requests)).toBe(1)
      })
    })
  }
})
