/**
 * Round 31, against a real peer: a feed written the way Python services write one. Python
 * websockets 10.4 waits for the client's credentials, answers "ok" and sends its snapshot right
 * behind the answer; the app's `onOpen` sends the credentials and reads the answer with
 * `Stream.runHead(connection.messages)`, as the guide says to authenticate. The server is then
 * killed and started again on the same port: the Client reconnects, `onOpen` runs again, and the
 * second snapshot follows the first. Before round 31 the run that read the answer took the
 * snapshot's frames waiting with it and dropped them: the app's `messages` had none of them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Logger, Option, Schedule, Stream } from "effect"
import { Client, NodeTransport } from "../src/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"
import {
  echoScript,
  hasWebsockets,
  listen,
  scriptFile,
  SERVE_HANDLER,
  signalPython,
  spawnPython
} from "./support/python.js"

const SNAPSHOT = 50

/** Answers "auth" with "ok", then `SNAPSHOT` frames `s<n>`; prints `SENT` once they are sent. */
const script = `import asyncio, sys, websockets
port = int(sys.stdin.readline())
async def handler(ws):
    if await ws.recv() != "auth":
        await ws.close(4001, "no auth")
        return
    await ws.send("ok")
    for n in range(${SNAPSHOT}):
        await ws.send("s%d" % n)
    sys.stdout.write("SENT\\n")
    async for _ in ws:
        pass
${SERVE_HANDLER}`

const snapshot = Array.from({ length: SNAPSHOT }, (_, n) => `s${n}`)

describe.skipIf(!hasWebsockets)("round 31: an onOpen handshake against Python websockets", () => {
  it.live(
    `onOpen sends "auth" and reads "ok" with Stream.runHead; the ${SNAPSHOT} frames of the snapshot behind it are the Client's messages, and so are the second snapshot's after the server is killed and restarted`,
    () =>
      withNoHandlesLeft(
        Effect.gen(function*() {
          const path = yield* scriptFile("feed.py", script)
          let sent = 0
          const first = yield* spawnPython(path, (line) => line === "SENT" && sent++)
          const port = yield* listen(first, 0)
          const answers: Array<Option.Option<unknown>> = []
          const client = yield* Client.make({
            url: `ws://127.0.0.1:${port}`,
            heartbeat: false,
            retry: Schedule.spaced("20 millis"),
            onOpen: (connection) =>
              Effect.gen(function*() {
                yield* connection.send("auth")
                // The snapshot waits behind the answer, as when it comes in the same read.
                yield* awaitTrue(
                  Effect.map(connection.activity, (count) => count === SNAPSHOT + 1),
                  "the answer and the snapshot"
                )
                answers.push(yield* Stream.runHead(connection.messages))
              })
          })
          const read = (count: number) =>
            Effect.map(
              Stream.runCollect(Stream.interruptAfter(Stream.take(client.messages, count), "10 seconds")),
              Chunk.toArray
            )
          expect(yield* read(SNAPSHOT)).toEqual(snapshot)

          yield* signalPython(first, "SIGKILL")
          const second = yield* spawnPython(path, (line) => line === "SENT" && sent++)
          yield* listen(second, port)
          expect(yield* read(SNAPSHOT)).toEqual(snapshot)
          expect(answers).toEqual([Option.some("ok"), Option.some("ok")])
          expect(sent).toBe(2)
          yield* client.close()
        }).pipe(Effect.provide(Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))))
      ),
    60_000
  )
})

describe.skipIf(!hasWebsockets)("round 32: short reads of a burst's answers from Python websockets", () => {
  const N = 200
  const requests = Array.from({ length: N }, (_, n) => `r${n}`)

  it.live(
    `${N} requests sent in a burst, the echoes read back by short runs of client.messages (Stream.runHead each, then Stream.take of 10 and of 50): every answer once, in order`,
    () =>
      withNoHandlesLeft(
        Effect.gen(function*() {
          let echoed = 0
          const server = yield* spawnPython(
            yield* scriptFile("echo.py", echoScript(true)),
            (line) => line.startsWith("M ") && echoed++
          )
          const port = yield* listen(server, 0)
          const client = yield* Client.make({ url: `ws://127.0.0.1:${port}`, heartbeat: false })
          // A short run: Stream.runHead alone (size 1), else Stream.take(size); bounded, so that a
          // lost answer ends the reads (before round 31 the first runHead took the whole pile).
          const short = (size: number) => {
            const answers = Stream.interruptAfter(client.messages, "2 seconds")
            return size === 1
              ? Effect.map(Stream.runHead(answers), (head) => Option.toArray(head))
              : Effect.map(Stream.runCollect(Stream.take(answers, size)), Chunk.toArray)
          }
          const read: Array<unknown> = []
          let sent = 0
          for (const size of [1, 10, 50]) {
            // A burst, as a caller fires requests and only then reads: the answers pile up.
            yield* Effect.forEach(requests, (request) => client.enqueue(request), { discard: true })
            sent += N
            yield* awaitTrue(Effect.sync(() => echoed === sent), "Python echoed the burst")
            yield* Effect.sleep("100 millis")
            for (let n = 0; n < N; n += size) {
              const answers = yield* short(size)
              read.push(...answers)
              if (answers.length < size) break
            }
          }
          expect(read).toEqual([...requests, ...requests, ...requests])
          expect(yield* client.failed).toBe(0)
          yield* client.close()
        }).pipe(Effect.provide(Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))))
      ),
    60_000
  )
})

describe.skipIf(!hasWebsockets)("round 33: probe: false against Python websockets' own keepalive pings", () => {
  // Python websockets pings every `ping_interval` by protocol ping (20 s by default; 0.3 s here). A
  // user who takes those as the link's heartbeat sets `probe: false` with the same interval: the
  // server's pings (answered by ws) must count as signs of life, or the link drops every 0.6 s.
  const pinging = `import asyncio, sys, websockets
port = int(sys.stdin.readline())
async def handler(ws):
    async for _ in ws:
        pass
async def main():
    async with websockets.serve(handler, "127.0.0.1", port, ping_interval=0.3, ping_timeout=10) as server:
        sys.stdout.write("PORT %d\\n" % server.sockets[0].getsockname()[1])
        await asyncio.Future()
asyncio.run(main())
`
  it.live(
    "no frame but the server's protocol pings: Open over ten of its intervals; frozen (SIGSTOP), dropped with TimeoutError heartbeat",
    () =>
      withNoHandlesLeft(
        Effect.gen(function*() {
          const server = yield* spawnPython(yield* scriptFile("pinging.py", pinging), () => {})
          const port = yield* listen(server, 0)
          const transitions: Array<string> = []
          const client = yield* Client.make({
            url: `ws://127.0.0.1:${port}`,
            retry: Schedule.spaced("1 hour"),
            heartbeat: { interval: "300 millis", timeout: "300 millis", probe: false }
          })
          yield* Effect.forkScoped(Stream.runForEach(client.events, (event) =>
            Effect.sync(() => {
              if (event._tag === "Transition") {
                transitions.push(
                  event.to._tag === "Backoff"
                    ? `Backoff ${event.to.error._tag} ${String(Reflect.get(event.to.error, "operation"))}`
                    : event.to._tag
                )
              }
            })))
          yield* client.awaitOpen
          yield* Effect.sleep("3 seconds")
          expect(transitions).toEqual(["Connecting", "Open"])
          server.child.kill("SIGSTOP")
          yield* awaitTrue(Effect.sync(() => transitions.length > 2), "the drop")
          expect(transitions).toEqual(["Connecting", "Open", "Backoff TimeoutError heartbeat"])
          yield* client.close()
        }).pipe(Effect.provide(Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))))
      ),
    60_000
  )
})
