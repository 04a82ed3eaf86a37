// CPU profile of one contender on one workload, with the heaviest functions by self time:
//   npm run bench:profile -- <contender> <throughput|connect|latency> [bytes] [text|binary] [seconds]
// Runs the workload in a child under `node --cpu-prof` against an echo server in another child,
// then prints the top self-time functions. The profile stays in bench/results/ (git-ignored).
import { readdirSync, statSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { loadContender } from "./contenders/index.js"
import { renderSelfTimes, selfTimes } from "./profileTop.js"
import { killChild, spawnTs, startEchoServer } from "./server.js"
import { windowFor } from "./throughput.js"
import { makePayload } from "./util.js"

const RESULTS = fileURLToPath(new URL("./results/", import.meta.url))

const [name = "connection", workload = "throughput", bytesText = "64", kindText = "binary", secondsText = "4"] = process
  .argv
  .slice(2)
  .filter((arg) => arg !== "--child")
const kind = kindText === "text" ? "text" : "binary"
const seconds = Math.min(30, Number(secondsText))

/** In the profiled child: repeat the workload for the given time against `url`. */
const work = async (url: string): Promise<void> => {
  const contender = await loadContender(name)
  const payload = makePayload(Number(bytesText), kind)
  const started = performance.now()
  const until = started + seconds * 1000
  let rounds = 0
  const perRound = workload === "connect" ? 50 : workload === "latency" ? 200 : 20_000
  while (performance.now() < until && rounds < 10_000) {
    rounds++
    if (workload === "connect") await contender.connect(url, perRound)
    else if (workload === "latency") await contender.latency(url, payload, perRound, 1)
    else await contender.throughput(url, payload, perRound, windowFor(payload.length))
  }
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage()
  process.stdout.write(
    `${rounds * perRound} operations in ${elapsed.toFixed(0)} ms (${
      Math.round((rounds * perRound) / elapsed * 1000)
    }/s), ` +
      `process CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (user ${(cpu.user / 1000).toFixed(0)}, system ${
        (cpu.system / 1000).toFixed(0)
      })\n`
  )
}

if (process.argv.includes("--child")) {
  await work(process.env["BENCH_URL"] ?? "")
  process.exit(0)
} else {
  const server = await startEchoServer()
  const before = new Set(readdirSync(RESULTS))
  process.env["BENCH_URL"] = server.url
  // PROFILE_INTERVAL_US=<us>: sample more often than V8's default 1 ms (a round trip takes tens of us).
  const interval = process.env["PROFILE_INTERVAL_US"]
  const child = spawnTs(fileURLToPath(import.meta.url), ["--child", ...process.argv.slice(2)], [
    "--cpu-prof",
    `--cpu-prof-dir=${RESULTS}`,
    ...(interval === undefined ? [] : [`--cpu-prof-interval=${Number(interval)}`])
  ])
  child.stdout?.pipe(process.stdout)
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => void killChild(child).then(resolve), (seconds + 60) * 1000)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
  })
  await server.stop()
  // tsx's loader thread writes a profile too: the main thread's is the largest.
  const profile = readdirSync(RESULTS)
    .filter((file) => file.endsWith(".cpuprofile") && !before.has(file))
    .sort((a, b) => statSync(`${RESULTS}${b}`).size - statSync(`${RESULTS}${a}`).size)[0]
  if (profile === undefined) throw new Error("the child wrote no profile")
  process.stdout.write(`${name} ${workload} ${bytesText} B ${kind}, ${seconds} s: ${RESULTS}${profile}\n`)
  const times = selfTimes(`${RESULTS}${profile}`)
  process.stdout.write(`${renderSelfTimes(times, 15)}\n`)
  process.stdout.write(
    `${renderSelfTimes(times, 25, ["lifeline", "effect", "@effect/platform"]).split("\n").slice(1).join("\n")}\n`
  )
  process.exit(0)
}
