/**
 * Jetty 9.4 (Java) as a real peer (round 20): `jettyPeer.java` beside this file, compiled once with
 * the JDK's `javac` against Debian's Jetty jars (`libjetty9-java`, `libjetty9-extra-java` for the
 * WebSocket jars, `libservlet-api-java`), in /usr/share/java. The classes are kept under
 * os.tmpdir() by the source's hash, so a run compiles at most once (and not at all when a run
 * before compiled the same source). When `java`, `javac` or a jar is missing, `hasJetty` is false
 * and the tests skip with one loud warning. The server reads its port from stdin (0: any), prints
 * `PORT n`, then what it saw as lines (kept in `lines`); `stop` writes `STOP` (Jetty's
 * `server.stop()`), `kill` is SIGKILL, `restart` starts it again on the same port. Jetty's own log
 * (stderr) is not read.
 */
import { Effect, Exit, Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { peer } from "./peers.js"
import { awaitTrue } from "./poll.js"
import { cachedBuild, killed, spawnPortPeer } from "./portPeer.js"

const here = Path.dirname(fileURLToPath(import.meta.url))
const SOURCE = Path.join(here, "jettyPeer.java")
const JARS = [
  ...[
    "server",
    "servlet",
    "http",
    "io",
    "util",
    "security",
    "websocket-api",
    "websocket-common",
    "websocket-server",
    "websocket-servlet",
    "websocket-client"
  ].map((name) => `/usr/share/java/jetty9-${name}.jar`),
  "/usr/share/java/servlet-api.jar"
]

const runs = (command: string) => ChildProcess.spawnSync(command, ["-version"], { stdio: "ignore" }).status === 0

export const hasJetty = peer(
  runs("java") && runs("javac") && JARS.every((jar) => Fs.existsSync(jar)),
  "Jetty 9.4",
  "default-jdk-headless libjetty9-java libjetty9-extra-java libservlet-api-java"
)

let compiled: string | undefined

/** The directory of the server's classes: compiled on first use (a few seconds cold), then the cached one. */
const classes = (): string =>
  compiled ??= cachedBuild(SOURCE, "jetty", "jettyPeer.class", (dir) => {
    const result = ChildProcess.spawnSync(
      "javac",
      ["-nowarn", "-d", dir, "-cp", JARS.join(":"), SOURCE],
      { encoding: "utf8" }
    )
    if (result.status !== 0) throw new Error(`javac of jettyPeer.java failed: ${result.stderr}`)
  })

export interface JettyPeer {
  readonly url: (path: string) => string
  readonly port: number
  /** Every line the servers printed (all runs), in order. */
  readonly lines: Array<string>
  /** The lines that start with `prefix`, without it. */
  readonly linesOf: (prefix: string) => Array<string>
  /** `server.stop()`: Jetty closes its sessions and exits. */
  readonly stop: Effect.Effect<void>
  /** SIGKILL: no close frame, TCP ends as the kernel closes the sockets. */
  readonly kill: Effect.Effect<void>
  /** A new server process on the same port. */
  readonly restart: Effect.Effect<void, never, Scope.Scope>
}

const exited = (child: ChildProcess.ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

// A JVM starts in about a second here; six on a loaded machine.
const spawn = (args: ReadonlyArray<string>, port: number, lines: Array<string>) =>
  spawnPortPeer(
    "java",
    [
      // A test server: a quick start counts more than peak speed.
      "-XX:TieredStopAtLevel=1",
      "-XX:+UseSerialGC",
      "-Xshare:auto",
      "-Dorg.eclipse.jetty.util.log.class=org.eclipse.jetty.util.log.StdErrLog",
      "-Dorg.eclipse.jetty.LEVEL=OFF",
      "-cp",
      [classes(), ...JARS].join(":"),
      "jettyPeer",
      ...args
    ],
    port,
    lines,
    "the Jetty server listens",
    1200,
    killed
  )

/** A Jetty server; `args`: `idle=<ms>` (the /idle path's idle timeout, default 1000). */
export const jettyPeer = (args: ReadonlyArray<string> = []): Effect.Effect<JettyPeer, never, Scope.Scope> =>
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
      stop: Effect.suspend(() => {
        const child = current
        child.stdin!.write("STOP\n")
        return exited(child).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "Jetty did not stop" }),
          Effect.orDie
        )
      }),
      kill: Effect.suspend(() => killed(current)),
      restart: Effect.gen(function*() {
        current = (yield* spawn(args, port, lines)).child
      })
    }
  })

/** Waits (bounded, real time) until `peer` printed a line for which `check` holds. */
export const awaitJettyLine = (peer: JettyPeer, check: (line: string) => boolean, what: string, polls = 1000) =>
  awaitTrue(Effect.sync(() => peer.lines.some(check)), what, polls)

/**
 * One Jetty server for a describe block (a JVM start is about a second): `hooks()` in the block
 * starts it before its tests (not when Jetty is missing) and stops it after; `peer()` in a test.
 * Tests tell their lines apart with `?id=` on the URL.
 */
export const sharedJetty = (args: ReadonlyArray<string> = []) => {
  let scope: Scope.CloseableScope | undefined
  let current: JettyPeer | undefined
  return {
    hooks: () => {
      beforeAll(async () => {
        if (!hasJetty) return
        scope = Effect.runSync(Scope.make())
        current = await Effect.runPromise(Scope.extend(jettyPeer(args), scope))
      }, 30_000)
      afterAll(async () => {
        if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
      })
    },
    peer: (): JettyPeer => {
      if (current === undefined) throw new Error("the shared Jetty server is not started (hooks() missing?)")
      return current
    }
  }
}
