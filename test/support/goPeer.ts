/**
 * Go's gorilla/websocket as a real peer (round 18): `gorillaPeer.go` beside this file, built once
 * with Debian's Go (`golang-go`) and gorilla (`golang-github-gorilla-websocket-dev`, in
 * /usr/share/gocode), offline: `GO111MODULE=off GOPATH=/usr/share/gocode go build`. The binary is
 * kept under os.tmpdir() by the source's hash, so a run builds it at most once (and not at all when
 * a run before built the same source). When `go` or gorilla is missing, `hasGorilla` is false and
 * the tests skip with one loud warning. The server reads its port from stdin (0: any), prints
 * `PORT n`, then what it saw as lines (kept in `lines`); `kill` (SIGKILL) ends it, `restart`
 * starts it again on the same port.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { peer } from "./peers.js"
import { awaitTrue } from "./poll.js"
import { cachedBuild, killed, spawnPortPeer } from "./portPeer.js"

const here = Path.dirname(fileURLToPath(import.meta.url))
const SOURCE = Path.join(here, "gorillaPeer.go")
const GOPATH = "/usr/share/gocode"

export const hasGorilla = peer(
  ChildProcess.spawnSync("go", ["version"], { stdio: "ignore" }).status === 0 &&
    Fs.existsSync(Path.join(GOPATH, "src/github.com/gorilla/websocket/conn.go")),
  "Go's gorilla/websocket",
  "golang-go golang-github-gorilla-websocket-dev"
)

let built: string | undefined

/** The server's binary: built on first use (a few seconds cold), then the cached one. */
const binary = (): string =>
  built ??= Path.join(
    cachedBuild(SOURCE, "gorilla", "gorillaPeer", (dir, text) => {
      // GOPATH mode builds a file from anywhere: a copy beside the binary, what was hashed.
      const main = Path.join(dir, "main.go")
      Fs.writeFileSync(main, text)
      const result = ChildProcess.spawnSync("go", ["build", "-o", Path.join(dir, "gorillaPeer"), main], {
        cwd: dir,
        env: {
          ...process.env,
          GO111MODULE: "off",
          GOPATH,
          GOCACHE: Path.join(Os.tmpdir(), "lifeline-gocache"),
          GOFLAGS: ""
        },
        encoding: "utf8"
      })
      if (result.status !== 0) throw new Error(`go build of gorillaPeer.go failed: ${result.stderr}`)
    }),
    "gorillaPeer"
  )

export interface GoPeer {
  readonly url: (path: string) => string
  readonly port: number
  /** Every line the servers printed (all runs), in order. */
  readonly lines: Array<string>
  /** The lines that start with `prefix`, without it. */
  readonly linesOf: (prefix: string) => Array<string>
  /** SIGKILL: no close frame, TCP ends as the kernel closes the sockets. */
  readonly kill: Effect.Effect<void>
  /** A new server process on the same port. */
  readonly restart: Effect.Effect<void, never, Scope.Scope>
}

const spawn = (args: ReadonlyArray<string>, port: number, lines: Array<string>) =>
  spawnPortPeer(binary(), args, port, lines, "the Go server listens", 1000, killed)

/** A gorilla server; `args` are its flags (`-pongWait=600ms`, `-writeWait=200ms`). */
export const goPeer = (args: ReadonlyArray<string> = []): Effect.Effect<GoPeer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const first = yield* spawn(args, 0, lines)
    let current = first.child
    const port = first.port
    return {
      url: (path) => `ws://127.0.0.1:${port}${path}`,
      port,
      lines,
      linesOf: (prefix) => lines.filter((line) => line.startsWith(prefix)).map((line) => line.slice(prefix.length)),
      kill: Effect.suspend(() => killed(current)),
      restart: Effect.gen(function*() {
        current = (yield* spawn(args, port, lines)).child
      })
    }
  })

/** Waits (bounded, real time) until `peer` printed a line for which `check` holds. */
export const awaitGoLine = (peer: GoPeer, check: (line: string) => boolean, what: string, polls = 1000) =>
  awaitTrue(Effect.sync(() => peer.lines.some(check)), what, polls)
