// The fleet soak: N Clients over M echo TestServers, all sharing one CircuitBreaker.layer, each
// Client with its own order of the servers (`ordered`: its home first, then the others, rotated so
// that a dead node's Clients spread over the rest) and `returnToPrimary`. A seeded random series of
// faults, one at a time, each on one server: killed and restarted after a while, a period of 503
// answers to every handshake (with every open connection closed 1012 so that its Clients must
// reconnect), or every connection closed 1012. Each Client sends a message every `sendEveryMs`
// and counts its echoes. For each fault the soak measures:
// - the handshakes the server received while it was down (none while killed), split into the
//   first wave (attempts the breaker let through while it was still Closed, counted at admission
//   by a thin wrapper around the registry) and the probes after it opened, against the number of
//   times it opened: at most `trials` probes per open period;
// - failover: how many Clients open on the node moved to another one, and how long it took;
// - after the heal: how many of the node's Clients that were away came back home, and how long
//   that took.
// At the end every message is accounted for, per Client: sent = written + failed (per reason),
// every echo was written first and came back once, and no written message was lost on a
// connection that echoed a later one. `npm run soak -- --clients N --servers M` runs it
// (soak/main.ts); test/soak.test.ts runs a few seconds of it.
import { Context, Duration, Effect, Fiber, FiberSet, Layer, Logger, LogLevel, Schedule, Stream } from "effect"
import type { SendErrorReason } from "../src/index.js"
import { CircuitBreaker, Client, Reconnect } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import type { Transport } from "../src/Transport.js"
import { ECHOED, random, tallyProblems, windDown, WRITTEN } from "./soak.js"

export type FleetFault = "kill" | "reject" | "closeAll"

export interface FleetOptions {
  readonly durationMs: number
  readonly seed: number
  readonly clients: number
  readonly servers: number
  /** Each Client sends one message this often (the fleet in 10 staggered slots). */
  readonly sendEveryMs: number
  /** Calm before the first fault. */
  readonly warmupMs: number
  /** The heap is sampled this often. */
  readonly sampleEveryMs: number
  /** How long a killed or 503 node stays down: uniform in [low, high] ms. */
  readonly deadMs: readonly [number, number]
  /** The calm after each fault, once every Client is home again: uniform in [low, high] ms. */
  readonly calmMs: readonly [number, number]
  /** The breaker's open period: the first, doubling at each opening in a row up to the second. */
  readonly openForMs: readonly [number, number]
  /** The Clients' `returnToPrimary`. */
  readonly returnToPrimaryMs: number
  /** These faults in this order (fault, server) instead of the seeded draw; the run ends after them. */
  readonly script?: ReadonlyArray<readonly [FleetFault, number]>
  /** heapUsed now, in bytes (soak/main.ts collects garbage first). */
  readonly heapUsed: () => number
  readonly log: (line: string) => void
  /**
   * How long a Client may take to be Open again after a fault (and at the start, and for the last
   * echo); 10 s by default. The test suite's smoke gives it more: there it is a hang guard, on a
   * machine that may be loaded by other test files, not a figure.
   */
  readonly recoveryMs?: number | undefined
}

/** What one fault did, as measured. */
export interface FaultRecord {
  readonly fault: FleetFault
  readonly server: number
  /** Since the start of the run. */
  readonly atMs: number
  /** How long the node was down (0 for closeAll). */
  readonly downMs: number
  /** Handshakes the server received from the fault to the heal (none while killed). */
  readonly handshakes: number
  /** Attempts its breaker let through while still Closed, from the fault to the heal. */
  readonly firstWave: number
  /** handshakes - firstWave: what reached the server after the breaker opened. */
  readonly probes: number
  /** Trial calls its breaker let through while HalfOpen (counted at admission; killed or not). */
  readonly trials: number
  /** How many times its breaker opened from the fault to the heal. */
  readonly openPeriods: number
  /** Clients Open on the node at the fault; how many were Open again elsewhere (closeAll: anywhere) within RECOVERY_MS. */
  readonly affected: number
  readonly moved: number
  readonly movedMedianMs: number
  readonly movedMaxMs: number
  /** Clients whose home it is that were not Open there at the heal; how many were within HOME_MS. */
  readonly away: number
  readonly returned: number
  readonly returnedMedianMs: number
  readonly returnedMaxMs: number
}

export interface FleetReport {
  readonly seed: number
  readonly clients: number
  readonly servers: number
  readonly elapsedMs: number
  readonly sent: number
  readonly written: number
  readonly failed: Readonly<Partial<Record<SendErrorReason | "CircuitOpen", number>>>
  readonly echoed: number
  readonly faults: ReadonlyArray<FaultRecord>
  /** [ms since start, heapUsed bytes], one per sample. */
  readonly heap: ReadonlyArray<readonly [number, number]>
  /** Everything that went wrong; empty when the soak passed. */
  readonly problems: ReadonlyArray<string>
}

/** The breaker policy of the fleet: opens after 5 failed handshakes in a row; one trial at a time. */
export const TRIALS = 1
export const breakerOptions = (openForMs: readonly [number, number]): Omit<CircuitBreaker.Options, "endpoint"> => ({
  policy: CircuitBreaker.consecutiveFailures(5),
  openFor: Schedule.exponential(Duration.millis(openForMs[0])).pipe(
    Schedule.modifyDelay((delay) => Duration.min(delay, Duration.millis(openForMs[1])))
  ),
  trials: TRIALS
})

// Within this long of a fault, each Client Open on the node must be Open elsewhere.
const DEFAULT_RECOVERY_MS = 10_000
// After the sender stops, how long in-flight sends may take to settle.
const SETTLE_MS = 10_000
// The sender's slots: each tick sends for one Client in SLOTS.
const SLOTS = 10
// Clients are made this many at a time, this long apart.
const START_BATCH = 100
const START_EVERY_MS = 100

/** Within this long of the heal, the node's Clients must be home: the longest open period, two probe intervals, a margin. */
export const homeBoundMs = (options: Pick<FleetOptions, "openForMs" | "returnToPrimaryMs">): number =>
  options.openForMs[1] + 2 * options.returnToPrimaryMs + 3_000

interface Admissions {
  closed: number
  trials: number
}

const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]!
}

export const fleet = (options: FleetOptions): Effect.Effect<FleetReport, never, Transport> =>
  Effect.gen(function*() {
    const next = random(options.seed)
    const between = ([low, high]: readonly [number, number]): number => Math.round(low + next() * (high - low))
    const problems: Array<string> = []
    const RECOVERY_MS = options.recoveryMs ?? DEFAULT_RECOVERY_MS
    const N = options.clients
    const M = options.servers
    const homeMs = homeBoundMs(options)
    const started = performance.now()
    const elapsed = () => Math.round(performance.now() - started)

    const servers: Array<TestServer.TestServer> = []
    for (let s = 0; s < M; s++) servers.push(yield* TestServer.make({ record: false }))
    const serverOf = new Map<string, number>()
    servers.forEach((server, s) => {
      serverOf.set(server.url, s)
      serverOf.set(CircuitBreaker.endpointKey(server.url), s)
    })

    // One registry for the fleet; the wrapper counts what each breaker lets through, by the
    // state it let it through in (Closed: the first wave; HalfOpen: a trial).
    const inner = Context.get(
      yield* Layer.build(CircuitBreaker.layer(breakerOptions(options.openForMs))),
      CircuitBreaker.Registry
    )
    const admissions: Array<Admissions> = servers.map(() => ({ closed: 0, trials: 0 }))
    const wrapped = new Map<string, CircuitBreaker.CircuitBreaker>()
    const registry = CircuitBreaker.Registry.of({
      forEndpoint: (url) =>
        Effect.map(inner.forEndpoint(url), (breaker) => {
          const key = CircuitBreaker.endpointKey(url)
          let counted = wrapped.get(key)
          if (counted === undefined) {
            const count = admissions[serverOf.get(key) ?? -1]
            counted = {
              endpoint: breaker.endpoint,
              state: breaker.state,
              events: breaker.events,
              isolate: breaker.isolate,
              reset: breaker.reset,
              run: (effect) =>
                breaker.run(Effect.zipRight(
                  Effect.map(breaker.state.get, (state) => {
                    if (count === undefined) return
                    if (state._tag === "Closed") count.closed++
                    else count.trials++
                  }),
                  effect
                ))
            }
            wrapped.set(key, counted)
          }
          return counted
        })
    })
    // How many times each server's breaker opened.
    const opens = servers.map(() => 0)
    yield* Effect.forEach(servers, (server, s) =>
      Effect.flatMap(registry.forEndpoint(server.url), (breaker) =>
        breaker.events.pipe(
          Stream.runForEach((transition) =>
            Effect.sync(() => {
              if (transition.to._tag === "Open") {
                opens[s]!++
              }
            })
          ),
          Effect.forkScoped
        )), { discard: true })

    // Client k: home k mod M, then the others, rotated by k / M so a dead node's Clients spread.
    const home = (k: number): number =>
      k % M
    const orderOf = (k: number): Array<number> => {
      const others = servers.map((_, s) =>
        s
      ).filter((s) => s !== home(k))
      const shift = others.length === 0 ? 0 : Math.floor(k / M) % others.length
      return [home(k), ...others.slice(shift), ...others.slice(0, shift)]
    }

    // Per Client: the ledger (one byte of state and the connection that wrote it, per message).
    const capacity =
      Math.ceil((options.durationMs + options.deadMs[1] + homeMs + RECOVERY_MS + 5_000) / options.sendEveryMs) + 100
    const state = new Uint8Array(N * capacity)
    const epochOf = new Uint16Array(N * capacity)
    const sentOf = new Int32Array(N)
    const highestEchoed = new Int32Array(N).fill(-1)
    const epoch = new Uint16Array(N)
    const lastSince = new Float64Array(N).fill(-1)
    const openOn = new Int8Array(N).fill(-1)
    // Failover and return-home watches, in performance.now() time (-1: none).
    const watchFrom = new Int8Array(N).fill(-1)
    const movedAt = new Float64Array(N).fill(-1)
    const awayFrom = new Float64Array(N).fill(-1)
    const returnedAt = new Float64Array(N).fill(-1)
    const failed: Partial<Record<SendErrorReason | "CircuitOpen", number>> = {}
    let sent = 0
    let echoedTwice = 0
    let echoedUnwritten = 0
    let echoedUnknown = 0
    let ledgerFull = 0
    // The fault under way: after closeAll, a Client reopened anywhere has recovered.
    let faultNow: FleetFault | undefined = undefined

    const clients: Array<Client.Client> = []
    const readers: Array<Fiber.RuntimeFiber<void>> = []
    for (let k = 0; k < N; k++) {
      // Started in batches, as a fleet of processes would be: a thousand handshakes at once on
      // one loop take longer than openTimeout, and those timeouts would open the breakers.
      if (k > 0 && k % START_BATCH === 0) yield* Effect.sleep(START_EVERY_MS)
      const client = yield* Client.make({
        url: orderOf(k).map((s) => servers[s]!.url) as [string, ...Array<string>],
        strategy: "ordered",
        returnToPrimary: Duration.millis(options.returnToPrimaryMs),
        // A quarter of the fleet fails sends at once while Suspended; the rest queue them.
        whenSuspended: k % 4 === 3 ? "failFast" : "queue",
        retry: Reconnect.exponentialBackoff({ base: "100 millis", cap: "2 seconds" }),
        heartbeat: { interval: "2 seconds", timeout: "2 seconds" },
        connection: { openTimeout: "2 seconds" },
        minUptime: "1 second"
      }).pipe(Effect.provideService(CircuitBreaker.Registry, registry))
      clients.push(client)
      readers.push(
        yield* client.messages.pipe(
          Stream.runForEach((message) =>
            Effect.sync(() => {
              const colon = typeof message === "string" ? message.indexOf(":") : -1
              const index = colon === -1 ? Number.NaN : Number((message as string).slice(colon + 1))
              if (
                colon === -1 || Number((message as string).slice(0, colon)) !== k || !Number.isInteger(index) ||
                index < 0 || index >= sentOf[k]!
              ) {
                return void echoedUnknown++
              }
              const slot = k * capacity + index
              if ((state[slot]! & ECHOED) !== 0) echoedTwice++
              if (index > highestEchoed[k]!) highestEchoed[k] = index
              // The echo can overtake the write callback that marks it written: counted at the end.
              state[slot] = state[slot]! | ECHOED
            })
          ),
          Effect.forkScoped
        )
      )
      yield* client.state.changes.pipe(
        Stream.runForEach((current) =>
          Effect.sync(() => {
            if (current._tag !== "Open") return void (openOn[k] = -1)
            if (current.since !== lastSince[k]) {
              lastSince[k] = current.since
              epoch[k] = (epoch[k]! + 1) & 0xffff
            }
            const on = serverOf.get(current.endpoint) ?? -2
            openOn[k] = on
            const now = performance.now()
            if (watchFrom[k]! !== -1 && movedAt[k]! < 0 && (on !== watchFrom[k] || faultNow === "closeAll")) {
              movedAt[k] = now
            }
            if (awayFrom[k]! >= 0 && returnedAt[k]! < 0 && on === home(k)) returnedAt[k] = now
          })
        ),
        Effect.forkScoped
      )
    }
    let sending = true
    const sends = yield* FiberSet.make<void, never>()
    const sendOne = (k: number) =>
      Effect.suspend(() => {
        if (sentOf[k]! >= capacity) return Effect.sync(() => void ledgerFull++)
        const index = sentOf[k]!++
        sent++
        const slot = k * capacity + index
        return FiberSet.run(
          sends,
          clients[k]!.send(`${k}:${index}`).pipe(Effect.matchEffect({
            onSuccess: () =>
              Effect.sync(() => {
                state[slot] = state[slot]! | WRITTEN
                epochOf[slot] = epoch[k]!
              }),
            onFailure: (error) =>
              Effect.sync(() => {
                const reason = error._tag === "SendError" ? error.reason : "CircuitOpen"
                failed[reason] = (failed[reason] ?? 0) + 1
              })
          }))
        )
      })
    const sender = yield* Effect.forkScoped(Effect.gen(function*() {
      for (let tick = 0; sending; tick++) {
        for (let k = tick % SLOTS; k < N; k += SLOTS) yield* sendOne(k)
        yield* Effect.sleep(options.sendEveryMs / SLOTS)
      }
    }))

    const heap: Array<readonly [number, number]> = []
    const sample = Effect.sync(() => heap.push([elapsed(), options.heapUsed()]))
    const sampler = yield* Effect.forkScoped(
      Effect.forever(Effect.zipRight(Effect.sleep(options.sampleEveryMs), sample))
    )

    /** Waits (polling every 20 ms) until `done` or `deadline` (performance.now()); whether it is done. */
    const until = (done: () => boolean, deadline: number): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        while (!done()) {
          if (performance.now() >= deadline) return false
          yield* Effect.sleep(20)
        }
        return true
      })
    const allHome = () => {
      for (let k = 0; k < N; k++) if (openOn[k] !== home(k)) return false
      return true
    }
    const notHome = () => {
      let count = 0
      for (let k = 0; k < N; k++) if (openOn[k] !== home(k)) count++
      return count
    }

    const runFault = (fault: FleetFault, s: number) =>
      Effect.gen(function*() {
        const server = servers[s]!
        const atMs = elapsed()
        const t0 = performance.now()
        const requests0 = yield* server.requests
        const closed0 = admissions[s]!.closed
        const trials0 = admissions[s]!.trials
        const opens0 = opens[s]!
        const watched: Array<number> = []
        for (let k = 0; k < N; k++) {
          movedAt[k] = -1
          awayFrom[k] = -1
          returnedAt[k] = -1
          watchFrom[k] = openOn[k] === s ? s : -1
          if (openOn[k] === s) watched.push(k)
        }
        faultNow = fault
        let downMs = 0
        switch (fault) {
          case "kill":
            yield* server.kill
            downMs = between(options.deadMs)
            yield* Effect.sleep(downMs)
            break
          case "reject":
            yield* server.rejectNext(503, {}, 1_000_000_000)
            yield* server.closeAll(1012, "restarting")
            downMs = between(options.deadMs)
            yield* Effect.sleep(downMs)
            break
          case "closeAll":
            yield* server.closeAll(1012, "restarting")
            break
        }
        // The counts up to the heal.
        const handshakes = (yield* server.requests) - requests0
        const firstWave = admissions[s]!.closed - closed0
        const trials = admissions[s]!.trials - trials0
        const openPeriods = opens[s]! - opens0
        if (fault === "kill") yield* server.restart
        if (fault === "reject") yield* server.clearRejections
        // closeAll heals at once: its away are the node's own Clients it dropped (ordered sends
        // them to their second server first), timed from the fault.
        const healed = fault === "closeAll" ? t0 : performance.now()
        let away = 0
        for (let k = 0; k < N; k++) {
          if (home(k) === s && (fault === "closeAll" ? watchFrom[k] === s : openOn[k] !== s)) {
            awayFrom[k] = healed
            away++
          }
        }
        // Every Client Open on the node moved (or, after closeAll, reopened), and every Client home.
        yield* until(() => watched.every((k) => movedAt[k]! >= 0), t0 + RECOVERY_MS)
        yield* until(allHome, healed + homeMs)
        faultNow = undefined
        const movedIn = watched.filter((k) => movedAt[k]! >= 0).map((k) => movedAt[k]! - t0)
        const returnedIn: Array<number> = []
        for (let k = 0; k < N; k++) {
          if (awayFrom[k]! >= 0 && returnedAt[k]! >= 0) returnedIn.push(returnedAt[k]! - healed)
        }
        for (let k = 0; k < N; k++) watchFrom[k] = -1
        const record: FaultRecord = {
          fault,
          server: s,
          atMs,
          downMs,
          handshakes,
          firstWave,
          probes: Math.max(0, handshakes - firstWave),
          trials,
          openPeriods,
          affected: watched.length,
          moved: movedIn.filter((ms) => ms <= RECOVERY_MS).length,
          movedMedianMs: Math.round(median(movedIn)),
          movedMaxMs: Math.round(Math.max(0, ...movedIn)),
          away,
          returned: returnedIn.filter((ms) => ms <= homeMs).length,
          returnedMedianMs: Math.round(median(returnedIn)),
          returnedMaxMs: Math.round(Math.max(0, ...returnedIn))
        }
        const where = `${fault} server ${s} at +${(atMs / 1000).toFixed(1)} s`
        if (fault === "kill" && handshakes !== 0) {
          problems.push(`${where}: ${handshakes} handshakes reached a killed server`)
        }
        if (record.trials > TRIALS * openPeriods) {
          problems.push(`${where}: ${record.trials} trials in ${openPeriods} open periods (trials ${TRIALS})`)
        }
        if (fault === "reject" && record.probes > TRIALS * openPeriods) {
          problems.push(
            `${where}: ${record.probes} handshakes after the first wave in ${openPeriods} open periods (trials ${TRIALS})`
          )
        }
        if (record.moved !== record.affected) {
          problems.push(
            `${where}: ${
              record.affected - record.moved
            } of ${record.affected} Clients not Open again within ${RECOVERY_MS} ms`
          )
        }
        if (record.returned !== away) {
          problems.push(
            `${where}: ${away - record.returned} of ${away} Clients not home within ${homeMs} ms of the heal`
          )
        }
        const strays = notHome()
        if (strays > 0) problems.push(`${where}: ${strays} Clients not Open at home ${homeMs} ms after the heal`)
        return record
      })

    const faults: Array<FaultRecord> = []
    const describe = (record: FaultRecord): string => {
      const head = `+${(record.atMs / 1000).toFixed(1)} s ${record.fault} server ${record.server}` +
        (record.fault === "closeAll" ? "" : ` for ${(record.downMs / 1000).toFixed(1)} s`)
      const moved = `${record.moved}/${record.affected} Open ${
        record.fault === "closeAll" ? "again" : "elsewhere"
      } in median ${record.movedMedianMs} ms, max ${record.movedMaxMs} ms`
      const home =
        `${record.returned}/${record.away} home in median ${record.returnedMedianMs} ms, max ${record.returnedMaxMs} ms after ${
          record.fault === "closeAll" ? "it" : "the heal"
        }`
      if (record.fault === "closeAll") return `${head}: ${moved}; ${home}`
      const breaker =
        `breaker opened ${record.openPeriods}x; first wave ${record.firstWave} attempts, then ${record.trials} trials` +
        (record.fault === "reject"
          ? `; handshakes received ${record.handshakes} = wave ${record.firstWave} + ${record.probes} probes`
          : "; handshakes received 0")
      return `${head}: ${moved}; ${breaker}; ${home}`
    }

    const opened = yield* until(allHome, performance.now() + RECOVERY_MS)
    if (!opened) problems.push(`${notHome()} of ${N} Clients not Open at home ${RECOVERY_MS} ms after the start`)
    yield* Effect.sleep(options.warmupMs)
    yield* sample
    const FAULTS: ReadonlyArray<FleetFault> = ["kill", "reject", "closeAll"]
    const script = options.script
    for (let turn = 0; problems.length === 0; turn++) {
      let fault: FleetFault
      let s: number
      if (script !== undefined) {
        if (turn >= script.length) break
        ;[fault, s] = script[turn]!
      } else {
        if (elapsed() >= options.durationMs) break
        fault = FAULTS[Math.floor(next() * FAULTS.length)]!
        s = Math.floor(next() * M)
      }
      const record = yield* runFault(fault, s)
      faults.push(record)
      options.log(describe(record))
      yield* Effect.sleep(between(options.calmMs))
    }

    // Traffic flows end to end for every Client: an echo of a message sent after the last fault.
    const marks = Array.from(sentOf)
    const flowing = yield* until(
      () => marks.every((mark, k) => highestEchoed[k]! >= mark),
      performance.now() + RECOVERY_MS
    )
    if (!flowing) {
      const stuck = marks.filter((mark, k) => highestEchoed[k]! < mark).length
      problems.push(`${stuck} Clients had no echo of a message sent after the last fault within ${RECOVERY_MS} ms`)
    }

    // Wind down: stop sending, let what is in flight settle, close, and account for everything.
    sending = false
    yield* Fiber.join(sender)
    yield* windDown(
      sends,
      Effect.forEach(clients, (client) => client.close(), { concurrency: 16, discard: true }),
      readers,
      SETTLE_MS,
      5_000,
      problems
    )
    yield* Fiber.interrupt(sampler)
    yield* sample

    let written = 0
    let echoed = 0
    let lostOnLive = 0
    // Per Client: the highest index echoed on each connection it wrote on.
    for (let k = 0; k < N; k++) {
      const highestOf = new Map<number, number>()
      const base = k * capacity
      for (let index = 0; index < sentOf[k]!; index++) {
        const flags = state[base + index]!
        if (flags & WRITTEN) written++
        if (flags & ECHOED) {
          echoed++
          if (flags & WRITTEN) highestOf.set(epochOf[base + index]!, index)
          else echoedUnwritten++
        }
      }
      // A written message with no echo is lost with its connection; lost while a later one
      // written on the same connection came back, it was lost on a live one.
      for (let index = 0; index < sentOf[k]!; index++) {
        const flags = state[base + index]!
        if ((flags & WRITTEN) === 0 || (flags & ECHOED) !== 0) continue
        if ((highestOf.get(epochOf[base + index]!) ?? -1) > index) lostOnLive++
      }
    }
    if (ledgerFull > 0) problems.push(`a Client's ledger filled up (${capacity} messages): ${ledgerFull} sends skipped`)
    tallyProblems({ sent, written, failed, lostOnLive, echoedTwice, echoedUnwritten, echoedUnknown, heap }, problems)
    return {
      seed: options.seed,
      clients: N,
      servers: M,
      elapsedMs: elapsed(),
      sent,
      written,
      failed,
      echoed,
      faults,
      heap,
      problems
    }
  }).pipe(
    Effect.scoped,
    // The clients log each Backoff and Closed themselves; the soak prints its own lines.
    Logger.withMinimumLogLevel(LogLevel.None)
  )
