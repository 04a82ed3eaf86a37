/**
 * A peer server in a child process of another language (Go's gorilla, Jetty) that reads the port
 * to listen on from its stdin (0: any free one), prints `PORT <n>` once it listens, and prints
 * lines of its own about what it saw, which the test reads.
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

/** SIGKILL, and its exit awaited: no close frame, TCP ends as the kernel closes the sockets. */
export const killed = (child: ChildProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })
