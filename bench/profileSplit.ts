// The CPU a profiled workload spends per operation, by origin and by function, over the last
// `windowMs` of a V8 .cpuprofile (the steady state, not the start-up):
//
//   npx tsx bench/profileSplit.ts <file.cpuprofile> <operations per second> [windowMs] [top]
//
// `operations per second` is what `bench/profile.ts` printed for the run (e.g. 958 round trips/s).
// Profile with `PROFILE_INTERVAL_US=50 npx tsx bench/profile.ts <contender> latency 64 text 8`:
// V8's default 1 ms sampling gives too few samples for a round trip of tens of microseconds.
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly endTime: number
  readonly startTime: number
}

const [file, rateText, windowText = "6000", topText = "15"] = process.argv.slice(2)
if (file === undefined || rateText === undefined) {
  throw new Error("usage: profileSplit.ts <file.cpuprofile> <operations per second> [windowMs] [top]")
}
const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const windowUs = Number(windowText) * 1000
const operations = (Number(rateText) * windowUs) / 1e6

const originOf = (url: string, name: string): string => {
  if (url === "") return name.startsWith("(") ? name : "native"
  if (url.includes("/node_modules/effect/")) return "effect"
  if (url.includes("/node_modules/ws/")) return "ws"
  if (url.includes("/node_modules/")) return "other"
  if (url.includes("/src/") || url.includes("/dist/")) return "lifeline"
  if (url.includes("/bench/")) return "bench"
  if (url.startsWith("node:")) return "node"
  return "other"
}

// Sample times: startTime plus the running sum of the deltas.
const times: Array<number> = []
let at = profile.startTime
for (const delta of profile.timeDeltas) times.push(at += delta)
const from = profile.endTime - windowUs
const byOrigin = new Map<string, number>()
const byFunction = new Map<string, number>()
profile.samples.forEach((id, index) => {
  if (times[index]! < from) return
  const delta = profile.timeDeltas[index] ?? 0
  const frame = byId.get(id)?.callFrame
  if (frame === undefined) return
  const origin = originOf(frame.url, frame.functionName)
  byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + delta)
  const where = frame.url.replace(/^file:\/\//, "").replace(/^.*\/(node_modules|src|dist|bench)\//, "$1/")
  const key = `${origin.padEnd(10)} ${frame.functionName || "(anonymous)"} ${where}:${frame.lineNumber + 1}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + delta)
})
const perOperation = (micros: number): string => (micros / operations).toFixed(2).padStart(7)
const busy = [...byOrigin].filter(([origin]) => origin !== "(idle)").reduce((sum, [, micros]) => sum + micros, 0)
console.log(`${file}: last ${windowText} ms, about ${Math.round(operations)} operations; us per operation`)
console.log(`${perOperation(busy)}  busy (all but idle)`)
for (const [origin, micros] of [...byOrigin].sort((a, b) => b[1] - a[1])) {
  console.log(`${perOperation(micros)}  ${origin}`)
}
console.log("top functions (self time):")
for (const [key, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(topText))) {
  console.log(`${perOperation(micros)}  ${key}`)
}
