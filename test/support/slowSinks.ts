/**
 * A burst through a sink to a peer that reads slowly (Tornado's async `on_message`, gorilla's
 * slow handler): 300 frames of 16 KiB of UTF-8 ('é', two bytes each), written by `Stream.run` into
 * a Client's `sink` or a Connection's, with the highest outbox size or `bufferedAmount` read before
 * each frame. The peer's own count (all 300, in order, whole) is the caller's to read.
 */
import { Effect, Stream } from "effect"
import { Client, Connection } from "../../src/index.js"

export const SLOW_FRAMES = 300
/** 4.9 MB in all; Tornado reads about 6 MB/s. */
const frames = Stream.range(0, SLOW_FRAMES - 1).pipe(Stream.map((index) => `${index}:${"é".repeat(8192)}`))
/** The largest frame's bytes: what a Connection may hold past its mark. */
export const SLOW_FRAME_BYTES = 4 + 2 * 8192

/** Through a Client with an outbox of `capacity` (suspend), then `close`: the outbox's peak, what close returned, `failed`. */
export const throughClientSink = (url: string, capacity: number) =>
  Effect.scoped(Effect.gen(function*() {
    let highest = 0
    const client = yield* Client.make({
      url,
      outbox: { capacity, overflow: "suspend" },
      connection: { writeHighWaterMark: 64 * 1024 }
    })
    yield* client.awaitOpen
    const sampled = Stream.rechunk(frames, 1).pipe(
      Stream.tap(() => Effect.map(client.outboxSize, (size) => void (highest = Math.max(highest, size))))
    )
    yield* Stream.run(sampled, client.sink)
    const unsent = yield* client.close()
    return { unsent: unsent.length, failed: yield* client.failed, highest }
  }))

/** Through a Connection with `writeHighWaterMark` `mark`, then its release: the peak of `bufferedAmount`. */
export const throughConnectionSink = (url: string, mark: number) =>
  Effect.scoped(Effect.gen(function*() {
    let highest = 0
    const connection = yield* Connection.connect(url, { writeHighWaterMark: mark })
    const sampled = Stream.rechunk(frames, 1).pipe(
      Stream.tap(() =>
        Effect.map(connection.bufferedAmount, (buffered) => void (highest = Math.max(highest, buffered)))
      )
    )
    yield* Stream.run(sampled, connection.sink)
    return highest
  }))
