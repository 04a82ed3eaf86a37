import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { runNodeScript } from "./support/nodeScript.js"

const runScript = (name: string) => runNodeScript(new URL(`./crash/${name}`, import.meta.url))

describe("the crash of the mission: closing while CONNECTING, 100 times, in a child process", () => {
  it.live("raw ws (the control) crashes with 'WebSocket was closed before the connection was established'", () =>
    Effect.gen(function*() {
      const run = yield* runScript("rawWs.ts")
      expect(run.code).not.toBe(0)
      expect(run.stderr).toContain("WebSocket was closed before the connection was established")
      expect(run.stdout).not.toContain("survived")
    }))

  it.live("lifeline exits 0 with nothing on uncaughtException", () =>
    Effect.gen(function*() {
      const run = yield* runScript("lifeline.ts")
      expect(run.stderr).toBe("")
      expect(run.code).toBe(0)
      expect(JSON.parse(run.stdout.trim())).toEqual({ outcomes: { TimeoutError: 50, Interrupted: 50 }, escaped: 0 })
    }))
})
