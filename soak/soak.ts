// The soak: one Client, sending all the time, through a seeded random series of faults (server
// killed and restarted, every connection closed with 1012, handshakes rejected with 503, the
// network blackholed, connections reset) for as long as asked. At the end every message is
// accounted for: each one sent was written or failed, exactly once; each echo was written first
// and came back once. The heap is sampled along the way. `npm run soak` runs it (soak/main.ts);
// test/soak.test.ts runs a few seconds of it.
import { Clock, Effect, Fiber, FiberSet, Logger, LogLevel, Stream } from "effect"
import type { SendErrorReason } from "../src/index.js"
import { Client, Reconnect } from "../src/index.js"
import { FaultProxy, TestServer } from "../src/testing/index.js"
import type { Transport } from "../src/Transport.js"

export interface SoakOptions {
  readonly durationMs: number
  readonly seed: number
  /** One message sent every this many ms (each send in its own fiber). */
  readonly sendEveryMs: number
  /** Calm before the first fault. */
  readonly warmupMs: number
  /** The heap is sampled this often. */
  readonly sampleEveryMs: number
  /** heapUsed now, in bytes (soak/main.ts collects garbage first). */
  readonly heapUsed: () => number
  readonly log: (line: string) => void
}

export type Fault = "kill" | "closeAll" | "reject" | "blackhole" | "reset"

export interface SoakReport {
  readonly seed: number
  readonly elapsedMs: number
  readonly sent: number
  readonly written: number
  readonly failed: Readonly<Partial<Record<SendErrorReason, number>>>
  readonly echoed: number
  /** Per fault, how many were injected and recovered from. */
  readonly faults: Readonly<Partial<Record<Fault, number>>>
  /** The longest time from a fault's start to the echo of a message sent after it. */
  readonly slowestRecoveryMs: number
  /** [ms since start, heapUsed bytes], one per sample. */
  readonly heap: ReadonlyArray<readonly [number, number]>
  /** Everything that went wrong; empty when the soak passed. */
  readonly problems: ReadonlyArray<string>
}

// Within this long of each fault's start, a message sent after it must come back.
const RECOVERY_MS = 10_000
// After the sender stops, how long in-flight sends may take to settle.
const SETTLE_MS = 5_000

/**
 * The end of a soak: what is in flight settles, `close` runs, what is in flight settles again, and
 * the readers end; each wait bounded, a wait that runs out is a problem.
 */
export const windDown = <A, E>(
  sends: FiberSet.FiberSet<A, E>,
  close: Effect.Effect<unknown>,
  readers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>,
  settleMs: number,
  readersMs: number,
  problems: Array<string>
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const settled = (when: string) =>
      FiberSet.awaitEmpty(sends).pipe(
        Effect.timeout(settleMs),
        Effect.catchAll(() => Effect.sync(() => problems.push(`sends still in flight ${settleMs} ms ${when}`)))
      )
    yield* settled("after the sender stopped")
    yield* close
    yield* settled("after close")
    yield* Effect.forEach(readers, Fiber.join, { discard: true }).pipe(
      Effect.timeout(readersMs),
      Effect.catchAll(() => Effect.sync(() => problems.push("messages did not end after close")))
    )
  })
// Above this growth from the first sample to the last, the soak fails: a leak, not noise.
const HEAP_GROWTH_LIMIT = 32 * 1024 * 1024

/** A ledger entry's flags: reported written, echoed back. */
export const WRITTEN = 1
export const ECHOED = 2

/** The ledger's count at the end, as the soak and the fleet both tally it. */
export interface Tally {
  readonly sent: number
  readonly written: number
  readonly failed: Readonly<Partial<Record<string, number>>>
  readonly lostOnLive: number
  readonly echoedTwice: number
  readonly echoedUnwritten: number
  readonly echoedUnknown: number
  readonly heap: ReadonlyArray<readonly [number, number]>
}

/** What the tally shows wrong: every message written or failed, once; no loss on a live connection; no leak. */
export const tallyProblems = (tally: Tally, problems: Array<string>): void => {
  const failedTotal = Object.values(tally.failed).reduce((total: number, count) => total + (count ?? 0), 0)
  // Each send's fiber takes exactly one branch; a send that never completed is short here (and
  // was reported when the settling timed out).
  if (tally.written + failedTotal !== tally.sent) {
    problems.push(`${tally.sent} sent but ${tally.written} written + ${failedTotal} failed`)
  }
  if (tally.lostOnLive > 0) {
    problems.push(`${tally.lostOnLive} written messages got no echo while a later one on the same connection did`)
  }
  if (tally.echoedTwice > 0) problems.push(`${tally.echoedTwice} messages echoed twice`)
  if (tally.echoedUnwritten > 0) problems.push(`${tally.echoedUnwritten} messages echoed but not reported written`)
  if (tally.echoedUnknown > 0) problems.push(`${tally.echoedUnknown} echoes of messages never sent`)
  const heap = tally.heap
  const growth = heap.length < 2 ? 0 : heap[heap.length - 1]![1] - heap[0]![1]
  if (growth > HEAP_GROWTH_LIMIT) problems.push(`the heap grew by ${(growth / 2 ** 20).toFixed(1)} MiB`)
}

/** A small seeded generator (mulberry32): the same seed gives the same faults at the same times. */
export const random = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export const soak = (options: SoakOptions): Effect.Effect<SoakReport, never, Transport> =>
  Effect.gen(function*() {
    const next = random(options.seed)
    const between = (low: number, high: number): number => Math.round(low + next() * (high - low))
    const problems: Array<string> = []
    const server = yield* TestServer.make({ record: false })
    const proxy = yield* FaultProxy.make(server.port)
    const client = yield* Client.make({
      url: proxy.url,
      retry: Reconnect.exponentialBackoff({ base: "50 millis", cap: "1 second" }),
      heartbeat: { interval: "300 millis", timeout: "300 millis" },
      connection: { openTimeout: "1 second" },
      minUptime: "300 millis",
      outbox: { capacity: 256 }
    })
    const started = yield* Clock.currentTimeMillis
    const elapsed = Effect.map(Clock.currentTimeMillis, (now) => now - started)

    // One byte of state per message, allocated once so the ledger itself does not grow.
    // Room for the run, the longest a last fault can overrun it (a kill, the recovery wait, the
    // calm after it) and a margin; the sender stops at capacity, which is then a problem.
    const capacity = Math.ceil((options.durationMs + 15_000) / options.sendEveryMs) + 1000
    const state = new Uint8Array(capacity)
    // Which connection (count of Opens seen) wrote each message, and when.
    const epochOf = new Uint32Array(capacity)
    const writtenAt = new Float64Array(capacity)
    let epoch = 0
    let lastOpenSince = -1
    const blackholes: Array<[number, number]> = []
    const failed: Partial<Record<SendErrorReason | "CircuitOpen", number>> = {}
    let sent = 0
    let echoedTwice = 0
    let echoedUnwritten = 0
    let echoedUnknown = 0
    let highestEchoed = -1

    const reader = yield* client.messages.pipe(
      Stream.runForEach((message) =>
        Effect.sync(() => {
          // Every message sent is text ("m<index>"); a binary echo is one of a message never sent.
          const index = typeof message === "string" ? Number(message.slice(1)) : Number.NaN
          if (!Number.isInteger(index) || index < 0 || index >= sent) return void echoedUnknown++
          if ((state[index]! & ECHOED) !== 0) echoedTwice++
          if (index > highestEchoed) highestEchoed = index
          // The echo can overtake the write callback that marks it written: counted at the end.
          state[index] = state[index]! | ECHOED
        })
      ),
      Effect.forkScoped
    )

    yield* client.state.changes.pipe(
      Stream.runForEach((current) =>
        Effect.sync(() => {
          if (current._tag === "Open" && current.since !== lastOpenSince) {
            lastOpenSince = current.since
            epoch++
          }
        })
      ),
      Effect.forkScoped
    )

    let sending = true
    const sends = yield* FiberSet.make<void, never>()
    const sendOne = Effect.suspend(() => {
      const index = sent++
      return FiberSet.run(
        sends,
        client.send(`m${index}`).pipe(Effect.matchEffect({
          onSuccess: () =>
            Effect.sync(() => {
              state[index] = state[index]! | WRITTEN
              epochOf[index] = epoch
              writtenAt[index] = performance.now()
            }),
          onFailure: (error) =>
            Effect.sync(() => {
              // CircuitOpen: only with a breaker and whenSuspended "failFast".
              const reason = error._tag === "SendError" ? error.reason : "CircuitOpen"
              failed[reason] = (failed[reason] ?? 0) + 1
            })
        }))
      )
    })
    const sender = yield* Effect.forkScoped(Effect.whileLoop({
      while: () => sending && sent < capacity,
      body: () => Effect.zipRight(sendOne, Effect.sleep(options.sendEveryMs)),
      step: () => {}
    }))

    const heap: Array<readonly [number, number]> = []
    const sample = Effect.flatMap(elapsed, (at) => Effect.sync(() => heap.push([at, options.heapUsed()])))
    const sampler = yield* Effect.forkScoped(
      Effect.forever(Effect.zipRight(Effect.sleep(options.sampleEveryMs), sample))
    )

    /**
     * Waits until a message sent after the fault comes back: traffic flows again end to end. A
     * new Open is not the test: a blackhole shorter than the heartbeat's detection time leaves the
     * connection open, and the client is right not to reconnect.
     */
    const flowsAgain = (deadline: number): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        const mark = sent
        while ((yield* Clock.currentTimeMillis) < deadline) {
          if (highestEchoed >= mark && mark < sent) return true
          yield* Effect.sleep(10)
        }
        return false
      })

    const inject = (fault: Fault): Effect.Effect<void> => {
      switch (fault) {
        case "kill":
          return Effect.zipRight(server.kill, Effect.zipRight(Effect.sleep(between(100, 1500)), server.restart))
        case "closeAll":
          return server.closeAll(1012, "restarting")
        case "reject":
          return Effect.zipRight(
            server.rejectNext(503, { "retry-after": "1" }, between(1, 2)),
            server.closeAll(1012, "restarting")
          )
        case "blackhole": {
          const window: [number, number] = [performance.now(), Number.POSITIVE_INFINITY]
          blackholes.push(window)
          return Effect.zipRight(
            proxy.blackhole,
            Effect.zipRight(
              Effect.sleep(between(500, 2000)),
              Effect.tap(proxy.restore, () =>
                Effect.sync(() => {
                  window[1] = performance.now()
                }))
            )
          )
        }
        case "reset":
          return proxy.reset
      }
    }
    const FAULTS: ReadonlyArray<Fault> = ["kill", "closeAll", "reject", "blackhole", "reset"]
    const faults: Partial<Record<Fault, number>> = {}
    let slowestRecoveryMs = 0

    yield* client.awaitOpen.pipe(
      Effect.timeout(RECOVERY_MS),
      Effect.catchAll(() => Effect.sync(() => problems.push("the client never opened")))
    )
    yield* Effect.sleep(options.warmupMs)
    yield* sample
    while (problems.length === 0 && (yield* elapsed) < options.durationMs) {
      const fault = FAULTS[Math.floor(next() * FAULTS.length)]!
      if (sent >= capacity) break
      const since = yield* Clock.currentTimeMillis
      yield* inject(fault)
      if (!(yield* flowsAgain(since + RECOVERY_MS))) {
        problems.push(`no echo of a message sent after ${fault} within ${RECOVERY_MS} ms of its start`)
        break
      }
      const recoveredIn = (yield* Clock.currentTimeMillis) - since
      slowestRecoveryMs = Math.max(slowestRecoveryMs, recoveredIn)
      faults[fault] = (faults[fault] ?? 0) + 1
      options.log(`+${yield* elapsed} ms ${fault}: echoes again ${recoveredIn} ms after it began; sent ${sent}`)
      yield* Effect.sleep(between(300, 2000))
    }

    // Wind down: stop sending, let what is in flight settle, close, and account for everything.
    sending = false
    yield* Fiber.join(sender)
    yield* windDown(sends, client.close(), [reader], SETTLE_MS, 2_000, problems)
    yield* Fiber.interrupt(sampler)
    yield* sample

    // A written message with no echo is lost with its connection, or dropped by a blackhole. If a
    // later message written on the same connection came back, and no blackhole was near, the loss
    // happened on a healthy connection.
    let written = 0
    let echoed = 0
    const highestEchoedOf = new Map<number, number>()
    for (let index = 0; index < sent; index++) {
      const flags = state[index]!
      if (flags & WRITTEN) written++
      if (flags & ECHOED) {
        echoed++
        if (flags & WRITTEN) highestEchoedOf.set(epochOf[index]!, index)
        else echoedUnwritten++
      }
    }
    if (sent >= capacity) problems.push(`the ledger filled up (${capacity} messages): the sender stopped early`)
    const nearBlackhole = (at: number): boolean =>
      blackholes.some(([from, to]) => at >= from - 1_000 && at <= to + 1_000)
    let lostOnLive = 0
    for (let index = 0; index < sent; index++) {
      const flags = state[index]!
      if ((flags & WRITTEN) === 0 || (flags & ECHOED) !== 0) continue
      if ((highestEchoedOf.get(epochOf[index]!) ?? -1) > index && !nearBlackhole(writtenAt[index]!)) lostOnLive++
    }
    tallyProblems({ sent, written, failed, lostOnLive, echoedTwice, echoedUnwritten, echoedUnknown, heap }, problems)
    return {
      seed: options.seed,
      elapsedMs: yield* elapsed,
      sent,
      written,
      failed,
      echoed,
      faults,
      slowestRecoveryMs,
      heap,
      problems
    }
  }).pipe(
    Effect.scoped,
    // The client logs each Backoff and Closed itself; the soak prints its own lines.
    Logger.withMinimumLogLevel(LogLevel.None)
  )
