// The main thread of round 17's trials: starts `worker_threads` Workers that run lifeline
// (test/support/workerClient.ts, as bundled by test/support/workerBundle.ts) and
// reports, as one JSON line, what reached this thread: each Worker's 'error' events and exit code,
// what the Worker posted (states, strays), this thread's own strays, and the handles left here.
//   node --import tsx test/support/workerParent.ts <bundle file | build> <scenario> <args...>
// Scenarios (a line "phase X" means: this thread waits for a line "go" on stdin before going on,
// so the test can look at its server first):
// - terminate <connecting|backlog|backoff|closing> <url>: `worker.terminate()` at that phase;
// - rounds <n> <seed> <url...>: n Workers, 5 at once, each to one of the urls, terminated at once,
//   or once it is ready, or after 1-3 states, and a random 0-20 ms later (a seeded draw);
// - exit <url>: "phase open", then `process.exit(3)` inside the Worker while its Client is Open;
// - idle <url>: a Client alone in the Worker; prints "open N" at each Open, reports once it exited;
// - crash <url>: the crash pattern inside the Worker (close while CONNECTING, 100 times);
// - bridge <url>: the Client's messages posted on a MessagePort; "phase open", "phase closed"
//   (this side's port closed after 5 frames), then waits until the Worker posted 10 frames;
// - compat <url>: a compat ReconnectingWebSocket; "phase connecting", then terminate;
// - fleet <workers> <clients> <url>: a feed per Worker: "phase open" once every Client is Open,
//   "phase back" once each is Open again (the test restarts the server), then all terminated.
// Each scenario ends with "phase end" once every Worker is gone (the servers' side looked at while
// this process still lives), then the report.
import { createInterface } from "node:readline"
import { MessageChannel, type Transferable, Worker } from "node:worker_threads"
import { buildWorkerBundle } from "./workerBundle.js"

const strays: Array<string> = []
process.on("uncaughtException", (error) => strays.push(`uncaughtException ${String(error)}`))
process.on("unhandledRejection", (error) => strays.push(`unhandledRejection ${String(error)}`))

const emit = (line: unknown) => process.stdout.write(`${typeof line === "string" ? line : JSON.stringify(line)}\n`)

const stdinLines: Array<string> = []
createInterface({ input: process.stdin }).on("line", (line) => stdinLines.push(line))

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` every 5 ms until it holds; throws after `within` ms with `what`. */
const until = async (check: () => boolean, what: string, within = 15_000) => {
  for (let poll = 0; poll < within / 5; poll++) {
    if (check()) return
    await sleep(5)
  }
  throw new Error(`never: ${what}`)
}

/** Prints "phase X" and waits for the test's "go". */
const phase = async (name: string) => {
  const before = stdinLines.length
  emit(`phase ${name}`)
  await until(() => stdinLines.length > before && stdinLines[before] === "go", `go after ${name}`)
}

const snapshot = () => {
  const counts: Record<string, number> = {}
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1
  return counts
}
const leftOver = (before: Record<string, number>) =>
  Object.entries(snapshot()).filter(([name, count]) => count > (before[name] ?? 0)).map(([name, count]) =>
    `${name} x${count - (before[name] ?? 0)}`
  )

const [bundleArgument, scenario, ...args] = process.argv.slice(2)
// The bundle the test built (test/support/workerBundle.ts), or "build": one of this process's own.
const own = bundleArgument === "build" ? await buildWorkerBundle() : undefined
const bundle = own?.file ?? bundleArgument!

interface Started {
  readonly worker: Worker
  readonly messages: Array<any>
  readonly errors: Array<string>
  readonly exited: Promise<number>
  readonly has: (predicate: (message: any) => boolean) => boolean
}

const start = (workerData: Record<string, unknown>, transferList: ReadonlyArray<Transferable> = []): Started => {
  const worker = new Worker(bundle, { workerData, transferList: [...transferList] })
  const messages: Array<any> = []
  const errors: Array<string> = []
  worker.on("message", (message) => messages.push(message))
  worker.on("error", (error) => errors.push(String(error)))
  const exited = new Promise<number>((resolve) => worker.on("exit", resolve))
  return { worker, messages, errors, exited, has: (predicate) => messages.some(predicate) }
}

const workerStrays = (started: Started) => started.messages.filter((m) => m.stray !== undefined).map((m) => m.stray)
const states = (started: Started) =>
  started.messages.filter((m) => m.state !== undefined).map((m) =>
    m.error === undefined ? m.state : `${m.state} ${m.error}`
  )

/** The handles of this thread once every Worker is gone (a few turns of grace). */
const handlesLeft = async (before: Record<string, number>) => {
  for (let turn = 0; turn < 50 && leftOver(before).length > 0; turn++) await new Promise((r) => setImmediate(r))
  return leftOver(before)
}

// The standard streams exist before the baseline: a plain `node` start makes stdout's pipe at the
// first write (tsx's loader had made it before this module ran).
void process.stdout.writable
void process.stderr.writable
const baseline = snapshot()
const report: Record<string, unknown> = { scenario }

try {
  if (scenario === "terminate") {
    const [at, url] = args
    const started = start({ mode: "client", url })
    const state = (tag: string) => started.has((m) => m.state === tag)
    if (at === "connecting") {
      await until(() => state("Connecting"), "Connecting")
      await phase("connecting")
    } else if (at === "backoff") {
      await until(() => state("Backoff"), "Backoff")
      await phase("backoff")
    } else if (at === "backlog") {
      await until(() => state("Open"), "Open")
      await phase("open")
      started.worker.postMessage("backlog")
      await until(() => started.has((m) => m.sent !== undefined), "the backlog")
      report.backlog = started.messages.find((m) => m.sent !== undefined)
      await phase("backlog")
    } else if (at === "closing") {
      await until(() => state("Open"), "Open")
      await phase("open")
      started.worker.postMessage("close")
      await until(() => started.has((m) => m.note === "closing"), "closing")
      await phase("closing")
    }
    report.terminated = await started.worker.terminate()
    report.exitCode = await started.exited
    report.errors = started.errors
    report.workerStrays = workerStrays(started)
    report.states = states(started)
    report.notes = started.messages.filter((m) => m.note !== undefined).map((m) => m.note)
  } else if (scenario === "rounds") {
    const [count, seedText, ...urls] = args
    let seed = Number(seedText)
    // mulberry32: a seeded draw, so a failing round can be run again.
    const random = () => {
      seed = (seed + 0x6D2B79F5) | 0
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
    const exitCodes: Record<string, number> = {}
    const errors: Array<string> = []
    const strayList: Array<string> = []
    const lastStates: Record<string, number> = {}
    const round = async (i: number) => {
      const url = urls[Math.floor(random() * urls.length)]!
      // 0: terminated at once (the Worker may not have started); 1: once its module ran; 2-4: once
      // it posted 1-3 states (a hung handshake posts one, Connecting, for 5 s: 300 ms at most).
      const after = Math.floor(random() * 5)
      const delay = Math.floor(random() * 21)
      const started = start({ mode: "client", url })
      if (after > 0) await until(() => started.has((m) => m.ready === true), "ready", 10_000)
      if (after > 1) await until(() => started.messages.length >= after, `message ${after}`, 300).catch(() => {})
      if (delay > 0) await sleep(delay)
      const ready = started.has((m) => m.ready === true)
      const last = states(started).at(-1) ?? (ready ? "ready" : "not ready")
      lastStates[last] = (lastStates[last] ?? 0) + 1
      await started.worker.terminate()
      const code = await started.exited
      const key = `${ready ? "ready" : "not ready"}, exit ${code}`
      exitCodes[key] = (exitCodes[key] ?? 0) + 1
      errors.push(...started.errors.map((error) => `round ${i}: ${error}`))
      strayList.push(...workerStrays(started).map((stray) => `round ${i}: ${stray}`))
    }
    let next = 0
    await Promise.all(Array.from({ length: 5 }, async () => {
      while (next < Number(count)) await round(next++)
    }))
    Object.assign(report, { exitCodes, errors, workerStrays: strayList, lastStates })
  } else if (scenario === "exit") {
    const started = start({ mode: "exitWhileOpen", url: args[0] })
    await until(() => states(started).includes("Open"), "Open")
    await phase("open")
    started.worker.postMessage("exit")
    report.exitCode = await started.exited
    Object.assign(report, { errors: started.errors, workerStrays: workerStrays(started), states: states(started) })
  } else if (scenario === "idle") {
    const started = start({ mode: "idle", url: args[0] })
    let opens = 0
    const watch = setInterval(() => {
      const now = states(started).filter((state) => state === "Open").length
      for (; opens < now; opens++) emit(`open ${opens + 1}`)
    }, 5)
    report.exitCode = await started.exited
    clearInterval(watch)
    report.done = started.messages.find((m) => m.done !== undefined)?.done
    Object.assign(report, { errors: started.errors, workerStrays: workerStrays(started), states: states(started) })
  } else if (scenario === "crash") {
    const started = start({ mode: "crashPattern", url: args[0] })
    report.exitCode = await started.exited
    report.done = started.messages.find((m) => m.done !== undefined)?.done
    Object.assign(report, { errors: started.errors, workerStrays: workerStrays(started) })
  } else if (scenario === "bridge") {
    const { port1, port2 } = new MessageChannel()
    let received = 0
    port1.on("message", () => received++)
    const started = start({ mode: "bridge", url: args[0], port: port2 }, [port2])
    await until(() => states(started).includes("Open"), "Open")
    await phase("open")
    await until(() => received === 5, "5 frames on the main side")
    port1.close()
    await phase("closed")
    const reportOf = async () => {
      const before = started.messages.length
      started.worker.postMessage("report")
      await until(() => started.messages.slice(before).some((m) => m.report !== undefined), "a report")
      return started.messages.slice(before).find((m) => m.report !== undefined).report
    }
    let last = await reportOf()
    for (let poll = 0; poll < 1000 && last.posted < 10; poll++) {
      await sleep(5)
      last = await reportOf()
    }
    report.afterClose = last
    report.received = received
    started.worker.postMessage("close")
    report.exitCode = await started.exited
    report.done = started.messages.find((m) => m.done !== undefined)?.done
    Object.assign(report, { errors: started.errors, workerStrays: workerStrays(started), states: states(started) })
  } else if (scenario === "fleet") {
    const [workers, count, url] = args
    const fleet = Array.from({ length: Number(workers) }, () => start({ mode: "fleet", url, count: Number(count) }))
    const opens = (times: number) => () =>
      fleet.every((started) =>
        Array.from({ length: Number(count) }, (_, i) => i).every((i) =>
          started.messages.filter((m) => m.open === i).length >= times
        )
      )
    await until(opens(1), "every Client Open")
    await phase("open")
    // The test kills and restarts the server: every Client Open a second time.
    await until(opens(2), "every Client Open again", 30_000)
    await phase("back")
    const codes = await Promise.all(fleet.map(async (started) => {
      await started.worker.terminate()
      return started.exited
    }))
    report.exitCodes = codes
    report.opens = fleet.map((started) => started.messages.filter((m) => m.open !== undefined).length)
    report.errors = fleet.flatMap((started) => started.errors)
    report.workerStrays = fleet.flatMap(workerStrays)
  } else if (scenario === "compat") {
    const started = start({ mode: "compat", url: args[0] })
    await until(() => started.has((m) => m.state === "readyState 0"), "readyState 0")
    await phase("connecting")
    report.terminated = await started.worker.terminate()
    report.exitCode = await started.exited
    Object.assign(report, { errors: started.errors, workerStrays: workerStrays(started), states: states(started) })
  } else {
    throw new Error(`no scenario ${scenario}`)
  }
} catch (error) {
  report.failure = String(error)
}
// Every Worker is gone: this process lives on while the test looks at what its servers saw.
emit(`progress ${JSON.stringify(report)}`)
await phase("end").catch(() => {})
own?.remove()
process.stdin.destroy()
report.handlesLeft = await handlesLeft(baseline)
report.strays = strays
emit(report)
