// `npm run soak [-- --minutes M] [--seed S]`: the soak (soak/soak.ts) for M minutes (default 2,
// at most 60) on 127.0.0.1, with a seeded series of faults (default seed: from the clock, printed,
// so a failing run can be repeated). Exits 0 when every message is accounted for, every fault was
// recovered from, the heap did not grow by more than 32 MiB and nothing was thrown; 1 otherwise.
// `npm run soak -- --clients N [--servers M] [--minutes T] [--seed S]`: the fleet soak
// (soak/fleet.ts) instead: N Clients (default 200, at most 2,000) over M servers (default 3,
// 2 to 10) sharing one circuit breaker registry; it prints what each fault did and exits 0 only
// when every check held.
import { Cause, Effect, Exit } from "effect"
import { forceGc } from "../bench/util.js"
import { NodeTransport } from "../src/index.js"
import type { FaultRecord } from "./fleet.js"
import { fleet, homeBoundMs, TRIALS } from "./fleet.js"
import { soak } from "./soak.js"

const argument = (name: string): string | undefined => {
  const index = process.argv.indexOf(name)
  return index === -1 ? undefined : process.argv[index + 1]
}
const minutes = Number(argument("--minutes") ?? 2)
const seed = Number(argument("--seed") ?? Date.now() % 1_000_000)
const fleetMode = process.argv.includes("--clients")
const clients = Number(argument("--clients") ?? 200)
const servers = Number(argument("--servers") ?? 3)
if (
  !(minutes > 0 && minutes <= 60) || !Number.isInteger(seed) ||
  (fleetMode &&
    !(Number.isInteger(clients) && clients >= 1 && clients <= 2000 && Number.isInteger(servers) && servers >= 2 &&
      servers <= 10)) ||
  (!fleetMode && process.argv.includes("--servers"))
) {
  console.error("usage: npm run soak -- [--minutes M (0 < M <= 60)] [--seed S (an integer)]")
  console.error(
    "       npm run soak -- --clients N (1..2000) [--servers M (2..10, default 3)] [--minutes M] [--seed S]"
  )
  process.exit(2)
}

const thrown: Array<string> = []
process.on("uncaughtException", (error) => {
  process.exitCode = 1
  thrown.push(`uncaught exception: ${error.stack ?? error.message}`)
})
process.on("unhandledRejection", (reason) => {
  process.exitCode = 1
  thrown.push(`unhandled rejection: ${String(reason)}`)
})

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`

const heapUsed = () => {
  forceGc()
  return process.memoryUsage().heapUsed
}

const printHeap = (heap: ReadonlyArray<readonly [number, number]>) => {
  const first = heap[0]
  const last = heap[heap.length - 1]
  if (first !== undefined && last !== undefined) {
    console.log(`  heap after GC ${mib(first[1])} at +${(first[0] / 1000).toFixed(0)} s, ${mib(last[1])} at the end`)
    console.log(`  every sample, MiB: ${heap.map(([, bytes]) => (bytes / 2 ** 20).toFixed(1)).join(" ")}`)
  }
}

const finish = (problems: ReadonlyArray<string>, what: string): never => {
  const all = [...problems, ...thrown]
  console.log(
    all.length === 0 ? `${what} passed` : `${what} FAILED:\n${all.map((problem) => `  - ${problem}`).join("\n")}`
  )
  process.exit(all.length === 0 && process.exitCode !== 1 ? 0 : 1)
}

if (fleetMode) await runFleet()

async function runFleet(): Promise<never> {
  const options = {
    durationMs: minutes * 60_000,
    seed,
    clients,
    servers,
    // 1,000 messages a second in all: every 200 ms per Client up to 200 Clients, less often above.
    sendEveryMs: Math.max(200, clients),
    warmupMs: 2_000,
    sampleEveryMs: 10_000,
    deadMs: [2_000, 5_000],
    calmMs: [500, 2_000],
    openForMs: [1_000, 10_000],
    returnToPrimaryMs: 1_000,
    heapUsed,
    log: (line: string) => console.log(`  ${line}`)
  } as const
  console.log(`lifeline fleet soak: ${clients} clients x ${servers} servers, ${minutes} min, seed ${seed}`)
  console.log(
    `  breaker: consecutiveFailures(5), open ${options.openForMs[0] / 1000} s doubling to ${
      options.openForMs[1] / 1000
    } s, ` +
      `trials ${TRIALS}; ordered, returnToPrimary ${options.returnToPrimaryMs / 1000} s; ` +
      `a message per client every ${options.sendEveryMs} ms; home bound ${homeBoundMs(options) / 1000} s`
  )
  const exit = await Effect.runPromiseExit(fleet(options).pipe(Effect.provide(NodeTransport.layer)))
  if (Exit.isFailure(exit)) {
    console.error(`fleet soak FAILED: it died:\n${Cause.pretty(exit.cause)}`)
    process.exit(1)
  }
  const report = exit.value
  const failedTotal = Object.values(report.failed).reduce((total, count) => total + (count ?? 0), 0)
  const failed = Object.entries(report.failed).map(([reason, count]) => `${reason} ${count}`).join(", ")
  const of = (fault: FaultRecord["fault"]) => report.faults.filter((record) => record.fault === fault)
  const sum = (records: ReadonlyArray<FaultRecord>, field: keyof FaultRecord) =>
    records.reduce((total, record) => total + Number(record[field]), 0)
  const maxOf = (records: ReadonlyArray<FaultRecord>, field: keyof FaultRecord) =>
    Math.max(0, ...records.map((record) => Number(record[field])))
  const range = (records: ReadonlyArray<FaultRecord>, field: keyof FaultRecord) =>
    records.length === 0
      ? "-"
      : `${Math.min(...records.map((record) => Number(record[field])))}-${maxOf(records, field)}`
  const dead = [...of("kill"), ...of("reject")]
  const rejected = of("reject")
  const perOpen = (probes: number, opens: number) => (opens === 0 ? 0 : probes / opens).toFixed(2)
  console.log(
    `after ${(report.elapsedMs / 1000).toFixed(0)} s (seed ${report.seed}), ${report.faults.length} faults: kill ${
      of("kill").length
    }, 503 ${rejected.length}, closeAll ${of("closeAll").length}`
  )
  console.log(
    `  sent ${report.sent}, written ${report.written}, failed ${failedTotal}${
      failed === "" ? "" : ` (${failed})`
    }; echoed ${report.echoed}`
  )
  console.log(
    `  breaker, dead nodes: first wave ${range(dead, "firstWave")} attempts per period; then ${
      sum(dead, "trials")
    } trials in ${sum(dead, "openPeriods")} open periods ` +
      `(${perOpen(sum(dead, "trials"), sum(dead, "openPeriods"))} per open period, at most ${TRIALS})`
  )
  console.log(
    `  503 periods: ${sum(rejected, "handshakes")} handshakes received = first waves ${sum(rejected, "firstWave")} + ${
      sum(rejected, "probes")
    } probes ` +
      `in ${sum(rejected, "openPeriods")} open periods (${
        perOpen(sum(rejected, "probes"), sum(rejected, "openPeriods"))
      } per open period)`
  )
  console.log(
    `  failover: ${sum(dead, "moved")}/${sum(dead, "affected")} Clients Open elsewhere, per fault median ${
      range(dead, "movedMedianMs")
    } ms, max ${maxOf(dead, "movedMaxMs")} ms; ` +
      `home after the heal ${sum(dead, "returned")}/${sum(dead, "away")}, per fault median ${
        range(dead, "returnedMedianMs")
      } ms, max ${maxOf(dead, "returnedMaxMs")} ms`
  )
  console.log(
    `  closeAll(1012): ${sum(of("closeAll"), "moved")}/${sum(of("closeAll"), "affected")} reopened, max ${
      maxOf(of("closeAll"), "movedMaxMs")
    } ms; ` +
      `home ${sum(of("closeAll"), "returned")}/${sum(of("closeAll"), "away")}, max ${
        maxOf(of("closeAll"), "returnedMaxMs")
      } ms`
  )
  printHeap(report.heap)
  return finish(report.problems, "fleet soak")
}

console.log(`lifeline soak: ${minutes} min, seed ${seed}`)
const exit = await Effect.runPromiseExit(
  soak({
    durationMs: minutes * 60_000,
    seed,
    sendEveryMs: 5,
    warmupMs: 2_000,
    sampleEveryMs: 10_000,
    heapUsed,
    log: (line) => console.log(`  ${line}`)
  }).pipe(Effect.provide(NodeTransport.layer))
)
if (Exit.isFailure(exit)) {
  console.error(`soak FAILED: it died:\n${Cause.pretty(exit.cause)}`)
  process.exit(1)
}
const report = exit.value
const problems = [...report.problems, ...thrown]
const failed = Object.entries(report.failed).map(([reason, count]) => `${reason} ${count}`).join(", ")
const first = report.heap[0]
const last = report.heap[report.heap.length - 1]
console.log(`after ${(report.elapsedMs / 1000).toFixed(0)} s (seed ${report.seed}):`)
const failedTotal = Object.values(report.failed).reduce((total, count) => total + (count ?? 0), 0)
console.log(
  `  sent ${report.sent}, written ${report.written}, failed ${failedTotal}${failed === "" ? "" : ` (${failed})`}`
)
console.log(`  echoed ${report.echoed} (the rest were written, then lost with their connection or in a blackhole)`)
console.log(
  `  faults ${
    Object.entries(report.faults).map(([fault, count]) => `${fault} ${count}`).join(", ")
  }; slowest recovery ${report.slowestRecoveryMs} ms`
)
if (first !== undefined && last !== undefined) {
  console.log(`  heap after GC ${mib(first[1])} at +${(first[0] / 1000).toFixed(0)} s, ${mib(last[1])} at the end`)
  console.log(`  every sample, MiB: ${report.heap.map(([, bytes]) => (bytes / 2 ** 20).toFixed(1)).join(" ")}`)
}
console.log(
  problems.length === 0 ? "soak passed" : `soak FAILED:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`
)
process.exit(problems.length === 0 && process.exitCode !== 1 ? 0 : 1)
