// One throughput fork: a fresh process that runs its share of every case's runs (a ForkPlan, as
// JSON in the first argument) and prints one CaseResult per case as a JSON line.
import { loadContenders } from "./contenders/index.js"
import type { CaseResult, ForkPlan } from "./throughput.js"
import { runCase, warmUp } from "./throughput.js"

const plan = JSON.parse(process.argv[2] ?? "") as ForkPlan
const contenders = await loadContenders()
await warmUp(plan.url, contenders)
for (const testCase of plan.cases) {
  const result: CaseResult = await runCase(plan.url, contenders, testCase, testCase.runs, plan.collectBeforeRuns)
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
// Every socket is closed by now; exit at once rather than wait for stray timers (partysocket's).
process.exit(0)
