/**
 * Debian's aiohttp (3.8.4) and Tornado (6.2) as real peers (round 17): the servers are
 * `aiohttpPeer.py` and `tornadoPeer.py` beside this file, spawned as `python.ts` spawns Python
 * `websockets`. Each prints what it saw as lines, kept in `lines`; `kill` (SIGKILL) and
 * `terminate` (SIGTERM: a graceful shutdown, 1001 to every open socket) end it, `restart` starts
 * it again on the same port.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { peer } from "./peers.js"
import { awaitTrue } from "./poll.js"
import { listen, PYTHON, signalPython, spawnPython } from "./python.js"

const here = Path.dirname(fileURLToPath(import.meta.url))

const imports = (module: string) =>
  ChildProcess.spawnSync(PYTHON, ["-c", `import ${module}`], { stdio: "ignore" }).status === 0

export const hasAiohttp = peer(imports("aiohttp"), "Python aiohttp", "python3-aiohttp")
export const hasTornado = peer(imports("tornado"), "Python Tornado", "python3-tornado")

export type PeerKind = "aiohttp" | "tornado"

export interface PythonPeer {
  readonly kind: PeerKind
  readonly url: (path: string) => string
  /** Every line the servers printed (all runs), in order. */
  readonly lines: Array<string>
  /** The lines that start with `prefix`, without it. */
  readonly linesOf: (prefix: string) => Array<string>
  /** SIGKILL: no close frame, TCP ends as the kernel closes the sockets. */
  readonly kill: Effect.Effect<void>
  /** SIGTERM: the server closes every open socket with 1001, then exits. */
  readonly terminate: Effect.Effect<void>
  /** A new server process on the same port. */
  readonly restart: Effect.Effect<void, never, Scope.Scope>
}

export const pythonPeer = (kind: PeerKind): Effect.Effect<PythonPeer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const script = Path.join(here, kind === "aiohttp" ? "aiohttpPeer.py" : "tornadoPeer.py")
    const lines: Array<string> = []
    const start = (port: number) =>
      Effect.gen(function*() {
        const server = yield* spawnPython(script, (line) => void lines.push(line))
        return { server, port: yield* listen(server, port) }
      })
    const first = yield* start(0)
    let current = first.server
    const port = first.port
    return {
      kind,
      url: (path) => `ws://127.0.0.1:${port}${path}`,
      lines,
      linesOf: (prefix) => lines.filter((line) => line.startsWith(prefix)).map((line) => line.slice(prefix.length)),
      kill: Effect.suspend(() => signalPython(current, "SIGKILL")),
      terminate: Effect.suspend(() => signalPython(current, "SIGTERM")),
      restart: Effect.gen(function*() {
        current = (yield* start(port)).server
      })
    }
  })

/** Waits (bounded, real time) until `peer` printed a line for which `check` holds. */
export const awaitLine = (peer: PythonPeer, check: (line: string) => boolean, what: string) =>
  awaitTrue(Effect.sync(() => peer.lines.some(check)), what, 1000)
