/**
 * Ending a Client: `close` (the table of invariant 2 for its connection, with the caller's code
 * and reason, and every message not written returned), and the constructor that ties `close` to
 * the scope the Client was made in.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { Registry } from "../../CircuitBreaker.js"
import type { Message, Transport } from "../../Transport.js"
import type { ClientSettings } from "../client.js"
import { closeCodeOf } from "../connection.js"
import { LiveClient } from "./liveClient.js"

/**
 * Writes what is queued if connected, closes, stops reconnecting; returns every payload accepted
 * and not written (those with the transport first, then those queued), each also failed with
 * `SendError Closed`. Idempotent.
 */
export const closeClient = (
  client: LiveClient,
  code?: number,
  reason?: string
): Effect.Effect<ReadonlyArray<Message>> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const phase = client.phase
    // A close under way: wait for it to finish (its caller gets the payloads), then return none.
    if (phase._tag === "Closing") {
      return yield* Effect.as(Deferred.await(client.closeDone ??= Deferred.unsafeMake(FiberId.none)), [])
    }
    if (phase._tag === "Closed" && phase.byClose) {
      return []
    }
    const done = client.closeDone ??= Deferred.unsafeMake<void>(FiberId.none)
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
    // The supervisor ends here, its attempt's connection released (interrupting waits for it).
    const supervisor = client.supervisor
    if (supervisor !== undefined) yield* Fiber.interrupt(supervisor)
    if (session !== undefined) {
      // The release table of invariant 2, with the caller's code and reason.
      if (phase._tag === "Open") yield* session.opened.connection.close(code, reason)
      // Released already by the supervisor (its close is uninterruptible), or here if it had not begun.
      yield* Scope.close(session.scope, Exit.void)
      session.abandonInFlight()
      // A primary probe's handshake under way is released too.
      if (session.probe !== undefined) yield* session.probe.settled
    }
    const unsent = client.outbound.failQueued()
    client.inbound.end()
    yield* client.enter({ _tag: "Closed", error: Option.none(), byClose: true })
    Deferred.unsafeDone(done, Exit.void)
    return unwritten.length === 0 ? unsent : [...unwritten, ...unsent]
  }))

export const makeClient = (settings: ClientSettings): Effect.Effect<LiveClient, never, Scope.Scope | Transport> =>
  Effect.gen(function*() {
    // The supervisor runs with this fiber's context and FiberRefs (logger, level, annotations,
    // span), as a forked child would.
    const runtime = yield* Effect.runtime<Transport>()
    const registry = Option.getOrUndefined(yield* Effect.serviceOption(Registry))
    const client = new LiveClient(settings, runtime, yield* Effect.clock, registry)
    client.start()
    yield* Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizerExit(scope, closeOnExit(client)))
    return client
  })

// The close logs, so it runs with the FiberRefs the client was made with, on a fiber of the
// client's runtime: Effect.addFinalizer would keep a second copy of them alive per client.
const closeOnExit = (client: LiveClient) => (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  Effect.suspend(() => Fiber.join(client.fork(Effect.asVoid(client.close(closeCodeOf(exit))), false)))
