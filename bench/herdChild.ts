// One thundering-herd run, in a fresh process:
//   node --import tsx bench/herdChild.ts <client|partysocket|partysocketJittered> <clients> <wait after return, ms>
// Starts an echo server (its own child), connects the clients, kills the server, brings it back
// on the same port 1 s later, and records when each client is open again. Prints one JSON line.
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { performance } from "node:perf_hooks"
import type { Herd } from "./contenders/types.js"
import { standbyEchoServer, startEchoServer } from "./server.js"
import { densest, median, sleep, withTimeout } from "./util.js"

export interface HerdReport {
  readonly clients: number
  readonly reconnected: number
  /** The largest share of all clients whose handshake the server accepted within one 100 ms window. */
  readonly peakShare: number
  /** Median time from the server's return to its accepting a client's handshake. */
  readonly medianMs: number
  /** Median time from the server's return to the client reporting itself open, over those that did. */
  readonly clientMedianMs: number
  /** The same peak, by the times the clients reported themselves open. */
  readonly clientPeakShare: number
  readonly lastMs: number
  /**
   * CPU time (user + system) of this process, which runs the clients and nothing else (the server
   * is a child of its own), from the server's return until every client is back, per client, ms.
   */
  readonly cpuMsPerClient: number
  /** The same from the kill (the close, the attempts refused while the server is down, the return). */
  readonly cpuMsPerClientFromKill: number
  readonly error?: string
}

const DOWN_MS = 1_000
const WINDOW_MS = 100

const main = async (): Promise<HerdReport> => {
  const [name, countText, waitText] = process.argv.slice(2)
  const count = Number(countText)
  const waitMs = Number(waitText)
  const server = await startEchoServer()
  try {
    const herd: Herd = name === "client"
      ? (await import("./contenders/client.js")).clientHerd(server.url, count)
      : (await import("./contenders/partysocket.js")).partysocketHerd(server.url, count, name === "partysocketJittered")
    await withTimeout(herd.opened, 60_000, `${count} clients opening`)
    await sleep(500)
    herd.watchReconnects()
    const standby = await standbyEchoServer(server.port)
    await sleep(100)
    const killedAt = performance.now()
    const cpuAtKill = process.cpuUsage()
    // The CPU clock read when the server is due back (it listens at killedAt + DOWN_MS by its own
    // schedule); a timer, so a busy loop can read it late, never early.
    let cpuAtReturn: NodeJS.CpuUsage | undefined
    // HERD_PROFILE=<file.cpuprofile>: a CPU profile of this process over the same window.
    const profileTo = process.env["HERD_PROFILE"]
    const profiler = profileTo === undefined ? undefined : new Session()
    if (profiler !== undefined) {
      profiler.connect()
      await profiler.post("Profiler.enable")
    }
    const returnTimer = setTimeout(() => {
      cpuAtReturn = process.cpuUsage()
      void profiler?.post("Profiler.start")
    }, DOWN_MS)
    // HERD_HIST=1: how busy this process is (event-loop utilisation), sampled every 100 ms or as
    // soon after as the loop gets to it, as "ms after the kill:busy %".
    const busy: Array<string> = []
    let lastUse = performance.eventLoopUtilization()
    const sampler = process.env["HERD_HIST"] === "1"
      ? setInterval(() => {
        const use = performance.eventLoopUtilization()
        busy.push(
          `${Math.round(performance.now() - killedAt)}:${
            Math.round(performance.eventLoopUtilization(use, lastUse).utilization * 100)
          }`
        )
        lastUse = use
      }, WINDOW_MS)
      : undefined
    // Asked before the kill's cleanup, timed by the server itself, and read back from it: the
    // clients' load on this process delays neither the return nor its timestamp.
    const returning = standby.listen(killedAt + DOWN_MS)
    await server.stop()
    const returned = await returning
    const returnedAt = returned.listeningAt
    const deadline = returnedAt + waitMs
    while (performance.now() < deadline && herd.reconnectedAt().some((at) => at === undefined)) await sleep(50)
    // Read as soon as every client is back (to within the 50 ms poll, during which the clients
    // are idle), or at the deadline when some are not.
    const cpuAtBack = process.cpuUsage()
    clearTimeout(returnTimer)
    if (profiler !== undefined && profileTo !== undefined) {
      const { profile } = await profiler.post("Profiler.stop")
      writeFileSync(profileTo, JSON.stringify(profile))
      profiler.disconnect()
    }
    const cpuMs = (from: NodeJS.CpuUsage | undefined) =>
      from === undefined ? Number.NaN : (cpuAtBack.user - from.user + cpuAtBack.system - from.system) / 1_000 / count
    const delays = herd.reconnectedAt()
      .filter((at): at is number => at !== undefined)
      .map((at) => at - returnedAt)
      .sort((a, b) => a - b)
    // The load the herd puts on the server, as the server saw it: when it accepted each handshake.
    const accepted = (await returned.accepted()).map((at) => at - returnedAt).sort((a, b) => a - b).slice(0, count)
    // HERD_HIST=1: the server-side arrivals per 100 ms on stderr, to see the shape of a run.
    if (process.env["HERD_HIST"] === "1") {
      const buckets: Record<number, number> = {}
      for (const at of accepted) buckets[Math.floor(at / 100) * 100] = (buckets[Math.floor(at / 100) * 100] ?? 0) + 1
      process.stderr.write(`server accepts per 100 ms from its return: ${JSON.stringify(buckets)}\n`)
      process.stderr.write(`client process busy, ms after the kill:%: ${busy.join(" ")}\n`)
    }
    clearInterval(sampler)
    // The clients go with this process: it exits right after reporting.
    await returned.stop()
    return {
      clients: count,
      reconnected: delays.length,
      peakShare: densest(accepted, WINDOW_MS) / count,
      medianMs: median(accepted),
      clientMedianMs: median(delays),
      clientPeakShare: densest(delays, WINDOW_MS) / count,
      lastMs: delays.length === 0 ? Number.NaN : delays[delays.length - 1]!,
      cpuMsPerClient: cpuMs(cpuAtReturn),
      cpuMsPerClientFromKill: cpuMs(cpuAtKill)
    }
  } finally {
    await server.stop()
  }
}

const report = await main().catch((error: unknown): HerdReport => ({
  clients: 0,
  reconnected: 0,
  peakShare: Number.NaN,
  medianMs: Number.NaN,
  clientMedianMs: Number.NaN,
  clientPeakShare: Number.NaN,
  lastMs: Number.NaN,
  cpuMsPerClient: Number.NaN,
  cpuMsPerClientFromKill: Number.NaN,
  error: error instanceof Error ? error.message : String(error)
}))
process.stdout.write(`${JSON.stringify(report)}\n`)
process.exit(0)
