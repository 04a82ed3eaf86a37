// `npm run soak [-- --minutes M] [--seed S]`: the soak (soak/soak.ts) for M minutes (default 2,
// at most 60) on 127.0.0.1, with a seeded series of faults (default seed: from the clock, printed,
// so a failing run can be repeated). Exits 0 when every message is accounted for, every fault was
// recovered from, the heap did not grow by more than 32 MiB and nothing was thrown; 1 otherwise.
import { Cause, Effect, Exit } from "effect"
import { forceGc } from "../bench/util.js"
import { NodeTransport } from "../src/index.js"
import { soak } from "./soak.js"

const argument = (name: string): string | undefined => {
  const index = process.argv.indexOf(name)
  return index === -1 ? undefined : process.argv[index + 1]
}
const minutes = Number(argument("--minutes") ?? 2)
const seed = Number(argument("--seed") ?? Date.now() % 1_000_000)
if (!(minutes > 0 && minutes <= 60) || !Number.isInteger(seed)) {
  console.error("usage: npm run soak -- [--minutes M (0 < M <= 60)] [--seed S (an integer)]")
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

console.log(`lifeline soak: ${minutes} min, seed ${seed}`)
const exit = await Effect.runPromiseExit(
  soak({
    durationMs: minutes * 60_000,
    seed,
    sendEveryMs: 5,
    warmupMs: 2_000,
    sampleEveryMs: 10_000,
    heapUsed: () => {
      forceGc()
      return process.memoryUsage().heapUsed
    },
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
console.log(`  sent ${report.sent}, written ${report.written}, failed ${failedTotal}${failed === "" ? "" : ` (${failed})`}`)
console.log(`  echoed ${report.echoed} (the rest were written, then lost with their connection or in a blackhole)`)
console.log(`  faults ${Object.entries(report.faults).map(([fault, count]) => `${fault} ${count}`).join(", ")}; slowest recovery ${report.slowestRecoveryMs} ms`)
if (first !== undefined && last !== undefined) {
  console.log(`  heap after GC ${mib(first[1])} at +${(first[0] / 1000).toFixed(0)} s, ${mib(last[1])} at the end`)
  console.log(`  every sample, MiB: ${report.heap.map(([, bytes]) => (bytes / 2 ** 20).toFixed(1)).join(" ")}`)
}
console.log(problems.length === 0 ? "soak passed" : `soak FAILED:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`)
process.exit(problems.length === 0 && process.exitCode !== 1 ? 0 : 1)
