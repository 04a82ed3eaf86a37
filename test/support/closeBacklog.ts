/**
 * A Client over the browser transport (Node's own `WebSocket`) that enqueues 500 frames of 64 KiB
 * `character`s to a TestServer that stopped reading, then closes (the close frame unanswered:
 * given up after a 300 ms `closeTimeout`). What was taken, what `close` returned, what the server
 * got once it read again, and the Client's `failed` count.
 */
import { expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import type { Scope } from "effect"
import type { Transport } from "../../src/index.js"
import { Client } from "../../src/index.js"
import { TestServer } from "../../src/testing/index.js"

export interface ClosedBacklog {
  readonly taken: ReadonlyArray<string>
  readonly unsent: ReadonlyArray<unknown>
  readonly received: ReadonlyArray<unknown>
  readonly failed: number
}

export const closeWithBacklog = (
  character: string
): Effect.Effect<ClosedBacklog, never, Scope.Scope | Transport.Transport> =>
  Effect.gen(function*() {
    const server = yield* TestServer.make({ handler: "ignore" })
    yield* server.pauseReading
    const client = yield* Client.make({ url: server.url, connection: { closeTimeout: "300 millis" } })
    yield* Effect.orDie(client.awaitOpen)
    const frame = (index: number) => `${index}:${character.repeat(64 * 1024)}`
    const taken: Array<string> = []
    // 32 MB or more: past the 1 MiB mark, the outbox's 16 MiB and what the kernel holds.
    for (let index = 0; index < 500; index++) {
      const refused = yield* Effect.flip(client.enqueue(frame(index))).pipe(Effect.option)
      if (Option.isNone(refused)) taken.push(frame(index))
    }
    const [peer] = yield* server.peers
    const unsent = yield* client.close()
    yield* server.resumeReading
    yield* Effect.orDie(peer!.awaitClosed())
    return { taken, unsent, received: yield* server.received, failed: yield* client.failed }
  })

/**
 * What a close with a backlog must give: some frames refused before it (500 were offered), some
 * returned by `close`, the last ones taken and in order; the server got the first ones taken, in
 * order; none both received and returned; each returned frame counted failed.
 */
export const expectBacklogAccounted = ({ failed, received, taken, unsent }: ClosedBacklog): void => {
  expect(taken.length).toBeLessThan(500)
  expect(unsent.length).toBeGreaterThan(0)
  expect(unsent).toEqual(taken.slice(taken.length - unsent.length))
  expect(received).toEqual(taken.slice(0, received.length))
  expect(received.length + unsent.length).toBeLessThanOrEqual(taken.length)
  expect(failed).toBe(unsent.length)
}
