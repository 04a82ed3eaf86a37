/**
 * Real forward proxies from Debian for tests (round 24): Squid 5.7 (`/usr/sbin/squid`, package
 * `squid`) and tinyproxy 1.11 (`/usr/bin/tinyproxy`, package `tinyproxy`), each in the foreground
 * (`squid -N -f conf`, `tinyproxy -d -c conf`) on a configuration of the test's own in a temp
 * directory (never the system's), listening on 127.0.0.1 only. Squid gets its own pid, cache and
 * log paths there, no disk cache, no pinger, a DNS server on 127.0.0.1 (a CONNECT to a name is
 * never resolved elsewhere). `kill` is SIGKILL (every tunnel ends as the kernel closes it),
 * `restart` starts the same configuration on the same port; the scope kills what runs and removes
 * the directory. When a binary is missing its `has...` is false, said once, loudly (`peer`).
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { peer } from "./peers.js"
import { killed } from "./portPeer.js"

export const SQUID = "/usr/sbin/squid"
export const TINYPROXY = "/usr/bin/tinyproxy"
export const hasSquid = peer(Fs.existsSync(SQUID), "Squid", "squid")
export const hasTinyproxy = peer(Fs.existsSync(TINYPROXY), "tinyproxy", "tinyproxy")

/** `count` distinct ports free on 127.0.0.1 now (listened on, then closed). */
export const freePorts = (count: number): Effect.Effect<ReadonlyArray<number>> =>
  Effect.promise(async () => {
    const servers = await Promise.all(Array.from({ length: count }, () =>
      new Promise<Net.Server>((resolve) => {
        const server = Net.createServer()
        server.listen(0, "127.0.0.1", () => resolve(server))
      })))
    const ports = servers.map((server) => (server.address() as Net.AddressInfo).port)
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    return ports
  })

const accepts = (port: number) =>
  Effect.async<boolean>((resume) => {
    const tcp = Net.connect(port, "127.0.0.1")
    tcp.once("connect", () => {
      tcp.destroy()
      resume(Effect.succeed(true))
    })
    tcp.once("error", () => resume(Effect.succeed(false)))
  })

/** Resolves once something accepts on `port` (127.0.0.1); dies after about 8 s. */
export const awaitAccepting = (port: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 800; turn++) {
      if (yield* accepts(port)) return
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.dieMessage(`nothing accepts on ${port}`)
  })

export interface ForwardProxy {
  readonly dir: string
  /** The ports it listens on (Squid may have several `http_port`s), the first the main one. */
  readonly ports: ReadonlyArray<number>
  /** `http://[userInfo@]127.0.0.1:port` (the main port unless given). */
  readonly url: (userInfo?: string, port?: number) => string
  /** Squid's access.log; tinyproxy's own lines (stdout and stderr). */
  readonly log: () => string
  /** SIGKILL, its exit awaited: nothing listens until `restart`. */
  readonly kill: Effect.Effect<void>
  /** The same configuration again, on the same ports; resolves once it accepts. */
  readonly restart: Effect.Effect<void>
  /** Starts of the proxy so far (1 after make). */
  readonly starts: () => number
  /** The pid of the running process (SIGSTOP freezes it: connections accepted by the kernel, never answered). */
  readonly pid: () => number
}

const start = (
  binary: string,
  args: ReadonlyArray<string>,
  ports: ReadonlyArray<number>,
  output: { text: string },
  what: string,
  dir: string,
  children: Array<ChildProcess.ChildProcess>
) =>
  Effect.gen(function*() {
    const child = ChildProcess.spawn(binary, [...args], { stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding("utf8")
      stream.on("data", (chunk: string) => {
        output.text += chunk
      })
    }
    child.on("error", (error) => {
      output.text += `spawn failed: ${error.message}\n`
    })
    for (const port of ports) {
      let up = false
      // a hang guard of about 25 s: Squid takes 0.5-1 s to listen on an idle machine, but a
      // fresh-clone suite once saw it silent past 8 s (round 33)
      for (let turn = 0; turn < 2_500 && !up && child.exitCode === null; turn++) {
        up = yield* accepts(port)
        if (!up) yield* Effect.sleep("10 millis")
      }
      if (!up) {
        // Squid writes its own complaints (a port taken, a bad line) to cache.log, not to its output
        const cacheLog = Path.join(dir, "cache.log")
        const logged = Fs.existsSync(cacheLog) ? Fs.readFileSync(cacheLog, "utf8") : ""
        return yield* Effect.dieMessage(
          `${what} never listened on ${port} (exit code ${child.exitCode}):\n${output.text}${logged}`
        )
      }
    }
    return child
  })

const forwardProxy = (
  binary: string,
  what: string,
  dir: string,
  args: ReadonlyArray<string>,
  ports: ReadonlyArray<number>,
  log: (output: string) => string
): Effect.Effect<ForwardProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const output = { text: "" }
    const children: Array<ChildProcess.ChildProcess> = []
    yield* Effect.addFinalizer(() =>
      Effect.forEach(children, killed, { discard: true }).pipe(
        Effect.andThen(Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      )
    )
    let starts = 1
    let current = yield* start(binary, args, ports, output, what, dir, children)
    return {
      dir,
      ports,
      url: (userInfo, port = ports[0]!) => `http://${userInfo === undefined ? "" : `${userInfo}@`}127.0.0.1:${port}`,
      log: () => log(output.text),
      kill: Effect.suspend(() => killed(current)),
      restart: Effect.gen(function*() {
        current = yield* start(binary, args, ports, output, what, dir, children)
        starts++
      }),
      starts: () => starts,
      pid: () => current.pid!
    } satisfies ForwardProxy
  })

const tempDir = (name: string) => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), `lifeline-${name}-`))
  // Squid started as root runs as its cache_effective_user (Debian: proxy), which writes the logs here.
  Fs.chmodSync(dir, 0o777)
  return dir
}

/**
 * Squid on `ports` (127.0.0.1): the fixed lines (paths in the temp dir, no cache, no pinger, DNS
 * at 127.0.0.1, `shutdown_lifetime 0`), then `http_port 127.0.0.1:<port> name=p<k>` for each port
 * (so `acl x myportname p1` picks one), then `body(dir)`: the acls, `http_access` rules, timeouts.
 */
export const squid = (
  ports: ReadonlyArray<number>,
  body: (dir: string) => string
): Effect.Effect<ForwardProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = tempDir("squid")
    const conf = Path.join(dir, "squid.conf")
    Fs.writeFileSync(
      conf,
      [
        ...ports.map((port, k) => `http_port 127.0.0.1:${port} name=p${k}`),
        `pid_filename ${dir}/squid.pid`,
        `cache_log ${dir}/cache.log`,
        `access_log stdio:${dir}/access.log`,
        "cache_store_log none",
        "cache deny all",
        "cache_mem 4 MB",
        `coredump_dir ${dir}`,
        "shutdown_lifetime 0 seconds",
        "dns_nameservers 127.0.0.1",
        "pinger_enable off",
        "visible_hostname lifeline-squid",
        body(dir),
        ""
      ].join("\n")
    )
    return yield* forwardProxy(SQUID, "Squid", dir, ["-N", "-f", conf], ports, () => {
      try {
        return Fs.readFileSync(Path.join(dir, "access.log"), "utf8")
      } catch {
        return ""
      }
    })
  })

/** tinyproxy on `port` (127.0.0.1), allowing 127.0.0.1, with `body` (Timeout, ConnectPort, BasicAuth...). */
export const tinyproxy = (port: number, body: string): Effect.Effect<ForwardProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = tempDir("tinyproxy")
    const conf = Path.join(dir, "tinyproxy.conf")
    Fs.writeFileSync(
      conf,
      [
        `Port ${port}`,
        "Listen 127.0.0.1",
        "Allow 127.0.0.1",
        "MaxClients 50",
        "LogLevel Connect",
        `PidFile "${dir}/tinyproxy.pid"`,
        body,
        ""
      ].join("\n")
    )
    return yield* forwardProxy(TINYPROXY, "tinyproxy", dir, ["-d", "-c", conf], [port], (output) => output)
  })
