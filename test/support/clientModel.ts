/**
 * Round 23: a user's program at random. A generated `Program` is a Client's options (outbox
 * capacity and overflow, heartbeat on or off, small or large payloads) and a list of what a user
 * and a flapping server do (sends awaited, forked, timed out, raced; enqueues; a Stream and a
 * concurrent forEach of sends; server kills, restarts, stalls, closes with codes; the Client's own
 * close). `runProgram` plays it on real sockets (a `TestServer` on 127.0.0.1 that records what
 * each connection received) and returns the problems found against the Client's delivery promise
 * (DESIGN.md, "Every send is accounted for"): one outcome per send, typed, fitting, with its own
 * payload; nothing on the server that was not sent, nothing twice, nothing that was reported failed;
 * FIFO in what the Client writes; what succeeded on a link that stayed up is received; `failed`
 * exact; no defect, no stray error, no undocumented log line, no socket left.
 * Programs are plain data, so fast-check prints a shrunk one readably.
 */
import {
  Cause,
  Duration,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  LogLevel,
  Option,
  Schedule,
  Stream
} from "effect"
import { Client, NodeTransport } from "../../src/index.js"
import type { ClientError } from "../../src/index.js"
import { TestServer } from "../../src/testing/index.js"
import { withNoHandlesLeft } from "./handles.js"
import { captureLogs, undocumentedLines } from "./logs.js"

// ---------------------------------------------------------------------------------------------
// The program

export type Op =
  /** `send`, awaited on the program's fiber */
  | { readonly kind: "send" }
  /** `send` on a fiber of its own, awaited at the end (or interrupted by `interrupt`) */
  | { readonly kind: "fork" }
  /** `send` under `Effect.timeout(ms)`: the user gives up */
  | { readonly kind: "timeout"; readonly ms: number }
  /** `Effect.race(send, Effect.sleep(ms))` */
  | { readonly kind: "race"; readonly ms: number }
  | { readonly kind: "enqueue" }
  /** interrupts the oldest forked send still pending */
  | { readonly kind: "interrupt" }
  /** `Stream.runForEach(Stream.fromIterable(ids), client.send)` */
  | { readonly kind: "stream"; readonly count: number }
  /** `Stream.run(Stream.fromIterable(ids), client.sink)` */
  | { readonly kind: "sink"; readonly count: number }
  /** `Effect.forEach(ids, client.send, { concurrency: 4 })` */
  | { readonly kind: "forEach"; readonly count: number }
  /** the server drops every connection (no close frame) and stops listening */
  | { readonly kind: "kill" }
  | { readonly kind: "restart" }
  /** the server stops reading for `ms` */
  | { readonly kind: "stall"; readonly ms: number }
  /** the server leaves the upgrade requests unanswered for `ms` (each attempt then times out) */
  | { readonly kind: "hang"; readonly ms: number }
  /** the next upgrade is answered `status` (503 is retried, 401 is not) */
  | { readonly kind: "reject"; readonly status: number }
  /** the server sends a close frame with `code` to every connection */
  | { readonly kind: "serverClose"; readonly code: number }
  | { readonly kind: "wait"; readonly ms: number }
  /** the Client's `reconnect` (restarts a Client closed by an error; nothing after `close`) */
  | { readonly kind: "reconnect" }
  /** the Client's `close`, with or without a code */
  | { readonly kind: "close"; readonly code?: number | undefined }

export interface Program {
  readonly capacity: number
  readonly overflow: "fail" | "dropOldest" | "suspend"
  readonly heartbeat: boolean
  /** Bytes of padding after each id: 0, or enough that a stalled server fills the socket's buffers. */
  readonly padding: number
  readonly ops: ReadonlyArray<Op>
  /** After the ops: the Client's `close()` (its payloads checked), or only its scope's close. */
  readonly end: "close" | "scope"
}

/** Close codes a server sends: retried ones, and the fatal 1002 and 1008 (not retried by default). */
export const FATAL_CODES: ReadonlySet<number> = new Set([1002, 1008])

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ kind: "send" as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: "fork" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("timeout" as const), ms: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("race" as const), ms: fc.integer({ min: 0, max: 20 }) }) },
  { weight: 4, arbitrary: fc.constant({ kind: "enqueue" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "interrupt" as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("stream" as const), count: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("sink" as const), count: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("forEach" as const), count: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: "kill" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "restart" as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("stall" as const),
      ms: fc.oneof(fc.integer({ min: 5, max: 60 }), fc.integer({ min: 300, max: 500 }))
    })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("serverClose" as const),
      code: fc.constantFrom(1000, 1001, 1011, 1012, 4000, 1000, 1001, 1011, 1012, 4000, 1008, 1002)
    })
  },
  { weight: 1, arbitrary: fc.constant({ kind: "reconnect" as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("hang" as const), ms: fc.integer({ min: 10, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reject" as const), status: fc.constantFrom(503, 503, 401) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 30 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("close" as const),
      code: fc.option(fc.constantFrom(1000, 1001, 4000, 4999), { nil: undefined })
    }, { requiredKeys: ["kind"] })
  }
)

export const program: fc.Arbitrary<Program> = fc.record({
  capacity: fc.integer({ min: 1, max: 8 }),
  overflow: fc.constantFrom("fail" as const, "dropOldest" as const, "suspend" as const),
  heartbeat: fc.boolean(),
  padding: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(200_000) }),
  ops: fc.array(op, { minLength: 1, maxLength: 30 }),
  end: fc.constantFrom("close" as const, "scope" as const)
})

export const describeProgram = (program: Program): string => JSON.stringify(program)

// ---------------------------------------------------------------------------------------------
// Running it

/** The lanes a message is sent from: `main` is the program's own fiber (one sequence, FIFO applies). */
type Lane = "main" | "fork" | "timeout" | "race" | "forEach"

type Outcome =
  | { readonly kind: "ok" }
  | { readonly kind: "interrupted" }
  | { readonly kind: "error"; readonly tag: string; readonly reason: string; readonly samePayload: boolean }
  | { readonly kind: "defect"; readonly text: string }

interface Call {
  readonly id: string
  readonly via: "send" | "enqueue"
  readonly lane: Lane
  /** The Client was Closed (or closing) when it was called: a refusal, not an accepted message. */
  readonly stoppedAtCall: boolean
  readonly calledAt: number
  /** `outboxSize` when it was called (read in the same step as the call's own check). */
  readonly pendingAtCall: number
  /** The server was killed and not restarted when it was called: `restarts` then, -1 when it was up. */
  readonly downSince: number
  outcome: Outcome | undefined
  /** `restarts` when it ended, -1 if the server was up. */
  downUntil: number
  doneAt: number
}

/** What the runs did, summed (LIFELINE_MODEL_STATS=1 prints it): the checks were not vacuous. */
export const stats: { [key: string]: number } = {}
const count = (key: string, by = 1) => void (stats[key] = (stats[key] ?? 0) + by)

/** A moment of the run, in the order things happened (a counter, not a clock). */
let ticks = 0
const tick = (): number => ++ticks

/** A hang guard for one op (a case that passes never waits it out). */
const OP_BOUND = Duration.seconds(5)
const CLOSE_TIMEOUT = Duration.seconds(1)
/** Short, so a handshake left unanswered is retried soon (a loaded machine's slow one is retried too). */
const OPEN_TIMEOUT = Duration.millis(400)

const idOf = (message: unknown): string =>
  typeof message === "string" ? message.split(":")[0]! : `<binary ${String((message as Uint8Array).length)}>`

/**
 * Plays `program` and returns what is wrong (nothing when lifeline kept its promise). `strays`:
 * the process's uncaught exceptions and unhandled rejections so far (the caller's listener).
 */
export const runProgram = (program: Program): Effect.Effect<ReadonlyArray<string>> => {
  const problems: Array<string> = []
  const logs = captureLogs(LogLevel.Info)
  const records: Array<Call> = []
  const events: Array<{ readonly event: Client.ClientEvent; readonly at: number }> = []
  /** Ticks at which the link went down by the server's doing or was seen going down (events). */
  const disruptions: Array<number> = []
  let closeStartedAt = Number.POSITIVE_INFINITY
  let closeReturned: ReadonlyArray<string> | undefined
  let closeReturnedAt = Number.POSITIVE_INFINITY
  let closeCode: number | undefined
  let closingPeer: TestServer.Peer | undefined
  const serverClosed = new Set<number>()
  let closeSlow = false
  let next = 0
  const peers: Array<TestServer.Peer> = []

  const body = Effect.gen(function*() {
    const server = yield* TestServer.make({ handler: "ignore", onConnect: (peer) => void peers.push(peer) })
    const forks: Array<{ readonly fiber: Fiber.RuntimeFiber<void, unknown>; readonly record: () => Call | undefined }> =
      []
    let stalled = false
    /** Killed and not restarted since; how many restarts after a kill so far. */
    let down = false
    let restarts = 0

    const clientScope = Effect.scoped(Effect.gen(function*() {
      const client = yield* Client.make({
        url: server.url,
        retry: Schedule.spaced("5 millis").pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(60))),
        minRetryDelay: "5 millis",
        heartbeat: program.heartbeat ? { interval: "100 millis", timeout: "200 millis" } : false,
        connection: { openTimeout: OPEN_TIMEOUT, closeTimeout: CLOSE_TIMEOUT },
        outbox: { capacity: program.capacity, overflow: program.overflow },
        eventsCapacity: 4096
      })
      // A daemon: it reads to the end of `events`, after the scope's close.
      const reader = yield* Effect.forkDaemon(Stream.runForEach(client.events, (event) =>
        Effect.sync(() => {
          const at = tick()
          events.push({ event, at })
          if (event._tag === "Transition" && event.from._tag === "Open" && event.to._tag !== "Open") {
            disruptions.push(at)
          }
        })))
      const stopped = () => Effect.runSync(client.state.get)._tag === "Closed"
      const payloadOf = (id: string) => program.padding === 0 ? id : `${id}:${"x".repeat(program.padding)}`

      /** A call's record as it is made: the Client's state at that moment; its outcome comes later. */
      const callRecord = (id: string, via: Call["via"], lane: Lane): Call => ({
        id,
        via,
        lane,
        stoppedAtCall: stopped(),
        pendingAtCall: Effect.runSync(client.outboxSize),
        calledAt: tick(),
        downSince: down ? restarts : -1,
        outcome: undefined,
        doneAt: 0,
        downUntil: -1
      })

      /** One call, recorded: the state when it was called, and its outcome. */
      const tracked = (via: "send" | "enqueue", lane: Lane, onRecord?: (record: Call) => void) => {
        const id = `m${next++}`
        const payload = payloadOf(id)
        // No yield between reading the state and the call's own check (the same synchronous step).
        return Effect.withMaxOpsBeforeYield(
          Effect.suspend(() => {
            const record = callRecord(id, via, lane)
            records.push(record)
            onRecord?.(record)
            return (via === "send" ? client.send(payload) : client.enqueue(payload)).pipe(
              Effect.onExit((exit) =>
                Effect.sync(() => {
                  record.doneAt = tick()
                  record.downUntil = down ? restarts : -1
                  record.outcome = outcomeOf(exit, payload)
                })
              )
            )
          }),
          1_000_000_000
        )
      }

      const bounded = <A, E>(what: string, effect: Effect.Effect<A, E>) =>
        effect.pipe(
          Effect.exit,
          Effect.timeoutOption(OP_BOUND),
          Effect.map((done) => {
            if (Option.isNone(done)) problems.push(`${what} did not end within ${Duration.format(OP_BOUND)}`)
          })
        )

      const closeClient = (code: number | undefined) =>
        Effect.gen(function*() {
          // The first close is the one that ends the Client; a later one returns nothing.
          const first = closeStartedAt === Number.POSITIVE_INFINITY
          if (first) {
            // The link the close ends: open, and not one the server is closing.
            const open: Array<TestServer.Peer> = []
            for (const peer of peers) if ((yield* peer.isOpen) && !serverClosed.has(peer.id)) open.push(peer)
            closingPeer = (yield* client.state.get)._tag === "Open" && !stalled && open.length === 1
              ? open[0]
              : undefined
            closeStartedAt = tick()
            closeCode = code
          }
          const started = Date.now()
          const returned = yield* client.close(code).pipe(Effect.timeoutOption(OP_BOUND))
          if (Option.isNone(returned)) return void problems.push("close did not return")
          if (!first) {
            if (returned.value.length > 0) problems.push(`a second close returned ${returned.value.length} payload(s)`)
            return
          }
          closeSlow = Date.now() - started >= Duration.toMillis(CLOSE_TIMEOUT) - 50
          closeReturned = returned.value.map(idOf)
          closeReturnedAt = tick()
          // Everything pending was failed by the close: the forked sends end at once.
          for (const { fiber } of forks) {
            const ended = yield* Fiber.await(fiber).pipe(Effect.timeoutOption("1 second"))
            if (Option.isNone(ended)) problems.push("a forked send still pending after close returned")
          }
        })

      for (const step of program.ops) {
        switch (step.kind) {
          case "send":
            yield* bounded("send", tracked("send", "main"))
            break
          case "enqueue":
            yield* bounded("enqueue", tracked("enqueue", "main"))
            break
          case "timeout":
            yield* bounded("send with timeout", tracked("send", "timeout").pipe(Effect.timeout(step.ms)))
            break
          case "race":
            yield* bounded("send in a race", Effect.race(tracked("send", "race"), Effect.sleep(step.ms)))
            break
          case "fork": {
            let record: Call | undefined
            const fiber = yield* Effect.fork(tracked("send", "fork", (made) => void (record = made)))
            forks.push({ fiber, record: () => record })
            // Started (called, and waiting or done) before the next op: its call is ordered.
            for (let turn = 0; turn < 200 && record === undefined; turn++) yield* Effect.yieldNow()
            if (record === undefined) problems.push("a forked send never started")
            break
          }
          case "interrupt": {
            const pending = forks.find(({ fiber }) => fiber.unsafePoll() === null)
            if (pending !== undefined) yield* bounded("interrupting a forked send", Fiber.interrupt(pending.fiber))
            break
          }
          case "stream": {
            yield* bounded(
              "Stream.runForEach",
              Stream.runForEach(Stream.range(1, step.count), () => tracked("send", "main"))
            )
            break
          }
          case "sink": {
            // The sink's outcome is the last frame's it took: the frames before it were buffered.
            const taken: Array<Call> = []
            const ids = Stream.range(1, step.count, 1).pipe(Stream.map(() => {
              const id = `m${next++}`
              taken.push(callRecord(id, "enqueue", "main"))
              return payloadOf(id)
            }))
            // No yield between a frame's map (its state read) and the sink's call for it.
            const exit = yield* Stream.run(ids, client.sink).pipe(
              Effect.withMaxOpsBeforeYield(1_000_000_000),
              Effect.exit,
              Effect.timeoutOption(OP_BOUND)
            )
            if (Option.isNone(exit)) problems.push("Stream.run(client.sink) did not end")
            else {
              const doneAt = tick()
              taken.forEach((call, index) => {
                call.doneAt = doneAt
                call.outcome = index === taken.length - 1
                  ? outcomeOf(exit.value, payloadOf(call.id))
                  : { kind: "ok" }
              })
            }
            records.push(...taken)
            break
          }
          case "forEach":
            yield* bounded(
              "Effect.forEach",
              Effect.forEach(Array.from({ length: step.count }), () => tracked("send", "forEach"), {
                concurrency: 4,
                discard: true
              })
            )
            break
          case "kill":
            disruptions.push(tick())
            down = true
            yield* bounded("kill", server.kill)
            break
          case "restart":
            if (down) restarts++
            down = false
            yield* bounded("restart", server.restart)
            break
          case "stall":
            disruptions.push(tick())
            stalled = true
            yield* server.pauseReading
            yield* Effect.sleep(step.ms)
            yield* server.resumeReading
            stalled = false
            break
          case "serverClose": {
            // The Client's one link, open and not closing already (a `reconnect` or an earlier
            // close under way: that close frame would be the one that counts).
            const live: Array<TestServer.Peer> = []
            for (const peer of peers) if ((yield* peer.isOpen)) live.push(peer)
            const newest = Math.max(0, ...peers.map((peer) => peer.id))
            const open = (yield* client.state.get)._tag === "Open" && live.length === 1 && live[0]!.id === newest &&
              !serverClosed.has(newest)
            for (const peer of peers) serverClosed.add(peer.id)
            disruptions.push(tick())
            yield* bounded("closeAll", server.closeAll(step.code))
            if (FATAL_CODES.has(step.code) && open) {
              // Not retried: the Client ends Closed with that code, typed.
              const closed = yield* client.state.changes.pipe(
                Stream.filter((state) => state._tag === "Closed" || state._tag === "Backoff"),
                Stream.runHead,
                Effect.timeoutOption("3 seconds")
              )
              const state = Option.flatten(closed)
              if (Option.isNone(state)) problems.push(`no Closed after the server's ${step.code}`)
              else if (
                // The heartbeat found the link dead first (a stall as long as interval + timeout):
                // the code went to a connection the Client was dropping already (shown Open till then).
                state.value._tag === "Backoff" && program.heartbeat && state.value.error._tag === "TimeoutError" &&
                state.value.error.operation === "heartbeat"
              ) count("fatal code after the heartbeat's timeout")
              else if (state.value._tag === "Closed" && Option.isSome(state.value.error)) {
                const error: ClientError = state.value.error.value
                const wrong = error._tag !== "Disconnected" || error.code !== step.code ||
                  error.initiator !== "server"
                if (wrong) problems.push(`Closed after the server's ${step.code} by ${JSON.stringify(error)}`)
              } else if (closeStartedAt === Number.POSITIVE_INFINITY) {
                problems.push(
                  `after the server's fatal ${step.code}: ${state.value._tag} (${
                    JSON.stringify("error" in state.value ? state.value.error : undefined)
                  }), not Closed with it`
                )
              }
            }
            break
          }
          case "wait":
            yield* Effect.sleep(step.ms)
            break
          case "hang":
            yield* server.hangHandshake
            yield* Effect.sleep(step.ms)
            yield* server.behave
            break
          case "reject":
            yield* server.rejectNext(step.status)
            break
          case "reconnect":
            // It returns before the link it drops has gone (the state still shows that Open).
            for (const peer of peers) serverClosed.add(peer.id)
            yield* bounded("reconnect", client.reconnect)
            break
          case "close":
            yield* closeClient(step.code)
            break
        }
        // The bound holds after every step: what is accepted and not written, queued or with the socket.
        const size = yield* client.outboxSize
        if (size > program.capacity) {
          problems.push(`outboxSize ${size} over capacity ${program.capacity} after ${step.kind}`)
        }
      }
      if (program.end === "close") yield* closeClient(undefined)
      else if (closeStartedAt === Number.POSITIVE_INFINITY) {
        // The scope's close (1000) is the Client's close.
        const open: Array<TestServer.Peer> = []
        for (const peer of peers) if ((yield* peer.isOpen) && !serverClosed.has(peer.id)) open.push(peer)
        closingPeer = (yield* client.state.get)._tag === "Open" && open.length === 1 ? open[0] : undefined
        closeStartedAt = tick()
      }
      return { reader, client }
    }))

    const scoped = yield* clientScope.pipe(Effect.exit, Effect.timeoutOption("10 seconds"))
    if (Option.isNone(scoped)) return void problems.push("the Client's scope did not close")
    if (Exit.isFailure(scoped.value)) return void problems.push(`the scope failed: ${Cause.pretty(scoped.value.cause)}`)
    const { client, reader } = scoped.value.value
    if (Option.isNone(yield* Fiber.await(reader).pipe(Effect.timeoutOption("2 seconds")))) {
      problems.push("events did not end after the scope closed")
    }
    // Every call ended (the scope's close fails what is pending).
    for (const { fiber } of forks) {
      if (Option.isNone(yield* Fiber.await(fiber).pipe(Effect.timeoutOption("1 second")))) {
        problems.push("a forked send still pending after the scope closed")
      }
    }
    yield* server.resumeReading
    // No socket left open on the server.
    const left = yield* server.awaitConnections(0, "3 seconds").pipe(Effect.exit)
    if (Exit.isFailure(left)) problems.push(`${yield* server.connections} server connection(s) left after the scope`)
    const logsByPeer: Array<ReadonlyArray<string>> = []
    for (const peer of [...peers].sort((a, b) => a.id - b.id)) logsByPeer.push((yield* peer.received).map(idOf))
    const lastClose = closingPeer === undefined ? undefined : yield* closingPeer.awaitClosed("1 second").pipe(
      Effect.option
    )
    const arrived = (yield* server.received).map(idOf)
    return { logsByPeer, arrived, lastClose, failed: yield* client.failed }
  })

  return withNoHandlesLeft(body).pipe(
    Effect.exit,
    Effect.provide(Layer.merge(NodeTransport.layer, logs.layer)),
    Effect.map((exit) => {
      if (Exit.isFailure(exit)) {
        problems.push(`the run failed: ${Cause.pretty(exit.cause)}`)
        return problems
      }
      if (exit.value === undefined) return problems
      check(program, exit.value)
      return problems
    }),
    Effect.flatMap((found) =>
      Effect.map(
        Effect.sync(() => found),
        (list) => {
          list.push(...undocumentedLines(logs.lines))
          return list
        }
      )
    )
  )

  function check(
    program: Program,
    seen: {
      readonly logsByPeer: ReadonlyArray<ReadonlyArray<string>>
      /** Everything the server read, in the order it read it, across connections. */
      readonly arrived: ReadonlyArray<string>
      readonly lastClose: Option.Option<{ readonly code: number; readonly reason: string }> | undefined
      readonly failed: number
    }
  ): void {
    const byId = new Map(records.map((record) => [record.id, record]))
    const failedEvents = events.flatMap(({ at, event }) =>
      event._tag === "MessageFailed" ? [{ at, id: idOf(event.error.payload), reason: event.error.reason }] : []
    )
    const closedByError = events.some(({ event }) =>
      event._tag === "Transition" && event.to._tag === "Closed" && Option.isSome(event.to.error)
    )
    const fatalSent = program.ops.some((step) => step.kind === "serverClose" && FATAL_CODES.has(step.code))

    count("programs")
    count("calls", records.length)
    for (const record of records) {
      const outcome = record.outcome
      count(outcome === undefined ? "none" : outcome.kind === "error" ? `error ${outcome.reason}` : outcome.kind)
    }
    count("MessageFailed", failedEvents.length)
    count("received", seen.logsByPeer.flat().length)
    count("connections", seen.logsByPeer.length)
    count(
      "link downs seen",
      events.filter(({ event }) =>
        event._tag === "Transition" && event.from._tag === "Open" && event.to._tag !== "Open"
      ).length
    )
    if (closedByError) count("closed by an error")
    if (seen.lastClose !== undefined) count("close codes checked")
    count("failed total", seen.failed)

    // 1. One outcome per call, typed, fitting, with its own payload.
    for (const record of records) {
      const outcome = record.outcome
      const where = `${record.via} ${record.id} (${record.lane})`
      if (outcome === undefined) {
        problems.push(`${where}: no outcome`)
        continue
      }
      if (outcome.kind === "defect") problems.push(`${where}: defect ${outcome.text}`)
      if (outcome.kind === "interrupted" && (record.lane === "main")) problems.push(`${where}: interrupted`)
      if (record.stoppedAtCall && !(outcome.kind === "error" && outcome.reason === "Closed")) {
        problems.push(`${where}: called on a Closed client, ended ${JSON.stringify(outcome)}`)
      }
      if (outcome.kind !== "error") continue
      if (outcome.tag !== "SendError") {
        problems.push(`${where}: ${outcome.tag}`)
        continue
      }
      if (!outcome.samePayload) problems.push(`${where}: its SendError carries another payload`)
      // Full: `capacity` messages accepted and not written (the bytes are far below `maxBytes`).
      const fits = outcome.reason === "OutboxFull"
        ? (program.overflow === "fail" || program.overflow === "dropOldest") && record.pendingAtCall >= program.capacity
        : outcome.reason === "Dropped"
        ? program.overflow === "dropOldest"
        : outcome.reason === "Closed"
        ? record.doneAt > closeStartedAt || closedByError || record.stoppedAtCall
        : outcome.reason === "WriteFailed"
        ? disruptions.some((at) => at < record.doneAt) || closeStartedAt < record.doneAt
        : false
      if (!fits) {
        problems.push(
          `${where}: SendError ${outcome.reason} does not fit (${
            JSON.stringify({ ...record, closeStartedAt, closedByError })
          })`
        )
      }
    }

    // After `close` returned, every call is refused: the Client is Closed for good.
    for (const record of records) {
      if (record.calledAt > closeReturnedAt && !record.stoppedAtCall) {
        problems.push(`${record.via} ${record.id} called after close returned, the Client not Closed`)
      }
    }

    // 2. What the server received: sent, once, never one reported failed.
    const reportedFailed = new Set<string>()
    for (const record of records) {
      if (record.outcome?.kind === "error") reportedFailed.add(record.id)
    }
    for (const { id } of failedEvents) {
      const record = byId.get(id)
      if (record === undefined) problems.push(`MessageFailed for ${id}, never sent`)
      else if (record.via === "send" && record.outcome?.kind !== "interrupted") {
        problems.push(`MessageFailed for ${id}, whose send was told (${JSON.stringify(record.outcome)})`)
      }
      if (reportedFailed.has(id)) problems.push(`${id} reported failed twice`)
      reportedFailed.add(id)
    }
    for (const id of closeReturned ?? []) {
      const record = byId.get(id)
      const told = (record?.outcome?.kind === "error" && record.outcome.reason === "Closed") ||
        failedEvents.some((failure) => failure.id === id && failure.reason === "Closed")
      if (!told) problems.push(`close returned ${id}, not failed Closed`)
    }
    const received = seen.logsByPeer.flat()
    const counts = new Map<string, number>()
    for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1)
    for (const [id, count] of counts) {
      if (!byId.has(id)) problems.push(`the server received ${id}, never sent`)
      // Cut short with the server down from its call to its end: it waited in the outbox (or died
      // with a socket to a killed server), and was taken out: never written.
      const call = byId.get(id)
      if (call?.outcome?.kind === "interrupted" && call.downSince !== -1 && call.downUntil === call.downSince) {
        problems.push(`the server received ${id}, interrupted while the server was down`)
      }
      if (count > 1) problems.push(`the server received ${id} ${count} times`)
      if (reportedFailed.has(id)) {
        const failure = byId.get(id)?.outcome
        const event = failedEvents.find((failed) => failed.id === id)
        problems.push(
          `the server received ${id}, reported failed (${JSON.stringify(failure?.kind === "error" ? failure : event)})`
        )
      }
    }

    // 3. FIFO in what the Client wrote, for the program's own fiber: across the connections in order.
    const order = new Map(records.filter((record) => record.lane === "main").map((record, index) => [record.id, index]))
    let last = -1
    let lastId = ""
    for (const id of received) {
      const index = order.get(id)
      if (index === undefined) continue
      if (index < last) {
        problems.push(`out of order: ${id} after ${lastId} (connections ${JSON.stringify(seen.logsByPeer)})`)
      }
      last = Math.max(last, index)
      lastId = id
    }

    // Without a heartbeat the Client never drops a link it could still write to (what ends one is
    // the server: a kill, whose kernel data dies with it, or a close frame, after which nothing is
    // written): what arrived is in FIFO order too, not only what was written. With one, the
    // documented exception: what a dead socket's kernel held may arrive after the next link's frames.
    if (!program.heartbeat) {
      let latest = -1
      let latestId = ""
      for (const id of seen.arrived) {
        const index = order.get(id)
        if (index === undefined) continue
        if (index < latest) problems.push(`arrived out of order: ${id} after ${latestId}`)
        latest = Math.max(latest, index)
        latestId = id
      }
    } else if (
      seen.arrived.some((id, index) =>
        (order.get(id) ?? 0) < Math.max(-1, ...seen.arrived.slice(0, index).map((before) => order.get(before) ?? -1))
      )
    ) {
      count("arrived after a later link's frames (heartbeat)")
    }

    // Written (a send's success: the kernel took it) and never received: only across a disruption.
    for (const record of records) {
      if (record.via === "send" && record.outcome?.kind === "ok" && !counts.has(record.id)) {
        const killed = program.ops.some((step) => step.kind === "kill")
        count(killed ? "sent, lost with a kill" : "sent, lost otherwise")
        // Only a kill loses what the server's kernel held: a close frame from either side comes
        // after the data, and the server reads it all first; no heartbeat, so no terminate.
        if (!killed && !program.heartbeat) problems.push(`send ${record.id} succeeded, never received, no kill`)
      }
    }

    // 4. A success on a link that stayed up until a graceful close is received.
    const lastDisruption = Math.max(0, ...disruptions)
    const graceful = !closedByError && !fatalSent && !closeSlow
    if (graceful) {
      for (const record of records) {
        const written = record.via === "send"
          ? record.outcome?.kind === "ok" && record.doneAt > lastDisruption
          : record.outcome?.kind === "ok" && record.calledAt > lastDisruption && !reportedFailed.has(record.id) &&
            !(closeReturned ?? []).includes(record.id)
        if (written && !counts.has(record.id)) {
          problems.push(`${record.via} ${record.id} succeeded after the last disruption, never received`)
        }
      }
    }

    // 5. `failed`: every accepted message never written, once.
    const want = expectedFailed(records, failedEvents.length)
    if (seen.failed !== want) problems.push(`failed is ${seen.failed}, expected ${want}`)

    // 6. The close code the server saw, when the Client closed an open link.
    if (graceful && seen.lastClose !== undefined) {
      const code = closeCode ?? 1000
      const got = Option.map(seen.lastClose, (closed) => closed.code)
      if (Option.getOrUndefined(got) !== code) {
        problems.push(`the server saw close ${String(Option.getOrUndefined(got))}, the Client closed with ${code}`)
      }
    }
  }
}

/** The exact count of accepted messages never written, from the outcomes and the events. */
export const expectedFailed = (records: ReadonlyArray<Call>, failedEvents: number): number =>
  failedEvents +
  records.filter((record) =>
    record.outcome?.kind === "error" && record.outcome.tag === "SendError" &&
    (record.outcome.reason === "Dropped" || record.outcome.reason === "WriteFailed" ||
      (record.outcome.reason === "Closed" && !record.stoppedAtCall))
  ).length

const outcomeOf = (exit: Exit.Exit<void, unknown>, payload: string): Outcome => {
  if (Exit.isSuccess(exit)) return { kind: "ok" }
  if (Cause.isInterruptedOnly(exit.cause)) return { kind: "interrupted" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure) || Cause.isDie(exit.cause)) return { kind: "defect", text: Cause.pretty(exit.cause) }
  const error = failure.value as { _tag?: unknown; reason?: unknown; payload?: unknown }
  return {
    kind: "error",
    tag: String(error._tag),
    reason: String(error.reason),
    samePayload: error.payload === payload
  }
}
