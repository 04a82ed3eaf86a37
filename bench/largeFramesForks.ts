// The throughput section's forks, for one large-frame case only, so that a gap to raw ws can be
// told from the forks' noise with more runs than a full bench gives it:
//
//   npx tsx bench/largeFramesForks.ts [forks] [runs per fork] [bytes] [text|binary] [small|none] [dist...]
//
// Each fork is `throughputFork.ts` itself (every contender, the same warm-up), given only this
// case (1,280 frames at 64 KiB, as the bench's) or, with `small`, the bench's 64 B and 1 KiB cases
// before it (fixed counts, 2 runs each), as a fork of the full bench meets it. With dist
// directories given (copies of `dist/`, see bench/lifeline.ts), the forks take them in turn,
// `LIFELINE_DIST` set for each. Prints, per build, the ratio to raw ws of each run (the runs of
// one fork, paired with raw ws's run of the same round) for the rate and the CPU per message, as
// median [min..max], and the forks' own medians. Defaults: 6 forks, 4 runs, 65536 B, binary.
import { fileURLToPath } from "node:url"
import type { ContenderName } from "./contenders/index.js"
import { JsonLines, killChild, spawnTs, startEchoServer } from "./server.js"
import type { CaseResult, ForkPlan } from "./throughput.js"

const forks = Number(process.argv[2] ?? 6)
const runsPerFork = Number(process.argv[3] ?? 4)
const bytes = Number(process.argv[4] ?? 65536)
const kind: "text" | "binary" = process.argv[5] === "text" ? "text" : "binary"
const withSmall = process.argv[6] === "small"
const dists = process.argv.slice(7)
const builds = dists.length === 0 ? [undefined] : dists
const FORK = fileURLToPath(new URL("./throughputFork.ts", import.meta.url))
const FORK_LIMIT_MS = 300_000

const median = (values: ReadonlyArray<number>): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const spread = (values: ReadonlyArray<number>): string =>
  `${median(values).toFixed(3)} [${Math.min(...values).toFixed(3)}..${Math.max(...values).toFixed(3)}]`

const server = await startEchoServer()
const runs = Array.from({ length: runsPerFork }, (_, run) => run)
const large = { size: bytes, kind, count: Math.max(1280, Math.round((80 * 1024 * 1024) / bytes)), runs }
const small = [
  { size: 64, kind: "text" as const, count: 20_000, runs: [0, 1] },
  { size: 64, kind: "binary" as const, count: 20_000, runs: [0, 1] },
  { size: 1024, kind: "text" as const, count: 10_000, runs: [0, 1] },
  { size: 1024, kind: "binary" as const, count: 10_000, runs: [0, 1] }
]
const plan: ForkPlan = { url: server.url, collectBeforeRuns: false, cases: withSmall ? [...small, large] : [large] }
type Ratios = { rate: Array<number>; cpu: Array<number>; forkRate: Array<number>; forkCpu: Array<number> }
const results = new Map<string, Map<ContenderName, Ratios>>()
try {
  for (let fork = 0; fork < forks * builds.length; fork++) {
    const build = builds[fork % builds.length]
    if (build === undefined) delete process.env["LIFELINE_DIST"]
    else process.env["LIFELINE_DIST"] = build
    const child = spawnTs(FORK, [JSON.stringify(plan)])
    const lines = new JsonLines(child)
    let result: CaseResult | undefined
    try {
      for (let index = 0; index < plan.cases.length; index++) {
        result = await lines.next<CaseResult>(FORK_LIMIT_MS, `fork ${fork}`)
      }
    } finally {
      await killChild(child)
    }
    const byName = results.get(build ?? "dist") ?? results.set(build ?? "dist", new Map()).get(build ?? "dist")!
    const baseline = result!.runs["ws"] ?? []
    for (const name of ["connection", "client"] as const) {
      const ratios = byName.get(name) ?? byName.set(name, { rate: [], cpu: [], forkRate: [], forkCpu: [] }).get(name)!
      const own = result!.runs[name] ?? []
      const rate: Array<number> = []
      const cpu: Array<number> = []
      for (const run of own) {
        const raw = baseline.find((candidate) => candidate.run === run.run)
        if (raw === undefined) continue
        rate.push(run.rate / raw.rate)
        cpu.push(run.cpuMsPer1k / raw.cpuMsPer1k)
      }
      ratios.rate.push(...rate)
      ratios.cpu.push(...cpu)
      ratios.forkRate.push(median(rate))
      ratios.forkCpu.push(median(cpu))
    }
    console.error(
      `fork ${fork + 1} (${build ?? "dist"}): ws ${median(baseline.map((run) => run.rate)).toFixed(0)} msg/s, ${
        median(baseline.map((run) => run.cpuMsPer1k)).toFixed(0)
      } ms CPU per 1,000; connection ${median((result!.runs["connection"] ?? []).map((run) => run.rate)).toFixed(0)}, ${
        median((result!.runs["connection"] ?? []).map((run) => run.cpuMsPer1k)).toFixed(0)
      }`
    )
  }
} finally {
  await server.stop()
}
console.log(
  `${bytes} B ${kind}, ${large.count} frames per run, ${forks} forks x ${runsPerFork} runs per build${
    withSmall ? ", after the 64 B and 1 KiB cases" : ""
  }; ratio to raw ws, median [min..max]`
)
for (const [build, byName] of results) {
  for (const [name, ratios] of byName) {
    console.log(
      `${build} ${name}: rate ${spread(ratios.rate)}, CPU per message ${spread(ratios.cpu)}; fork medians: rate ${
        spread(ratios.forkRate)
      }, CPU ${spread(ratios.forkCpu)}`
    )
  }
}
process.exit(0)
