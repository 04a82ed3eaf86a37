/**
 * Debian's lighttpd 1.4 (`/usr/sbin/lighttpd`) on 127.0.0.1 for tests (round 21): `lighttpd -D -f
 * <conf>` (in the foreground) with a configuration of our own in a temp directory (document root,
 * pid file, error log, upload dir), `server.bind = "127.0.0.1"` and a port of ours. It runs as the
 * current user. The process, and any it forked (`server.graceful-restart-bg` keeps the old links in
 * a forked process), are stopped with the scope (SIGTERM, then SIGKILL after 3 s) and the directory
 * removed, even when the test failed.
 *
 * `describeLighttpd` skips its tests with ONE loud warning when lighttpd is missing (`.ci/run` installs it).
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe } from "vitest"
import { awaitListening } from "./nginx.js"
import { peer, proxyTrial, reportRetries } from "./peers.js"
import { childrenOf, exitOf, stopWithScope } from "./portPeer.js"

export const LIGHTTPD = "/usr/sbin/lighttpd"
export const hasLighttpd = peer(Fs.existsSync(LIGHTTPD), "lighttpd", "lighttpd")

/** `describe`, or `describe.skip` when there is no lighttpd (`peer` has said so, loudly). */
export const describeLighttpd = (name: string, body: () => void): void => {
  if (hasLighttpd) {
    describe(name, proxyTrial, () => {
      reportRetries()
      body()
    })
  } else describe.skip(name, body)
}

export interface LighttpdConfig {
  /** Lines after the fixed ones (`$HTTP["url"]` blocks, `server.max-read-idle`...). */
  readonly body: string
  /** Modules; default mod_proxy and mod_wstunnel. */
  readonly modules?: ReadonlyArray<string>
}

const render = (dir: string, port: number, config: LighttpdConfig) => `
server.modules = (${(config.modules ?? ["mod_proxy", "mod_wstunnel"]).map((m) => `"${m}"`).join(", ")})
server.bind = "127.0.0.1"
server.port = ${port}
server.document-root = "${dir}/htdocs"
server.pid-file = "${dir}/lighttpd.pid"
server.errorlog = "${dir}/error.log"
server.upload-dirs = ("${dir}")
${config.body}
`

/**
 * A `$HTTP["url"]` block that proxies `prefix` to 127.0.0.1:`upstream` with the Upgrade passed on
 * (`proxy.header`); `extra` lines in the block, `host` options of the upstream (`"disable-time" => 0`).
 */
export const proxyBlock = (prefix: string, upstream: number, extra = "", host = "") => `
$HTTP["url"] =~ "^${prefix}" {
  proxy.server = ("" => (("host" => "127.0.0.1", "port" => ${upstream}${host === "" ? "" : `, ${host}`})))
  proxy.header = ("upgrade" => "enable")
${extra}
}
`

export interface Lighttpd {
  readonly dir: string
  /** The pid of the process started last. */
  readonly pid: () => number
  /**
   * A signal to the process (SIGUSR1: graceful restart, SIGINT: graceful shutdown, SIGTERM: stop at
   * once), after writing `next` (if given).
   */
  readonly signal: (signal: NodeJS.Signals, next?: LighttpdConfig) => Effect.Effect<void>
  /** Resolves once the process has exited (dies after `within` ms). */
  readonly exited: (within?: number) => Effect.Effect<void>
  /** A new process on the last configuration (after a stop), listening (awaited). */
  readonly start: Effect.Effect<void>
  /** The processes lighttpd forked (a graceful-restart-bg one holding old links). */
  readonly forked: () => ReadonlyArray<number>
  /** How many times the error log says "server started". */
  readonly starts: () => number
  /** Waits (bounded, ~3 s) until the log holds `text` at least `count` times ("graceful shutdown started"). */
  readonly awaitLog: (text: string, count?: number) => Effect.Effect<void>
  readonly log: () => string
}

/** lighttpd on `config`, listening on 127.0.0.1:`port` (awaited); stopped with the scope. */
export const lighttpd = (config: LighttpdConfig, port: number) =>
  Effect.gen(function*() {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-lighttpd-"))
    Fs.mkdirSync(Path.join(dir, "htdocs"))
    const conf = Path.join(dir, "lighttpd.conf")
    const errorLog = Path.join(dir, "error.log")
    let out = ""
    let child: ChildProcess.ChildProcess | undefined
    let known: Array<number> = []
    const log = () => (Fs.existsSync(errorLog) ? Fs.readFileSync(errorLog, "utf8") : "") + out
    const starts = () => (log().match(/server started/g) ?? []).length
    // a graceful-restart-bg fork is the child of the process started by the kit
    const forked = () => (child?.pid === undefined ? [] : childrenOf(child.pid))
    const remember = () => {
      if (child?.pid !== undefined) known = [...new Set([...known, child.pid, ...forked()])]
    }
    // and (by its command line) a forked one whose parent has exited (a restart that failed to bind)
    yield* stopWithScope(
      () => {
        remember()
        return known
      },
      conf,
      dir
    )
    let last = config
    const start = Effect.gen(function*() {
      Fs.writeFileSync(conf, render(dir, port, last))
      const next = ChildProcess.spawn(LIGHTTPD, ["-D", "-f", conf], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      for (const stream of [next.stdout!, next.stderr!]) {
        stream.setEncoding("utf8")
        stream.on("data", (chunk: string) => {
          out += chunk
        })
      }
      child = next
      remember()
      yield* awaitListening(port).pipe(
        Effect.catchAllDefect(() => Effect.dieMessage(`lighttpd never listened on ${port}:\n${log()}`))
      )
    })
    yield* start
    const signal = (name: NodeJS.Signals, next?: LighttpdConfig) =>
      Effect.sync(() => {
        if (next !== undefined) {
          last = next
          Fs.writeFileSync(conf, render(dir, port, next))
        }
        remember()
        child!.kill(name)
      })
    const exited = (within = 3000) => Effect.suspend(() => exitOf(child, within, "lighttpd"))
    return {
      dir,
      pid: () => child!.pid!,
      signal,
      exited,
      start,
      forked: () => {
        remember()
        return forked()
      },
      starts,
      awaitLog: (text: string, count = 1) =>
        Effect.gen(function*() {
          for (let turn = 0; turn < 300; turn++) {
            if (log().split(text).length - 1 >= count) return
            yield* Effect.sleep("10 millis")
          }
          return yield* Effect.dieMessage(`lighttpd never logged ${count} x "${text}":\n${log()}`)
        }),
      log
    } satisfies Lighttpd
  })
