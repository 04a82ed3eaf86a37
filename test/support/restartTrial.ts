/**
 * One trial run against several real peers (Python's aiohttp and Tornado, Go's gorilla): a Client
 * sends `m0`..`m29`, one each 100 ms; the peer is killed (SIGKILL) once `m5` reached it and
 * restarted on the same port once 15 sends were made. Every send is accounted for: each arrived
 * once or failed with a `SendError` (counted in `failed`), none twice, none out of order; every
 * send made while the Client was not Open waited in the outbox and arrived after the restart; a
 * send that neither arrived nor failed was written as the peer died (at most one).
 */
import { expect } from "@effect/vitest"
import type { Scope } from "effect"
import { Effect, Either } from "effect"
import type { Client } from "../../src/index.js"
import { awaitState } from "./clientKit.js"
import { awaitTrue } from "./poll.js"

export interface RestartablePeer {
  readonly kill: Effect.Effect<void, never, Scope.Scope>
  readonly restart: Effect.Effect<void, never, Scope.Scope>
  /** The indexes of the `m<i>` frames the peer got so far, in the order it got them. */
  readonly received: () => ReadonlyArray<number>
}

const COUNT = 30

export const sendsThroughARestart = (client: Client.Client, peer: RestartablePeer) =>
  Effect.gen(function*() {
    yield* client.awaitOpen
    const outcomes: Array<Either.Either<void, unknown> | undefined> = Array.from({ length: COUNT }, () => undefined)
    const openAtSend: Array<boolean> = []
    const sender = yield* Effect.fork(Effect.forEach(Array.from({ length: COUNT }, (_, i) => i), (i) =>
      Effect.gen(function*() {
        openAtSend[i] = (yield* client.state.get)._tag === "Open"
        yield* Effect.forkScoped(
          Effect.either(client.send(`m${i}`)).pipe(Effect.map((outcome) => void (outcomes[i] = outcome)))
        )
        yield* Effect.sleep("100 millis")
      }), { discard: true }))
    yield* awaitTrue(
      Effect.sync(() =>
        peer.received().includes(5)
      ),
      "m5 reached the server"
    )
    yield* peer.kill
    expect((yield* awaitState(client, (state) => state._tag !== "Open"))._tag).toBe("Backoff")
    // Let several sends wait in the outbox, then bring the server back.
    yield* awaitTrue(Effect.sync(() => openAtSend.length >= 15), "fifteen sends made", 2000)
    yield* peer.restart
    yield* sender.await
    yield* awaitTrue(Effect.sync(() => outcomes.every((outcome) => outcome !== undefined)), "every send settled")
    // The last send goes to the restarted server: once it is there, all before it that will come are.
    yield* awaitTrue(Effect.sync(() => peer.received().includes(COUNT - 1)), "the last send reached the server")
    const got = [...peer.received()]
    // In order, none twice.
    expect(got).toEqual([...got].sort((a, b) => a - b))
    expect(new Set(got).size).toBe(got.length)
    // Each send arrived once or was reported: a failure is a SendError the server never got.
    const failed = outcomes.flatMap((outcome, i) => outcome !== undefined && Either.isLeft(outcome) ? [i] : [])
    for (const i of failed) expect(Either.flip(outcomes[i]!)).toMatchObject({ right: { _tag: "SendError" } })
    expect(failed.filter((i) => got.includes(i))).toEqual([])
    expect(yield* client.failed).toBe(failed.length)
    // Every send made while not Open waited in the outbox and arrived after the restart.
    const queued = openAtSend.flatMap((open, i) => open ? [] : [i])
    expect(queued.length).toBeGreaterThanOrEqual(5)
    expect(queued.filter((i) => !got.includes(i))).toEqual([])
    // Neither arrived nor failed: only a send written to the socket as the server died may be
    // so (written means handed to the kernel: the guide's "Failure modes"), at most one here.
    const lost = Array.from({ length: COUNT }, (_, i) => i).filter((i) => !got.includes(i) && !failed.includes(i))
    expect(lost.every((i) => openAtSend[i])).toBe(true)
    expect(lost.length).toBeLessThanOrEqual(1)
  })
