/**
 * Round 8, against a real peer that compresses: Debian's Python `websockets` 10.4 negotiates
 * permessage-deflate when offered (its default). What a user writes: a burst through
 * `Stream.run(client.sink)`, read back by one reader; the same with `perMessageDeflate: false`; and
 * a peer that sends a message whose compressed frame is small and whose inflated size is over
 * `maxPayload`. Loopback only; bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Client } from "../src/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { provideNode } from "./support/node.js"
import { hasWebsockets, listen, spawnPython } from "./support/python.js"

/** Prints the extensions of each connection (`EXT <names>`); echoes, but answers "big" with 2 MB of "x". */
const SERVER = `import asyncio, sys, websockets
port = int(sys.stdin.readline())
async def handler(ws):
    sys.stdout.write("EXT %s\\n" % ",".join(e.name for e in ws.extensions))
    async for m in ws:
        await ws.send("x" * 2000000 if m == "big" else m)
async def main():
    async with websockets.serve(handler, "127.0.0.1", port, max_size=None) as server:
        sys.stdout.write("PORT %d\\n" % server.sockets[0].getsockname()[1])
        await asyncio.Future()
asyncio.run(main())
`

/** The server, and the extensions each of its connections negotiated. */
const pythonServer = Effect.gen(function*() {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-r8py-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const script = Path.join(dir, "server.py")
  Fs.writeFileSync(script, SERVER)
  const extensions: Array<string> = []
  const server = yield* spawnPython(script, (line) => {
    if (line.startsWith("EXT")) extensions.push(line.slice(4))
  })
  const port = yield* listen(server, 0)
  return { url: `ws://127.0.0.1:${port}`, extensions }
})

/** 400 lines of about 4 KiB of JSON-like text each: compressible, as real payloads are. */
const COUNT = 400
const line = (i: number) => JSON.stringify({ i, rows: Array.from({ length: 60 }, (_, k) => ({ k, name: `row ${k}` })) })

const burstAndEcho = (client: Client.Client) =>
  Effect.gen(function*() {
    yield* client.awaitOpen
    const echoes = yield* Effect.fork(Stream.runCollect(Stream.take(client.messages, COUNT)))
    yield* Stream.range(1, COUNT).pipe(Stream.map(line), Stream.run(client.sink))
    const got = Chunk.toReadonlyArray(yield* echoes.await.pipe(Effect.flatten, Effect.timeout("20 seconds")))
    return { got, failed: yield* client.failed }
  })

describe("round 8: a real peer that compresses (Python websockets 10.4)", () => {
  it.scopedLive.skipIf(!hasWebsockets)(
    "a burst through Stream.run(client.sink), read back by one reader: every line once, in order, with permessage-deflate negotiated by default and not with perMessageDeflate: false",
    () =>
      Effect.gen(function*() {
        const server = yield* pythonServer
        const expected = Array.from({ length: COUNT }, (_, k) => line(k + 1))
        for (const connection of [{}, { perMessageDeflate: false }]) {
          const outcome = yield* Effect.scoped(Effect.flatMap(
            Client.make({ url: server.url, connection }),
            burstAndEcho
          ))
          expect(outcome.failed).toBe(0)
          expect(outcome.got).toEqual(expected)
        }
        expect(server.extensions).toEqual(["permessage-deflate", ""])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsockets)(
    "a compressed frame whose inflated size (2 MB) is over maxPayload (1 MB): Closed by Disconnected 1009, not retried",
    () =>
      Effect.gen(function*() {
        const server = yield* pythonServer
        const client = yield* Client.make({ url: server.url, connection: { maxPayload: 1_000_000 } })
        yield* client.awaitOpen
        yield* client.send("big")
        const closed = yield* awaitState(client, isTag("Closed"), "20 seconds")
        expect(closed).toMatchObject({
          _tag: "Closed",
          error: { _tag: "Some", value: { _tag: "Disconnected", code: 1009, initiator: "client" } }
        })
        expect(server.extensions).toEqual(["permessage-deflate"])
      }).pipe(provideNode),
    30_000
  )
})
