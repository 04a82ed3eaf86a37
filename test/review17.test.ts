/**
 * The reread of round 16, against a real peer: Debian's Python `websockets` 10.4 reading slowly
 * (10 ms every 4 messages of 16 KiB: about 6 MB/s), written to the way users write a burst, `Stream.run(source, sink)`,
 * over the browser transport (Node's own `WebSocket`), whose writes now complete at the
 * high-water mark. Frames of two-byte characters, so that the transport's count of what it handed
 * over (UTF-8, as `bufferedAmount` counts) is what is tested, not only ASCII. What the peer got is
 * checked there, frame by frame: every one once, in order, whole. Loopback only; bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Stream } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { BrowserTransport, Client, Connection } from "../src/index.js"
import { awaitTrue } from "./support/poll.js"
import { hasWebsockets, listen, spawnPython } from "./support/python.js"

const provideBrowser = Effect.provide(Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger)))

/** Reads `<i>:` + 8,192 x "é" slowly; prints `GOT <frames> <in order and whole> <close code>` at the end. */
const SLOW_READER = `import asyncio, sys, websockets
port = int(sys.stdin.readline())
async def handler(ws):
    count, good = 0, True
    try:
        async for message in ws:
            index, _, body = message.partition(":")
            good = good and index == str(count) and body == "\\u00e9" * 8192
            count += 1
            if count % 4 == 0:
                await asyncio.sleep(0.01)
    except websockets.ConnectionClosed:
        pass
    sys.stdout.write("GOT %d %s %s\\n" % (count, good, ws.close_code))
async def main():
    async with websockets.serve(handler, "127.0.0.1", port, max_size=None) as server:
        sys.stdout.write("PORT %d\\n" % server.sockets[0].getsockname()[1])
        await asyncio.Future()
asyncio.run(main())
`

const slowReader = Effect.gen(function*() {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-r17py-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const script = Path.join(dir, "reader.py")
  Fs.writeFileSync(script, SLOW_READER)
  const got: Array<string> = []
  const server = yield* spawnPython(script, (line) => {
    if (line.startsWith("GOT ")) got.push(line.slice(4))
  })
  const port = yield* listen(server, 0)
  return { url: `ws://127.0.0.1:${port}`, got }
})

const FRAMES = 600
/** 16 KiB of UTF-8 each (8,192 two-byte characters); 9.6 MB in all. */
const frames = Stream.range(0, FRAMES - 1).pipe(Stream.map((index) => `${index}:${"é".repeat(8192)}`))
const FRAME_BYTES = 3 + 1 + 2 * 8192
const MARK = 256 * 1024
/** Node's own WebSocket counts each frame's header (8 bytes here) in `bufferedAmount`, which browsers do not. */
const HEADERS = 8 * (Math.ceil(MARK / FRAME_BYTES) + 1)

describe("reread of round 16: a burst through a sink to a real peer that reads slowly (browser transport)", () => {
  it.scopedLive.skipIf(!hasWebsockets)(
    "Connection: Stream.run(frames, connection.sink) of 600 frames of 16 KiB of 'é' (writeHighWaterMark 256 KiB): bufferedAmount, read before each frame, never above the mark plus one frame; the peer gets all 600, in order, whole; then 1000",
    () =>
      Effect.gen(function*() {
        const peer = yield* slowReader
        let highest = 0
        yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(peer.url, { writeHighWaterMark: MARK })
          // A frame at a time, the buffer read before each goes to the sink.
          const sampled = Stream.rechunk(frames, 1).pipe(Stream.tap(() =>
            Effect.map(connection.bufferedAmount, (buffered) => void (highest = Math.max(highest, buffered)))
          ))
          yield* Stream.run(sampled, connection.sink)
        }))
        yield* awaitTrue(
          Effect.sync(() =>
            peer.got.length === 1
          ),
          "the peer's count",
          20_000
        )
        expect(peer.got).toEqual([`${FRAMES} True 1000`])
        // 9.6 MB went through a buffer that never held more than the mark and a frame. (How close to
        // the mark it came depends on the kernel's share: it takes several MB ahead of this slow
        // reader, so the socket's own buffer stayed under the mark in some runs.)
        expect(highest).toBeLessThanOrEqual(MARK + FRAME_BYTES + HEADERS)
      }).pipe(provideBrowser),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsockets)(
    "Client: Stream.run(frames, client.sink) of the same 600 frames, then close(): the sink completes once all are queued or written (the outbox holds the rest, within its bounds), close writes what is queued before its close frame and returns nothing unsent; the peer gets all 600, in order, whole, then 1000; failed 0",
    () =>
      Effect.gen(function*() {
        const peer = yield* slowReader
        const outcome = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Client.make({ url: peer.url, connection: { writeHighWaterMark: MARK } })
          // Open first: a scope that ends while the Client still connects fails what is queued.
          yield* client.awaitOpen
          yield* Stream.run(frames, client.sink)
          const queued = yield* client.outboxSize
          const unsent = yield* client.close()
          return { queued, unsent: unsent.length, failed: yield* client.failed }
        }))
        // Most of the 9.6 MB waited in the outbox when the sink completed (the peer reads slowly).
        expect(outcome.queued).toBeGreaterThan(0)
        expect(outcome.queued).toBeLessThanOrEqual(FRAMES)
        expect({ unsent: outcome.unsent, failed: outcome.failed }).toEqual({ unsent: 0, failed: 0 })
        yield* awaitTrue(Effect.sync(() => peer.got.length === 1), "the peer's count", 20_000)
        expect(peer.got).toEqual([`${FRAMES} True 1000`])
      }).pipe(provideBrowser),
    30_000
  )
})
