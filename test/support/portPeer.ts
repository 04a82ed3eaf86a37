/**
 * A peer server in a child process of another language (Go's gorilla, Jetty) that reads the port
 * to listen on from its stdin (0: any free one), prints `PORT <n>` once it listens, and prints
 * lines of its own about what it saw, which the test reads. Also the /proc helpers and the
 * scope's stop of a server that forks (Apache's and lighttpd's kits).
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { awaitTrue } from "./poll.js"

/**
 * Spawns `command args`, asks it for `port`, collects its lines into `lines`, and waits (at most
 * `polls` x 5 ms) until it listens; `release` ends it with the scope.
 */
export const spawnPortPeer = (
  command: string,
  args: ReadonlyArray<string>,
  port: number,
  lines: Array<string>,
  what: string,
  polls: number,
  release: (child: ChildProcess.ChildProcess) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const state = { port: undefined as number | undefined }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = ChildProcess.spawn(command, [...args], { stdio: ["pipe", "pipe", "ignore"] })
        let rest = ""
        child.stdout!.setEncoding("utf8")
        child.stdout!.on("data", (chunk: string) => {
          const split = (rest + chunk).split("\n")
          rest = split.pop()!
          for (const line of split) {
            if (line.startsWith("PORT ")) state.port = Number(line.slice(5))
            else lines.push(line)
          }
        })
        child.stdin!.on("error", () => {})
        child.stdin!.write(`${port}\n`)
        return child
      }),
      release
    )
    yield* awaitTrue(Effect.sync(() => state.port !== undefined), what, polls)
    return { child, port: state.port! }
  })

/**
 * The build of `source` (the peer's own source file), cached by its hash in the temp dir:
 * `build(dir, text)` fills a directory of this process's, renamed into place whole (another run may
 * have put one there first); the directory, which holds `product`.
 */
export const cachedBuild = (
  source: string,
  name: string,
  product: string,
  build: (dir: string, text: Buffer) => void
): string => {
  const text = Fs.readFileSync(source)
  const hash = Crypto.createHash("sha256").update(text).digest("hex").slice(0, 16)
  const dir = Path.join(Os.tmpdir(), `lifeline-${name}-${hash}`)
  if (Fs.existsSync(Path.join(dir, product))) return dir
  const partial = `${dir}.${process.pid}`
  Fs.rmSync(partial, { recursive: true, force: true })
  Fs.mkdirSync(partial, { recursive: true })
  build(partial, text)
  if (Fs.existsSync(Path.join(dir, product))) Fs.rmSync(partial, { recursive: true, force: true })
  else {
    Fs.rmSync(dir, { recursive: true, force: true })
    Fs.renameSync(partial, dir)
  }
  return dir
}

/** Resolves once `child` (if any) has exited; dies after `within` ms. */
export const exitOf = (child: ChildProcess.ChildProcess | undefined, within: number, name: string) =>
  child === undefined || child.exitCode !== null || child.signalCode !== null
    ? Effect.void
    : Effect.async<void>((resume) => {
      child.once("exit", () => resume(Effect.void))
    }).pipe(
      Effect.timeoutFail({ duration: within, onTimeout: () => `${name} did not exit within ${within} ms` }),
      Effect.orDie
    )

/** SIGKILL, and its exit awaited: no close frame, TCP ends as the kernel closes the sockets. */
export const killed = (child: ChildProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

/** The pids of the running (not zombie) processes whose parent is `parent` (from /proc). */
export const childrenOf = (parent: number): ReadonlyArray<number> => {
  const pids: Array<number> = []
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      // pid (comm) state ppid ...: comm may hold spaces, so read after its last ')'
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      // a zombie has exited (its parent has not reaped it yet)
      if (Number(ppid) === parent && state !== "Z") pids.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return pids
}

/**
 * The pids of the running processes whose command line names `path` (a kit's own temp config): a
 * process forked by one that has since exited has another parent, not another command line.
 */
export const runningWith = (path: string): ReadonlyArray<number> => {
  const pids: Array<number> = []
  for (const entry of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = Fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue
      if (Fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes(path)) pids.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return pids
}

/** Sends `signal` to each of `pids` that still runs. */
export const killAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}

/** Whether `pid` runs. */
export const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * With the scope: SIGTERM to the processes `known()` names and to every one whose command line names
 * `conf` (a kit's own temp config: a process forked by one that has since exited), SIGKILL to those
 * left after 3 s, then `dir` removed (Apache's and lighttpd's kits).
 */
export const stopWithScope = (known: () => ReadonlyArray<number>, conf: string, dir: string) =>
  Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const pids = [...new Set([...known(), ...runningWith(conf)])].filter(alive)
      killAll(pids, "SIGTERM")
      return Effect.gen(function*() {
        for (let turn = 0; turn < 300 && pids.some(alive); turn++) yield* Effect.sleep("10 millis")
        killAll(pids.filter(alive), "SIGKILL")
        Fs.rmSync(dir, { recursive: true, force: true })
      })
    })
  )
