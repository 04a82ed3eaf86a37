// A consumer slower than its server, in a small heap:
//   node --max-old-space-size=64 --import tsx test/support/memoryChild.ts <url> <seconds> [inboundCapacity]
// One Client; its `messages` reader takes 1 ms per frame (an Effect.sleep: the app's own work),
// for `seconds` from the first frame, while the server streams "<seq>:xxx..." text frames of 1 KiB
// as fast as the link takes them. The heap and RSS are sampled every 25 ms. Prints one JSON line:
// frames read, whether they were consecutive, and the high-water marks.
import { Deferred, Effect, FiberId, Stream } from "effect"
import type { Connection } from "../../src/index.js"
import { Client } from "../../src/index.js"
import { emit, quiet, strays, warnings } from "./opsChild.js"

const [url, secondsText, capacityText, bytesText] = process.argv.slice(2)
const seconds = Number(secondsText)

let heapMax = 0
let rssMax = 0
const sample = () => {
  const usage = process.memoryUsage()
  heapMax = Math.max(heapMax, usage.heapUsed)
  rssMax = Math.max(rssMax, usage.rss)
}
sample()
const heapStart = heapMax
const sampler = setInterval(sample, 25)
let readDone = 0

const opened = Deferred.unsafeMake<Connection.Connection>(FiberId.none)

const program = Effect.gen(function*() {
  const client = yield* Client.make({
    url: url!,
    onOpen: (connection) => Deferred.succeed(opened, connection),
    ...(capacityText === undefined ? {} : {
      connection: {
        inboundCapacity: Number(capacityText),
        ...(bytesText === undefined ? {} : { inboundBytes: Number(bytesText) })
      }
    })
  })
  let read = 0
  let consecutive = true
  let first = 0
  yield* client.messages.pipe(
    Stream.map(String),
    Stream.takeWhile(() => read === 0 || performance.now() - first < seconds * 1000),
    Stream.runForEach((frame) =>
      Effect.gen(function*() {
        if (read === 0) first = performance.now()
        const seq = Number(frame.slice(0, frame.indexOf(":")))
        if (seq !== read) consecutive = false
        read++
        yield* Effect.sleep("1 millis")
      })
    )
  )
  readDone = performance.now()
  return { read, consecutive, state: (yield* client.state.get)._tag }
})

Effect.runPromise(
  Effect.scoped(program).pipe(
    Effect.provide(quiet),
    // How the connection ended once the Client closed (its scope's close: 1000).
    Effect.zip(Effect.flatMap(Deferred.await(opened), (connection) => connection.closed))
  )
).then(
  ([report, closed]) => {
    clearInterval(sampler)
    sample()
    const closeMs = Math.round(performance.now() - readDone)
    emit({
      ...report,
      closed: `${closed.code} ${closed.wasClean}`,
      heapStart,
      heapMax,
      rssMax,
      closeMs,
      strays,
      warnings
    })
  },
  (error: unknown) => {
    clearInterval(sampler)
    emit({ error: String(error) })
  }
)
