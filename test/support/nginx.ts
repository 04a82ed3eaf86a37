/**
 * Debian's nginx (`/usr/sbin/nginx`) on 127.0.0.1 for tests, in the foreground with its master
 * process (so that SIGHUP reloads the configuration, as `nginx -s reload` does), in a temp
 * directory removed with the scope. `server` blocks are the caller's; master and workers are
 * stopped with the scope (SIGTERM).
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { peer } from "./peers.js"

export const NGINX = "/usr/sbin/nginx"
export const hasNginx = peer(Fs.existsSync(NGINX), "nginx", "nginx-light")

const config = (dir: string, servers: string) => `
daemon off;
master_process on;
worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log crit;
worker_shutdown_timeout 1s;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${servers}
}
`

/** The proxying `location /` of a WebSocket upstream on 127.0.0.1. */
export const proxyTo = (upstream: number) => `
    location / {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 60s;
    }`

/** Resolves once something accepts TCP on 127.0.0.1:port; dies after ~3 s. */
export const awaitListening = (port: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 300; turn++) {
      const up = yield* Effect.async<boolean>((resume) => {
        const tcp = Net.connect(port, "127.0.0.1")
        tcp.once("connect", () => {
          tcp.destroy()
          resume(Effect.succeed(true))
        })
        tcp.once("error", () => resume(Effect.succeed(false)))
      })
      if (up) return
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.dieMessage(`nginx never listened on ${port}`)
  })

export interface Nginx {
  /** The temp directory: certificates written here are read by the configuration. */
  readonly dir: string
  /** Writes the new `server` blocks and reloads (SIGHUP); resolves once the new workers serve. */
  readonly reload: (servers: string) => Effect.Effect<void>
  readonly log: () => string
}

/** nginx with `servers(dir)` (the `server` blocks); `ports` are where it listens (awaited). */
export const nginx = (servers: (dir: string) => string, ports: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-nginx-"))
    const conf = Path.join(dir, "nginx.conf")
    Fs.writeFileSync(conf, config(dir, servers(dir)))
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        ChildProcess.spawn(NGINX, ["-p", dir, "-e", Path.join(dir, "error.log"), "-c", conf], { stdio: "ignore" })
      ),
      (child) =>
        Effect.async<void>((resume) => {
          const done = () => {
            Fs.rmSync(dir, { recursive: true, force: true })
            resume(Effect.void)
          }
          if (child.exitCode !== null || child.signalCode !== null) return done()
          child.once("exit", done)
          // SIGTERM, not SIGKILL: the master stops its workers at once ("fast shutdown") and exits,
          // where SIGKILL would leave them running, orphaned
          child.kill("SIGTERM")
        })
    )
    for (const port of ports) yield* awaitListening(port)
    const workers = () => {
      try {
        return ChildProcess.execFileSync("pgrep", ["-P", String(child.pid)], { encoding: "utf8" }).trim()
      } catch {
        return ""
      }
    }
    const reload = (next: string) =>
      Effect.gen(function*() {
        const before = workers()
        Fs.writeFileSync(conf, config(dir, next))
        child.kill("SIGHUP")
        // the new worker: a child of the master that was not there before
        for (let turn = 0; turn < 300; turn++) {
          const now = workers().split("\n").filter((pid) => pid !== "" && !before.split("\n").includes(pid))
          if (now.length > 0) return
          yield* Effect.sleep("10 millis")
        }
        return yield* Effect.dieMessage("nginx never reloaded")
      })
    return { dir, reload, log: () => Fs.readFileSync(Path.join(dir, "error.log"), "utf8") } satisfies Nginx
  })
