// Child processes of the benchmarks: the echo server, and the memory and herd runs.
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { withTimeout } from "./util.js"

export const ROOT = fileURLToPath(new URL("..", import.meta.url))
const SERVER = fileURLToPath(new URL("./echoServer.ts", import.meta.url))

/** Runs a TypeScript file of the benchmarks in a fresh Node process (via tsx), from the project root. */
export const spawnTs = (
  file: string,
  args: ReadonlyArray<string>,
  nodeFlags: ReadonlyArray<string> = []
): ChildProcess =>
  spawn(process.execPath, [...nodeFlags, "--import", "tsx", file, ...args], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"]
  })

/** Reads a child's stdout as JSON lines, in order, each wait bounded. */
export class JsonLines {
  private readonly lines: Array<string> = []
  private waiter: ((line: string | undefined) => void) | undefined
  private ended = false

  constructor(readonly child: ChildProcess) {
    if (child.stdout === null) throw new Error("the child has no stdout pipe")
    const reader = createInterface({ input: child.stdout })
    reader.on("line", (line) => this.push(line))
    reader.on("close", () => {
      this.ended = true
      this.waiter?.(undefined)
    })
  }

  private push(line: string): void {
    const waiter = this.waiter
    this.waiter = undefined
    if (waiter !== undefined) waiter(line)
    else this.lines.push(line)
  }

  next<A>(ms: number, what: string): Promise<A> {
    const parse = (line: string | undefined): A => {
      if (line === undefined) throw new Error(`${what}: the process ended (exit code ${this.child.exitCode})`)
      return JSON.parse(line) as A
    }
    const queued = this.lines.shift()
    if (queued !== undefined || this.ended) return Promise.resolve().then(() => parse(queued))
    return withTimeout(
      new Promise<string | undefined>((resolve) => {
        this.waiter = resolve
      }),
      ms,
      what
    ).then(parse)
  }
}

export const killChild = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGKILL")
  })

export interface EchoServer {
  readonly port: number
  readonly url: string
  /** When it started listening, on this process's `performance.now()` clock. */
  readonly listeningAt: number
  /** When the server accepted each WebSocket handshake so far, on this process's `performance.now()` clock. */
  readonly accepted: () => Promise<Array<number>>
  readonly stop: () => Promise<void>
}

const listening = async (child: ChildProcess, lines: JsonLines): Promise<EchoServer> => {
  const { port, listeningAt } = await lines.next<{ port: number; listeningAt: number }>(15_000, "echo server listen")
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    listeningAt: listeningAt - performance.timeOrigin,
    accepted: async () => {
      child.stdin?.write("report\n")
      const { accepted } = await lines.next<{ accepted: Array<number> }>(15_000, "echo server report")
      return accepted.map((at) => at - performance.timeOrigin)
    },
    stop: () => killChild(child)
  }
}

/** A listening echo server in its own process. */
export const startEchoServer = async (port = 0): Promise<EchoServer> => {
  const child = spawnTs(SERVER, ["--port", String(port)])
  return listening(child, new JsonLines(child)).catch(async (error: unknown) => {
    await killChild(child)
    throw error
  })
}

export interface StandbyServer {
  /**
   * Listens at `at` (this process's `performance.now()` clock) by the server's own timer, so a
   * busy parent cannot delay it, and resolves once it does.
   */
  readonly listen: (at: number) => Promise<EchoServer>
  readonly stop: () => Promise<void>
}

/** An echo server process that is booted but not yet listening on `port`. */
export const standbyEchoServer = async (port: number): Promise<StandbyServer> => {
  const child = spawnTs(SERVER, ["--port", String(port), "--wait"])
  const lines = new JsonLines(child)
  await lines.next<{ booted: boolean }>(15_000, "echo server boot").catch(async (error: unknown) => {
    await killChild(child)
    throw error
  })
  return {
    listen: (at) => {
      child.stdin?.write(`listen ${performance.timeOrigin + at}\n`)
      return listening(child, lines)
    },
    stop: () => killChild(child)
  }
}
