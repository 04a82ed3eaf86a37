// An app whose message handler blocks the event loop (a synchronous loop) while the server sends:
//   node --import tsx test/support/blockedChild.ts <url>
// One Client, heartbeat 500 ms / 1 s (both blocks are longer than the two). The handler keeps every frame; a frame "block N" makes it
// spin N ms before it returns. Reads until "end", then prints one JSON line: the frames, the
// Client's transitions, and how long each block lasted.
import { Effect, Stream } from "effect"
import { Client } from "../../src/index.js"
import { describeError, emit, quiet, strays, warnings } from "./opsChild.js"

const [url] = process.argv.slice(2)

const program = Effect.gen(function*() {
  const client = yield* Client.make({ url: url!, heartbeat: { interval: "500 millis", timeout: "1 second" } })
  const transitions: Array<string> = []
  yield* Effect.forkDaemon(Stream.runForEach(client.events, (event) =>
    Effect.sync(() => {
      if (event._tag !== "Transition") return
      const to = event.to
      transitions.push(to._tag === "Backoff" ? `Backoff ${describeError(to.error)}` : to._tag)
    })))
  const frames: Array<string> = []
  const blocks: Array<number> = []
  yield* client.messages.pipe(
    Stream.map(String),
    Stream.takeWhile((frame) => frame !== "end"),
    Stream.runForEach((frame) =>
      Effect.sync(() => {
        frames.push(frame)
        if (!frame.startsWith("block ")) return
        const start = performance.now()
        const until = start + Number(frame.slice("block ".length))
        // bounded by the clock, not a count: this is the app's synchronous work
        while (performance.now() < until) {
          // spin
        }
        blocks.push(Math.round(performance.now() - start))
      })
    )
  )
  return { frames, blocks, transitions, state: (yield* client.state.get)._tag, strays, warnings }
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(quiet))).then(
  (report) => emit(report),
  (error: unknown) => emit({ error: String(error) })
)
