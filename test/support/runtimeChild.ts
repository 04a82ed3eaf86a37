/**
 * Scenarios run on Bun or Deno (test/support/runtimes.ts; test/runtimes.test.ts): argv is the
 * scenario's name and its input as JSON; it prints its result as a line of JSON and exits by
 * itself (or at once if the test's process goes: its stdin ends). The input's
 * `transport` picks the Node transport (over `ws`: Bun's own on Bun) or the browser one (over the
 * runtime's global `WebSocket`). Anything thrown past lifeline shows on stderr or in the exit code,
 * which the tests read.
 */
import { Cause, Chunk, Duration, Effect, Exit, Fiber, Option, Schedule, Stream } from "effect"
import * as Readline from "node:readline"
import * as BrowserTransport from "../../src/BrowserTransport.js"
import * as Client from "../../src/Client.js"
import * as Connection from "../../src/Connection.js"
import * as NodeTransport from "../../src/NodeTransport.js"
import type { Transport } from "../../src/Transport.js"

interface Input {
  readonly transport: "node" | "browser"
  readonly [key: string]: unknown
}

const [scenario = "", json = "{}"] = process.argv.slice(2)
const input = JSON.parse(json) as Input
const transport = input.transport === "browser" ? BrowserTransport.layer : NodeTransport.layer
const url = (key: string): string => input[key] as string

/** What a failure says: its tag and the fields the tests compare. */
const describe = (error: unknown) => {
  const e = error as Record<string, unknown>
  return {
    tag: e._tag,
    reason: e.reason,
    operation: e.operation,
    status: e.status,
    retryAfter: Duration.isDuration(e.retryAfter) ? Duration.toMillis(e.retryAfter) : undefined
  }
}

const failureOf = <A, E>(effect: Effect.Effect<A, E, Transport>) =>
  Effect.exit(effect).pipe(Effect.map((exit) =>
    Exit.isFailure(exit)
      ? Option.match(Cause.failureOption(exit.cause), {
        onNone: () => ({ tag: "defect", reason: Cause.pretty(exit.cause) }),
        onSome: describe
      })
      : { tag: "succeeded" }
  ))

/** Lines from the test on stdin, one at a time. */
const lines = Readline.createInterface({ input: process.stdin })
const waiting: Array<(line: string) => void> = []
const early: Array<string> = []
let finished = false
lines.on("close", () => {
  if (!finished) process.exit(2)
})
lines.on("line", (line) => {
  const next = waiting.shift()
  if (next === undefined) early.push(line)
  else next(line)
})
const nextLine = Effect.async<string>((resume) => {
  const line = early.shift()
  if (line !== undefined) return resume(Effect.succeed(line))
  waiting.push((line) => resume(Effect.succeed(line)))
})

const scenarios: Record<string, Effect.Effect<unknown, unknown, Transport>> = {
  /** Echo of a text and a binary frame; the typed errors of a refused port, a 503 and a hung upgrade. */
  basics: Effect.gen(function*() {
    const echoed = yield* Effect.scoped(Effect.gen(function*() {
      const connection = yield* Connection.connect(url("echo"))
      yield* connection.send("hello")
      yield* connection.send(new Uint8Array([1, 2, 3]))
      const got = yield* connection.messages.pipe(Stream.take(2), Stream.runCollect)
      const disconnected = yield* connection.close(4000, "bye")
      return {
        messages: Chunk.toReadonlyArray(got).map((message) =>
          typeof message === "string" ? message : { binary: Array.from(message) }
        ),
        close: { code: disconnected.code, reason: disconnected.reason, initiator: disconnected.initiator }
      }
    }))
    return {
      echoed,
      refused: yield* failureOf(Effect.scoped(Connection.connect(url("refused")))),
      rejected: yield* failureOf(Effect.scoped(Connection.connect(url("rejected")))),
      hung: yield* failureOf(Effect.scoped(Connection.connect(url("hung"), { openTimeout: "300 millis" })))
    }
  }),
  /**
   * The incident lifeline exists for: connects given up 0 to 5 ms after they start, against a server
   * that never answers the upgrade and against one that does, `count` of each.
   */
  abandoned: Effect.gen(function*() {
    const count = input.count as number
    const outcomes: Record<string, number> = {}
    for (const target of ["hung", "echo"]) {
      for (let i = 0; i < count; i++) {
        const fiber = yield* Effect.fork(Effect.scoped(Connection.connect(url(target))))
        yield* Effect.sleep(i % 6)
        const exit = yield* Fiber.interrupt(fiber)
        const key = `${target} ${Exit.isSuccess(exit) ? "opened" : Exit.isInterrupted(exit) ? "interrupted" : "failed"}`
        outcomes[key] = (outcomes[key] ?? 0) + 1
      }
    }
    // ws reports an abandoned handshake on a later tick: give it some.
    yield* Effect.sleep(300)
    return outcomes
  }),
  /**
   * A connection closed against a peer that never answers the close (`closeTimeout` 300 ms): how
   * it ended. The test times how long the process takes to exit after.
   */
  unanswered: Effect.scoped(Effect.gen(function*() {
    const connection = yield* Connection.connect(url("url"), { closeTimeout: "300 millis" })
    const { code, initiator, wasClean } = yield* connection.close()
    console.log("closed")
    return { code, initiator, wasClean }
  })),
  /**
   * A slow link (the test throttles it once `throttle` is printed): `count` frames of 64 KiB sent at
   * once behind a heartbeat of 500 ms / 1 s. Each send's outcome, and whether the link went down.
   */
  slowLink: Effect.scoped(Effect.gen(function*() {
    const client = yield* Client.make({
      url: url("url"),
      heartbeat: { interval: "500 millis", timeout: "1 second" },
      connection: { perMessageDeflate: false }
    })
    yield* client.awaitOpen
    const left = yield* Effect.fork(
      client.state.changes.pipe(Stream.filter((state) => state._tag !== "Open"), Stream.runHead)
    )
    console.log("throttle")
    yield* nextLine
    const frame = new Uint8Array(64 * 1024)
    const outcomes = yield* Effect.forEach(
      Array.from({ length: input.count as number }),
      () => Effect.either(client.send(frame)),
      { concurrency: "unbounded" }
    )
    const down = yield* Fiber.interrupt(left)
    return {
      written: outcomes.filter((outcome) => outcome._tag === "Right").length,
      down: Exit.isSuccess(down) ? Option.getOrNull(Option.map(down.value, (state) => state._tag)) : null
    }
  })),
  /**
   * A burst as users write it: `count` numbered 1 KiB frames through `Stream.run(client.sink)` to
   * an echo server, every echo read back by `messages`: how many came back, and in order.
   */
  sinkBurst: Effect.scoped(Effect.gen(function*() {
    const count = input.count as number
    const client = yield* Client.make({ url: url("url") })
    yield* client.awaitOpen
    const echoes = yield* Effect.fork(client.messages.pipe(Stream.take(count), Stream.runCollect))
    yield* Stream.range(1, count).pipe(
      Stream.map((n) => `${n}:${"y".repeat(1024)}`),
      Stream.run(client.sink)
    )
    const got = Chunk.toReadonlyArray(yield* Fiber.join(echoes))
    return {
      echoed: got.length,
      inOrder: got.every((message, i) => typeof message === "string" && message.startsWith(`${i + 1}:`)),
      failed: yield* client.failed
    }
  })),
  /**
   * A sink burst into a peer the test freezes (SIGSTOP) once `freeze` is printed, behind a heartbeat
   * of 300 ms / 600 ms: how the link went down (within 10 s), and the Client closed after.
   */
  frozenSink: Effect.scoped(Effect.gen(function*() {
    const client = yield* Client.make({
      url: url("url"),
      heartbeat: { interval: "300 millis", timeout: "600 millis" },
      retry: Schedule.spaced("1 hour")
    })
    yield* client.awaitOpen
    const burst = yield* Effect.fork(
      Stream.range(1, 20_000).pipe(Stream.map((n) => `${n}:${"y".repeat(1024)}`), Stream.run(client.sink))
    )
    console.log("freeze")
    yield* nextLine
    const down = yield* client.state.changes.pipe(
      Stream.filter((state) => state._tag === "Backoff"),
      Stream.runHead,
      Effect.timeout("10 seconds"),
      Effect.option
    )
    yield* client.close()
    yield* Fiber.interrupt(burst)
    const error = Option.flatten(down).pipe(
      Option.map((state) => (state._tag === "Backoff" ? describe(state.error) : undefined))
    )
    return { down: Option.getOrNull(error) }
  })),
  /** A connection whose server the test kills (`kill` on stdout): how it ended. */
  dropped: Effect.scoped(Effect.gen(function*() {
    const connection = yield* Connection.connect(url("url"))
    console.log("kill")
    const { code, initiator, wasClean } = yield* connection.closed
    return { code, initiator, wasClean }
  })),
  /**
   * A Client through a server killed and restarted by the test: `first` messages sent, `kill` on
   * stdout; once the test answers and the Client has seen the link go, `second` more queued while
   * the server is down (what is written before the Client sees it go is in the dead link's kernel:
   * the guide's "Written"); then `end`.
   */
  restart: Effect.gen(function*() {
    const client = yield* Client.make({ url: url("url"), retry: Schedule.spaced("50 millis") })
    yield* client.awaitOpen
    const first = input.first as number
    const second = input.second as number
    for (let i = 1; i <= first; i++) yield* client.send(String(i))
    console.log("kill")
    yield* nextLine
    const down = yield* client.state.changes.pipe(Stream.filter((state) => state._tag !== "Open"), Stream.runHead)
    const queued = yield* Effect.forEach(
      Array.from({ length: second }, (_, i) => String(first + 1 + i)),
      (message) => Effect.fork(client.send(message))
    )
    yield* Effect.forEach(queued, Fiber.join, { discard: true })
    yield* client.send("end")
    return {
      down: Option.getOrNull(Option.map(down, (state) => state._tag)),
      failed: yield* client.failed,
      outboxSize: yield* client.outboxSize
    }
  }).pipe(Effect.scoped)
}

const program = (scenarios[scenario] ?? Effect.dieMessage(`no scenario ${scenario}`)).pipe(
  Effect.tap((result) => Effect.sync(() => console.log(JSON.stringify(result)))),
  Effect.provide(transport)
)

Effect.runPromiseExit(program).then((exit) => {
  finished = true
  lines.close()
  if (Exit.isFailure(exit)) {
    console.error(Cause.pretty(exit.cause))
    process.exitCode = 1
  }
})
