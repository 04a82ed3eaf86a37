/**
 * Page script for chromium.test.ts: the portable scenarios of test/compat/scenarios.ts, run in the
 * page against `effect-lifeline/compat` (its browser entry, over the page's own WebSocket). The
 * scenarios' `ServerControl` is bridged to Node: each method calls `window.serverControl`, which
 * the test exposes with `page.exposeFunction`. Frames cross the bridge as `{ text }` / `{ bytes }`,
 * and results come back as plain data (bytes as arrays of numbers).
 */
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import type { ServerControl } from "../compat/scenarios.js"
import * as Scenarios from "../compat/scenarios.js"

export type Frame = { readonly text: string } | { readonly bytes: ReadonlyArray<number> }

export const toFrame = (frame: string | Uint8Array): Frame =>
  typeof frame === "string" ? { text: frame } : { bytes: [...frame] }
const fromFrame = (frame: Frame): string | Uint8Array => "text" in frame ? frame.text : new Uint8Array(frame.bytes)

/** The ServerControl methods, as the bridge names them. */
export type ControlMethod = keyof ServerControl

const bridge = (method: ControlMethod, args: ReadonlyArray<unknown> = []): Promise<unknown> =>
  (globalThis as unknown as {
    serverControl: (method: ControlMethod, args: ReadonlyArray<unknown>) => Promise<unknown>
  }).serverControl(method, args)

const server: ServerControl = {
  kill: () => bridge("kill").then(() => {}),
  restart: () => bridge("restart").then(() => {}),
  closeWith: (code, reason) => bridge("closeWith", [code, reason]).then(() => {}),
  reject: (status, count) => bridge("reject", [status, count]).then(() => {}),
  hang: () => bridge("hang").then(() => {}),
  behave: () => bridge("behave").then(() => {}),
  send: (frame) => bridge("send", [toFrame(frame)]).then(() => {}),
  sendThenClose: (frames, code, reason) => bridge("sendThenClose", [frames, code, reason]).then(() => {}),
  sent: async () => ((await bridge("sent")) as ReadonlyArray<Frame>).map(fromFrame),
  requests: async () => (await bridge("requests")) as number,
  accepted: async () => (await bridge("accepted")) as number,
  offeredProtocols: async () => (await bridge("offeredProtocols")) as string
}

/** Bytes as arrays of numbers, everything else as it is: what can cross back to Node. */
const plain = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return [...value]
  if (Array.isArray(value)) return value.map(plain)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, plain(field)]))
  }
  return value
}

/** Every scenario the module exports: its exports but the helpers (a new scenario is run here too). */
const HELPERS = new Set(["describeEvent", "record", "next", "until", "sleep"])
const scenarios: Record<string, Scenarios.Scenario<unknown>> = Object.fromEntries(
  Object.entries(Scenarios).filter(([name, value]) => typeof value === "function" && !HELPERS.has(name))
) as Record<string, Scenarios.Scenario<unknown>>

const runScenario = async (name: string, url: string): Promise<unknown> => {
  const scenario = scenarios[name]
  if (scenario === undefined) throw new Error(`no scenario ${name}`)
  return plain(await scenario({ url, server, WebSocket: ReconnectingWebSocket, platform: "browser" }))
}

Object.assign(globalThis, { runScenario, scenarioNames: Object.keys(scenarios), pageReady: true })
