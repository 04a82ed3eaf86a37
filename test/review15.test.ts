/**
 * Review of rounds 13-15, against a real peer: Debian's Python `websockets` 10.4 as a feed that
 * sends as fast as it can and never stops, read the way the README's quick start reads it
 * (`Stream.take(messages, 10)`, then the scope ends). Round 13 fixed the close with a full inbound
 * buffer against the test kit's server; here the peer is another implementation, which reads our
 * close frame while its own sends wait on TCP, and says what close it got. Before that fix the
 * paused socket never read the peer's close frame: `closeTimeout`, then terminate, and the peer
 * saw 1006. Loopback only; bounded.
 *
 * Found while writing it: a feed whose send loop never yields (`while True: await ws.send(...)`,
 * its buffer always with room once we read on) starves its own reader in asyncio, never reads our
 * close frame and sends on: that close still ends at `closeTimeout`, terminated, 1006 (the bound
 * the release promises). The feed below yields between frames, as one whose data comes from
 * elsewhere does.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Client, Connection } from "../src/index.js"
import { provideNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { hasWebsockets, listen, SERVE_HANDLER, spawnPython } from "./support/python.js"

/** Sends `n <i> xxx...` (about 200 bytes) for ever; prints `CLOSE <code> <reason>` when the link ends. */
const FEED = `import asyncio, sys, websockets
port = int(sys.stdin.readline())
async def handler(ws):
    i = 0
    try:
        while True:
            await ws.send("n %d %s" % (i, "x" * 190))
            i += 1
            # A feed's data comes from elsewhere: it yields. (Without it, a send whose buffer has
            # room never yields, and this loop starves its own reader of our close frame.)
            await asyncio.sleep(0)
    except websockets.ConnectionClosed:
        pass
    sys.stdout.write("CLOSE %s %s\\n" % (ws.close_code, ws.close_reason))
${SERVE_HANDLER}`

const feed = Effect.gen(function*() {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-r15py-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const script = Path.join(dir, "feed.py")
  Fs.writeFileSync(script, FEED)
  const closes: Array<string> = []
  const server = yield* spawnPython(script, (line) => {
    if (line.startsWith("CLOSE ")) closes.push(line.slice(6))
  })
  const port = yield* listen(server, 0)
  return { url: `ws://127.0.0.1:${port}`, closes }
})

const tenFrames = <E, R>(messages: Stream.Stream<string | Uint8Array, E, R>) =>
  Effect.map(
    Stream.runCollect(Stream.take(messages, 10)),
    (chunk) => Chunk.toReadonlyArray(chunk).map((frame) => String(frame).split(" ").slice(0, 2).join(" "))
  )

const expected = Array.from({ length: 10 }, (_, i) => `n ${i}`)

describe("review of rounds 13-15: a Python feed that never stops, read with Stream.take", () => {
  it.scopedLive.skipIf(!hasWebsockets)(
    "Connection, then Client: take 10 while the feed fills the inbound buffer, then close: the close handshake completes (Disconnected 1000, clean), not closeTimeout and 1006; the feed got 1000",
    () =>
      Effect.gen(function*() {
        const server = yield* feed
        // closeTimeout 10 s (room for a loaded machine): were the peer's close frame not read, the release would wait it out,
        // terminate, and report 1006, not clean.
        const connection = { closeTimeout: "10 seconds" } as const
        const direct = yield* Effect.scoped(Effect.gen(function*() {
          const opened = yield* Connection.connect(server.url, connection)
          const frames = yield* tenFrames(opened.messages)
          // The feed has filled the inbound buffer by now: the socket is paused.
          yield* awaitTrue(Effect.map(opened.activity, (count) => count >= 1024), "the inbound buffer fills")
          return { frames, closed: yield* opened.close() }
        }))
        expect(direct.frames).toEqual(expected)
        expect(direct.closed).toMatchObject({ code: 1000, wasClean: true, initiator: "client" })

        // The Client the README's way: the scope's end closes it; its connection, from onOpen, says how.
        let seen: Connection.Connection | undefined
        const viaClient = yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Client.make({
            url: server.url,
            connection,
            onOpen: (opened) => Effect.sync(() => void (seen = opened))
          })
          return yield* tenFrames(client.messages)
        }))
        expect(viaClient).toEqual(expected)
        expect(yield* seen!.closed).toMatchObject({ code: 1000, wasClean: true, initiator: "client" })
        yield* awaitTrue(Effect.sync(() => server.closes.length === 2), "the feed saw both closes")
        expect(server.closes).toEqual(["1000 ", "1000 "])
      }).pipe(provideNode),
    30_000
  )
})
