/**
 * Round 20: Node Clients (and a Connection) behind Caddy 2.6 (Debian's `/usr/bin/caddy` 2.6.2;
 * skipped with one warning when missing), the reverse proxy many operators put in front:
 * `reverse_proxy` on 127.0.0.1 (`test/support/caddy.ts`: `caddy run` with a Caddyfile in a temp dir
 * that is its HOME and XDG dirs, admin API on a port of ours) to TestServers on 127.0.0.1. Config
 * reloads (POST /load, what `caddy reload` does), the upstream down (Caddy's 502), two upstreams
 * with `lb_policy` / `lb_try_duration`, Caddy stopped and started, `tls internal` (wss:// trusting
 * Caddy's local root), Caddy's server timeouts. docs/trials.md, "round 20, behind Caddy", has the
 * table of what was tried and found.
 */
import { expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option, Schedule } from "effect"
import { Client, Connection } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { caddy, describeCaddy, proxySite } from "./support/caddy.js"
import {
  awaitState,
  describeState,
  isTag,
  recordMessages,
  recordStates as recordStatesBy,
  until
} from "./support/clientKit.js"
import { quietNode } from "./support/node.js"
import { closedPort } from "./support/ports.js"

/** Every state the Client goes through from now on, described (a Closed one by its tag), and the states themselves. */
const recordStates = (client: Client.Client) => recordStatesBy(client, (state) => describeState(state, false))

/** A TestServer that keeps every connection it accepted (`peers` lists only the open ones) and how each ended. */
const upstream = (options: TestServer.Options = {}) =>
  Effect.gen(function*() {
    const peers: Array<TestServer.Peer> = []
    const closes: Array<string> = []
    const server = yield* TestServer.make({
      ...options,
      onConnect: (peer) => {
        peers.push(peer)
        return Effect.forkDaemon(
          peer.awaitClosed("10 seconds").pipe(
            Effect.tap((closed) => Effect.sync(() => closes.push(`${peer.id}: ${closed.code}`))),
            Effect.ignore
          )
        )
      }
    })
    return { server, peers, closes }
  })

const fast = Schedule.spaced("50 millis")

/** Waits (15 s at most) until each record has `n` Open states; otherwise fails with the records. */
const openTimes = (records: ReadonlyArray<{ readonly states: ReadonlyArray<string> }>, n: number) =>
  until(
    `each Client open ${n} times`,
    () => records.every((r) => r.states.filter((state) => state.startsWith("Open")).length >= n),
    1_500
  ).pipe(
    Effect.catchAllDefect(() =>
      Effect.dieMessage(`not every Client open ${n} times within 15 s: ${JSON.stringify(records.map((r) => r.states))}`)
    )
  )

/** The Backoffs of attempts that never opened (a `Connecting` then a `Backoff` of the same attempt). */
const failedAttempts = (states: ReadonlyArray<string>): Array<string> =>
  states.filter((state, k) => state.startsWith("Backoff") && states[k - 1]?.startsWith("Connecting"))

/** The states without attempt numbers, and without the attempts that never opened. */
const withoutFailedAttempts = (states: ReadonlyArray<string>): Array<string> =>
  states
    .filter((state, k) =>
      !(state.startsWith("Backoff") && states[k - 1]?.startsWith("Connecting")) &&
      !(state.startsWith("Connecting") && states[k + 1]?.startsWith("Backoff"))
    )
    .map((state) => state.replace(/ #\d+/, ""))

describeCaddy("trials behind Caddy 2.6", () => {
  it.scopedLive(
    "reverse_proxy passes text and binary both ways, and close frames (1012 from the upstream, 4001 from the Client); the upstream sees Caddy's X-Forwarded-* headers, the Client's Host, no Origin (none sent)",
    () =>
      Effect.gen(function*() {
        const { peers, server } = yield* upstream()
        const port = yield* closedPort
        yield* caddy({ sites: proxySite(port, [server.port]) }, [port])
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}/feed`, heartbeat: false, retry: fast })
        const echoed = yield* recordMessages(client)
        yield* client.awaitOpen
        const bytes = new Uint8Array(70_000).map((_, k) => k % 251)
        yield* client.send("héllo")
        yield* client.send(bytes)
        yield* until("two echoes", () => echoed.length === 2)
        expect(echoed[0]).toBe("héllo")
        expect(new Uint8Array(echoed[1] as Uint8Array)).toEqual(bytes)
        const headers = yield* server.lastRequestHeaders
        expect(headers.host).toBe(`127.0.0.1:${port}`)
        expect(headers["x-forwarded-for"]).toBe("127.0.0.1")
        expect(headers["x-forwarded-proto"]).toBe("http")
        expect(headers["x-forwarded-host"]).toBe(`127.0.0.1:${port}`)
        expect(headers.origin).toBeUndefined()
        // close frames pass through both ways, code and reason
        yield* server.closeAll(1012, "restarting")
        const closed = yield* awaitState(client, isTag("Backoff"))
        expect(closed).toMatchObject({
          error: { _tag: "Disconnected", code: 1012, reason: "restarting", initiator: "server", wasClean: true }
        })
        yield* awaitState(client, isTag("Open"))
        expect(peers.length).toBe(2)
        expect(yield* client.close(4001, "client bye")).toEqual([])
        expect(yield* peers[1]!.awaitClosed("3 seconds")).toEqual({ code: 4001, reason: "client bye" })
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "a reload that changes anything (POST /load), or the same Caddyfile with `caddy reload --force` (Debian's systemctl reload), closes every proxied WebSocket: 1001 from Caddy, clean; Clients reconnect; the upstream sees 1006 (2.6.2's unmasked close frame; rarely the Client's 1001, passed on first); the same config without --force or a refused one (400) closes nothing",
    () =>
      Effect.gen(function*() {
        const { closes, server } = yield* upstream()
        const port = yield* closedPort
        const other = yield* closedPort
        const config = { sites: proxySite(port, [server.port]) }
        const proxy = yield* caddy(config, [port])
        const url = `ws://127.0.0.1:${port}`
        const clients = yield* Effect.forEach([1, 2, 3], () => Client.make({ url, heartbeat: false, retry: fast }))
        const records = yield* Effect.forEach(clients, recordStates)
        yield* Effect.forEach(clients, (client) => client.awaitOpen, { discard: true })
        const connection = yield* Connection.connect(url)

        // the same Caddyfile: Caddy says 200 and keeps what it has
        expect(yield* proxy.reload(config)).toBe(200)
        // a Caddyfile it cannot adapt: 400, the running config stays
        expect(yield* proxy.reload({ sites: "http://127.0.0.1:1 {\n  bind 127.0.0.1\n  reverse_proxy {\n" })).toBe(
          400
        )
        yield* Effect.sleep("200 millis")
        expect(records.map((r) => r.states)).toEqual([1, 2, 3].map(() => ["Connecting #1", "Open #1"]))
        expect(yield* connection.readyState).toBe(1)

        // the same Caddyfile with --force, as Debian's `systemctl reload caddy` runs it: every link closed
        expect(yield* proxy.forceReload).toBe(0)
        const closed = yield* connection.closed.pipe(Effect.timeout("3 seconds"))
        expect(closed).toMatchObject({
          _tag: "Disconnected",
          code: 1001,
          reason: "",
          initiator: "server",
          wasClean: true
        })
        const refused = yield* Effect.flip(connection.send("too late"))
        expect(refused).toMatchObject({ _tag: "SendError", reason: "NotOpen", payload: "too late" })
        yield* openTimes(records, 2)

        // another site added, this one untouched: every WebSocket of the old config is closed
        const next = {
          sites: config.sites + `http://127.0.0.1:${other} {\n  bind 127.0.0.1\n  respond "hi"\n}\n`
        }
        expect(yield* proxy.reload(next)).toBe(200)
        yield* openTimes(records, 3)
        // Each Client: closed 1001 by each reload, reconnected. A reconnect that reaches Caddy while
        // it swaps its servers may fail (typed, a ConnectError or a TimeoutError) and is retried:
        // such attempts are listed apart; on an unloaded machine there are none.
        const retried = records.map((r) => failedAttempts(r.states))
        expect(retried.flat().filter((line) => !/^Backoff #\d+ (ConnectError|TimeoutError) /.test(line))).toEqual([])
        expect(records.map((r) => withoutFailedAttempts(r.states))).toEqual([1, 2, 3].map(() => [
          "Connecting",
          "Open",
          "Backoff Disconnected 1001 server wasClean=true",
          "Connecting",
          "Open",
          "Backoff Disconnected 1001 server wasClean=true",
          "Connecting",
          "Open"
        ]))
        // the upstream side of those links: Caddy 2.6.2 writes its close frame to the upstream
        // unmasked; ws refuses it ("MASK must be set", WS_ERR_EXPECTED_MASK) and drops the link:
        // 1006. Unless the Client's answer (1001, masked), which Caddy copies on, got there first.
        // 3 Clients x 3 links and the Connection's: 10 accepted (more only if a failed attempt
        // reached the upstream), all but the 3 open ones ended.
        const accepted = yield* server.accepted
        expect(accepted - 10).toBeGreaterThanOrEqual(0)
        expect(accepted - 10).toBeLessThanOrEqual(retried.flat().length)
        yield* until("the upstream saw every link but the 3 open ones end", () => closes.length === accepted - 3)
        const codes = closes.map((line) => line.split(": ")[1])
        expect(codes.filter((code) => code !== "1006" && code !== "1001")).toEqual([])
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "600 sends 1 ms apart across a reload: each accepted, or (at most 2, a write the reload cut) failed SendError WriteFailed and counted; none twice, in order; any other missing (at most 5) is one written to Caddy on the old link at its close (WebSocket has no acknowledgement)",
    () =>
      Effect.gen(function*() {
        const { peers, server } = yield* upstream({ handler: "ignore" })
        const port = yield* closedPort
        const proxy = yield* caddy({ sites: proxySite(port, [server.port]) }, [port])
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false, retry: fast })
        const { states } = yield* recordStates(client)
        yield* client.awaitOpen
        const total = 600
        const failures: Array<{ readonly k: number; readonly error: unknown }> = []
        const sender = yield* Effect.forkScoped(Effect.forEach(
          Array.from({ length: total }, (_, k) => k),
          (k) =>
            client.send(`m${k}`).pipe(
              Effect.catchAll((error) => Effect.sync(() => failures.push({ k, error }))),
              Effect.zipLeft(Effect.sleep("1 millis"))
            ),
          { discard: true }
        ))
        yield* Effect.sleep("150 millis")
        expect(yield* proxy.reload({ sites: proxySite(port, [server.port], "    flush_interval -1") })).toBe(200)
        yield* Fiber.join(sender)
        // A send whose write the reload cut (the socket failed under it; seen once in a loaded
        // suite run) fails typed and is counted; every other one is accepted.
        expect(failures.length).toBeLessThanOrEqual(2)
        for (const { error } of failures) expect(error).toMatchObject({ _tag: "SendError", reason: "WriteFailed" })
        expect(yield* client.failed).toBe(failures.length)
        yield* until("the upstream read the new link's last", () =>
          Effect.map(server.received, (received) => received.includes(`m${total - 1}`)))
        // The old link ends with Caddy's 1001; on a loaded machine (a fresh-clone CI run) once
        // without its close frame: 1006 from the transport. Either is retried.
        expect([...states.slice(0, 2), ...states.slice(3)]).toEqual([
          "Connecting #1",
          "Open #1",
          "Connecting #2",
          "Open #2"
        ])
        expect([
          "Backoff #1 Disconnected 1001 server wasClean=true",
          "Backoff #1 Disconnected 1006 transport wasClean=false"
        ]).toContain(states[2])
        const numbers = (peer: TestServer.Peer) =>
          Effect.map(peer.received, (received) =>
            received.map((message) => Number(String(message).slice(1))))
        expect(peers.length).toBe(2)
        const before = yield* numbers(peers[0]!)
        const after = yield* numbers(peers[1]!)
        // each link's messages consecutive; between them a gap of what Caddy took and dropped
        expect(before).toEqual(Array.from({ length: before.length }, (_, k) => k))
        const first = after[0]!
        expect(after).toEqual(Array.from({ length: total - first }, (_, k) => first + k))
        const failed = new Set(failures.map(({ k }) => k))
        const lost = Array.from({ length: first - before.length }, (_, k) => before.length + k)
          .filter((k) => !failed.has(k))
        // What Caddy took on the old link in the reload's window and dropped: 0 or 1 in 20 runs
        // beside two busy loops, with the transport of this stop and of the one before; 3 once
        // under a full suite's load (a fresh-clone CI run of stop 31). The window is Caddy's.
        expect(lost.length).toBeLessThanOrEqual(5)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "the upstream killed: the open link ends 1006 (no close frame from Caddy); each handshake then meets Caddy's 502 (HandshakeRejected, no Retry-After), retried; the upstream back: Open, the sends queued meanwhile delivered once, in order",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const port = yield* closedPort
        yield* caddy({ sites: proxySite(port, [server.port]) }, [port])
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false, retry: fast })
        const { seen, states } = yield* recordStates(client)
        yield* client.awaitOpen
        yield* server.kill
        yield* awaitState(client, (s) => s._tag === "Backoff" && s.attempt === 3)
        const rejected = seen.find((s) => s._tag === "Backoff" && s.attempt === 2) as Client.ClientState & {
          readonly error: Record<string, unknown>
        }
        expect(rejected.error).toMatchObject({
          _tag: "ConnectError",
          reason: "HandshakeRejected",
          status: 502,
          detail:
            "the server answered HTTP 502 instead of 101; a proxy answers so when the server behind it failed or " +
            "closed; retrying helps once it is back"
        })
        expect(rejected.error.retryAfter).toBeUndefined()
        const sends = yield* Effect.forkScoped(Effect.all([client.send("q1"), client.send("q2"), client.send("q3")]))
        yield* server.restart
        yield* awaitState(client, isTag("Open"))
        expect((yield* sends.await)._tag).toBe("Success")
        yield* until("the queued sends arrive", () => Effect.map(server.received, (r) => r.length >= 3))
        expect(yield* server.received).toEqual(["q1", "q2", "q3"])
        expect(states.slice(0, 5)).toEqual([
          "Connecting #1",
          "Open #1",
          "Backoff #1 Disconnected 1006 transport wasClean=false",
          "Connecting #2",
          "Backoff #2 ConnectError HandshakeRejected 502"
        ])
        expect(
          states.slice(2, -2).filter((s) => s.startsWith("Backoff")).slice(1).every((s) =>
            s.endsWith("HandshakeRejected 502")
          )
        ).toBe(true)
        expect(yield* client.failed).toBe(0)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "an upstream that never answers the upgrade: Caddy waits (no response_header_timeout by default), so the Client's openTimeout ends each attempt (TimeoutError open, retried); the upstream back: Open",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const port = yield* closedPort
        yield* caddy({ sites: proxySite(port, [server.port]) }, [port])
        yield* server.hangHandshake
        const client = yield* Client.make({
          url: `ws://127.0.0.1:${port}`,
          heartbeat: false,
          retry: fast,
          // 1 s, not less: under CI load an attempt of 200 ms once ended before Caddy had passed
          // its upgrade on (the upstream saw 1 request for 2 attempts)
          connection: { openTimeout: "1 second" }
        })
        const { states } = yield* recordStates(client)
        yield* awaitState(client, (s) => s._tag === "Backoff" && s.attempt === 2)
        expect(yield* server.requests).toBe(2)
        yield* server.behave
        yield* awaitState(client, isTag("Open"))
        expect(states.slice(0, 5)).toEqual([
          "Connecting #1",
          "Backoff #1 TimeoutError open",
          "Connecting #2",
          "Backoff #2 TimeoutError open",
          "Connecting #3"
        ])
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "two upstreams, lb_policy round_robin, one killed with Clients on it: without lb_try_duration a reconnect can be sent to the dead one (502, retried); with lb_try_duration 1s / lb_try_interval 50ms Caddy tries the other and no Client sees a 502",
    () =>
      Effect.gen(function*() {
        const run = (extra: string) =>
          Effect.scoped(Effect.gen(function*() {
            const a = yield* TestServer.make()
            const b = yield* TestServer.make()
            const port = yield* closedPort
            yield* caddy({ sites: proxySite(port, [a.port, b.port], `    lb_policy round_robin\n${extra}`) }, [port])
            const clients: Array<Client.Client> = []
            const records: Array<ReadonlyArray<string>> = []
            for (let k = 0; k < 4; k++) {
              const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false, retry: fast })
              records.push((yield* recordStates(client)).states)
              yield* client.awaitOpen
              clients.push(client)
            }
            expect([yield* a.accepted, yield* b.accepted]).toEqual([2, 2])
            yield* a.kill
            yield* Effect.sleep("50 millis")
            yield* Effect.forEach(clients, (client) => awaitState(client, isTag("Open")), { discard: true })
            // every Client on b now: its two and the two that were on a
            expect(yield* b.accepted).toBe(4)
            return records.flatMap((states) => states.filter((s) => s.includes("502")))
          }))
        // round robin alternates: of the two reconnects, one at least is sent to the dead a first
        const plain = yield* run("")
        expect(plain.length).toBeGreaterThan(0)
        expect(plain.every((s) => /^Backoff #\d+ ConnectError HandshakeRejected 502$/.test(s))).toBe(true)
        expect(yield* run("    lb_try_duration 1s\n    lb_try_interval 50ms")).toEqual([])
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "Caddy stopped (SIGTERM, then `caddy stop`): 1001 from Caddy, clean; ConnectionRefused while it is down, retried; started again: Open, sends queued meanwhile delivered once",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const port = yield* closedPort
        const proxy = yield* caddy({ sites: proxySite(port, [server.port]) }, [port])
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false, retry: fast })
        const { seen, states } = yield* recordStates(client)
        yield* client.awaitOpen
        for (const [k, how] of (["SIGTERM", "api"] as const).entries()) {
          yield* until("the Open recorded", () => states[states.length - 1]?.startsWith("Open") === true)
          const from = states.length
          const open = seen[from - 1] as Client.ClientState & { readonly attempt: number }
          yield* proxy.stop(how)
          // bounds of 20 s (hang guards): a loaded fresh-clone CI run ran out the default 5 s here
          yield* awaitState(client, (s) => s._tag === "Backoff" && s.attempt === open.attempt + 1, "20 seconds")
          const refused = seen.slice(from).find((s) => s._tag === "Backoff" && s.error._tag === "ConnectError")
          expect(refused).toMatchObject({ error: { _tag: "ConnectError", reason: "ConnectionRefused" } })
          // a send waits in the outbox until a link takes it
          const queued = yield* Effect.fork(client.send(`while down ${k}`))
          yield* proxy.start
          yield* awaitState(client, isTag("Open"), "20 seconds")
          expect((yield* queued.await)._tag).toBe("Success")
          expect(states[from]).toBe(`Backoff #${open.attempt} Disconnected 1001 server wasClean=true`)
          expect(
            states.slice(from + 1, -1).every((s) =>
              s.startsWith("Connecting") || s.endsWith("ConnectError ConnectionRefused undefined")
            )
          ).toBe(true)
        }
        yield* until("the queued sends arrive", () => Effect.map(server.received, (r) => r.length >= 2))
        expect(yield* server.received).toEqual(["while down 0", "while down 1"])
        expect(yield* client.failed).toBe(0)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "tls internal on 127.0.0.1: without Caddy's root, TlsFailed with a detail that says what to give (retried); with its root.crt in connection.tls.ca, wss:// opens and echoes",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const port = yield* closedPort
        const site = proxySite(port, [server.port], "", "https").replace(
          "bind 127.0.0.1",
          "bind 127.0.0.1\n  tls internal"
        )
        const proxy = yield* caddy({ https: true, sites: site }, [port])
        const url = `wss://127.0.0.1:${port}`
        yield* proxy.certificate("127.0.0.1")
        const untrusting = yield* Client.make({ url, heartbeat: false, retry: fast })
        const { seen } = yield* recordStates(untrusting)
        const untrusted = "unable to get local issuer certificate (UNABLE_TO_GET_ISSUER_CERT_LOCALLY); the issuer is " +
          "not trusted: give its CA in tls.ca (a server must also send its intermediate certificates)"
        // Caddy writes the certificate's file before it serves it: an attempt in between (a loaded
        // fresh-clone CI run saw one) gets Caddy's alert, which the detail explains. Hang guard 20 s.
        const notYet = "write EPROTO tlsv1 alert internal error (SSL alert number 80); the server failed the TLS " +
          "handshake; one that picks its certificate by name (Caddy, Go servers) does so when it has none for the " +
          "name sent (none is sent when dialling an IP address: set tls.servername) or has not obtained it yet " +
          "(retrying helps)"
        const isUntrusted = (s: Client.ClientState) =>
          s._tag === "Backoff" && s.error._tag === "ConnectError" && s.error.detail === untrusted
        const first = yield* awaitState(untrusting, isUntrusted, "20 seconds")
        expect(first).toMatchObject({ _tag: "Backoff", error: { _tag: "ConnectError", reason: "TlsFailed" } })
        const backoffs = seen.filter((s) => s._tag === "Backoff")
        expect(backoffs.every((s) => s.error._tag === "ConnectError" && s.error.reason === "TlsFailed")).toBe(true)
        expect(backoffs.every((s) => s.error._tag === "ConnectError" && [untrusted, notYet].includes(s.error.detail)))
          .toBe(true)
        const ca = yield* proxy.rootCertificate
        const client = yield* Client.make({ url, heartbeat: false, retry: fast, connection: { tls: { ca } } })
        const { states } = yield* recordStates(client)
        const echoed = yield* recordMessages(client)
        yield* client.awaitOpen
        yield* client.send("over tls")
        yield* until("the echo", () => echoed.length === 1)
        expect(echoed).toEqual(["over tls"])
        expect(states).toEqual(["Connecting #1", "Open #1"])
        expect((yield* server.lastRequestHeaders)["x-forwarded-proto"]).toBe("https")
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "tls internal for a name (ws.example.test) dialled as 127.0.0.1: no SNI, Caddy's TLS alert 80 (TlsFailed, a detail that names tls.servername); with tls.servername, Caddy's empty 200 for a Host it has no site for (HandshakeRejected 200, not retried, a detail that names the Host); with a Host header too: open",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const port = yield* closedPort
        const name = "ws.example.test"
        const site = proxySite(port, [server.port], "", "https").replace(
          `https://127.0.0.1:${port}`,
          `https://${name}:${port}`
        )
          .replace("bind 127.0.0.1", "bind 127.0.0.1\n  tls internal")
        const proxy = yield* caddy({ https: true, sites: site }, [port])
        yield* proxy.certificate(name)
        const ca = yield* proxy.rootCertificate
        const url = `wss://127.0.0.1:${port}`
        const outcome = (options: Partial<Client.Options>) =>
          Effect.gen(function*() {
            const client = yield* Client.make({ url, heartbeat: false, retry: fast, ...options })
            const state = yield* awaitState(client, (s) => s._tag !== "Idle" && s._tag !== "Connecting")
            return state
          })
        expect(yield* outcome({ connection: { tls: { ca } } })).toMatchObject({
          _tag: "Backoff",
          error: {
            _tag: "ConnectError",
            reason: "TlsFailed",
            detail:
              "write EPROTO tlsv1 alert internal error (SSL alert number 80); the server failed the TLS handshake; " +
              "one that picks its certificate by name (Caddy, Go servers) does so when it has none for the name sent " +
              "(none is sent when dialling an IP address: set tls.servername) or has not obtained it yet (retrying helps)"
          }
        })
        const noSite = yield* outcome({ connection: { tls: { ca, servername: name } } })
        expect(noSite._tag).toBe("Closed")
        expect((noSite as { error: Option.Option<unknown> }).error).toEqual(Option.some(expect.objectContaining({
          _tag: "ConnectError",
          reason: "HandshakeRejected",
          status: 200,
          detail:
            "the server answered HTTP 200 instead of 101; a plain HTTP answer: nothing upgrades at that host and " +
            "path (a web page, or a proxy with no route for them: Caddy answers an empty 200 when no site matches the " +
            "Host); check the URL and the Host header"
        })))
        expect(yield* outcome({ connection: { tls: { ca, servername: name } }, headers: { host: `${name}:${port}` } }))
          .toMatchObject({ _tag: "Open", attempt: 1 })
        expect((yield* server.lastRequestHeaders).host).toBe(`${name}:${port}`)
        expect(yield* server.accepted).toBe(1)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )

  it.scopedLive(
    "Caddy's server timeouts (read_body, read_header, write, idle: 200 ms) do not apply to a proxied WebSocket: idle for 600 ms (3 times the timeouts), still open, the next send echoed",
    () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const port = yield* closedPort
        const timeouts = "read_body 200ms\n      read_header 200ms\n      write 200ms\n      idle 200ms"
        yield* caddy({
          global: `  servers {\n    timeouts {\n      ${timeouts}\n    }\n  }`,
          sites: proxySite(port, [server.port])
        }, [port])
        const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false, retry: fast })
        const { states } = yield* recordStates(client)
        const echoed = yield* recordMessages(client)
        yield* client.awaitOpen
        yield* Effect.sleep(Duration.millis(600))
        yield* client.send("after 600 ms")
        yield* until("the echo", () => echoed.length === 1)
        expect(states).toEqual(["Connecting #1", "Open #1"])
        expect(yield* server.accepted).toBe(1)
      }).pipe(Effect.provide(quietNode)),
    30_000
  )
})
