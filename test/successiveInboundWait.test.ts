/**
 * A reader of the Client's `messages` with no connection to read waits for the next one. Effect's
 * scheduler may make its fiber yield between the look that finds no connection and the wait; a
 * connection (or the end) that comes while it is away must still reach it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Option } from "effect"
import { InboundBuffer } from "../src/internal/primitives/inboundBuffer.js"
import { SuccessiveInbound } from "../src/internal/primitives/successiveInbound.js"
import type { Message } from "../src/Transport.js"
import { pullAcrossYield } from "./support/yieldOnce.js"

const source = { pause: () => true, resume: () => {}, overflow: () => {} }

describe("messages: a reader waiting for a connection", () => {
  // Without the wait made where the reader looks, a yield between the look and the wait let the
  // connection (or the end) in unseen: the reader waited for the one after it (for ever, if none).
  it.live("a connection, or the end, that comes while the reader had yielded at any point of its pull reaches it", () =>
    Effect.gen(function*() {
      for (const what of ["connection", "end"] as const) {
        for (let at = 1; at <= 30; at++) {
          const inbound = new SuccessiveInbound()
          const arrive = () => {
            if (what === "end") return inbound.end()
            const buffer = new InboundBuffer<Message>(16, source, Infinity, undefined, inbound.budgetFor(16, Infinity))
            buffer.offer(`at ${at}`)
            inbound.offer(buffer)
          }
          // No yield that early in its pull: it arrives once the reader has run as far as it goes.
          const exit = yield* pullAcrossYield(inbound.pull, at, arrive, what)
          if (what === "connection") expect(exit).toEqual(Exit.succeed(Chunk.of(`at ${at}`)))
          else expect(exit).toEqual(Exit.fail(Option.none()))
        }
      }
    }))
})
