/**
 * Debian's Autobahn|Python (python3-autobahn 22.7, asyncio) as a real peer (round 27): the server
 * is `autobahnPeer.py` beside this file, spawned as `python.ts` spawns Python `websockets`, with
 * `factory.setProtocolOptions(...)` given as JSON (`options`; `compress: true` accepts
 * permessage-deflate). It prints what it saw as lines, kept in `lines`; `kill` (SIGKILL) ends it,
 * `restart` starts it again on the same port with the same options.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { peer } from "./peers.js"
import { awaitTrue } from "./poll.js"
import { listen, PYTHON, type PythonServer, signalPython, spawnPython } from "./python.js"

const here = Path.dirname(fileURLToPath(import.meta.url))

export const hasAutobahn = peer(
  ChildProcess.spawnSync(PYTHON, ["-c", "import autobahn.asyncio.websocket"], { stdio: "ignore" }).status === 0,
  "Autobahn|Python",
  "python3-autobahn"
)

export interface AutobahnPeer {
  readonly url: (path: string) => string
  /** Every line the servers printed (all runs), in order. */
  readonly lines: Array<string>
  /** The lines that start with `prefix`, without it. */
  readonly linesOf: (prefix: string) => Array<string>
  /** SIGKILL: no close frame, TCP ends as the kernel closes the sockets. */
  readonly kill: Effect.Effect<void>
  /** A new server process on the same port, with the same options. */
  readonly restart: Effect.Effect<void, never, Scope.Scope>
}

export const autobahnPeer = (options: Record<string, unknown> = {}): Effect.Effect<AutobahnPeer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const script = Path.join(here, "autobahnPeer.py")
    const lines: Array<string> = []
    const start = (port: number) =>
      Effect.gen(function*() {
        const server = yield* spawnPython(script, (line) => void lines.push(line), [JSON.stringify(options)])
        return { server, port: yield* listen(server, port) }
      })
    const first = yield* start(0)
    let current: PythonServer = first.server
    const port = first.port
    return {
      url: (path) => `ws://127.0.0.1:${port}${path}`,
      lines,
      linesOf: (prefix) => lines.filter((line) => line.startsWith(prefix)).map((line) => line.slice(prefix.length)),
      kill: Effect.suspend(() => signalPython(current, "SIGKILL")),
      restart: Effect.gen(function*() {
        current = (yield* start(port)).server
      })
    }
  })

/** Waits (bounded, real time) until `peer` printed a line for which `check` holds. */
export const awaitLine = (peer: AutobahnPeer, check: (line: string) => boolean, what: string) =>
  awaitTrue(Effect.sync(() => peer.lines.some(check)), what)

/** The server's digest of a message: the first 16 hex digits of the SHA-256 of its bytes (text: UTF-8). */
export const digest = (message: string | Uint8Array): string =>
  Crypto.createHash("sha256").update(message).digest("hex").slice(0, 16)
