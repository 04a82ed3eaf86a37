// `tsx bench/herdCpu.ts [runs] [clients]`: the herd section alone (partysocket, the lifeline Client and
// partysocket with a delay drawn per socket, in turn, a fresh process each), printing each run and
// the reconnect CPU per client.
import { measureHerd } from "./herd.js"

const runs = Number(process.argv[2] ?? 3)
const clients = Number(process.argv[3] ?? 1000)
const { reports } = await measureHerd({
  runs,
  clients,
  waitMs: 15_000,
  log: (line) => process.stdout.write(`${line}\n`)
})
for (const [name, list] of Object.entries(reports)) {
  const figures = list.map((report) => report.cpuMsPerClient.toFixed(2)).join(", ")
  const fromKill = list.map((report) => report.cpuMsPerClientFromKill.toFixed(2)).join(", ")
  process.stdout.write(`${name}: CPU per client from the return ${figures}; from the kill ${fromKill}\n`)
}
