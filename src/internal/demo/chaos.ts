// A Client under chaos: an echo TestServer behind a FaultProxy, a sender that never stops, and a
// script that kills the server, rejects handshakes with 503 + retry-after, and blackholes the
// network. Every state transition is printed as it happens; at the end every message is accounted
// for: sent = written + failed (by reason), and what was echoed back is a subset of what was written.
import type { Scope } from "effect"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Client from "../../Client.js"
import type { CircuitOpenError, SendError, SendErrorReason } from "../../Errors.js"
import * as Reconnect from "../../Reconnect.js"
import { FaultProxy, TestServer } from "../../testing/index.js"
import type * as Transport from "../../Transport.js"

// ---------------------------------------------------------------------------------------------
// Settings

const SEND_EVERY = "25 millis"
const OUTBOX_CAPACITY = 64
const RETRY = { base: "100 millis", cap: "1 second" } as const
const HEARTBEAT = { interval: "300 millis", timeout: "300 millis" } as const
const OPEN_TIMEOUT = "1 second"
// A connection that stayed up this long starts the backoff over.
const MIN_UPTIME = "500 millis"
// Each fault must be recovered from within this long, or the demo fails.
const RECOVERY_TIMEOUT = "5 seconds"
// After the sender stops, how long in-flight sends may take to settle (before and after close).
const SETTLE_TIMEOUT = "2 seconds"

// ---------------------------------------------------------------------------------------------
// Reading states and errors

const describeError = (error: Client.ClientError): string => {
  switch (error._tag) {
    case "ConnectError": {
      const status = error.status === undefined ? "" : ` ${error.status}`
      const retryAfter = error.retryAfter === undefined ? "" : ` retry-after ${Duration.format(error.retryAfter)}`
      return `ConnectError ${error.reason}${status}${retryAfter}`
    }
    case "TimeoutError":
      return `TimeoutError ${error.operation}`
    case "Disconnected": {
      const reason = error.reason === "" ? "" : ` "${error.reason}"`
      return `Disconnected ${error.code}${reason} by ${error.initiator}`
    }
    case "OnOpenError":
      return "OnOpenError"
    case "CircuitOpenError":
      return `CircuitOpenError until ${error.retryAt.toISOString()}`
  }
}

const describeState = (state: Client.ClientState): string => {
  switch (state._tag) {
    case "Idle":
      return ""
    case "Connecting":
    case "Open":
      return `attempt ${state.attempt}`
    case "Backoff":
      return `attempt ${state.attempt}, retry in ${Math.round(Duration.toMillis(state.delay))} ms after ${
        describeError(state.error)
      }`
    case "Suspended":
      return `the breaker of ${state.endpoint} is open until ${new Date(state.retryAt).toISOString()}`
    case "Closed":
      return Option.match(state.error, { onNone: () => "on purpose", onSome: describeError })
  }
}

// ---------------------------------------------------------------------------------------------
// The ledger: what happened to every message

/** What the script was doing when a message was sent, to tell where echoes went missing. */
type Phase = "start" | "server.kill" | "closeAll 1012" | "blackhole"

interface Ledger {
  sent: number
  readonly phaseOf: Map<string, Phase>
  readonly written: Set<string>
  readonly failed: Map<SendErrorReason | "CircuitOpen", number>
  readonly echoed: Set<string>
  echoedTwice: number
  opens: number
}

const makeLedger = (): Ledger => ({
  sent: 0,
  phaseOf: new Map(),
  written: new Set(),
  failed: new Map(),
  echoed: new Set(),
  echoedTwice: 0,
  opens: 0
})

const sum = (counts: Iterable<number>): number => {
  let total = 0
  for (const count of counts) total += count
  return total
}

const textOf = (message: Transport.Message): string =>
  typeof message === "string" ? message : Buffer.from(message).toString("utf8")

// ---------------------------------------------------------------------------------------------
// Printing

const row = (at: number, text: string): Effect.Effect<void> => Console.log(`  +${String(at).padStart(5)} ms  ${text}`)

const transitionText = (from: Client.ClientState, to: Client.ClientState): string =>
  `${from._tag.padEnd(10)} -> ${to._tag.padEnd(10)} ${describeState(to)}`.trimEnd()

const summaryRow = (label: string, count: number, note = ""): Effect.Effect<void> =>
  Console.log(`    ${label.padEnd(11)}${String(count).padStart(4)}  ${note}`.trimEnd())

// ---------------------------------------------------------------------------------------------
// The tour

/**
 * Runs a Client through a scripted series of faults while it sends a message every 25 ms, prints
 * each state transition and a summary that accounts for every message. A message unaccounted for,
 * or a fault the client does not recover from, is a defect.
 */
export const chaos: Effect.Effect<void, never, Scope.Scope | Transport.Transport> = Effect.gen(function*() {
  const server = yield* TestServer.make()
  const proxy = yield* FaultProxy.make(server.port)
  yield* Console.log(`client chaos tour through ${proxy.url} (FaultProxy) to ${server.url} (echo)`)
  yield* Console.log(
    `  retry 100 ms..1 s jittered, heartbeat 300/300 ms, openTimeout 1 s, outbox ${OUTBOX_CAPACITY}, a message every 25 ms`
  )

  const started = yield* Clock.currentTimeMillis
  const elapsed = Effect.map(Clock.currentTimeMillis, (now) => now - started)
  const ledger = makeLedger()

  const client = yield* Client.make({
    url: proxy.url,
    retry: Reconnect.exponentialBackoff(RETRY),
    heartbeat: HEARTBEAT,
    connection: { openTimeout: OPEN_TIMEOUT },
    minUptime: MIN_UPTIME,
    outbox: { capacity: OUTBOX_CAPACITY }
  })

  // Every transition, as it happens. The client starts connecting as soon as it is made, and
  // `events` has no replay: the first transition(s) may be published before this subscription.
  const closedSeen = yield* Deferred.make<void>()
  let subscribed = false
  const printer = yield* client.events.pipe(
    Stream.runForEach((event) =>
      // MessageFailed only reports messages accepted by `enqueue`; this demo uses `send`.
      event._tag !== "Transition" ? Effect.void : Effect.gen(function*() {
        const at = yield* elapsed
        if (!subscribed && event.from._tag !== "Idle") {
          const state = `${event.from._tag}, ${describeState(event.from)}`
          yield* row(at, `(events subscribed while ${state}: the transitions before it were missed)`)
          if (event.from._tag === "Open") ledger.opens++
        }
        subscribed = true
        if (event.to._tag === "Open") ledger.opens++
        yield* row(at, transitionText(event.from, event.to))
        if (event.to._tag === "Closed") yield* Deferred.succeed(closedSeen, undefined)
      })
    ),
    Effect.forkScoped
  )
  // Echoes, by name, and whether they come back in the order they were sent.
  let lastEchoed = 0
  let reordered = 0
  const reader = yield* client.messages.pipe(
    Stream.runForEach((message) =>
      Effect.sync(() => {
        const id = textOf(message)
        const n = Number(id.slice("msg-".length))
        if (n < lastEchoed) reordered++
        lastEchoed = n
        if (ledger.echoed.has(id)) ledger.echoedTwice++
        ledger.echoed.add(id)
      })
    ),
    Effect.forkScoped
  )

  // "msg-1", "msg-2", ... every 25 ms until told to stop, each send in its own fiber so a slow
  // one never holds up the numbering; each outcome is recorded. The sender is stopped by a flag,
  // not interrupted, so a message is never counted as sent without its send being started.
  let phase: Phase = "start"
  let sending = true
  const sends = yield* FiberSet.make<void, never>()
  const record = (id: string) => ({
    onSuccess: () =>
      Effect.sync(() => {
        ledger.written.add(id)
      }),
    onFailure: (error: SendError | CircuitOpenError) =>
      Effect.sync(() => {
        // CircuitOpen: only with a breaker and whenSuspended "failFast", which this demo does not use.
        const reason = error._tag === "SendError" ? error.reason : "CircuitOpen"
        ledger.failed.set(reason, (ledger.failed.get(reason) ?? 0) + 1)
      })
  })
  const sendOne = Effect.suspend(() => {
    ledger.sent++
    const id = `msg-${ledger.sent}`
    ledger.phaseOf.set(id, phase)
    return FiberSet.run(sends, client.send(id).pipe(Effect.matchEffect(record(id))))
  })
  const sender = yield* Effect.forkScoped(Effect.whileLoop({
    while: () => sending,
    body: () => Effect.zipRight(sendOne, Effect.sleep(SEND_EVERY)),
    step: () => {}
  }))

  // The script.
  const chaosStep = (text: string, step: Effect.Effect<void>, next?: Phase): Effect.Effect<void> =>
    Effect.flatMap(elapsed, (at) => {
      if (next !== undefined) phase = next
      return Effect.zipRight(row(at, `** ${text}`), step)
    })

  /** Waits for an Open that started after `since`; failing to recover is a defect. */
  const reopened = (since: number, fault: string): Effect.Effect<void> =>
    client.state.changes.pipe(
      Stream.filter((state) => state._tag === "Closed" || (state._tag === "Open" && state.since >= since)),
      Stream.runHead,
      Effect.flatMap((found) =>
        Option.isSome(found) && found.value._tag === "Open"
          ? Effect.void
          : Effect.dieMessage(`chaos: the client closed instead of recovering from ${fault}`)
      ),
      Effect.timeoutFail({
        duration: RECOVERY_TIMEOUT,
        onTimeout: () => new Error(`chaos: the client did not recover from ${fault} within ${RECOVERY_TIMEOUT}`)
      }),
      Effect.orDie
    )

  yield* client.awaitOpen.pipe(
    Effect.timeoutFail({ duration: RECOVERY_TIMEOUT, onTimeout: () => new Error("chaos: the client never opened") }),
    Effect.orDie
  )
  yield* Effect.sleep("1 second")

  const killedAt = yield* Clock.currentTimeMillis
  yield* chaosStep("server.kill (connections destroyed, port closed)", server.kill, "server.kill")
  yield* Effect.sleep("700 millis")
  yield* chaosStep("server.restart", server.restart)
  yield* reopened(killedAt, "server.kill")
  yield* Effect.sleep("300 millis")

  const rejectedAt = yield* Clock.currentTimeMillis
  yield* chaosStep("server.rejectNext(503, retry-after: 1, x2)", server.rejectNext(503, { "retry-after": "1" }, 2))
  yield* chaosStep(`server.closeAll(1012, "restarting")`, server.closeAll(1012, "restarting"), "closeAll 1012")
  yield* reopened(rejectedAt, "the 503 rejections")
  yield* Effect.sleep("300 millis")

  const blackholedAt = yield* Clock.currentTimeMillis
  yield* chaosStep("proxy.blackhole (sockets stay open, nothing is forwarded)", proxy.blackhole, "blackhole")
  yield* Effect.sleep("1 second")
  yield* chaosStep("proxy.restore", proxy.restore)
  yield* reopened(blackholedAt, "the blackhole")
  yield* Effect.sleep("1 second")

  // Wind down: stop sending, let what is in flight settle, close, account for the rest.
  sending = false
  yield* Fiber.join(sender)
  const settle = (when: string) =>
    FiberSet.awaitEmpty(sends).pipe(
      Effect.timeoutFail({
        duration: SETTLE_TIMEOUT,
        onTimeout: () => new Error(`chaos: sends still in flight ${SETTLE_TIMEOUT} ${when}`)
      })
    )
  yield* Effect.ignore(settle("after the sender stopped"))
  yield* chaosStep("client.close()", Effect.void)
  const unsent = yield* client.close()
  yield* settle("after close").pipe(
    Effect.catchAll((error) =>
      Effect.flatMap(
        FiberSet.size(sends),
        (left) => Effect.dieMessage(`${error.message}: ${left} messages neither written nor failed`)
      )
    )
  )
  yield* Deferred.await(closedSeen).pipe(Effect.timeout("1 second"), Effect.ignore)
  yield* Fiber.interrupt(printer)
  yield* Fiber.join(reader).pipe(
    Effect.timeoutFail({ duration: "1 second", onTimeout: () => new Error("chaos: messages did not end after close") }),
    Effect.orDie
  )

  // The summary, and its arithmetic.
  const written = ledger.written.size
  const failed = sum(ledger.failed.values())
  const reasons = [...ledger.failed.entries()].map(([reason, count]) => `${reason} ${count}`).join(", ")
  const missing = new Map<Phase, number>()
  for (const id of ledger.written) {
    if (ledger.echoed.has(id)) continue
    const during = ledger.phaseOf.get(id) ?? "start"
    missing.set(during, (missing.get(during) ?? 0) + 1)
  }
  const lost = sum(missing.values())
  const where = [...missing.entries()].map(([during, count]) => `${count} ${during}`).join(", ")
  let echoedNotWritten = 0
  for (const id of ledger.echoed) if (!ledger.written.has(id)) echoedNotWritten++

  yield* Console.log(`  summary after ${yield* elapsed} ms`)
  yield* summaryRow("sent", ledger.sent, `msg-1 .. msg-${ledger.sent}`)
  yield* summaryRow("written", written, "the transport took it")
  yield* summaryRow("failed", failed, reasons === "" ? "" : `SendError ${reasons}`)
  yield* summaryRow("echoed", ledger.echoed.size, lost === 0 ? "every written message came back" : "")
  if (lost > 0) yield* summaryRow("no echo", lost, `written, then the connection died before the echo: ${where}`)
  yield* summaryRow("reconnects", Math.max(0, ledger.opens - 1), `${ledger.opens} Open transitions`)
  if (reordered > 0) yield* summaryRow("reordered", reordered, "echoes that came back after a later message's")
  if (unsent.length > 0) yield* summaryRow("at close", unsent.length, "still queued, failed with SendError Closed")
  if (ledger.sent !== written + failed) {
    return yield* Effect.dieMessage(
      `chaos: ${ledger.sent} sent but ${written} written + ${failed} failed = ${
        written + failed
      }: messages unaccounted for`
    )
  }
  if (echoedNotWritten > 0 || ledger.echoedTwice > 0) {
    return yield* Effect.dieMessage(
      `chaos: ${echoedNotWritten} messages echoed but not reported written, ${ledger.echoedTwice} echoed twice`
    )
  }
  yield* Console.log(
    `    check      sent ${ledger.sent} = written ${written} + failed ${failed}; every echo was written, none twice${
      reordered === 0 ? ", in order" : ""
    }`
  )
}).pipe(
  // The client logs each Backoff and Closed itself; this tour prints its own lines instead.
  Logger.withMinimumLogLevel(LogLevel.None)
)
