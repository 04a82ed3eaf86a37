/** Runs a TypeScript file in a child Node process (its bundle: test/support/childBundle.ts): its exit code and what it printed. */
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { bundledChild } from "./childBundle.js"

export interface ScriptRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** `script`: a file URL; `nodeArgs` go before the script. Killed with the fiber, or after 60 s. */
export const runNodeScript = (script: URL, nodeArgs: ReadonlyArray<string> = []): Effect.Effect<ScriptRun> =>
  Effect.flatMap(bundledChild(fileURLToPath(script)), (file) =>
    Effect.async<ScriptRun>((resume) => {
      const child = execFile(
        process.execPath,
        [...nodeArgs, file],
        { timeout: 60_000 },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
          resume(Effect.succeed({ code, stdout, stderr }))
        }
      )
      return Effect.sync(() => child.kill())
    }))
