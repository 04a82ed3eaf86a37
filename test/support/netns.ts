/**
 * A private network namespace per trial (round 18): faults made by the kernel, not by a proxy in
 * user space. `netns` adds a fresh namespace `lifeline-<random>`, brings its own `lo` up, and
 * deletes it when the scope closes (after killing what still runs in it: only this test's own
 * child ever does), on failure too. `spawnInNetns` runs a child (test/support/<script>) INSIDE it
 * through `ip netns exec`: the child holds the server and the Client on that namespace's
 * 127.0.0.1, makes its faults on that namespace's `lo` only (`netnsFaults.ts`), and prints one
 * JSON report. Never the host's namespace, never any other interface.
 */
import { Deferred, Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import { bundledChild } from "./childBundle.js"

const ip = (args: ReadonlyArray<string>): string =>
  execFileSync("ip", [...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 })

/** Whether this process may make network namespaces (root, or CAP_NET_ADMIN): tried once. */
export const canMakeNetns: boolean = (() => {
  const name = `lifeline-${randomBytes(4).toString("hex")}`
  try {
    ip(["netns", "add", name])
  } catch {
    return false
  }
  try {
    ip(["netns", "del", name])
  } catch {
    // made, and deleting failed: the check says no (a later add would leave others behind)
    return false
  }
  return true
})()

/** The pids that run in namespace `name` (this test's own children only: the namespace is fresh). */
const pidsIn = (name: string): Array<number> => {
  try {
    return ip(["netns", "pids", name]).split("\n").filter((line) => line !== "").map(Number)
  } catch {
    return []
  }
}

/** A fresh namespace with its `lo` up, deleted with the scope (even on failure). */
export const netns = Effect.acquireRelease(
  Effect.sync(() => {
    const name = `lifeline-${randomBytes(6).toString("hex")}`
    ip(["netns", "add", name])
    try {
      ip(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
    } catch (error) {
      ip(["netns", "del", name])
      throw error
    }
    return name
  }),
  (name) =>
    Effect.sync(() => {
      for (const pid of pidsIn(name)) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // gone meanwhile
        }
      }
      try {
        ip(["netns", "del", name])
      } catch {
        // already gone
      }
    })
)

export interface NetnsExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** The child's lines that are JSON objects. */
  readonly reports: ReadonlyArray<any>
}

const root = fileURLToPath(new URL("../..", import.meta.url))

/**
 * Runs `node <the bundle of test/support/<script>> <name> ...args` (test/support/childBundle.ts) inside namespace `name` and waits
 * for its exit (SIGKILL after `bound` ms, and when the scope closes before it exited).
 */
export const spawnInNetns = (name: string, script: string, args: ReadonlyArray<string>, bound = 90_000) =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<NetnsExit>()
    const file = yield* bundledChild(fileURLToPath(new URL(`./${script}`, import.meta.url)))
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn("ip", ["netns", "exec", name, process.execPath, file, name, ...args], {
          cwd: root,
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8")
    child.stderr.setEncoding("utf8")
    child.stdout.on("data", (chunk: string) => stdout += chunk)
    child.stderr.on("data", (chunk: string) => stderr += chunk)
    const timer = setTimeout(() => child.kill("SIGKILL"), bound)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      const reports = stdout.split("\n").filter((line) => line.startsWith("{")).map((line): any => JSON.parse(line))
      Deferred.unsafeDone(exited, Effect.succeed({ code, signal, stdout, stderr, reports }))
    })
    return yield* Deferred.await(exited)
  })
