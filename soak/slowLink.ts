// `npx tsx soak/slowLink.ts [--interval S] [--timeout S] [--frames N]`: a backlog on a slow link
// (docs/trials.md, "the heartbeat on a slow link"). A TestServer that reads everything and sends
// nothing, a Client with a heartbeat (default 2 s / 2 s) that sends N frames of 64 KiB (default 48)
// at once. Run it inside a network namespace whose loopback is slow (root):
//   ip netns add slow && ip netns exec slow ip link set lo mtu 1500 up
//   ip netns exec slow tc qdisc add dev lo root tbf rate 1mbit burst 32kbit latency 400ms
//   ip netns exec slow npx tsx soak/slowLink.ts --interval 20 --timeout 10 --frames 96
// Prints each state the Client enters and the outcome; exits 0 when every frame arrived, none
// failed and the link stayed up, 1 otherwise. Bounded: gives up 180 s after the open.
import { Effect, Layer, Logger, Schedule, Stream } from "effect"
import { Client, NodeTransport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"

const argument = (name: string, fallback: number): number => {
  const index = process.argv.indexOf(name)
  const value = index === -1 ? fallback : Number(process.argv[index + 1])
  if (!(Number.isFinite(value) && value > 0)) throw new Error(`${name}: a positive number`)
  return value
}
const interval = argument("--interval", 2)
const timeout = argument("--timeout", 2)
const frames = Math.min(1024, Math.floor(argument("--frames", 48)))
const FRAME_BYTES = 64 * 1024

const started = Date.now()
const log = (line: string) => console.log(`${((Date.now() - started) / 1000).toFixed(1)} s  ${line}`)

const program = Effect.gen(function*() {
  const server = yield* TestServer.make({ handler: "ignore" })
  const client = yield* Client.make({
    url: server.url,
    retry: Schedule.spaced("1 hour"),
    heartbeat: { interval: `${interval} seconds`, timeout: `${timeout} seconds` },
    outbox: { capacity: frames, maxBytes: 2 * frames * FRAME_BYTES }
  })
  yield* client.awaitOpen
  yield* client.state.changes.pipe(
    Stream.runForEach((state) =>
      Effect.sync(() => log(state._tag === "Backoff" ? `Backoff: ${state.error.message}` : state._tag))
    ),
    Effect.forkScoped
  )
  log(`${frames} frames of 64 KiB, heartbeat ${interval} s / ${timeout} s`)
  for (let index = 0; index < frames; index++) yield* client.enqueue(new Uint8Array(FRAME_BYTES))
  for (let turn = 0; turn < 360; turn++) {
    yield* Effect.sleep("500 millis")
    const received = (yield* server.received).length
    if (received >= frames || (yield* client.failed) > 0) break
  }
  const received = (yield* server.received).length
  const failed = yield* client.failed
  const connections = yield* server.accepted
  log(`received ${received} of ${frames}, failed ${failed}, connections ${connections}`)
  return received === frames && failed === 0 && connections === 1
})

const quiet = Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))
Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(quiet))).then(
  (passed) => process.exit(passed ? 0 : 1),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
