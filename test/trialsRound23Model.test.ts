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
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Fiber, Schedule, Stream } from "effect"
import { Client } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { fuzzParameters } from "./support/anyInput.js"
import type { Program } from "./support/clientModel.js"
import { describeProgram, program, runProgram, stats } from "./support/clientModel.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { catchStrays } from "./support/hostileCases.js"
import { quietNode } from "./support/node.js"

const REPLAY = process.env["LIFELINE_FUZZ_PROGRAM"]
const programs: fc.Arbitrary<Program> = REPLAY === undefined ? program : fc.constant(JSON.parse(REPLAY) as Program)

// What reached the process: nothing may.
const strays = catchStrays()
afterAll(() => {
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
        { ...fuzzParameters(25, 23), interruptAfterTimeLimit: 600_000, markInterruptAsFailure: true }
      )
    },
    600_000
  )
})

describe("round 23: the idioms under a flapping server, plainly", () => {
  it.live(
    "Stream.runForEach(ids, send) and Effect.forEach(ids, send, { concurrency: 4 }) while the server is killed and restarted: one outcome each, received and failed disjoint, none twice, FIFO for the stream, failed exact",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ handler: "ignore" })
        const client = yield* Client.make({
          url: server.url,
          retry: Schedule.spaced("5 millis").pipe(Schedule.intersect(Schedule.recurs(200))),
          minRetryDelay: "5 millis",
          heartbeat: false,
          outbox: { capacity: 4, overflow: "suspend" }
        })
        const failures: Array<string> = []
        const successes: Array<string> = []
        const interrupted: Array<string> = []
        const record = (id: string) =>
          client.send(id).pipe(
            Effect.tap(() => Effect.sync(() => successes.push(id))),
            Effect.catchTag("SendError", (error) =>
              Effect.sync(() => {
                // Its own payload, and a reason of a link that went down.
                expect([error.payload, error.reason]).toEqual([id, "WriteFailed"])
                failures.push(id)
              })),
            Effect.onInterrupt(() => Effect.sync(() => interrupted.push(id)))
          )
        // The server flaps: five kills, each restarted 20 ms later, while the ids go out.
        const flapping = yield* Effect.fork(Effect.repeat(
          Effect.sleep("15 millis").pipe(
            Effect.zipRight(server.kill),
            Effect.zipRight(Effect.sleep("20 millis")),
            Effect.zipRight(server.restart)
          ),
          Schedule.recurs(4)
        ))
        const streamed = Array.from({ length: 60 }, (_, index) => `s${index}`)
        const concurrent = Array.from({ length: 60 }, (_, index) => `c${index}`)
        yield* Effect.all([
          // Paced (3 ms apart) to span the flapping.
          Stream.runForEach(Stream.fromIterable(streamed).pipe(Stream.schedule(Schedule.spaced("3 millis"))), record),
          Effect.forEach(concurrent, (id) => Effect.zipRight(Effect.sleep("3 millis"), record(id)), {
            concurrency: 4,
            discard: true
          }),
          // A user who gives up after 5 ms: interrupted, never a defect.
          Effect.forEach(["r0", "r1", "r2"], (id) => Effect.race(record(id), Effect.sleep("5 millis")), {
            discard: true
          })
        ], { concurrency: "unbounded", discard: true })
        yield* Fiber.join(flapping)
        expect(yield* client.close()).toEqual([])
        const received = (yield* server.received).map(String)
        const all = [...streamed, ...concurrent, "r0", "r1", "r2"]
        // One outcome per send.
        expect([...successes, ...failures, ...interrupted].sort()).toEqual([...all].sort())
        // Nothing received twice, nothing invented, nothing reported failed.
        expect(new Set(received).size).toBe(received.length)
        expect(received.filter((id) => !all.includes(id))).toEqual([])
        expect(received.filter((id) => failures.includes(id))).toEqual([])
        // The stream's own order.
        const fromStream = received.filter((id) => id.startsWith("s"))
        expect(fromStream).toEqual([...fromStream].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))))
        // `failed`: the sends told WriteFailed, and the raced ones that were with the socket and then failed.
        const lateFailures = (yield* client.failed) - failures.length
        expect(lateFailures >= 0 && lateFailures <= interrupted.length).toBe(true)
      })).pipe(Effect.provide(quietNode))
  )
})
