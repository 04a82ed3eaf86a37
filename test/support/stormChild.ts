// Many Clients to one server that restarts:
//   node --import tsx test/support/stormChild.ts <url> <count> <cycles> [minUptime ms]
// Makes `count` Clients (default options, but `minUptime` when given) and prints "open 0" once
// all are Open (and, with `minUptime`, have been for that long plus 50 ms, so that each outage
// starts a new backoff series). Then, for each
// cycle k: prints "down k" once all have left Open (the test kills the server), waits for the line
// "restarted k" on stdin (the test restarted it), and prints "open k" once all are Open again.
// Then closes them and prints one JSON line: per cycle, the first backoff delays and when each
// Client was Open again after the restart (ms, sorted), the errors that ended attempts or links
// (by tag and reason or code), and the process's warnings and strays.
import { Duration, Effect, Stream } from "effect"
import { createInterface } from "node:readline"
import { Client } from "../../src/index.js"
import { describeError, emit, quiet, strays, until, warnings } from "./opsChild.js"

const [url, countText, cyclesText, minUptimeText] = process.argv.slice(2)
const count = Number(countText)
const cycles = Number(cyclesText)
const minUptime = minUptimeText === undefined ? undefined : Number(minUptimeText)
/** Up for longer than `minUptime`: the next outage starts a new backoff series. */
const stable = minUptime === undefined
  ? Effect.void
  : Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, minUptime + 50)))

const restarted: Array<number> = []
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.startsWith("restarted ")) restarted[Number(line.slice("restarted ".length))] = performance.now()
})

interface Cycle {
  readonly firstDelays: Array<number>
  readonly reopened: Array<number>
}

const program = Effect.gen(function*() {
  const open = new Array<boolean>(count).fill(false)
  const errors: Record<string, number> = {}
  const perCycle: Array<Cycle> = Array.from({ length: cycles + 1 }, () => ({ firstDelays: [], reopened: [] }))
  let cycle = 0
  // The cycle of each Client's last Backoff: its first in a cycle is the one the kill caused.
  const sawBackoff = new Array<number>(count).fill(0)
  for (let i = 0; i < count; i++) {
    const client = yield* Client.make({ url: url!, ...(minUptime === undefined ? {} : { minUptime }) })
    yield* Effect.forkDaemon(Stream.runForEach(client.state.changes, (state) =>
      Effect.sync(() => {
        open[i] = state._tag === "Open"
        if (state._tag === "Open" && cycle > 0) perCycle[cycle]!.reopened.push(performance.now() - restarted[cycle]!)
        if (state._tag !== "Backoff") return
        const key = describeError(state.error)
        errors[key] = (errors[key] ?? 0) + 1
        if (sawBackoff[i] !== cycle) {
          sawBackoff[i] = cycle
          perCycle[cycle]!.firstDelays.push(Duration.toMillis(state.delay))
        }
      })))
  }
  const allOpen = () => open.every(Boolean)
  yield* until(allOpen, "all Open")
  yield* stable
  // Set before each "open" line, after which the test kills the server.
  cycle = 1
  emit("open 0")
  for (let k = 1; k <= cycles; k++) {
    yield* until(() => open.every((isOpen) => !isOpen), `all down in cycle ${k}`)
    emit(`down ${k}`)
    yield* until(() => restarted[k] !== undefined, `restarted ${k}`)
    yield* until(allOpen, `all Open again in cycle ${k}`)
    yield* stable
    cycle = k + 1
    emit(`open ${k}`)
  }
  const round = (values: Array<number>) => values.map(Math.round).sort((a, b) => a - b)
  return {
    cycles: perCycle.slice(1).map(({ firstDelays, reopened }) => ({
      firstDelays: round(firstDelays),
      reopened: round(reopened)
    })),
    errors
  }
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(quiet))).then(
  (report) => {
    emit({ ...report, strays, warnings })
    process.exit(0)
  },
  (error: unknown) => {
    emit({ error: String(error) })
    process.exit(1)
  }
)
