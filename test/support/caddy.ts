/**
 * Debian's Caddy (`/usr/bin/caddy`, 2.6) on 127.0.0.1 for tests (round 20): `caddy run --config
 * <Caddyfile> --adapter caddyfile` in a temp directory that is also its HOME, XDG_DATA_HOME and
 * XDG_CONFIG_HOME (so its local CA, autosave and locks stay there), its admin API on a port of ours
 * on 127.0.0.1 (never the shared :2019), `auto_https off` unless the caller turns TLS on, never an
 * install of its root into the system's trust (`skip_install_trust`). Every site given must `bind
 * 127.0.0.1`. The process is stopped with the scope (SIGTERM, then SIGKILL after 3 s) and the
 * directory removed, even when the test failed.
 *
 * `describeCaddy` skips its tests with ONE loud warning when Caddy is missing (`.ci/run` installs it).
 */
import { Effect, Schedule } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe } from "vitest"
import { awaitListening } from "./nginx.js"
import { peer, proxyTrial, reportRetries } from "./peers.js"
import { closedPort } from "./ports.js"

export const CADDY = "/usr/bin/caddy"
export const hasCaddy = peer(Fs.existsSync(CADDY), "Caddy", "caddy")

/** `describe`, or `describe.skip` when there is no Caddy (`peer` has said so, loudly). */
export const describeCaddy = (name: string, body: () => void): void => {
  if (hasCaddy) {
    describe(name, proxyTrial, () => {
      reportRetries()
      body()
    })
  } else describe.skip(name, body)
}

/** The site blocks of a Caddyfile (each with `bind 127.0.0.1`); `https` leaves automatic HTTPS on. */
export interface CaddyConfig {
  readonly sites: string
  /** Lines added to the global options block. */
  readonly global?: string
  /** Keep automatic HTTPS (for `tls internal`); its redirects stay off. Default false: `auto_https off`. */
  readonly https?: boolean
}

/** A site on 127.0.0.1:`port` that proxies to the `upstreams` (ports on 127.0.0.1), with `extra` lines in `reverse_proxy`. */
export const proxySite = (port: number, upstreams: ReadonlyArray<number>, extra = "", scheme = "http") => `
${scheme}://127.0.0.1:${port} {
  bind 127.0.0.1
  reverse_proxy ${upstreams.map((upstream) => `127.0.0.1:${upstream}`).join(" ")} {
${extra}
  }
}
`

export interface Caddy {
  readonly dir: string
  readonly adminPort: number
  /** POST /load of a new Caddyfile to the admin API; its HTTP status (200 once it is in force). */
  readonly reload: (next: CaddyConfig) => Effect.Effect<number>
  /**
   * `caddy reload --config <Caddyfile> --adapter caddyfile --force` on the current config, as
   * Debian's `systemctl reload caddy` runs it (its ExecReload); the command's exit code.
   */
  readonly forceReload: Effect.Effect<number>
  /** SIGTERM to the process, or `caddy stop --address <admin>` ("api"); its exit awaited. */
  readonly stop: (how?: "SIGTERM" | "api") => Effect.Effect<void>
  /** A new process on the last configuration (after `stop`), listening on `ports` (awaited). */
  readonly start: Effect.Effect<void>
  /** Caddy's local root certificate (PEM), once a `tls internal` site has made it (waited for, ~3 s at most). */
  readonly rootCertificate: Effect.Effect<string>
  /**
   * The certificate Caddy issued itself for `name` (a `tls internal` site), waited for: Caddy
   * listens before it has one, and answers a handshake meanwhile with a TLS alert (internal error).
   */
  readonly certificate: (name: string) => Effect.Effect<string>
  /** What the processes wrote (Caddy logs JSON lines on stderr). */
  readonly log: () => string
}

/**
 * One POST on a connection of its own (no keep-alive: a socket Caddy's admin server closed after
 * an earlier load is never reused): its HTTP status, or the request's error.
 */
const postOnce = (port: number, path: string, body: string, type: string) =>
  Effect.async<number, Error>((resume) => {
    const request = Http.request({
      host: "127.0.0.1",
      port,
      path,
      method: "POST",
      agent: false,
      headers: { "content-type": type, "content-length": Buffer.byteLength(body) }
    }, (response) => {
      response.resume()
      response.on("end", () => resume(Effect.succeed(response.statusCode ?? 0)))
    })
    request.on("error", (error) => resume(Effect.fail(error)))
    request.end(body)
    return Effect.sync(() => request.destroy())
  })

/**
 * POST to the admin API; a request that failed before any answer (under load, once: the test saw
 * status 0) is sent again, three times at most, 200 ms apart (a load of the same config is
 * idempotent). Dies with the error and `log()` if it never got an answer.
 */
const post = (port: number, path: string, body: string, type: string, log: () => string) =>
  postOnce(port, path, body, type).pipe(
    Effect.retry({ times: 3, schedule: Schedule.spaced("200 millis") }),
    Effect.catchAll((error) =>
      Effect.dieMessage(`POST ${path} to Caddy's admin API failed: ${error.message}\n${log()}`)
    )
  )

/** Caddy on `config`, listening on `ports` (awaited); stopped with the scope. */
export const caddy = (config: CaddyConfig, ports: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-caddy-"))
    const adminPort = yield* closedPort
    const file = Path.join(dir, "Caddyfile")
    const render = (next: CaddyConfig) =>
      `{
	admin 127.0.0.1:${adminPort}
	${next.https === true ? "auto_https disable_redirects" : "auto_https off"}
	skip_install_trust
${next.global ?? ""}
}
${next.sites}
`
    let last = config
    let log = ""
    let child: ChildProcess.ChildProcess | undefined
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dir,
      XDG_DATA_HOME: Path.join(dir, "data"),
      XDG_CONFIG_HOME: Path.join(dir, "config")
    }
    const exited = (process: ChildProcess.ChildProcess) =>
      Effect.async<void>((resume) => {
        if (process.exitCode !== null || process.signalCode !== null) return resume(Effect.void)
        process.once("exit", () => resume(Effect.void))
      })
    const stopNow = Effect.suspend(() => {
      const current = child
      if (current === undefined || current.exitCode !== null || current.signalCode !== null) return Effect.void
      current.kill("SIGTERM")
      return exited(current).pipe(
        Effect.timeout("3 seconds"),
        Effect.ignore,
        Effect.andThen(Effect.sync(() => {
          if (current.exitCode === null && current.signalCode === null) current.kill("SIGKILL")
        }))
      )
    })
    yield* Effect.addFinalizer(() =>
      stopNow.pipe(Effect.andThen(Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))))
    )
    const start = Effect.gen(function*() {
      Fs.writeFileSync(file, render(last))
      const next = ChildProcess.spawn(CADDY, ["run", "--config", file, "--adapter", "caddyfile"], {
        cwd: dir,
        env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      next.stdout!.setEncoding("utf8")
      next.stderr!.setEncoding("utf8")
      next.stdout!.on("data", (chunk: string) => {
        log += chunk
      })
      next.stderr!.on("data", (chunk: string) => {
        log += chunk
      })
      child = next
      // a configuration Caddy refuses ends the process: die with what it said, not a bare timeout
      yield* Effect.forEach([adminPort, ...ports], awaitListening, { discard: true }).pipe(
        Effect.catchAllDefect(() => Effect.dieMessage(`caddy never listened on ${ports.join(", ")}:\n${log}`))
      )
    })
    yield* start
    // the Caddyfile on disk (for `forceReload` and `start`) is the last one Caddy took
    const reload = (next: CaddyConfig) =>
      Effect.suspend(() => {
        const text = render(next)
        return Effect.tap(post(adminPort, "/load", text, "text/caddyfile", () => log), (status) =>
          Effect.sync(() => {
            if (status !== 200) return
            last = next
            Fs.writeFileSync(file, text)
          }))
      })
    const forceReload = Effect.async<number>((resume) => {
      ChildProcess.execFile(
        CADDY,
        ["reload", "--config", file, "--adapter", "caddyfile", "--address", `127.0.0.1:${adminPort}`, "--force"],
        { cwd: dir, env },
        (error) => resume(Effect.succeed(error === null ? 0 : typeof error.code === "number" ? error.code : 1))
      )
    })
    const stop = (how: "SIGTERM" | "api" = "SIGTERM") =>
      how === "SIGTERM" ?
        stopNow :
        Effect.gen(function*() {
          const current = child!
          yield* Effect.async<void>((resume) => {
            ChildProcess.execFile(
              CADDY,
              ["stop", "--address", `127.0.0.1:${adminPort}`],
              { cwd: dir, env },
              () => resume(Effect.void)
            )
          })
          yield* exited(current).pipe(Effect.timeout("3 seconds"), Effect.orDie)
        })
    const pemAt = (file: string) =>
      Effect.gen(function*() {
        for (let turn = 0; turn < 300; turn++) {
          const pem = Fs.existsSync(file) ? Fs.readFileSync(file, "utf8") : ""
          if (pem.includes("-----END CERTIFICATE-----")) return pem
          yield* Effect.sleep("10 millis")
        }
        return yield* Effect.dieMessage(`caddy never wrote ${file}:\n${log}`)
      })
    const data = Path.join(dir, "data", "caddy")
    const rootCertificate = pemAt(Path.join(data, "pki", "authorities", "local", "root.crt"))
    const certificate = (name: string) => pemAt(Path.join(data, "certificates", "local", name, `${name}.crt`))
    return {
      dir,
      adminPort,
      reload,
      forceReload,
      stop,
      start,
      rootCertificate,
      certificate,
      log: () => log
    } satisfies Caddy
  })
