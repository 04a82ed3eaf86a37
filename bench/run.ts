// `npm run bench [-- --quick]`: every measurement for every contender in one run, one table on
// stdout, and the numbers as JSON in bench/results/<timestamp>.json. Progress goes to stderr.
import { mkdirSync, writeFileSync } from "node:fs"
import { cpus, totalmem } from "node:os"
import { fileURLToPath } from "node:url"
import { measureBurst } from "./burst.js"
import { loadContenders } from "./contenders/index.js"
import { measureHerd } from "./herd.js"
import { measureLatency } from "./latency.js"
import { measureMemory } from "./memory.js"
import type { Row } from "./results.js"
import { withRatios } from "./results.js"
import { startEchoServer } from "./server.js"
import { renderMarkdown, renderTable } from "./table.js"
import { measureThroughput } from "./throughput.js"

const quick = process.argv.includes("--quick")
// `--gc-before-runs`: a full garbage collection before each timed throughput and latency run (off
// by default; see ThroughputSettings.collectBeforeRuns).
const collectBeforeRuns = process.argv.includes("--gc-before-runs")
// `--only throughput,latency` runs just those sections (of throughput, burst, latency, memory, herd).
const onlyIndex = process.argv.indexOf("--only")
const only = onlyIndex === -1 ? undefined : (process.argv[onlyIndex + 1] ?? "").split(",")
const wanted = (section: string): boolean => only === undefined || only.includes(section)
// `--contenders ws,client,lite`: just those (in that order), and `lite` (the small Client), which
// the default set leaves out; children read the same list from LIFELINE_BENCH_CONTENDERS.
const contendersIndex = process.argv.indexOf("--contenders")
if (contendersIndex !== -1) process.env["LIFELINE_BENCH_CONTENDERS"] = process.argv[contendersIndex + 1] ?? ""
// `--forks N`: the fresh processes that share each throughput case's runs (0: all in this one).
const forksIndex = process.argv.indexOf("--forks")
const forksOption = forksIndex === -1 ? undefined : Number(process.argv[forksIndex + 1])

const settings = quick
  ? {
    runs: 3,
    largeFrameRuns: 5,
    forks: 2,
    throughputTargetMs: 100,
    burstRuns: 3,
    burstCount: 20_000,
    roundTrips: 200,
    connects: 40,
    memoryRuns: 1,
    memoryCounts: [1000],
    memoryLargeRuns: 0,
    herdRuns: 1,
    herdClients: 300,
    herdWaitMs: 10_000
  }
  : {
    runs: 5,
    largeFrameRuns: 10,
    forks: 5,
    throughputTargetMs: 400,
    burstRuns: 5,
    burstCount: 50_000,
    roundTrips: 1000,
    connects: 200,
    memoryRuns: 5,
    memoryCounts: [1000, 5000],
    /** Runs that go on to the largest count (the others stop at the first); it takes long. Three, so that its rows have an interval. */
    memoryLargeRuns: 3,
    herdRuns: 5,
    herdClients: 1000,
    herdWaitMs: 15_000
  }

if (forksOption !== undefined && !(Number.isInteger(forksOption) && forksOption >= 0 && forksOption <= 20)) {
  throw new Error(`--forks takes a whole number from 0 to 20, not ${process.argv[forksIndex + 1]}`)
}
const forks = forksOption ?? settings.forks

const startedAt = Date.now()
const elapsed = (): string => `${((Date.now() - startedAt) / 1000).toFixed(1)} s`
const log = (line: string): void => {
  process.stderr.write(`[${elapsed()}] ${line}\n`)
}

const machine = {
  cpus: cpus().length,
  cpu: cpus()[0]?.model ?? "unknown",
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  platform: `${process.platform} ${process.arch}`
}

const NOTES = [
  "Echo server: a plain ws server in its own child process on 127.0.0.1. One connection per run, opened before the clock starts. " +
  (collectBeforeRuns
    ? "A full GC before each throughput and latency run (--gc-before-runs)."
    : "No forced GC between throughput and latency runs; the contenders take turns in another order each run, so none always runs after the same one."),
  "Throughput: pipelined, at most min(1000 frames, 8 MiB) unanswered, refilled once half the window is back; N messages per run calibrated so raw ws takes ~" +
  `${settings.throughputTargetMs} ms, and at least 10 windows (64 KiB: 1,280); ${settings.runs} runs, ${settings.largeFrameRuns} at 64 KiB (short runs that vary more)` +
  (forks > 0
    ? `, spread over ${forks} fresh processes (run k in process k mod ${forks}), each warmed up before its runs.`
    : ", all in the bench process.") +
  ` ws / partysocket / @effect/platform: send() in a loop (platform: its writer, refilled from the runRaw handler).`,
  "lifeline Connection pipelines with connection.write; lifeline Client with client.enqueue (returns once buffered; outbox overflow \"suspend\", the backpressure a pipelining sender uses, since the outbox bounds frames not yet written); both pull `messages` a chunk at a time. lifeline runs from the compiled dist/ (npm run bench builds it).",
  `Burst: ${
    settings.burstCount.toLocaleString("en")
  } text frames written back to back with no window while a reader takes the echoes, time from the first write to the last echo; raw ws: send() in a loop, counting 'message' events; lifeline Connection: a for loop of yield* connection.write (write) or Effect.forEach(..., { discard: true }) (forEach), a forked fiber pulling messages with Stream.toPull (a chunk at a time), or (runForEach reader, the write loop) Stream.runForEach(messages, handler), an Effect per frame, as most apps read; ${settings.burstRuns} runs each, alternated in the bench process (bench/burst.ts).`,
  "Round trip: one 64 B text frame in flight, 1 ms apart; Connection and Client use send (completes on the write callback), the others a plain send.",
  "Connect: sequential, time from the call to open, each closed (handshake awaited) before the next. Client: Client.make + awaitOpen.",
  "Memory: per idle connection, heapUsed and RSS growth after gc in a fresh --expose-gc child per run, measured at each count cumulatively" +
  (settings.memoryLargeRuns < settings.memoryRuns && settings.memoryCounts.length > 1
    ? `; only ${settings.memoryLargeRuns} of the ${settings.memoryRuns} runs go on to ${
      settings.memoryCounts.slice(1).join(", ")
    } (time budget: 5,000 Clients take ~30 s to open).`
    : "."),
  "Herd: clients with defaults; server killed (SIGKILL) and listening again on the same port 1 s later; peak and first median from the times the server accepted each handshake, the last median from when each client reported itself open; ratio relative to partysocket. " +
  "partysocket 1.3.0's code waits a fixed 3 s (minReconnectionDelay 3000, no jitter) before its first reconnect, not the 1-5 s random its README states: its sockets come back in one burst. " +
  "'partysocket, jittered' draws that delay per socket (0.5 s + up to 3 s), a herd spread about as lifeline's is; the reconnect CPU rows 'against a herd of the same shape' compare lifeline with it.",
  "partysocket uses binaryType 'arraybuffer'; raw ws decodes text frames to strings like the others; lifeline log output is switched off.",
  "90 %: a bootstrap interval of the ratio (both sets of runs resampled 2,000 times, seeded): a rough guide to how far one run of the bench can place it (it treats runs as independent; two runs share each fork). At 64 KiB it is often 0.10-0.15 wide, so a ratio of 0.95 and one of 1.0 are not told apart by one run."
]

const main = async (): Promise<void> => {
  const contenders = await loadContenders()
  log(`lifeline bench${quick ? " --quick" : ""}: ${machine.cpus} cores (${machine.cpu}), Node ${machine.node}`)
  const server = await startEchoServer()
  log(`echo server on ${server.url}${only === undefined ? "" : `; only ${only.join(", ")}`}`)
  const rows: Array<Omit<Row, "ratio">> = []
  const errors: Array<string> = []
  const section = async (name: string, run: () => Promise<Array<Omit<Row, "ratio">>>): Promise<void> => {
    if (!wanted(name)) return
    log(`${name}...`)
    try {
      rows.push(...await run())
    } catch (error) {
      const message = `${name} failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`
      errors.push(message)
      log(message)
    }
  }
  let herdReports: unknown = undefined
  try {
    await section("throughput", () =>
      measureThroughput(server.url, contenders, {
        runs: settings.runs,
        largeFrameRuns: settings.largeFrameRuns,
        forks,
        targetMs: settings.throughputTargetMs,
        collectBeforeRuns,
        log
      }))
    await section(
      "burst",
      () => measureBurst(server.url, { runs: settings.burstRuns, count: settings.burstCount, sizes: [64, 1024], log })
    )
    await section("latency", () =>
      measureLatency(server.url, contenders, {
        runs: settings.runs,
        roundTrips: settings.roundTrips,
        spacing: 1,
        collectBeforeRuns,
        connects: settings.connects,
        log
      }))
    await section("memory", () =>
      measureMemory(server.url, contenders, {
        runs: settings.memoryRuns,
        counts: settings.memoryCounts,
        largeRuns: settings.memoryLargeRuns,
        log
      }))
  } finally {
    await server.stop()
  }
  await section("herd", async () => {
    const herd = await measureHerd({
      runs: settings.herdRuns,
      clients: settings.herdClients,
      waitMs: settings.herdWaitMs,
      log
    })
    herdReports = herd.reports
    return herd.rows
  })

  const table = withRatios(rows)
  const wallSeconds = (Date.now() - startedAt) / 1000
  process.stdout.write(
    `\nlifeline bench${quick ? " (quick)" : ""}: ${machine.cpus} cores, ${machine.cpu}, Node ${machine.node}, wall ${
      wallSeconds.toFixed(0)
    } s\n\n`
  )
  process.stdout.write(`${renderTable(table)}\n\n`)
  for (const note of NOTES) process.stdout.write(`- ${note}\n`)
  for (const error of errors) process.stdout.write(`! ${error}\n`)

  const directory = fileURLToPath(new URL("./results/", import.meta.url))
  mkdirSync(directory, { recursive: true })
  const file = `${directory}${new Date(startedAt).toISOString().replace(/[:.]/g, "-")}${quick ? "-quick" : ""}.json`
  writeFileSync(
    file,
    `${
      JSON.stringify(
        {
          quick,
          only,
          machine,
          settings: { ...settings, forks },
          wallSeconds,
          rows: table,
          herd: herdReports,
          notes: NOTES,
          errors
        },
        null,
        2
      )
    }\n`
  )
  const markdown = file.replace(/\.json$/, ".md")
  writeFileSync(markdown, `${renderMarkdown(table)}\n`)
  process.stdout.write(`\nresults: ${file} (the full table: ${markdown})\n`)
}

await main()
// Every socket is closed by now; exit at once rather than wait for stray timers (partysocket's).
process.exit(0)
