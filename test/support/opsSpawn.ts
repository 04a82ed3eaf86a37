/**
 * A child Node process (its bundle: test/support/childBundle.ts) that a test talks to by lines: it waits for a line the child
 * printed, writes to its stdin, sends it signals, and reads how it exited. Scoped: the child is
 * killed (SIGKILL) when the scope closes if it has not exited, and after `bound` ms in any case (90 s by default: a hang guard, not a speed claim).
 * `runtime` runs it on another runtime (Bun, Deno: test/support/runtimes.ts) instead of this Node.
 */
import { Deferred, Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { bundledChild } from "./childBundle.js"

export interface ChildExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** Killed by the `bound`: it did not exit by itself. */
  readonly bounded: boolean
}

/** Where a child runs, when not on this Node: the binary, its arguments before the script, the packages left to it. */
export interface ChildRuntime {
  readonly binary: string
  readonly args: ReadonlyArray<string>
  readonly external: ReadonlyArray<string>
}

export interface Child {
  readonly pid: number
  /** The first line (printed so far or later) that `predicate` accepts; dies after `within` ms. */
  readonly line: (predicate: (line: string) => boolean, what: string, within?: number) => Effect.Effect<string>
  /** The child's lines that are JSON objects, once it has exited (dies if there is none). */
  readonly reports: Effect.Effect<ReadonlyArray<any>>
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  readonly write: (text: string) => Effect.Effect<void>
  readonly exit: Effect.Effect<ChildExit>
}

const root = fileURLToPath(new URL("../..", import.meta.url))

export const spawnChild = (
  script: string,
  args: ReadonlyArray<string>,
  options: {
    readonly nodeArgs?: ReadonlyArray<string>
    readonly bound?: number
    readonly runtime?: ChildRuntime
  } = {}
) =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<ChildExit>()
    const runtime = options.runtime
    const file = yield* bundledChild(fileURLToPath(new URL(`./${script}`, import.meta.url)), runtime?.external)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const command = runtime === undefined ? process.execPath : runtime.binary
        const before = runtime === undefined ? options.nodeArgs ?? [] : runtime.args
        return spawn(command, [...before, file, ...args], {
          cwd: root,
          stdio: ["pipe", "pipe", "pipe"],
          // no colours, no update check in what the test reads (Deno)
          env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" }
        })
      }),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    let stdout = ""
    let stderr = ""
    const lines: Array<string> = []
    child.stdout.setEncoding("utf8")
    child.stderr.setEncoding("utf8")
    child.stdout.on("data", (chunk: string) => {
      const start = stdout.lastIndexOf("\n") + 1
      stdout += chunk
      const complete = stdout.slice(start, stdout.lastIndexOf("\n") + 1)
      if (complete !== "") lines.push(...complete.split("\n").slice(0, -1))
    })
    child.stderr.on("data", (chunk: string) => stderr += chunk)
    child.stdin.on("error", () => {})
    let bounded = false
    const bound = setTimeout(() => {
      bounded = true
      child.kill("SIGKILL")
    }, options.bound ?? 90_000)
    child.on("close", (code, signal) => {
      clearTimeout(bound)
      Deferred.unsafeDone(exited, Effect.succeed({ code, signal, stdout, stderr, bounded }))
    })
    // A binary that cannot be started (not executable): its 'error' is the exit, said on stderr.
    child.on("error", (error) => {
      clearTimeout(bound)
      Deferred.unsafeDone(exited, Effect.succeed({ code: null, signal: null, stdout, stderr: String(error), bounded }))
    })
    const line = (predicate: (line: string) => boolean, what: string, within = 20_000) =>
      Effect.gen(function*() {
        for (let poll = 0; poll < within / 10; poll++) {
          const found = lines.find(predicate)
          if (found !== undefined) return found
          if (child.exitCode !== null || child.signalCode !== null) break
          yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 10)))
        }
        const how = `exit code ${child.exitCode}, signal ${child.signalCode}`
        return yield* Effect.dieMessage(`the child never printed ${what} (${how}):\n${stdout}\n${stderr}`)
      })
    const reports = Effect.gen(function*() {
      const { stderr, stdout } = yield* Deferred.await(exited)
      const json = lines.filter((text) => text.startsWith("{"))
      if (json.length === 0) return yield* Effect.dieMessage(`no report:\n${stdout}\n${stderr}`)
      return json.map((text): any => JSON.parse(text))
    })
    return {
      pid: child.pid!,
      line,
      reports,
      kill: (signal) => Effect.sync(() => void child.kill(signal)),
      write: (text) => Effect.sync(() => void child.stdin.write(text)),
      exit: Deferred.await(exited)
    } satisfies Child
  })
