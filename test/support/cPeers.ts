/**
 * Two peers from Debian that are not libraries of a language the suite already has (round 21):
 * - libwebsockets' test server (`libwebsockets-test-server`, lws 4.1.6, C): subprotocols
 *   `dumb-increment-protocol` (a counter as text every 50 ms; "reset\n" restarts it, "closeme\n"
 *   closes with 1001 "seeya") and `lws-mirror-protocol` (each message to every connection of the
 *   same `?mirror=` instance, the sender's own included). It binds with `-i lo`: `-i 127.0.0.1`
 *   listens on EVERY address (lws 4.1.6 with IPv6 takes an IPv4 literal as "any"), so the kit
 *   reads /proc/net and refuses (kills it, fails the test) a listener that is not loopback only.
 * - websocketd 0.4.1 (Go): one process per connection, each stdout line a text message, each
 *   message a stdin line; `--address=127.0.0.1`.
 * Neither prints its port: the kit picks a free one on 127.0.0.1 and polls /proc/net until the
 * port listens. When a binary is missing its tests skip with one loud warning (`.ci/run` installs
 * both packages). `kill` is SIGKILL (no close frame), `restart` starts the same server again on
 * its port. The peers' own logs are not read.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { peer } from "./peers.js"
import { awaitTrue } from "./poll.js"
import { killed } from "./portPeer.js"
import { closedPort } from "./ports.js"

const LWS = "/usr/bin/libwebsockets-test-server"
const WEBSOCKETD = "/usr/bin/websocketd"

export const hasLws = peer(Fs.existsSync(LWS), "libwebsockets' test server (lws 4.1.6)", "libwebsockets-test-server")
export const hasWebsocketd = peer(Fs.existsSync(WEBSOCKETD), "websocketd", "websocketd")

/** 127.0.0.1 as /proc/net/tcp writes it, and as an IPv4-mapped IPv6 address in /proc/net/tcp6. */
const LOOPBACK = new Set(["0100007F", "0000000000000000FFFF00000100007F"])

/** The local addresses (hex, as /proc/net writes them) of the sockets listening on `port`. */
export const listenersOn = (port: number): ReadonlyArray<string> => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  const found: Array<string> = []
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = ""
    try {
      text = Fs.readFileSync(file, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      // fields[1] is "ADDRESS:PORT", fields[3] the state: 0A is LISTEN.
      if (fields.length < 4 || fields[3] !== "0A") continue
      const [address, listenPort] = fields[1]!.split(":")
      if (listenPort === hexPort) found.push(address!)
    }
  }
  return found
}

export interface CPeer {
  readonly port: number
  readonly url: (path?: string) => string
  /** SIGKILL: no close frame, TCP ends as the kernel closes the sockets. */
  readonly kill: Effect.Effect<void>
  /** The same server again on the same port. */
  readonly restart: Effect.Effect<void, never, Scope.Scope>
}

/** Starts `command args(port)` and waits (at most 5 s) until it listens on 127.0.0.1 only. */
const spawnListening = (command: string, args: (port: number) => ReadonlyArray<string>, port: number) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => ChildProcess.spawn(command, [...args(port)], { stdio: "ignore" })),
      killed
    )
    yield* awaitTrue(Effect.sync(() => listenersOn(port).length > 0), `${command} listens on ${port}`)
    const listeners = listenersOn(port)
    if (!listeners.every((address) => LOOPBACK.has(address))) {
      yield* killed(child)
      return yield* Effect.dieMessage(`${command} listens beyond 127.0.0.1: ${listeners.join(", ")}`)
    }
    return child
  })

const cPeer = (command: string, args: (port: number) => ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const port = yield* closedPort
    let current = yield* spawnListening(command, args, port)
    const peer: CPeer = {
      port,
      url: (path = "/") => `ws://127.0.0.1:${port}${path}`,
      kill: Effect.suspend(() => killed(current)),
      restart: Effect.gen(function*() {
        current = yield* spawnListening(command, args, port)
      })
    }
    return peer
  })

/** libwebsockets' test server on 127.0.0.1 (`-i lo`), its log off (`-d 0`); `extra`: more flags. */
export const lwsPeer = (extra: ReadonlyArray<string> = []): Effect.Effect<CPeer, never, Scope.Scope> =>
  cPeer(LWS, (port) => ["-i", "lo", "-p", String(port), "-d", "0", ...extra])

/** websocketd on 127.0.0.1 running `program` (a command and its arguments) per connection. */
export const websocketdPeer = (
  program: ReadonlyArray<string>,
  flags: ReadonlyArray<string> = []
): Effect.Effect<CPeer, never, Scope.Scope> =>
  cPeer(WEBSOCKETD, (port) => [
    "--address=127.0.0.1",
    `--port=${port}`,
    "--loglevel=fatal",
    ...flags,
    ...program
  ])
