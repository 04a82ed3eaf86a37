import { Chunk, Effect } from "effect"
import type { InboundBuffer } from "../../src/internal/primitives/inboundBuffer.js"

/**
 * A buffer of `capacity` on a source that can always pause, and a forked reader that records each
 * chunk it pulls until it has read `total` items. The class is a parameter so that a test can
 * pass one from a freshly loaded module.
 */
export const startReader = (Buffer: typeof InboundBuffer, capacity: number, total: number) =>
  Effect.gen(function*() {
    const buffer = new Buffer<number>(capacity, { pause: () => true, resume: () => {}, overflow: () => {} })
    const chunks: Array<Array<number>> = []
    const reader = yield* Effect.fork(Effect.gen(function*() {
      while (chunks.flat().length < total) chunks.push(Chunk.toArray(yield* buffer.pull))
    }))
    return { buffer, chunks, reader }
  })
