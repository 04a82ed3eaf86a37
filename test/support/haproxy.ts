/**
 * Debian's HAProxy (`/usr/sbin/haproxy`, 2.6) on 127.0.0.1 for tests: one process in the foreground
 * (`-db`), its configuration in a temp directory removed with the scope. `reload` starts a new
 * process on the new configuration with `-sf <old pid>`, as a packaged reload does: the new one
 * binds, then tells the old one to stop softly (it stops listening, keeps the links it holds until
 * they end or `hard-stop-after`). Every process started is stopped with the scope (SIGTERM: at
 * once), even when the test failed.
 *
 * `describeHaproxy` skips its tests with ONE loud warning when HAProxy is missing (`.ci/run`
 * installs it).
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe } from "vitest"
import { awaitListening } from "./nginx.js"
import { peer, proxyTrial, reportRetries } from "./peers.js"

export const HAPROXY = "/usr/sbin/haproxy"
export const hasHaproxy = peer(Fs.existsSync(HAPROXY), "HAProxy", "haproxy")

/** `describe`, or `describe.skip` when there is no HAProxy (`peer` has said so, loudly). */
export const describeHaproxy = (name: string, body: () => void): void => {
  if (hasHaproxy) {
    describe(name, proxyTrial, () => {
      reportRetries()
      body()
    })
  } else describe.skip(name, body)
}

/**
 * A configuration: `global` lines after the fixed ones, then `defaults` (mode http, `timeout
 * connect 1s`, then `defaults` if given, else client and server 30 s, tunnel 60 s), then the
 * caller's sections.
 */
export interface HaproxyConfig {
  readonly global?: string
  readonly defaults?: string
  /** `frontend` / `backend` / `listen` sections; bind 127.0.0.1 only. */
  readonly sections: string
}

const render = (dir: string, generation: number, config: HaproxyConfig) => `
global
  maxconn 200
  stats socket ${dir}/admin-${generation}.sock mode 600 level admin
${config.global ?? ""}
defaults
  mode http
  timeout connect 1s
${config.defaults ?? "  timeout client 30s\n  timeout server 30s\n  timeout tunnel 60s"}
${config.sections}
`

/** A `listen` section: `port` on 127.0.0.1 to the `servers` (each `127.0.0.1:<port>`), with `extra` lines. */
export const listen = (port: number, servers: ReadonlyArray<number>, extra = "", serverOptions = "") => `
listen ws
  bind 127.0.0.1:${port}
${extra}
${servers.map((server, k) => `  server s${k} 127.0.0.1:${server} ${serverOptions}`).join("\n")}
`

export interface Haproxy {
  readonly dir: string
  /** The pid of the process that serves new connections. */
  readonly pid: () => number
  /**
   * Starts a process on `next` with `-sf <current pid>`; resolves once the old one has stopped
   * listening (its stats socket refuses), so that every new connection reaches the new one.
   */
  readonly reload: (next: HaproxyConfig) => Effect.Effect<void>
  /** Whether the process `pid` still runs (an old one holding links until `hard-stop-after`). */
  readonly running: (pid: number) => boolean
  /** A command on the current process's stats socket ("show stat", "disable server ws/s0"...). */
  readonly command: (line: string) => Effect.Effect<string>
  /** What the processes wrote on stderr (alerts and warnings). */
  readonly stderr: () => string
}

const socketAnswers = (path: string, line: string) =>
  Effect.async<string | undefined>((resume) => {
    let out = ""
    const cli = Net.connect(path)
    cli.setEncoding("utf8")
    cli.on("connect", () => cli.end(`${line}\n`))
    cli.on("data", (chunk: string) => {
      out += chunk
    })
    cli.on("error", () => resume(Effect.succeed(undefined)))
    cli.on("close", () => resume(Effect.succeed(out)))
    return Effect.sync(() => cli.destroy())
  })

/** HAProxy on `config`, listening on `port` (awaited); every process stopped with the scope. */
export const haproxy = (config: HaproxyConfig, port: number) =>
  Effect.gen(function*() {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-haproxy-"))
    const children: Array<ChildProcess.ChildProcess> = []
    let stderr = ""
    let generation = 0
    yield* Effect.addFinalizer(() =>
      Effect.forEach(children, (child) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
          child.kill("SIGTERM")
        }), { discard: true }).pipe(
          Effect.timeout("3 seconds"),
          Effect.ignore,
          Effect.andThen(Effect.sync(() => {
            // a process that did not stop on SIGTERM
            for (const child of children) {
              if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
            }
            Fs.rmSync(dir, { recursive: true, force: true })
          }))
        )
    )
    const start = (next: HaproxyConfig, stop: ReadonlyArray<number>) =>
      Effect.sync(() => {
        generation++
        const conf = Path.join(dir, `haproxy-${generation}.cfg`)
        Fs.writeFileSync(conf, render(dir, generation, next))
        const args = ["-db", "-f", conf, ...(stop.length > 0 ? ["-sf", ...stop.map(String)] : [])]
        const child = ChildProcess.spawn(HAPROXY, args, { stdio: ["ignore", "ignore", "pipe"] })
        child.stderr!.setEncoding("utf8")
        child.stderr!.on("data", (chunk: string) => {
          stderr += chunk
        })
        children.push(child)
        return { child, socket: Path.join(dir, `admin-${generation}.sock`) }
      })
    const awaitSocket = (path: string, up: boolean) =>
      Effect.gen(function*() {
        for (let turn = 0; turn < 300; turn++) {
          const answer = yield* socketAnswers(path, "show info")
          if ((answer !== undefined && answer.includes("Pid:")) === up) return
          yield* Effect.sleep("10 millis")
        }
        return yield* Effect.dieMessage(`haproxy: stats socket ${path} never ${up ? "answered" : "stopped"}\n${stderr}`)
      })
    let current = yield* start(config, [])
    yield* awaitListening(port)
    yield* awaitSocket(current.socket, true)
    const pid = () => current.child.pid!
    const reload = (next: HaproxyConfig) =>
      Effect.gen(function*() {
        const old = current
        current = yield* start(next, [old.child.pid!])
        yield* awaitSocket(current.socket, true)
        yield* awaitSocket(old.socket, false)
      })
    const running = (pid: number) => {
      const child = children.find((c) => c.pid === pid)
      return child !== undefined && child.exitCode === null && child.signalCode === null
    }
    const command = (line: string) => Effect.map(socketAnswers(current.socket, line), (answer) => answer ?? "")
    return { dir, pid, reload, running, command, stderr: () => stderr } satisfies Haproxy
  })
