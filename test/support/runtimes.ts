/**
 * Bun and Deno, the other runtimes Effect apps run on, as places to run lifeline: a child script
 * (test/support/runtimeChild.ts) bundled by esbuild and run by `bun` or `deno run -A`, its servers
 * in the test's own Node process. Found through `LIFELINE_BUN` / `LIFELINE_DENO`, else on PATH,
 * else where `.ci/run` installs them from the npm registry (node_modules/.cache/runtimes); when
 * one is missing its tests skip, saying so loudly.
 *
 * On Bun, `ws` is left out of the bundle: Bun answers `import "ws"` with a `ws` of its own, which is
 * what a Bun user's NodeTransport runs on. Deno runs the npm `ws` (bundled) over its `node:`
 * modules.
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { bundledChild } from "./childBundle.js"

const installed = fileURLToPath(new URL("../../node_modules/.cache/runtimes/node_modules/", import.meta.url))

const onPath = (name: string): string | undefined =>
  (process.env.PATH ?? "").split(Path.delimiter).map((dir) => Path.join(dir, name)).find((file) => Fs.existsSync(file))

const find = (variable: string, name: string, below: string): string | undefined => {
  const candidates = [process.env[variable], onPath(name), Path.join(installed, below)]
  return candidates.find((file): file is string => file !== undefined && file !== "" && Fs.existsSync(file))
}

export interface Runtime {
  readonly name: "bun" | "deno"
  /** The binary, absent when not installed here. */
  readonly binary: string | undefined
  /** The arguments before the script. */
  readonly args: ReadonlyArray<string>
  /** Packages the bundle leaves to the runtime. */
  readonly external: ReadonlyArray<string>
}

export const runtimes: ReadonlyArray<Runtime> = [
  { name: "bun", binary: find("LIFELINE_BUN", "bun", "@oven/bun-linux-x64/bin/bun"), args: [], external: ["ws"] },
  {
    name: "deno",
    binary: find("LIFELINE_DENO", "deno", "@deno/linux-x64-glibc/deno"),
    // No prompt, no update check, no colours in what the test reads.
    args: ["run", "-A", "--no-prompt"],
    external: []
  }
]

const warned = new Set<string>()

/** Whether `runtime` is here; once per test file, a loud warning when it is not. */
export const present = (runtime: Runtime): boolean => {
  if (runtime.binary === undefined && !warned.has(runtime.name)) {
    warned.add(runtime.name)
    console.warn(
      `\n*** tests on ${runtime.name} SKIPPED: it is not installed here (.ci/run installs it from the npm registry into node_modules/.cache/runtimes). ***\n`
    )
  }
  return runtime.binary !== undefined
}

export interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: ReadonlyArray<string>
  readonly stderr: string
  /** The JSON after the child's `RESULT ` line, if it printed one. */
  readonly result: unknown
}

const child = fileURLToPath(new URL("./runtimeChild.ts", import.meta.url))

/**
 * Runs `scenario` of runtimeChild.ts on `runtime` with `input` (JSON, its argument) and waits for
 * it to exit (killed after `within` ms). `onLine` sees each stdout line as it comes, with a way to
 * answer on the child's stdin.
 */
export const runScenario = (
  runtime: Runtime,
  scenario: string,
  input: unknown,
  options: {
    readonly within?: number
    readonly onLine?: (line: string, answer: (text: string) => void) => void
  } = {}
): Effect.Effect<Run> =>
  Effect.gen(function*() {
    const script = yield* bundledChild(child, runtime.external)
    return yield* Effect.async<Run>((resume) => {
      const process_ = ChildProcess.spawn(runtime.binary!, [...runtime.args, script, scenario, JSON.stringify(input)], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" }
      })
      const stdout: Array<string> = []
      let stderr = ""
      let rest = ""
      const answer = (text: string) => {
        process_.stdin!.write(`${text}\n`)
      }
      process_.stdin!.on("error", () => {})
      process_.stdout!.setEncoding("utf8")
      process_.stdout!.on("data", (chunk: string) => {
        const lines = (rest + chunk).split("\n")
        rest = lines.pop()!
        for (const line of lines) {
          stdout.push(line)
          options.onLine?.(line, answer)
        }
      })
      process_.stderr!.setEncoding("utf8")
      process_.stderr!.on("data", (chunk: string) => {
        stderr += chunk
      })
      const timer = setTimeout(() => process_.kill("SIGKILL"), options.within ?? 25_000)
      process_.once("close", (code, signal) => {
        clearTimeout(timer)
        const line = stdout.find((line) => line.startsWith("RESULT "))
        resume(Effect.succeed({
          code,
          signal,
          stdout,
          stderr,
          result: line === undefined ? undefined : JSON.parse(line.slice("RESULT ".length))
        }))
      })
      return Effect.sync(() => process_.kill("SIGKILL"))
    })
  })
