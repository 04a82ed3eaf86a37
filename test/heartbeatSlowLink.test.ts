/**
 * The heartbeat on a slow but healthy link: a probe queued behind a long outbound backlog cannot
 * be answered before the backlog drains, so its wait restarts each time the network takes more of
 * the backlog, and counts from when the probe itself went out. A link whose backlog stops moving
 * is still found dead. Real sockets on 127.0.0.1: a pipe in front of the server reads the
 * client's bytes a chunk at a time, so the kernel's buffers fill behind it and the client's
 * writes move only as fast as the pipe reads (a slow uplink with backpressure). The exact rule
 * is pinned first on the TestClock, over a socket whose queue the test drains by hand.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Ref, Schedule, Stream, TestClock } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Client } from "../src/index.js"
import type { TimeoutError } from "../src/index.js"
import { ConnectionListener } from "../src/internal/connection.js"
import { Heartbeat } from "../src/internal/heartbeat.js"
import { currentTimers } from "../src/internal/primitives/timers.js"
import { OPEN } from "../src/internal/protocol.js"
import { TestServer } from "../src/testing/index.js"
import type { Message, TransportSocket } from "../src/Transport.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"
import { slowPipe } from "./support/slowPipe.js"
import { hasOpenssl, makeMaterial } from "./support/tlsMaterial.js"
import type { Material } from "./support/tlsMaterial.js"

const url = "ws://127.0.0.1:1/"

/**
 * A Heartbeat on the TestClock over a socket whose peer never answers: `link.queued` bytes wait
 * in this process, `take(bytes)` is the network taking some of them (a step), `sentBytes` the
 * running total. A probe is a 2-byte ping queued behind what is there (taken at once when nothing is).
 */
const heartbeatOnQueue = (options: { readonly queued: number; readonly withSentBytes?: boolean }) =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const timers = yield* currentTimers
    const link = { queued: options.queued, sent: 0 }
    const probes: Array<number> = []
    const deaths: Array<{ readonly at: number; readonly error: TimeoutError }> = []
    const socket: TransportSocket = {
      readyState: () => OPEN,
      protocol: () => "",
      bufferedAmount: () => link.queued,
      ...(options.withSentBytes === false ? {} : { sentBytes: () => link.sent }),
      send: () => {},
      close: () => {},
      terminate: () => {},
      pause: () => false,
      resume: () => {},
      ping: () => {
        probes.push(clock.unsafeCurrentTimeMillis())
        // Behind nothing, the kernel takes it at once (as Node's write does).
        if (link.queued === 0) link.sent += 2
        else link.queued += 2
        return true
      }
    }
    const heartbeat = new Heartbeat(
      {
        opened: { socket, listener: new ConnectionListener(url, 16, 1024 * 1024), connection: { url } },
        onDead: (error) => deaths.push({ at: clock.unsafeCurrentTimeMillis(), error }),
        onCannotProbe: () => expect.unreachable("this socket can always probe")
      },
      { interval: Duration.millis(500), timeout: Duration.millis(500), message: undefined, probe: true },
      clock,
      timers
    )
    heartbeat.start()
    yield* Effect.addFinalizer(() => Effect.sync(() => heartbeat.stop()))
    /** Moves the clock to `at`, where the network takes `bytes` (plus bytes the app queues after them). */
    const stepAt = (at: number, bytes: number, queuedAfter = 0) =>
      Effect.gen(function*() {
        yield* TestClock.adjust(Duration.millis(at - clock.unsafeCurrentTimeMillis()))
        link.queued += queuedAfter - bytes
        link.sent += bytes
      })
    return { probes, deaths, stepAt }
  })

describe("Heartbeat behind a backlog: the rule (TestClock)", () => {
  // interval 500 ms, timeout 500 ms: samples every 125 ms; the first probe at 500 (nothing inbound).

  it.scoped("each step of the backlog ahead of the probe restarts its wait: found `timeout` after the sample that saw the last step", () =>
    Effect.gen(function*() {
      const hb = yield* heartbeatOnQueue({ queued: 100_000 })
      for (const at of [810, 1110, 1410, 1710, 2010]) yield* hb.stepAt(at, 1000)
      // The steps are seen at 875, 1125, 1500, 1750 and 2125 (once the wait had restarted at 1125,
      // its samples fall at 1250, 1375, 1500...): the last wait ends at 2625, not at 1000.
      yield* TestClock.adjust("1000 millis")
      expect(hb.probes).toEqual([500])
      expect(hb.deaths.map((death) => death.at)).toEqual([2625])
      expect(hb.deaths[0]?.error).toMatchObject({
        _tag: "TimeoutError",
        operation: "heartbeat",
        timeout: Duration.millis(500)
      })
    }))

  it.scoped("once the probe has gone, later steps (bytes queued after it) no longer count: its answer is awaited `timeout` from the sample that saw it go", () =>
    Effect.gen(function*() {
      const hb = yield* heartbeatOnQueue({ queued: 3000 })
      // 3002 bytes up to the probe's end: out with the step at 1110 (seen at 1125). The app keeps
      // queuing behind it and the network keeps taking those: no longer a sign of life.
      yield* hb.stepAt(810, 2000, 5000)
      yield* hb.stepAt(1110, 2000, 5000)
      yield* hb.stepAt(1410, 2000, 5000)
      yield* TestClock.adjust("1000 millis")
      expect(hb.deaths.map((death) => death.at)).toEqual([1625])
    }))

  it.scoped("a probe that goes out at once (nothing queued) is awaited `timeout` from then, whatever moves after it", () =>
    Effect.gen(function*() {
      const hb = yield* heartbeatOnQueue({ queued: 0 })
      // Frames written after the probe, taken by the network: no sign of the peer.
      yield* hb.stepAt(810, 1000, 1000)
      yield* hb.stepAt(910, 1000, 1000)
      yield* TestClock.adjust("1000 millis")
      expect(hb.deaths.map((death) => death.at)).toEqual([1000])
    }))

  it.scoped("a transport without sentBytes: the answer is awaited `timeout` after the probe was queued, as before", () =>
    Effect.gen(function*() {
      const hb = yield* heartbeatOnQueue({ queued: 100_000, withSentBytes: false })
      for (const at of [810, 1110, 1410]) yield* hb.stepAt(at, 1000)
      yield* TestClock.adjust("1000 millis")
      expect(hb.deaths.map((death) => death.at)).toEqual([1000])
    }))
})

const FRAME_BYTES = 64 * 1024

/** Frame `index` of the backlog: its number in the first four bytes, the rest filler. */
const frame = (index: number): Uint8Array => {
  const bytes = new Uint8Array(FRAME_BYTES).fill(0x61)
  new DataView(bytes.buffer).setUint32(0, index)
  return bytes
}

const indexOf = (message: Message): number =>
  typeof message === "string" ? -1 : new DataView(message.buffer, message.byteOffset).getUint32(0)

/** Bounded real-time wait for a condition. */
const awaitTrue = (condition: Effect.Effect<boolean>, what: string, turns: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < turns; turn++) {
      if (yield* condition) return
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.dieMessage(`never: ${what}`)
  })

/** The link: about 12 MiB/s, far slower than loopback; the kernel's buffers take a few MiB of it at once. */
const CHUNK = 256 * 1024
const EVERY_MILLIS = 20
/** A backlog of 64 MiB: about 5 s to drain here, longer on a loaded machine. */
const FRAMES = 1024
/**
 * Without the fix, the first probe (interval after the open: the server sends nothing) waits
 * behind the backlog and the link is cut `timeout` later, at 2.5 s. The timeout stays well above
 * the time the link takes to drain what the kernel holds ahead of the probe once it left this
 * process (a few MiB: under 0.5 s here).
 */
const heartbeat = { interval: "500 millis", timeout: "2 seconds" } as const

/**
 * A Client on a slow pipe to a server that counts the frames it reads, with the backlog enqueued;
 * over wss:// when given the TLS material.
 */
const backlogOnSlowLink = (tls?: Material) =>
  Effect.gen(function*() {
    const arrived: Array<number> = []
    const server = yield* TestServer.make({
      handler: (message) => arrived.push(indexOf(message)),
      record: false,
      ...(tls === undefined ? {} : { tls: { cert: tls.serverCert, key: tls.serverKey } })
    })
    const pipe = yield* slowPipe(server.port, CHUNK, EVERY_MILLIS)
    const client = yield* Client.make({
      url: `${tls === undefined ? "ws" : "wss"}://127.0.0.1:${pipe.port}`,
      ...(tls === undefined ? {} : { connection: { tls: { ca: tls.caCert } } }),
      retry: Schedule.spaced("1 minute"),
      heartbeat,
      outbox: { capacity: FRAMES, maxBytes: FRAMES * FRAME_BYTES * 2 }
    })
    yield* client.awaitOpen
    const states = yield* Ref.make<ReadonlyArray<Client.ClientState>>([])
    yield* client.state.changes.pipe(
      Stream.runForEach((state) => Ref.update(states, (seen) => [...seen, state])),
      Effect.forkScoped
    )
    for (let index = 0; index < FRAMES; index++) yield* client.enqueue(frame(index))
    return { arrived, server, pipe, client, states: Ref.get(states) }
  })

/** Every frame of the backlog arrives, in order, on the one connection: none failed, no heartbeat timeout. */
const drainsWhole = (tls?: Material) =>
  withNoHandlesLeft(Effect.gen(function*() {
    const { arrived, client, server, states } = yield* backlogOnSlowLink(tls)
    // Until every frame arrived, or the link was cut (then the assertions below tell how).
    yield* awaitTrue(
      Effect.map(client.failed, (failed) => failed > 0 || arrived.length >= FRAMES),
      `the server read ${FRAMES} frames`,
      1000
    )
    expect(arrived).toEqual(Array.from({ length: FRAMES }, (_, index) => index))
    expect(yield* client.failed).toBe(0)
    // The probe waited behind the whole backlog: it reaches the server after the last frame.
    yield* awaitTrue(Effect.map(server.pings, (pings) => pings > 0), "a probe behind the backlog", 250)
    expect(yield* server.accepted).toBe(1)
    expect((yield* states).map((state) => state._tag)).toEqual(["Open"])
  })).pipe(provideNode)

const tlsDir = hasOpenssl ? mkdtempSync(join(tmpdir(), "lifeline-slowlink-")) : undefined
afterAll(() => {
  if (tlsDir !== undefined) rmSync(tlsDir, { recursive: true, force: true })
})

describe("Heartbeat on a slow link (real sockets)", () => {
  it.live(
    "a backlog that takes several timeouts to drain through a steady reader: no heartbeat timeout, every frame arrives, none failed",
    () => drainsWhole(),
    30_000
  )

  it.live.skipIf(tlsDir === undefined)(
    "the same over wss:// (the kernel's progress read on the TCP handle below the TLS one)",
    () => drainsWhole(makeMaterial(tlsDir!)),
    30_000
  )

  it.live(
    "a reader that stops for good while the backlog waits: TimeoutError heartbeat after the stop, within quarter interval + timeout of the last progress",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const { client, pipe, server, states } = yield* backlogOnSlowLink()
        // Past the point where the probe's wait used to end (interval + timeout after the open).
        yield* Effect.sleep("3500 millis")
        expect((yield* states).map((state) => state._tag)).toEqual(["Open"])
        expect(yield* server.pings).toBe(0)
        yield* pipe.stopReading
        const stoppedAt = Date.now()
        const backoff = yield* awaitState(client, isTag("Backoff"), "20 seconds")
        const found = Date.now() - stoppedAt
        expect(backoff).toMatchObject({
          error: { _tag: "TimeoutError", operation: "heartbeat", timeout: Duration.seconds(2) }
        })
        // The kernel's buffers were already full: the backlog stops moving at once, and the wait
        // ends at most a sample (interval / 4) plus `timeout` later: 2125 ms, plus timer slack.
        expect(found).toBeLessThan(4000)
        expect(yield* server.accepted).toBe(1)
      })).pipe(provideNode),
    30_000
  )
})

// Round 34: an app whose consumer was stuck (nobody read `messages`) showed the link Open for as
// long as it was stuck after its server was killed: a paused socket counted as alive and no probe
// went out, so the reset the dead peer's kernel would answer with was never seen.
describe("round 34: a paused socket (nobody reads) still probes, unawaited", () => {
  const flooded = (server: TestServer.TestServer) =>
    Effect.gen(function*() {
      const client = yield* Client.make({
        url: server.url,
        heartbeat: { interval: "200 millis", timeout: "200 millis" },
        retry: Schedule.spaced("30 seconds"),
        connection: { inboundCapacity: 16 }
      })
      yield* client.awaitOpen
      // 2,000 frames of 1 KB: far over the 16 the inbound takes, so the socket pauses
      yield* server.flood(2000, 1000)
      return client
    })

  it.live("the server killed while nobody reads: the link ends (Disconnected 1006 from the transport), not Open for as long as the consumer is stuck; what was read from the socket is still handed over", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* flooded(server)
        yield* Effect.sleep("500 millis")
        expect((yield* client.state.get)._tag).toBe("Open")
        yield* server.kill
        const backoff = yield* awaitState(client, isTag("Backoff"))
        expect(backoff).toMatchObject({ error: { _tag: "Disconnected", code: 1006, initiator: "transport" } })
        // the frames the inbound held come first (a stuck consumer that resumes loses none of them)
        const read = yield* client.messages.pipe(Stream.take(16), Stream.runCollect)
        expect(read.length).toBe(16)
      }).pipe(Effect.scoped, provideNode)
    ))

  it.live("a live server while nobody reads: pings go out, at most one an interval (the server counts them), no TimeoutError, one connection; once read, every frame arrives", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* flooded(server)
        const pingsBefore = yield* server.pings
        const start = Date.now()
        yield* Effect.sleep("1500 millis")
        const elapsed = Date.now() - start
        expect((yield* client.state.get)._tag).toBe("Open")
        const pings = (yield* server.pings) - pingsBefore
        expect(pings).toBeGreaterThan(0)
        // a late sample sends fewer, never more: one an interval (200 ms), and one more at the edge
        expect(pings).toBeLessThanOrEqual(Math.floor(elapsed / 200) + 1)
        const read = yield* client.messages.pipe(Stream.take(2000), Stream.runCount)
        expect(read).toBe(2000)
        expect((yield* client.state.get)._tag).toBe("Open")
        expect(yield* server.accepted).toBe(1)
      }).pipe(Effect.scoped, provideNode)
    ))

  it.live("probe: false while nobody reads: no ping goes out (the peer pings by itself), the link stays Open", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({
          url: server.url,
          heartbeat: { interval: "200 millis", timeout: "200 millis", probe: false },
          connection: { inboundCapacity: 16 }
        })
        yield* client.awaitOpen
        yield* server.flood(2000, 1000)
        yield* Effect.sleep("1000 millis")
        expect(yield* server.pings).toBe(0)
        expect((yield* client.state.get)._tag).toBe("Open")
      }).pipe(Effect.scoped, provideNode)
    ))
})
