// One throughput fork: a fresh process that runs its share of every case's runs (a ForkPlan, as
// JSON in the first argument) and prints one CaseResult per case as a JSON line.
import { loadContenders } from "./contenders/index.js"
import type { CaseResult, ForkPlan } from "./throughput.js"
import { runCase, warmUp } from "./throughput.js"

// stdout carries the results, one JSON line per case: anything a library logs goes to stderr.
console.log = console.error
console.info = console.error
const plan = JSON.parse(process.argv[2] ?? "") as ForkPlan
const contenders = await loadContenders()
await warmUp(plan.url, contenders)
for (const testCase of plan.cases) {
  const result: CaseResult = await runCase(plan.url, contenders, testCase, testCase.runs, plan.collectBeforeRuns)
  // Written out before the next case starts, so a pipe that is slow to drain loses nothing.
  await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify(result)}\n`, () => resolve()))
}
// Every socket is closed and every line written; exit at once rather than wait for stray timers
// (partysocket's).
process.exit(0)
