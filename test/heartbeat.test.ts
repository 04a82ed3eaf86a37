/**
 * The heartbeat's timing, on the TestClock. The heartbeat is a state machine over a socket
 * interface: here its socket is a fake whose peer answers (or not) on the same TestClock, so every
 * probe and the TimeoutError happen at exact clock times. The real-socket side is in
 * Client.test.ts ("Client: heartbeat").
 */
import { describe, expect, it } from "@effect/vitest"
import type { Clock } from "effect"
import { Duration, Effect, TestClock } from "effect"
import type { TimeoutError } from "../src/index.js"
import { ConnectionListener } from "../src/internal/connection.js"
import { Heartbeat } from "../src/internal/heartbeat.js"
import { currentTimers } from "../src/internal/primitives/timers.js"
import { OPEN } from "../src/internal/protocol.js"
import type { Message, TransportSocket } from "../src/Transport.js"

const url = "ws://127.0.0.1:1/"

interface PeerOptions {
  readonly interval: number
  readonly timeout: number
  /** Pongs the peer sends before it freezes (default: it never freezes). */
  readonly answers?: number
  /** Clock time from a probe to its answer. */
  readonly roundTrip?: number
  /** Probe with this app-level message, answered by a data frame (a browser), instead of a protocol ping. */
  readonly message?: Message
  /** false: the heartbeat sends no probe (the peer pings by itself). */
  readonly probe?: boolean
}

/**
 * A Heartbeat over a fake socket whose peer answers each probe `roundTrip` later, `answers` times.
 * Times are the heartbeat's clock: the TestClock, plus `stall` (set it to make the next timer fire
 * that much later than it was due, as when this process's timers are stalled).
 */
const startHeartbeat = (options: PeerOptions) =>
  Effect.gen(function*() {
    const testClock = yield* Effect.clock
    const timers = yield* currentTimers
    // `wall`: how far the wall reading is ahead of the monotonic one (a wall clock stepped forward).
    const peer = { stall: 0, wall: 0, answers: options.answers ?? Infinity }
    const now = () => testClock.unsafeCurrentTimeMillis() + peer.stall
    const clock: Clock.Clock = Object.assign(Object.create(testClock) as Clock.Clock, {
      unsafeCurrentTimeMillis: () => now() + peer.wall,
      unsafeCurrentTimeNanos: () => BigInt(now()) * 1_000_000n
    })
    const listener = new ConnectionListener(url, 16, 1024 * 1024)
    const probes: Array<number> = []
    const answers: Array<number> = []
    const deaths: Array<{ readonly at: number; readonly error: TimeoutError }> = []
    const answer = {
      fire: () => {
        answers.push(now())
        if (options.message === undefined) listener.onPong()
        else listener.onMessage("pong")
      }
    }
    const probed = () => {
      probes.push(now())
      if (peer.answers > 0) {
        peer.answers--
        timers.after(options.roundTrip ?? 0, answer)
      }
    }
    const socket: TransportSocket = {
      readyState: () => OPEN,
      protocol: () => "",
      bufferedAmount: () => 0,
      send: (data) => {
        if (data === options.message) probed()
      },
      close: () => {},
      terminate: () => {},
      pause: () => false,
      resume: () => {},
      ping: () => {
        if (options.message !== undefined) return false
        probed()
        return true
      }
    }
    const heartbeat = new Heartbeat(
      {
        opened: { socket, listener, connection: { url } },
        onDead: (error) => deaths.push({ at: now(), error }),
        onCannotProbe: () => expect.unreachable("a fake socket can always probe")
      },
      {
        interval: Duration.millis(options.interval),
        timeout: Duration.millis(options.timeout),
        message: options.message,
        probe: options.probe ?? true
      },
      clock,
      timers
    )
    heartbeat.start()
    yield* Effect.addFinalizer(() => Effect.sync(() => heartbeat.stop()))
    return { listener, peer, probes, answers, deaths }
  })

describe("Heartbeat: the bound (TestClock)", () => {
  it.scoped.each([
    { interval: 500, timeout: 500 },
    { interval: 1000, timeout: 500 },
    { interval: 500, timeout: 2000 },
    { interval: 20_000, timeout: 10_000 }
  ])(
    "a peer frozen right after a pong is found exactly interval + timeout after it ($interval / $timeout)",
    ({ interval, timeout }) =>
      Effect.gen(function*() {
        const hb = yield* startHeartbeat({ interval, timeout, answers: 1 })
        yield* TestClock.adjust(Duration.millis(interval + interval + timeout - 1))
        // The first probe after `interval` of quiet since the start, its pong at once; the next
        // probe `interval` after that pong, unanswered.
        expect(hb.probes).toEqual([interval, 2 * interval])
        expect(hb.answers).toEqual([interval])
        expect(hb.deaths).toEqual([])
        yield* TestClock.adjust(Duration.millis(1))
        expect(hb.deaths.map((death) => death.at)).toEqual([interval + interval + timeout])
        expect(hb.deaths.map((death) => death.error)).toMatchObject([{
          _tag: "TimeoutError",
          operation: "heartbeat",
          timeout: Duration.millis(timeout),
          url
        }])
        yield* TestClock.adjust(Duration.millis(10 * interval))
        expect(hb.probes).toHaveLength(2)
        expect(hb.deaths).toHaveLength(1)
      })
  )

  it.scoped("probe: false, a peer that pings by itself every 400 ms: never probed, never dead; once it stops, dead interval + timeout after its last frame, plus at most a quarter interval", () =>
    Effect.gen(function*() {
      const hb = yield* startHeartbeat({ interval: 500, timeout: 500, probe: false })
      for (let frame = 1; frame <= 10; frame++) {
        yield* TestClock.adjust("400 millis")
        hb.listener.onMessage("2")
      }
      // The last frame at 4000: seen by the sample at 4125 and dated there (no probe makes up for
      // an earlier date): dead at 4125 + interval + timeout.
      yield* TestClock.adjust("1124 millis")
      expect(hb.deaths).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(hb.deaths.map((death) => death.at)).toEqual([5125])
      expect(hb.deaths.map((death) => death.error)).toMatchObject([{
        operation: "heartbeat",
        timeout: Duration.millis(500)
      }])
      expect(hb.probes).toEqual([])
    }))

  // A review of round 33: frames were dated to the sample before the one that saw them (up to a
  // quarter interval early), which a probe makes up for and no probe does not: a peer that pings
  // every `interval` was dead before its next ping when `timeout` < interval / 4.
  it.scoped.each([
    { interval: 25_000, timeout: 5_000, first: 24_990 },
    { interval: 400, timeout: 50, first: 370 }
  ])(
    "probe: false, a peer that pings every interval ($interval / $timeout, from $first): never dead; silent after its last ping, dead between interval + timeout and a quarter interval more",
    ({ first, interval, timeout }) =>
      Effect.gen(function*() {
        const hb = yield* startHeartbeat({ interval, timeout, probe: false })
        yield* TestClock.adjust(Duration.millis(first))
        hb.listener.onMessage("2")
        for (let ping = 1; ping < 8; ping++) {
          yield* TestClock.adjust(Duration.millis(interval))
          hb.listener.onMessage("2")
        }
        const last = first + 7 * interval
        yield* TestClock.adjust(Duration.millis(interval + timeout - 1))
        expect(hb.deaths).toEqual([])
        yield* TestClock.adjust(Duration.millis(interval / 4 + 1))
        expect(hb.deaths).toHaveLength(1)
        expect(hb.deaths[0]!.at).toBeGreaterThanOrEqual(last + interval + timeout)
        expect(hb.probes).toEqual([])
      })
  )

  // A second review of round 33: a wall clock stepped forward (or a machine that slept) made the
  // heartbeat probe at once; with `probe: false` that started the `timeout` with nothing sent, and
  // a peer pinging every `interval` was dead before its next ping.
  it.scoped.each([
    { interval: 25_000, timeout: 20_000, after: 0 },
    { interval: 25_000, timeout: 5_000, after: 10_000 }
  ])(
    "probe: false ($interval / $timeout): the wall clock steps 1.5 s forward $after ms after a ping, the peer pings on: never dead",
    ({ after, interval, timeout }) =>
      Effect.gen(function*() {
        const hb = yield* startHeartbeat({ interval, timeout, probe: false })
        // Pings 1 s before the quarter-interval grid (seen up to a second after they came).
        yield* TestClock.adjust(Duration.millis(interval - 1_000))
        hb.listener.onMessage("2")
        for (let ping = 2; ping <= 4; ping++) {
          yield* TestClock.adjust(Duration.millis(interval))
          hb.listener.onMessage("2")
        }
        yield* TestClock.adjust(Duration.millis(after))
        hb.peer.wall = 1_500
        yield* TestClock.adjust(Duration.millis(interval - after))
        hb.listener.onMessage("2")
        for (let ping = 1; ping <= 3; ping++) {
          yield* TestClock.adjust(Duration.millis(interval))
          hb.listener.onMessage("2")
        }
        expect(hb.deaths).toEqual([])
        expect(hb.probes).toEqual([])
      })
  )

  it.scoped("an idle peer that answers is probed every interval after its pong, not every interval + timeout", () =>
    Effect.gen(function*() {
      const hb = yield* startHeartbeat({ interval: 500, timeout: 2000, roundTrip: 10 })
      yield* TestClock.adjust("3000 millis")
      // Each probe `interval` after the previous pong: a proxy idle timeout above `interval`
      // (nginx proxy_read_timeout 2s here) never cuts the link.
      expect(hb.probes).toEqual([500, 1010, 1520, 2030, 2540])
      expect(hb.answers).toEqual([510, 1020, 1530, 2040, 2550])
      expect(hb.deaths).toEqual([])
    }))

  it.scoped("browsers: an app-level probe answered by a data frame is dated to the sample before, so probes go out every interval", () =>
    Effect.gen(function*() {
      const hb = yield* startHeartbeat({ interval: 500, timeout: 2000, roundTrip: 10, message: "ping" })
      yield* TestClock.adjust("2600 millis")
      // The answer at 510 is seen by the sample at 625 and dated to the probe's sample, 500: the
      // next probe at 1000. Never later than `interval` after the answer.
      expect(hb.probes).toEqual([500, 1000, 1500, 2000, 2500])
      expect(hb.answers).toEqual([510, 1010, 1510, 2010, 2510])
      expect(hb.deaths).toEqual([])
    }))

  it.scoped("inbound frames less than 3/4 interval apart keep the link up without probes; after the last, found within interval + timeout", () =>
    Effect.gen(function*() {
      const hb = yield* startHeartbeat({ interval: 500, timeout: 500, answers: 0 })
      for (let frame = 1; frame <= 14; frame++) {
        yield* TestClock.adjust("350 millis")
        hb.listener.onMessage("data")
      }
      // The last frame at 4900.
      expect(hb.probes).toEqual([])
      yield* TestClock.adjust("2000 millis")
      // Samples every 125 ms: the frame at 4900 is seen at 5000 and dated 4875, so the probe goes
      // out at 5375 (475 ms after the frame, between 3/4 interval and interval) and the peer is
      // found at 5875, within interval + timeout (5900) of its last frame.
      expect(hb.probes).toEqual([5375])
      expect(hb.deaths.map((death) => death.at)).toEqual([5875])
    }))

  it.scoped("a stalled timer (the clock far past its due time) gives a new probe, not a timeout", () =>
    Effect.gen(function*() {
      const hb = yield* startHeartbeat({ interval: 500, timeout: 500, answers: 0 })
      yield* TestClock.adjust("999 millis")
      expect(hb.probes).toEqual([500])
      // The answer's timer, due at 1000, fires 10 s late.
      hb.peer.stall = 10_000
      yield* TestClock.adjust("1 millis")
      expect(hb.probes).toEqual([500, 11_000])
      expect(hb.deaths).toEqual([])
      // The new probe goes unanswered: found `timeout` after it, at 11 500.
      yield* TestClock.adjust("500 millis")
      expect(hb.deaths.map((death) => death.at)).toEqual([11_500])
    }))

  it.scoped("a stalled timer while idle gives a probe at once, and a peer that answers it stays up", () =>
    Effect.gen(function*() {
      const hb = yield* startHeartbeat({ interval: 500, timeout: 500 })
      yield* TestClock.adjust("374 millis")
      // The sample due at 375 fires 60 s late.
      hb.peer.stall = 60_000
      yield* TestClock.adjust("1 millis")
      expect(hb.probes).toEqual([60_375])
      yield* TestClock.adjust("1000 millis")
      expect(hb.probes).toEqual([60_375, 60_875, 61_375])
      expect(hb.deaths).toEqual([])
    }))

  it.scoped("timers throttled to once a minute (a hidden tab): every late wait gives a new probe, never a timeout; on time again, a dead peer is found `timeout` after the last probe", () =>
    Effect.gen(function*() {
      const hb = yield* startHeartbeat({ interval: 500, timeout: 500, answers: 0 })
      yield* TestClock.adjust("999 millis")
      expect(hb.probes).toEqual([500])
      // Three waits in a row, each timer firing a minute late: each gives a new probe.
      for (let wake = 1; wake <= 3; wake++) {
        hb.peer.stall = wake * 60_000
        yield* TestClock.adjust(wake === 1 ? "1 millis" : "125 millis")
      }
      expect(hb.probes).toEqual([500, 61_000, 121_125, 181_250])
      expect(hb.deaths).toEqual([])
      // The tab is visible again: the last probe's wait runs on time.
      yield* TestClock.adjust("500 millis")
      expect(hb.deaths.map((death) => death.at)).toEqual([181_750])
    }))
})
