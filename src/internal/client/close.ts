/**
 * Ending a Client: `close` (the table of invariant 2 for its connection, with the caller's code
 * and reason, and every message not written returned), and the constructor that ties `close` to
 * the scope the Client was made in.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as FiberRefs from "effect/FiberRefs"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as RuntimeFlags from "effect/RuntimeFlags"
import * as Scope from "effect/Scope"
import { Registry } from "../../CircuitBreaker.js"
import type { Message, Transport } from "../../Transport.js"
import type { ClientSettings } from "../client.js"
import { unsentLog } from "../clientCommon.js"
import { closeCodeOf } from "../connection.js"
import { LiveClient } from "./liveClient.js"

/**
 * Writes what is queued if connected, closes, stops reconnecting; returns every payload accepted
 * and not written (those with the transport first, then those queued), each also failed with
 * `SendError Closed`. Idempotent. Interrupting the caller does not stop it: it goes on, and a
 * later `close` (the scope's finalizer's) waits for it.
 */
export const closeClient = (
  client: LiveClient,
  code?: number,
  reason?: string
): Effect.Effect<ReadonlyArray<Message>> =>
  Effect.suspend(() => {
    const phase = client.phase
    // A close under way: wait for it to finish (its caller gets the payloads), then return none.
    if (phase._tag === "Closing") {
      return Effect.as(Deferred.await(client.closeDone ??= Deferred.unsafeMake(FiberId.none)), [])
    }
    if (phase._tag === "Closed" && phase.byClose) return Effect.succeed([])
    // On a fiber of its own, that no one interrupts; the caller waits for it, interruptibly:
    // - a caller interrupted already (an aborted `runPromise`, `Effect.timeout` around `close`)
    //   would cut the release's waits (interruptible, so that their timeouts can fire) at once,
    //   leaving the client Closing for good and every later `close` waiting for it;
    // - a caller that is the supervisor's own user code (`onOpen`, a URL or headers Effect) is
    //   interrupted with the supervisor, which `close` interrupts and waits for: an
    //   uninterruptible wait there was a deadlock.
    // Started now (`runFork` starts a fiber at once): it has Closing entered, and sends refused,
    // before `close` yields. Its outcome goes to `closeDone`, which this caller awaits first and a
    // later `close` after.
    const done = client.closeDone ??= Deferred.unsafeMake(FiberId.none)
    Runtime.runFork(client.runtime)(
      Effect.exit(closing(client, code, reason)).pipe(Effect.flatMap((exit) => Deferred.done(done, exit)))
    )
    return Deferred.await(done)
  })

/** `close`'s work, from a phase that is neither Closing nor Closed by `close`; on a fiber no one interrupts. */
const closing = (
  client: LiveClient,
  code: number | undefined,
  reason: string | undefined
): Effect.Effect<ReadonlyArray<Message>> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const phase = client.phase
    // Frames with the transport that are not written by the end of the release (a peer that
    // stopped reading) are returned too, oldest first, ahead of what was still queued.
    const unwritten: Array<Message> = []
    const session = phase._tag === "Open" ? phase.session : phase._tag === "Ending" ? phase.open.session : undefined
    if (session !== undefined) session.unsent = unwritten
    // Queued while open: write it before the close frame rather than fail it.
    if (phase._tag === "Open") {
      client.outbound.flush(phase.session)
      phase.session.detach()
    }
    // A dead peer (the heartbeat ended the session) will not answer a close frame.
    if (phase._tag === "Ending" && phase.reason !== "reconnect" && phase.reason._tag === "TimeoutError") {
      phase.open.session.opened.socket.terminate()
    }
    yield* client.enter({ _tag: "Closing" })
    // A wait or an attempt on callbacks ends here, its socket released.
    if ("wait" in phase) phase.wait.finish()
    if (phase._tag === "Connecting" && phase.pending) yield* phase.pending.abandon()
    // The supervisor ends here, its attempt's connection released (interrupting waits for it).
    // One releasing an ended session is awaited instead (it stops there: the client is Closing):
    // an interrupt would cut that release's waits short, before its terminate, and leave the
    // socket open until ws's own 30 s timer.
    const supervisor = client.supervisor
    if (supervisor !== undefined) yield* phase._tag === "Ending" ? Fiber.await(supervisor) : Fiber.interrupt(supervisor)
    if (session !== undefined) {
      // The release table of invariant 2, with the caller's code and reason.
      if (phase._tag === "Open") yield* session.opened.connection.close(code, reason)
      // Released already by the supervisor (its close is uninterruptible), or here if it had not begun.
      yield* Scope.close(session, Exit.void)
      session.abandonInFlight()
    }
    // A primary probe's handshake under way is released too, and the connection of one that moved
    // the Client home (its session is over, its close frame may still wait for an answer).
    if (client.probes !== undefined) {
      for (const probe of [...client.probes]) yield* Fiber.await(probe)
    }
    const unsent = client.outbound.failQueued()
    // Entering Closed ends `messages` (LiveClient.enter).
    yield* client.enter({ _tag: "Closed", error: Option.none(), byClose: true })
    return unwritten.length === 0 ? unsent : [...unwritten, ...unsent]
  }))

export const makeClient = (settings: ClientSettings): Effect.Effect<LiveClient, never, Scope.Scope | Transport> =>
  // Read from the fiber in one step (not a generator of five services): a Client's connect time
  // is a target, and this runs at every `make`.
  Effect.withFiberRuntime((fiber, status) => {
    const context = fiber.currentContext as Context.Context<Scope.Scope | Transport>
    // The supervisor runs with this fiber's context and FiberRefs (logger, level, annotations,
    // span), as a forked child would.
    const runtime = runtimeFor(context, status.runtimeFlags, fiber.getFiberRefs())
    const registry = Option.getOrUndefined(Context.getOption(context, Registry))
    const client = new LiveClient(settings, runtime, Context.get(fiber.currentDefaultServices, Clock.Clock), registry)
    client.start()
    return Effect.as(Scope.addFinalizerExit(Context.get(context, Scope.Scope), closeOnExit.bind(client)), client)
  })

/**
 * The Runtime a Client's fibers run with: one for all the Clients made with the same context and
 * runtime flags and FiberRefs of the same values (Clients made in a loop, or by sibling fibers of
 * one `forEach`). A Runtime kept per Client (its FiberRefs' map of stacks: about 300 bytes) was a
 * twentieth of an idle Client. Only the values count: the fibers started from it run with exactly
 * the values they would have had; only the ids recorded beside the values (which fiber set each)
 * may be another creator's.
 */
const runtimeFor = (
  context: Context.Context<Scope.Scope | Transport>,
  runtimeFlags: RuntimeFlags.RuntimeFlags,
  fiberRefs: FiberRefs.FiberRefs
): Runtime.Runtime<Scope.Scope | Transport> => {
  const known = runtimes.get(context)
  if (known !== undefined && known.runtimeFlags === runtimeFlags && sameValues(known.fiberRefs, fiberRefs)) return known
  const runtime = Runtime.make({ context, runtimeFlags, fiberRefs })
  runtimes.set(context, runtime)
  return runtime
}

// The latest Runtime made for each context: held no longer than the context itself.
const runtimes = new WeakMap<Context.Context<never>, Runtime.Runtime<Scope.Scope | Transport>>()

/** Whether every FiberRef has the same value (the same object) in both. */
const sameValues = (self: FiberRefs.FiberRefs, that: FiberRefs.FiberRefs): boolean => {
  if (self === that) return true
  if (self.locals.size !== that.locals.size) return false
  for (const [fiberRef, stack] of self.locals) {
    const other = that.locals.get(fiberRef)
    if (other === undefined || other[0][1] !== stack[0][1]) return false
  }
  return true
}

// The close logs with the FiberRefs the client was made with (it runs on a fiber of the client's
// runtime): Effect.addFinalizer would keep a second copy of them alive per client.
// Bound to the client, not a closure: no context object per client.
// What it did not send is returned to no one (a Layer's Client outlives the app's `events`
// watchers): one WARN says how much, beside `failed` and the metrics. Logged on the client's
// runtime, as its other lines are (with the logger and annotations of the fiber that made it),
// at once, before the app's teardown: a fiber of its own, so a logger that throws fails nothing.
function closeOnExit(this: LiveClient, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
  return Effect.flatMap(this.close(closeCodeOf(exit)), (unsent) =>
    Effect.sync(() => {
      if (unsent.length > 0) {
        // With the endpoint last dialled, as the Client's other lines.
        const log = unsentLog(unsent.length)
        this.fork(
          this.currentLabel === "" ? log : Effect.annotateLogs(log, "lifeline.url", this.currentLabel),
          false,
          true
        )
      }
    }))
}
