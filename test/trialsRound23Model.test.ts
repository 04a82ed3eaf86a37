/**
 * Round 23: a user's program at random. fast-check generates programs (test/support/clientModel.ts:
 * a Client's outbox and heartbeat, then up to 30 sends, enqueues, timeouts, races, forks and
 * interrupts, a Stream and a concurrent forEach of sends, server kills, restarts, stalls, closes
 * with retried and fatal codes, the Client's close) and plays each on real sockets against a
 * TestServer that records what every connection received. The Client's delivery promise is checked
 * after each (DESIGN.md, "Every send is accounted for"). docs/trials.md, "round 23, a user's
 * program at random", says what was found.
 *
 * Seeded: `LIFELINE_FUZZ_SEED` and `LIFELINE_FUZZ_RUNS` run other and more programs by hand, e.g.
 *   LIFELINE_FUZZ_RUNS=300 LIFELINE_FUZZ_SEED=$RANDOM npx vitest run test/trialsRound23Model.test.ts
 * and `LIFELINE_FUZZ_PROGRAM='<the program's JSON, as a failure prints it>'` replays one program.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import { fuzzParameters } from "./support/anyInput.js"
import type { Program } from "./support/clientModel.js"
import { describeProgram, program, runProgram, stats } from "./support/clientModel.js"

const REPLAY = process.env["LIFELINE_FUZZ_PROGRAM"]
const programs: fc.Arbitrary<Program> = REPLAY === undefined ? program : fc.constant(JSON.parse(REPLAY) as Program)

// What reached the process: nothing may.
const strays: Array<string> = []
const onStray = (error: unknown) => void strays.push(String(error))
beforeAll(() => {
  process.on("uncaughtException", onStray)
  process.on("unhandledRejection", onStray)
})
afterAll(() => {
  process.off("uncaughtException", onStray)
  process.off("unhandledRejection", onStray)
  if (process.env["LIFELINE_MODEL_STATS"] === "1") process.stderr.write(`${JSON.stringify(stats)}\n`)
})

describe("round 23: a user's program at random", () => {
  it(
    "every send and enqueue has one fitting outcome, the server gets no stranger, no duplicate, nothing reported failed, in FIFO order, every success before a graceful close, and failed is exact",
    async () => {
      await fc.assert(
        fc.asyncProperty(programs, async (generated) => {
          const before = strays.length
          const problems = [...await Effect.runPromise(runProgram(generated))]
          if (strays.length > before) problems.push(`reached the process: ${strays.slice(before).join("; ")}`)
          if (problems.length > 0) throw new Error(`${problems.join("\n")}\nprogram: ${describeProgram(generated)}`)
        }),
        { ...fuzzParameters(12, 23), interruptAfterTimeLimit: 600_000, markInterruptAsFailure: true }
      )
    },
    600_000
  )
})
