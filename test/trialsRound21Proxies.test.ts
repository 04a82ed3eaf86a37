/**
 * Round 21: Node Clients (and a Connection) behind the two other reverse proxies operators put in
 * front: Debian's Apache httpd 2.4 (`/usr/sbin/apache2`, mod_proxy_wstunnel and mod_proxy_http's
 * `upgrade=websocket`; `test/support/apache.ts`) and lighttpd 1.4 (`/usr/sbin/lighttpd`, mod_proxy
 * with `proxy.header = ("upgrade" => "enable")`; `test/support/lighttpd.ts`), each on a
 * configuration of our own in a temp dir on 127.0.0.1, to TestServers on 127.0.0.1. Each skips with
 * one warning when its server is missing (`.ci/run` installs both). Echo and close frames, graceful
 * and hard restarts, the upstream down, idle timeouts and the heartbeat, the proxy stopped and
 * started. docs/trials.md, "round 21, behind Apache httpd and lighttpd", has the table of what was
 * tried and found.
 */
import { expect, it } from "@effect/vitest"
import type { Duration } from "effect"
import { Effect, Fiber, Option, Schedule } from "effect"
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as Path from "node:path"
import { describe } from "vitest"
import { Client, Connection } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { apache, describeApache } from "./support/apache.js"
import { awaitState, describeState, isTag, recordMessages, recordStates, until } from "./support/clientKit.js"
import { describeLighttpd, lighttpd, proxyBlock } from "./support/lighttpd.js"
import { quietNode } from "./support/node.js"
import { closedPort } from "./support/ports.js"
import { tcpServer } from "./support/tcpServer.js"

/** A TestServer that keeps every connection it accepted (`peers` lists only the open ones). */
const upstream = (options: TestServer.Options = {}) =>
  Effect.gen(function*() {
    const peers: Array<TestServer.Peer> = []
    const server = yield* TestServer.make({
      ...options,
      onConnect: (peer) => Effect.sync(() => peers.push(peer))
    })
    return { server, peers }
  })

const fast = Schedule.spaced("50 millis")

/**
 * Two Clients through a proxy that cuts a link idle for about 2 s: one without a heartbeat, cut
 * after 1 to 5 s (1006 from the transport, no close frame), then closed (on a loaded machine its
 * retry, 5 s on, made another upstream link before a later count); and one whose heartbeat every
 * `interval` keeps it up. The beating Client and its recorded states.
 */
const idleCutButBeating = (url: string, interval: Duration.DurationInput) =>
  Effect.gen(function*() {
    const idle = yield* Client.make({ url, heartbeat: false, retry: Schedule.spaced("5 seconds") })
    const idleStates = yield* recordStates(idle)
    const beating = yield* Client.make({ url, heartbeat: { interval, timeout: "2 seconds" }, retry: fast })
    const { states } = yield* recordStates(beating)
    yield* idle.awaitOpen
    const opened = Date.now()
    yield* beating.awaitOpen
    yield* awaitState(idle, isTag("Backoff"), "20 seconds")
    const idleFor = Date.now() - opened
    expect(idleStates.states).toEqual([
      "Connecting #1",
      "Open #1",
      "Backoff #1 Disconnected 1006 transport wasClean=false"
    ])
    expect(idleFor).toBeGreaterThan(1000)
    expect(idleFor).toBeLessThan(5000)
    yield* idle.close()
    return { beating, states }
  })

/** `count` sends 1 ms apart from a fiber; the failures, typed, by index. */
const sendAll = (client: Client.Client, count: number) =>
  Effect.forkScoped(Effect.gen(function*() {
    const failures: Array<{ readonly k: number; readonly error: unknown }> = []
    for (let k = 0; k < count; k++) {
      yield* client.send(`m${k}`).pipe(
        Effect.catchAll((error) => Effect.sync(() => failures.push({ k, error }))),
        Effect.zipLeft(Effect.sleep("1 millis"))
      )
    }
    return failures
  }))

/** The numbers of the `m<k>` messages each peer received, in order. */
const numbersOf = (peers: ReadonlyArray<TestServer.Peer>) =>
  Effect.forEach(
    peers,
    (peer) => Effect.map(peer.received, (received) => received.map((message) => Number(String(message).slice(1))))
  )

// Concurrently (vitest's default, five at a time): most of each test is waiting on a proxy's
// timers (idle cuts, restarts, a disabled backend), so the file takes about 10 s instead of 19.
describe.concurrent("round 21: behind Apache httpd and lighttpd", () => {
  describeApache("trials behind Apache httpd 2.4", () => {
    it.scopedLive(
      "mod_proxy_wstunnel (ProxyPass ws://) and mod_proxy_http (upgrade=websocket): text and 70,000 bytes echoed, close codes and reasons both ways; Host is the upstream's (ProxyPreserveHost Off); a path with no ProxyPass: 404, a page Apache serves: 200 (the plain-HTTP hint), neither retried",
      () =>
        Effect.gen(function*() {
          const { peers, server } = yield* upstream()
          const port = yield* closedPort
          const proxy = yield* apache({
            body: `ProxyPass /ws ws://127.0.0.1:${server.port}/ws\n` +
              `ProxyPass /up http://127.0.0.1:${server.port}/up upgrade=websocket\n`
          }, port)
          const bytes = new Uint8Array(70_000).map((_, k) => k % 251)
          for (const [k, path] of ["/ws", "/up"].entries()) {
            const client = yield* Client.make({ url: `ws://127.0.0.1:${port}${path}`, heartbeat: false, retry: fast })
            const echoed = yield* recordMessages(client)
            yield* client.awaitOpen
            yield* client.send("héllo")
            yield* client.send(bytes)
            yield* until("two echoes", () => echoed.length === 2)
            expect(echoed[0]).toBe("héllo")
            expect(new Uint8Array(echoed[1] as Uint8Array)).toEqual(bytes)
            const headers = peers[2 * k]!.requestHeaders
            expect(headers.host).toBe(`127.0.0.1:${server.port}`)
            expect(headers["x-forwarded-host"]).toBe(`127.0.0.1:${port}`)
            expect(headers["x-forwarded-for"]).toBe("127.0.0.1")
            expect(headers["x-forwarded-server"]).toBe("127.0.0.1")
            expect(headers["x-forwarded-proto"]).toBeUndefined()
            expect(headers.origin).toBeUndefined()
            yield* peers[2 * k]!.close(1012, "restarting")
            expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
              error: { _tag: "Disconnected", code: 1012, reason: "restarting", initiator: "server", wasClean: true }
            })
            yield* awaitState(client, isTag("Open"))
            expect(yield* client.close(4001, "client bye")).toEqual([])
            expect(yield* peers[2 * k + 1]!.awaitClosed("3 seconds")).toEqual({ code: 4001, reason: "client bye" })
          }
          const lost = yield* Client.make({ url: `ws://127.0.0.1:${port}/nothing`, heartbeat: false, retry: fast })
          const closed = yield* awaitState(lost, isTag("Closed"))
          expect(describeState(closed)).toBe("Closed ConnectError HandshakeRejected 404")
          // a page Apache serves itself at that path: 200, the plain-HTTP hint
          Fs.writeFileSync(Path.join(proxy.dir, "htdocs", "page.html"), "<p>hi</p>\n")
          const page = yield* Client.make({ url: `ws://127.0.0.1:${port}/page.html`, heartbeat: false, retry: fast })
          expect(yield* awaitState(page, isTag("Closed"))).toMatchObject({
            error: Option.some(expect.objectContaining({
              reason: "HandshakeRejected",
              status: 200,
              detail: expect.stringContaining("a plain HTTP answer: nothing upgrades at that host and path")
            }))
          })
          expect(yield* server.accepted).toBe(4)
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "ProxyWebsocketFallbackToProxyHttp Off (mod_proxy_wstunnel itself) with ProxyPreserveHost On: echo, the Client's Host passed on; Apache 2.4.71 refuses ProxyWebsocketIdleTimeout (apache2 -k graceful exits 1, the running one goes on)",
      () =>
        Effect.gen(function*() {
          const { server } = yield* upstream()
          const port = yield* closedPort
          const body = `ProxyWebsocketFallbackToProxyHttp Off\nProxyPreserveHost On\n` +
            `ProxyPass /ws ws://127.0.0.1:${server.port}/ws\n`
          const proxy = yield* apache({ body }, port)
          const client = yield* Client.make({ url: `ws://127.0.0.1:${port}/ws`, heartbeat: false, retry: fast })
          const { states } = yield* recordStates(client)
          const echoed = yield* recordMessages(client)
          yield* client.awaitOpen
          yield* client.send("through wstunnel")
          yield* until("the echo", () => echoed.length === 1)
          expect(echoed).toEqual(["through wstunnel"])
          expect((yield* server.lastRequestHeaders).host).toBe(`127.0.0.1:${port}`)
          // the directive of the 2.4.47-2.4.5x docs: refused by the configuration check, nothing changes
          expect(yield* proxy.command("graceful", { body: body + "ProxyWebsocketIdleTimeout 1\n" })).toBe(1)
          expect(proxy.log()).toContain("Invalid command 'ProxyWebsocketIdleTimeout'")
          yield* client.send("still here")
          yield* until("the second echo", () => echoed.length === 2)
          expect(states).toEqual(["Connecting #1", "Open #1"])
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "apache2 -k graceful (SIGUSR1), to a new upstream, while 3 Clients and a Connection are open and one Client sends 300: nothing closes (old links stay on the old child and upstream), all 300 arrive once in order, a new Client goes to the new upstream at once",
      () =>
        Effect.gen(function*() {
          const a = yield* upstream({ handler: "ignore" })
          const b = yield* TestServer.make()
          const port = yield* closedPort
          const proxy = yield* apache({ body: `ProxyPass /ws ws://127.0.0.1:${a.server.port}/ws\n` }, port)
          const url = `ws://127.0.0.1:${port}/ws`
          const clients = yield* Effect.forEach([1, 2, 3], () => Client.make({ url, heartbeat: false, retry: fast }))
          const records = yield* Effect.forEach(clients, (client) => recordStates(client))
          yield* Effect.forEach(clients, (client) => client.awaitOpen, { discard: true })
          const connection = yield* Connection.connect(url)
          const sender = yield* sendAll(clients[0]!, 300)
          yield* Effect.sleep("100 millis")
          expect(yield* proxy.command("graceful", { body: `ProxyPass /ws ws://127.0.0.1:${b.port}/ws\n` })).toBe(0)
          const fresh = yield* Client.make({ url, heartbeat: false, retry: fast })
          const freshStates = yield* recordStates(fresh)
          yield* fresh.awaitOpen
          expect(yield* b.accepted).toBe(1)
          expect(yield* Fiber.join(sender)).toEqual([])
          yield* until(
            "the 300 arrive",
            () => Effect.map(a.server.received, (received) => received.length === 300),
            500
          )
          // on the one link that sent them (the links opened together: any of the four peers)
          const numbers = yield* numbersOf(a.peers)
          expect(numbers.filter((received) => received.length > 0)).toEqual([Array.from({ length: 300 }, (_, k) => k)])
          expect(numbers.length).toBe(4)
          expect(records.map((r) => r.states)).toEqual([1, 2, 3].map(() => ["Connecting #1", "Open #1"]))
          yield* until("the fresh Open recorded", () => freshStates.states.length === 2)
          expect(freshStates.states).toEqual(["Connecting #1", "Open #1"])
          expect(yield* connection.readyState).toBe(1)
          // the old generation's child still holds the four old links
          expect(proxy.children().length).toBeGreaterThanOrEqual(2)
          expect(yield* a.server.connections).toBe(4)
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "Timeout 2: an idle link is cut after about 2 s (1006 from the transport, no close frame); a heartbeat every 300 ms keeps it up (the pings pass through to the upstream, which answers them); apache2 -k restart (SIGHUP) cuts every link (1006) and serves no handshake until the child holding a tunnel gives up, about Timeout later; 400 sends across it: each arrives once in order or fails typed",
      () =>
        Effect.gen(function*() {
          const { peers, server } = yield* upstream({ handler: "ignore" })
          const port = yield* closedPort
          const proxy = yield* apache({ body: `Timeout 2\nProxyPass /ws ws://127.0.0.1:${server.port}/ws\n` }, port)
          const url = `ws://127.0.0.1:${port}/ws`
          const { beating, states } = yield* idleCutButBeating(url, "300 millis")
          yield* Effect.sleep("600 millis")
          expect(states).toEqual(["Connecting #1", "Open #1"])
          // the heartbeat's pings reach the upstream: Apache tunnels bytes, it answers none itself
          expect(yield* server.pings).toBeGreaterThanOrEqual(1)

          const sender = yield* sendAll(beating, 400)
          yield* Effect.sleep("100 millis")
          const cut = Date.now()
          expect(yield* proxy.command("restart", undefined, 0)).toBe(0)
          yield* awaitState(beating, isTag("Backoff"))
          yield* awaitState(beating, isTag("Open"), "20 seconds")
          const reopenedAfter = Date.now() - cut
          const failures = yield* Fiber.join(sender)
          expect(states).toEqual([
            "Connecting #1",
            "Open #1",
            "Backoff #1 Disconnected 1006 transport wasClean=false",
            "Connecting #2",
            "Open #2"
          ])
          // the handshake waited in the listen queue until the child that held the tunnel gave up (up
          // to Timeout, 1 s in a first version of this test: 0.4 to 1.4 s measured; 10 s with the
          // default 60 s, by hand)
          expect(reopenedAfter).toBeLessThan(8000)
          for (const { error } of failures) expect(error).toMatchObject({ _tag: "SendError", reason: "WriteFailed" })
          // a send whose write the cut failed is typed and counted (how many depends on the load)
          expect(failures.length).toBeLessThanOrEqual(10)
          expect(yield* beating.failed).toBe(failures.length)
          yield* until("the last arrives", () =>
            Effect.map(server.received, (received) => received.includes("m399")), 500)
          const [, before, after] = yield* numbersOf(peers)
          expect(peers.length).toBe(3)
          expect(before).toEqual(Array.from({ length: before!.length }, (_, k) =>
            k))
          const first = after![0]!
          expect(after).toEqual(Array.from({ length: 400 - first }, (_, k) =>
            first + k))
          const failed = new Set(failures.map(({ k }) => k))
          const lost = Array.from({ length: first - before!.length }, (_, k) => before!.length + k)
            .filter((k) => !failed.has(k))
          // the rest of the gap: written to Apache's socket and lost with the child (WebSocket has no
          // acknowledgement): the child stops reading at the signal and cuts the link later, so at
          // 1 ms apart 1 to 45 were lost in runs here; the bound is the 400 sent
          expect(lost.length).toBeLessThan(400 - before!.length)
          // and every failed send is in the gap: none that failed arrived
          expect(failures.length + lost.length).toBe(first - before!.length)
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "the upstream killed: the open link ends 1006; each handshake meets Apache's 503 (HandshakeRejected, retried); back: Open, the sends queued meanwhile delivered once in order; apache2 -k stop (SIGTERM): 1006 at once, but handshakes wait unanswered until the child holding a tunnel exits (about Timeout, here 2 s; with the default 60 s, Apache's SIGKILL 10 s later), then ConnectionRefused; started again: Open",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make({ handler: "ignore" })
          const port = yield* closedPort
          const proxy = yield* apache({
            body: `Timeout 2\nProxyPass /ws ws://127.0.0.1:${server.port}/ws\n` +
              `ProxyPass /up http://127.0.0.1:${server.port}/up upgrade=websocket\n`
          }, port)
          const clients = yield* Effect.forEach(["/ws", "/up"], (path) =>
            Client.make({
              url: `ws://127.0.0.1:${port}${path}`,
              // the heartbeat keeps the links through Apache's 2 s Timeout
              heartbeat: { interval: "250 millis", timeout: "2 seconds" },
              retry: fast,
              // 1 s failed once beside another heavy file (Backoff #2 was a 1006: the first open had
              // likely timed out); the stop below needs no bound of its own
              connection: { openTimeout: "2 seconds" }
            }))
          const records = yield* Effect.forEach(clients, (client) => recordStates(client))
          yield* Effect.forEach(clients, (client) => client.awaitOpen, { discard: true })
          yield* server.kill
          yield* Effect.forEach(
            clients,
            (client) => awaitState(client, (s) => s._tag === "Backoff" && s.attempt === 3),
            {
              discard: true
            }
          )
          for (const { seen, states } of records) {
            expect(describeState(seen.find((s) => s._tag === "Backoff" && s.attempt === 2)!), states.join(" | ")).toBe(
              "Backoff #2 ConnectError HandshakeRejected 503"
            )
            expect(seen.find((s) => s._tag === "Backoff" && s.attempt === 2)).toMatchObject({
              error: {
                _tag: "ConnectError",
                reason: "HandshakeRejected",
                status: 503,
                detail:
                  "the server answered HTTP 503 instead of 101; a proxy answers so when no server behind it is up " +
                  "or has room (HAProxy: all down, or its queue timed out), a server when overloaded; retrying helps once " +
                  "one is back"
              }
            })
          }
          const sends = yield* Effect.forkScoped(Effect.all(clients.map((client, k) => client.send(`queued ${k}`))))
          yield* server.restart
          yield* Effect.forEach(clients, (client) => awaitState(client, isTag("Open")), { discard: true })
          expect((yield* sends.await)._tag).toBe("Success")
          yield* until("the queued sends arrive", () => Effect.map(server.received, (r) => r.length >= 2))
          expect([...(yield* server.received)].sort()).toEqual(["queued 0", "queued 1"])
          for (const { states } of records) {
            expect(states.slice(0, 5)).toEqual([
              "Connecting #1",
              "Open #1",
              "Backoff #1 Disconnected 1006 transport wasClean=false",
              "Connecting #2",
              "Backoff #2 ConnectError HandshakeRejected 503"
            ])
            expect(states.slice(2, -2).filter((s) => s.startsWith("Backoff")).slice(1).every((s) => s.endsWith("503")))
              .toBe(true)
          }

          // stopped
          const from = records.map(({ states }) => states.length)
          const t0 = Date.now()
          expect(yield* proxy.command("stop")).toBe(0)
          yield* Effect.forEach(clients, (client) => awaitState(client, isTag("Backoff")), { discard: true })
          yield* proxy.exited(5000)
          // The parent waits for the child that holds a tunnel (Timeout, 2 s): a lower bound, which
          // load cannot break. The links' 1006 comes at once when run alone (under 1 s); a loaded
          // run saw it at 2.5 s, so that is not asserted: the states below say it came first.
          expect(Date.now() - t0).toBeGreaterThan(1000)
          yield* Effect.sleep("150 millis")
          for (const [k, { states }] of records.entries()) {
            const after = states.slice(from[k])
            expect(after[0]).toMatch(/^Backoff #\d+ Disconnected 1006 transport wasClean=false$/)
            // meanwhile: unanswered (TimeoutError open), reset as the listener closed, refused after
            expect(
              after.slice(1).filter((s) => !s.startsWith("Connecting")).every((s) =>
                /(TimeoutError open|ConnectionReset undefined|ConnectionRefused undefined)$/.test(s)
              )
            ).toBe(true)
            expect(after[after.length - 1]).toMatch(/ConnectionRefused undefined$|^Connecting/)
          }
          yield* proxy.start
          yield* Effect.forEach(clients, (client) => awaitState(client, isTag("Open")), { discard: true })
          expect(yield* Effect.forEach(clients, (client) => client.failed)).toEqual([0, 0])
        }).pipe(Effect.provide(quietNode)),
      30_000
    )
  })

  describeLighttpd("trials behind lighttpd 1.4", () => {
    it.scopedLive(
      "mod_proxy with proxy.header upgrade: text and 70,000 bytes echoed, close codes and reasons both ways; the Client's Host passed on; a path not proxied: 404, not retried",
      () =>
        Effect.gen(function*() {
          const { peers, server } = yield* upstream()
          const port = yield* closedPort
          yield* lighttpd({ body: proxyBlock("/ws", server.port) }, port)
          const client = yield* Client.make({ url: `ws://127.0.0.1:${port}/ws`, heartbeat: false, retry: fast })
          const echoed = yield* recordMessages(client)
          yield* client.awaitOpen
          const bytes = new Uint8Array(70_000).map((_, k) => k % 251)
          yield* client.send("héllo")
          yield* client.send(bytes)
          yield* until("two echoes", () => echoed.length === 2)
          expect(echoed[0]).toBe("héllo")
          expect(new Uint8Array(echoed[1] as Uint8Array)).toEqual(bytes)
          const headers = peers[0]!.requestHeaders
          expect(headers.host).toBe(`127.0.0.1:${port}`)
          expect(headers["x-forwarded-for"]).toBe("127.0.0.1")
          expect(headers["x-forwarded-proto"]).toBe("http")
          expect(headers.origin).toBeUndefined()
          yield* peers[0]!.close(1012, "restarting")
          expect(yield* awaitState(client, isTag("Backoff"))).toMatchObject({
            error: { _tag: "Disconnected", code: 1012, reason: "restarting", initiator: "server", wasClean: true }
          })
          yield* awaitState(client, isTag("Open"))
          expect(yield* client.close(4001, "client bye")).toEqual([])
          expect(yield* peers[1]!.awaitClosed("3 seconds")).toEqual({ code: 4001, reason: "client bye" })
          const lost = yield* Client.make({ url: `ws://127.0.0.1:${port}/nothing`, heartbeat: false, retry: fast })
          expect(describeState(yield* awaitState(lost, isTag("Closed")))).toBe(
            "Closed ConnectError HandshakeRejected 404"
          )
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "graceful restart (SIGUSR1, Debian's `systemctl reload lighttpd`) with a heartbeating Client open: its link stays, and no handshake is answered until every open link has ended (a new Client: TimeoutError open, retried); the old Client closed: lighttpd restarts, the new one opens",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make()
          const port = yield* closedPort
          const proxy = yield* lighttpd({ body: proxyBlock("/ws", server.port) }, port)
          const url = `ws://127.0.0.1:${port}/ws`
          const old = yield* Client.make({
            url,
            heartbeat: { interval: "200 millis", timeout: "2 seconds" },
            retry: fast
          })
          const oldStates = yield* recordStates(old)
          yield* old.awaitOpen
          yield* proxy.signal("SIGUSR1")
          yield* proxy.awaitLog("graceful shutdown started")
          const fresh = yield* Client.make({
            url,
            heartbeat: false,
            retry: fast,
            connection: { openTimeout: "300 millis" }
          })
          const freshStates = yield* recordStates(fresh)
          yield* awaitState(fresh, (s) => s._tag === "Backoff" && s.attempt === 3)
          expect(freshStates.states.slice(0, 6)).toEqual([
            "Connecting #1",
            "Backoff #1 TimeoutError open",
            "Connecting #2",
            "Backoff #2 TimeoutError open",
            "Connecting #3",
            "Backoff #3 TimeoutError open"
          ])
          expect(oldStates.states).toEqual(["Connecting #1", "Open #1"])
          expect(proxy.starts()).toBe(1)
          expect(yield* server.accepted).toBe(1)
          yield* old.close()
          const open = yield* awaitState(fresh, isTag("Open"), "20 seconds")
          expect(proxy.starts()).toBe(2)
          // an attempt that timed out in lighttpd's listen queue is still accepted once it restarts,
          // its upgrade passed on (an upgrade for nobody, closed at once): the upstream accepted the
          // old link, the one that opened, and up to one per timed-out attempt (all of them, mostly)
          const accepted = yield* server.accepted
          expect(accepted).toBeGreaterThanOrEqual(2)
          expect(accepted).toBeLessThanOrEqual(1 + (open as { readonly attempt: number }).attempt)
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "server.feature-flags graceful-restart-bg: after SIGUSR1 the old links go on in a forked process (200 sends across it arrive once, in order) and a new Client opens on its first attempt, or lighttpd resets them at the fork (it sometimes does: the failed sends typed, none twice or out of order, the new handshake retried); graceful-shutdown-timeout 1: the old link is cut (1006 from the transport) a second or two later and the Client reconnects",
      () =>
        Effect.gen(function*() {
          const { peers, server } = yield* upstream({ handler: "ignore" })
          const port = yield* closedPort
          const body = proxyBlock("/ws", server.port) +
            `server.feature-flags = ("server.graceful-restart-bg" => "enable")\n`
          const proxy = yield* lighttpd({ body }, port)
          const url = `ws://127.0.0.1:${port}/ws`
          const heartbeat = { interval: "200 millis", timeout: "2 seconds" } as const
          const old = yield* Client.make({ url, heartbeat, retry: fast })
          const oldStates = yield* recordStates(old)
          yield* old.awaitOpen
          const sender = yield* sendAll(old, 200)
          yield* Effect.sleep("50 millis")
          yield* proxy.signal("SIGUSR1")
          const fresh = yield* Client.make({
            url,
            heartbeat: false,
            retry: fast,
            // 300 ms timed out once beside another heavy file (a second upstream link); without the
            // flag no handshake is answered at all while the link lives (the test before)
            connection: { openTimeout: "2 seconds" }
          })
          const freshStates = yield* recordStates(fresh)
          yield* fresh.awaitOpen
          const failures = yield* Fiber.join(sender)
          if (oldStates.states.length === 2) {
            // the old link lived on in lighttpd's fork
            expect(failures).toEqual([])
            yield* until("the 200 arrive", () => Effect.map(server.received, (received) => received.length >= 200))
            expect(yield* numbersOf(peers)).toEqual([Array.from({ length: 200 }, (_, k) => k), []])
            yield* until("the fresh Open recorded", () => freshStates.states.length === 2)
            expect(freshStates.states).toEqual(["Connecting #1", "Open #1"])
            expect(proxy.forked().length).toBe(1)
          } else {
            // lighttpd reset the old link at its fork: in loaded CI runs, and in runs of this test
            // alone (3 of 4 in one series, 0 of 8 in the next; the link ends 1006 from the
            // transport, or a write meets ECONNRESET). "Written" is handed to the
            // kernel, to the next hop: what lighttpd took and then lost is not seen (docs/guide.md:
            // one run lost m29 with `failed` 0). What lifeline owes: each send that failed says so,
            // typed and carrying its message, and is counted; the Client reconnects; no message
            // arrives twice or out of order; the sends after the reset (m199 the last) arrive.
            expect(oldStates.states.slice(0, 2)).toEqual(["Connecting #1", "Open #1"])
            expect(oldStates.states[2]).toMatch(/^Backoff #1 Disconnected 1006 transport /)
            for (const { error, k } of failures) {
              expect(error).toMatchObject({ _tag: "SendError", reason: "WriteFailed", payload: `m${k}` })
            }
            expect(yield* old.failed).toBe(failures.length)
            yield* until("the last send arrives", () =>
              Effect.map(server.received, (received) => received.includes("m199")))
            const arrived = (yield* numbersOf(peers)).flat()
            const inOrder = [...arrived].sort((a, b) =>
              a - b
            )
            expect(arrived).toEqual(inOrder)
            expect(new Set(arrived).size).toBe(arrived.length)
            const afterFailures = failures.length === 0 ? 200 : failures.at(-1)!.k + 1
            for (let k = afterFailures; k < 200; k++) expect(arrived).toContain(k)
            // the new Client's first handshake may be reset too (seen): typed, retried, then Open
            expect(yield* fresh.state.get).toMatchObject({ _tag: "Open" })
            for (const state of freshStates.seen) {
              if (state._tag === "Backoff") {
                expect(state.error).toMatchObject({ _tag: "ConnectError", reason: "ConnectionReset" })
              }
            }
          }
          yield* old.close()
          yield* until("the old link ended at the upstream", () => Effect.map(server.connections, (n) => n === 1))

          // graceful-shutdown-timeout (another lighttpd: one that drops the bg flag on a reload fails
          // to bind, "Address already in use", and its forked process serves on; see docs/trials.md)
          const other = yield* closedPort
          const cutting = yield* lighttpd({
            body: proxyBlock("/ws", server.port) + `server.feature-flags = ("server.graceful-shutdown-timeout" => 1)\n`
          }, other)
          const held = yield* Client.make({ url: `ws://127.0.0.1:${other}/ws`, heartbeat, retry: fast })
          const heldStates = yield* recordStates(held)
          yield* held.awaitOpen
          const cut = Date.now()
          yield* cutting.signal("SIGUSR1")
          yield* awaitState(held, isTag("Backoff"), "20 seconds")
          const cutAfter = Date.now() - cut
          yield* awaitState(held, isTag("Open"), "20 seconds")
          expect(heldStates.states).toEqual([
            "Connecting #1",
            "Open #1",
            "Backoff #1 Disconnected 1006 transport wasClean=false",
            "Connecting #2",
            "Open #2"
          ])
          expect(cutAfter).toBeGreaterThan(500)
          expect(cutting.starts()).toBe(2)
        }).pipe(Effect.provide(quietNode)),
      60_000
    )

    it.scopedLive(
      "the upstream killed: the open link ends 1006; handshakes meet lighttpd's 503 (retried), also for 1-2 s after the upstream is back (lighttpd disables a refusing backend, re-enabled on its 1 s tick); then Open, the send queued meanwhile delivered once",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make({ handler: "ignore" })
          const port = yield* closedPort
          yield* lighttpd({ body: proxyBlock("/ws", server.port) }, port)
          const client = yield* Client.make({ url: `ws://127.0.0.1:${port}/ws`, heartbeat: false, retry: fast })
          const { seen, states } = yield* recordStates(client)
          yield* client.awaitOpen
          yield* server.kill
          yield* awaitState(client, (s) => s._tag === "Backoff" && s.attempt === 2)
          expect(seen.find((s) => s._tag === "Backoff" && s.attempt === 2)).toMatchObject({
            error: { _tag: "ConnectError", reason: "HandshakeRejected", status: 503 }
          })
          const sends = yield* Effect.forkScoped(client.send("queued"))
          yield* server.restart
          const back = states.length
          yield* awaitState(client, isTag("Open"), "20 seconds")
          expect((yield* sends.await)._tag).toBe("Success")
          expect(states.slice(0, 5)).toEqual([
            "Connecting #1",
            "Open #1",
            "Backoff #1 Disconnected 1006 transport wasClean=false",
            "Connecting #2",
            "Backoff #2 ConnectError HandshakeRejected 503"
          ])
          const meanwhile = states.slice(2, -2).filter((s) => s.startsWith("Backoff")).slice(1)
          expect(meanwhile.every((s) => s.endsWith("HandshakeRejected 503"))).toBe(true)
          // 503s after the restart: the backend still disabled
          expect(states.slice(back).filter((s) => s.endsWith("503")).length).toBeGreaterThan(0)
          yield* until("the queued send arrives", () => Effect.map(server.received, (r) => r.length === 1))
          expect(yield* server.received).toEqual(["queued"])
          expect(yield* client.failed).toBe(0)
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "server.max-read-idle = 2: an idle link is cut after about 2 s (1006, no close frame); a heartbeat every 200 ms keeps it up (the pings pass through to the upstream)",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make()
          const port = yield* closedPort
          yield* lighttpd({ body: proxyBlock("/ws", server.port) + "server.max-read-idle = 2\n" }, port)
          const url = `ws://127.0.0.1:${port}/ws`
          const { states } = yield* idleCutButBeating(url, "200 millis")
          yield* Effect.sleep("500 millis")
          expect(states).toEqual(["Connecting #1", "Open #1"])
          expect(yield* server.pings).toBeGreaterThanOrEqual(1)
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "SIGINT (graceful shutdown): lighttpd stops listening at once (a new Client: ConnectionRefused) and keeps the heartbeating Client's link; SIGTERM (Debian's `systemctl stop lighttpd`): 1006 from the transport, then ConnectionRefused; started again: both Open, a send queued meanwhile delivered once",
      () =>
        Effect.gen(function*() {
          const server = yield* TestServer.make({ handler: "ignore" })
          const port = yield* closedPort
          const proxy = yield* lighttpd({ body: proxyBlock("/ws", server.port) }, port)
          const url = `ws://127.0.0.1:${port}/ws`
          const old = yield* Client.make({
            url,
            heartbeat: { interval: "200 millis", timeout: "2 seconds" },
            retry: fast
          })
          const oldStates = yield* recordStates(old)
          yield* old.awaitOpen
          yield* proxy.signal("SIGINT")
          yield* proxy.awaitLog("graceful shutdown started")
          const fresh = yield* Client.make({ url, heartbeat: false, retry: fast })
          const freshStates = yield* recordStates(fresh)
          yield* awaitState(fresh, (s) => s._tag === "Backoff" && s.attempt === 3)
          yield* Effect.sleep("300 millis")
          expect(freshStates.states.slice(0, 4)).toEqual([
            "Connecting #1",
            "Backoff #1 ConnectError ConnectionRefused undefined",
            "Connecting #2",
            "Backoff #2 ConnectError ConnectionRefused undefined"
          ])
          expect(oldStates.states).toEqual(["Connecting #1", "Open #1"])

          yield* proxy.signal("SIGTERM")
          yield* proxy.exited()
          yield* awaitState(old, (s) => s._tag === "Backoff" && s.attempt === 2)
          const queued = yield* Effect.fork(old.send("while down"))
          yield* proxy.start
          yield* Effect.forEach([old, fresh], (client) => awaitState(client, isTag("Open")), { discard: true })
          expect((yield* queued.await)._tag).toBe("Success")
          expect(oldStates.states.slice(0, 5)).toEqual([
            "Connecting #1",
            "Open #1",
            "Backoff #1 Disconnected 1006 transport wasClean=false",
            "Connecting #2",
            "Backoff #2 ConnectError ConnectionRefused undefined"
          ])
          yield* until("the queued send arrives", () => Effect.map(server.received, (r) => r.length === 1))
          expect(yield* server.received).toEqual(["while down"])
          expect(yield* old.failed).toBe(0)
        }).pipe(Effect.provide(quietNode)),
      30_000
    )

    it.scopedLive(
      "mod_wstunnel (lighttpd ends the WebSocket; a TCP echo behind it): frame-type binary answers Sec-WebSocket-Protocol binary unasked (ProtocolViolation, final) unless the Client offers it; then bytes flow (frames merged: TCP has no boundaries) and lighttpd answers the pings; its close frames carry the code as ASCII ('1000', '1001': code 12592), no valid close frame: a close ends 1006, and after a backend reset the Client reconnects (1002 and closed for good until round 36)",
      () =>
        Effect.gen(function*() {
          const sockets: Array<Net.Socket> = []
          const backend = yield* tcpServer((socket) => {
            sockets.push(socket)
            socket.on("data", (data) => socket.write(data))
            socket.on("error", () => {})
          })
          const port = yield* closedPort
          yield* lighttpd({
            body: `$HTTP["url"] =~ "^/tun" {\n` +
              `  wstunnel.server = ("" => (("host" => "127.0.0.1", "port" => ${new URL(backend.url).port})))\n` +
              `  wstunnel.frame-type = "binary"\n}\n`
          }, port)
          const url = `ws://127.0.0.1:${port}/tun`
          const unasked = yield* Client.make({ url, heartbeat: false, retry: fast })
          const refused = yield* awaitState(unasked, isTag("Closed"))
          expect(refused).toMatchObject({
            error: Option.some(expect.objectContaining({
              _tag: "ConnectError",
              reason: "ProtocolViolation",
              detail:
                "Server sent a subprotocol but none was requested; the server chose a subprotocol although none " +
                "was offered (lighttpd's mod_wstunnel answers \"binary\" for wstunnel.frame-type \"binary\"): offer the " +
                "one it chooses in protocols"
            }))
          })

          const heartbeat = { interval: "200 millis", timeout: "2 seconds" } as const
          const client = yield* Client.make({ url, heartbeat, retry: fast, connection: { protocols: ["binary"] } })
          const { states } = yield* recordStates(client)
          const echoed = yield* recordMessages(client)
          yield* client.awaitOpen
          yield* client.send("héllo")
          yield* client.send(new Uint8Array([1, 2, 3, 255]))
          const bytes = () => Buffer.concat(echoed.map((m) => Buffer.from(m as Uint8Array)))
          yield* until("the echo", () => bytes().length === 10)
          expect(bytes().toString("hex")).toBe(
            Buffer.concat([Buffer.from("héllo"), Buffer.from([1, 2, 3, 255])]).toString("hex")
          )
          expect(echoed.every((m) => m instanceof Uint8Array)).toBe(true)
          // the heartbeat's pings are lighttpd's to answer (the backend speaks TCP): still open
          yield* Effect.sleep("700 millis")
          expect(states).toEqual(["Connecting #1", "Open #1"])

          const connection = yield* Connection.connect(url, { protocols: ["binary"] })
          expect(yield* connection.close(4001, "bye")).toMatchObject({
            _tag: "Disconnected",
            code: 1006,
            reason: "Invalid WebSocket frame: invalid status code 12592",
            initiator: "client",
            wasClean: false
          })

          // the backend resets: lighttpd's close frame "1001" (code 12592), no valid close frame: 1006
          // from this side, retried, as a browser reports it (ws answers 1002). The one backend
          // connection still open is this Client's (lighttpd dialled the backend for the refused
          // handshake too, and the Connection's has ended).
          const open = () => sockets.filter((socket) => !socket.destroyed)
          expect(open().length).toBe(1)
          open()[0]!.resetAndDestroy()
          const backoff = yield* awaitState(client, isTag("Backoff"))
          expect(backoff).toMatchObject({
            error: {
              _tag: "Disconnected",
              code: 1006,
              reason: "Invalid WebSocket frame: invalid status code 12592",
              initiator: "client",
              wasClean: false
            }
          })
          yield* awaitState(client, (s) => s._tag === "Open" && s.attempt === 2)
          expect(states.slice(0, 5)).toEqual([
            "Connecting #1",
            "Open #1",
            "Backoff #1 Disconnected 1006 client wasClean=false",
            "Connecting #2",
            "Open #2"
          ])
        }).pipe(Effect.provide(quietNode)),
      30_000
    )
  })
})
