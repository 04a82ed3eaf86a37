/**
 * Debian's Apache httpd 2.4 (`/usr/sbin/apache2`) on 127.0.0.1 for tests (round 21): `apache2 -f
 * <conf> -DFOREGROUND` with a configuration of our own in a temp directory (its ServerRoot, PidFile,
 * ErrorLog, Mutex and runtime dir), never the system's /etc/apache2 nor port 80: `Listen
 * 127.0.0.1:<port>` of ours, the event MPM, and only the modules a test names, loaded by absolute
 * path from /usr/lib/apache2/modules. It runs as the current user; as root (Apache refuses to serve
 * as root) its children run as `nobody`. The parent and every child are stopped with the scope
 * (SIGTERM, then SIGKILL after 3 s) and the directory removed, even when the test failed.
 *
 * `describeApache` skips its tests with ONE loud warning when Apache is missing (`.ci/run` installs it).
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

export const APACHE = "/usr/sbin/apache2"
const MODULES = "/usr/lib/apache2/modules"
export const hasApache = peer(Fs.existsSync(APACHE) && Fs.existsSync(MODULES), "Apache httpd", "apache2-bin")

/** `describe`, or `describe.skip` when there is no Apache (`peer` has said so, loudly). */
export const describeApache = (name: string, body: () => void): void => {
  if (hasApache) {
    describe(name, proxyTrial, () => {
      reportRetries()
      body()
    })
  } else describe.skip(name, body)
}

/** The modules every configuration loads (authz_core: without it every request is a 500, "couldn't check user"). */
const BASE = ["mpm_event", "authn_core", "authz_core", "proxy", "proxy_http", "proxy_wstunnel"]

export interface ApacheConfig {
  /** Directives after the fixed ones (ProxyPass, Timeout...). */
  readonly body: string
  /** More modules by name (`headers`, `rewrite`...), loaded from /usr/lib/apache2/modules. */
  readonly modules?: ReadonlyArray<string>
}

const render = (dir: string, port: number, config: ApacheConfig) => {
  const modules = [...BASE, ...(config.modules ?? [])]
  return `ServerRoot ${dir}
ServerName 127.0.0.1
PidFile ${dir}/httpd.pid
ErrorLog ${dir}/error.log
LogLevel warn
Mutex file:${dir} default
DefaultRuntimeDir ${dir}
DocumentRoot ${dir}/htdocs
${modules.map((name) => `LoadModule ${name}_module ${MODULES}/mod_${name}.so`).join("\n")}
${process.getuid?.() === 0 ? "User nobody\nGroup nogroup" : ""}
StartServers 1
ServerLimit 4
ThreadsPerChild 16
MaxRequestWorkers 64
MinSpareThreads 4
MaxSpareThreads 32
Listen 127.0.0.1:${port}
${config.body}
`
}

export interface Apache {
  readonly dir: string
  /**
   * `apache2 -f <conf> -k <command>` (graceful: SIGUSR1 after a check of the configuration,
   * restart: SIGHUP, graceful-stop: SIGWINCH, stop: SIGTERM), after writing `next` (if given);
   * the command's exit code. For graceful and restart, resolves once Apache says it resumed
   * (AH00489; dies after `within` ms), or at once with `within` 0.
   */
  readonly command: (
    command: "graceful" | "restart" | "graceful-stop" | "stop",
    next?: ApacheConfig,
    within?: number
  ) => Effect.Effect<number>
  /** Resolves once the parent has exited (bounded: dies after `within` ms). */
  readonly exited: (within?: number) => Effect.Effect<void>
  /** A new parent on the last configuration (after a stop), listening (awaited). */
  readonly start: Effect.Effect<void>
  /** The pids of the parent's children now (from /proc). */
  readonly children: () => ReadonlyArray<number>
  /** The error log and what the parent wrote. */
  readonly log: () => string
}

/** Apache on `config`, listening on 127.0.0.1:`port` (awaited); every process stopped with the scope. */
export const apache = (config: ApacheConfig, port: number) =>
  Effect.gen(function*() {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-apache-"))
    // the children (nobody, when run as root) read the DocumentRoot
    Fs.chmodSync(dir, 0o755)
    Fs.mkdirSync(Path.join(dir, "htdocs"))
    const conf = Path.join(dir, "httpd.conf")
    const errorLog = Path.join(dir, "error.log")
    let out = ""
    let child: ChildProcess.ChildProcess | undefined
    let known: Array<number> = []
    const log = () => (Fs.existsSync(errorLog) ? Fs.readFileSync(errorLog, "utf8") : "") + out
    const resumed = () => (log().match(/AH00489/g) ?? []).length
    const exited = (within = 3000) => Effect.suspend(() => exitOf(child, within, "apache2"))
    const remember = () => {
      const pid = child?.pid
      if (pid !== undefined) known = [...new Set([...known, pid, ...childrenOf(pid)])]
    }
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
      const next = ChildProcess.spawn(APACHE, ["-f", conf, "-DFOREGROUND"], {
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
      const before = resumed()
      yield* awaitListening(port).pipe(
        Effect.catchAllDefect(() => Effect.dieMessage(`apache2 never listened on ${port}:\n${log()}`))
      )
      // listening is the parent; serving needs a child: Apache says AH00489 once it has them
      for (let turn = 0; turn < 300 && resumed() === before; turn++) yield* Effect.sleep("10 millis")
      remember()
    })
    yield* start
    const command = (
      name: "graceful" | "restart" | "graceful-stop" | "stop",
      next?: ApacheConfig,
      within = 5000
    ) =>
      Effect.gen(function*() {
        remember()
        const previous = last
        if (next !== undefined) {
          last = next
          Fs.writeFileSync(conf, render(dir, port, next))
        }
        const before = resumed()
        const code = yield* Effect.async<number>((resume) => {
          ChildProcess.execFile(
            APACHE,
            ["-f", conf, "-k", name],
            { cwd: dir, env: { LANG: "C" } },
            (error, stdout, stderr) => {
              out += stdout + stderr
              resume(Effect.succeed(error === null ? 0 : typeof error.code === "number" ? error.code : 1))
            }
          )
        })
        if (code !== 0) {
          // refused: the file goes back to what runs, for a later `start`
          last = previous
          Fs.writeFileSync(conf, render(dir, port, previous))
        }
        if (code === 0 && within > 0 && (name === "graceful" || name === "restart")) {
          const turns = Math.ceil(within / 10)
          for (let turn = 0; turn < turns && resumed() === before; turn++) yield* Effect.sleep("10 millis")
          if (resumed() === before) return yield* Effect.dieMessage(`apache2 -k ${name}: never resumed\n${log()}`)
          remember()
        }
        return code
      })
    const children = () => (child?.pid === undefined ? [] : childrenOf(child.pid))
    return { dir, command, exited, start, children, log } satisfies Apache
  })
