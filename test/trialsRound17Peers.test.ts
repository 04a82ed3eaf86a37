/**
 * Round 17: two more real peers users' backends often are, Debian's Python aiohttp 3.8.4 and
 * Tornado 6.2 (servers in `test/support/aiohttpPeer.py` and `tornadoPeer.py`), against the Client
 * and Connection over the Node transport: their heartbeats, limits, closes, rejections,
 * subprotocols, compression, a slow reader, a kill and restart, a graceful shutdown. What each
 * does is in docs/trials.md ("round 17"). Loopback only; every wait bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Schedule, Stream } from "effect"
import { Client, Connection } from "../src/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { provideNode } from "./support/node.js"
import { awaitTrue } from "./support/poll.js"
import { awaitLine, hasAiohttp, hasTornado, type PeerKind, pythonPeer } from "./support/pythonPeers.js"

const peers: ReadonlyArray<readonly [PeerKind, boolean]> = [["aiohttp", hasAiohttp], ["tornado", hasTornado]]

/** Retries every 200 ms: the default schedule's first delays (about 1.1 s, then 2.2 s) would make the file slow. */
const quickRetry = Schedule.spaced("200 millis")

describe.each(peers)("round 17: %s as a peer, the server killed and restarted", (kind, present) => {
  it.scopedLive.skipIf(!present)(
    "SIGKILL, a send each 100 ms meanwhile, the server restarted on the same port: the Client reconnects; every send issued while it was not Open arrives once, after the restart; each send arrives once or is reported failed; none twice, none out of order",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer(kind)
        const client = yield* Client.make({ url: peer.url("/echo"), retry: quickRetry })
        yield* client.awaitOpen
        const COUNT = 30
        const outcomes: Array<Either.Either<void, unknown> | undefined> = Array.from({ length: COUNT }, () => undefined)
        const openAtSend: Array<boolean> = []
        const sender = yield* Effect.fork(Effect.forEach(Array.from({ length: COUNT }, (_, i) => i), (i) =>
          Effect.gen(function*() {
            openAtSend[i] = (yield* client.state.get)._tag === "Open"
            yield* Effect.forkScoped(
              Effect.either(client.send(`m${i}`)).pipe(
                Effect.map((outcome) => void (outcomes[i] = outcome))
              )
            )
            yield* Effect.sleep("100 millis")
          }), { discard: true }))
        yield* awaitLine(peer, (line) =>
          line.startsWith("GOT echo m5 "), "m5 reached the server")
        yield* peer.kill
        const down = yield* awaitState(client, (state) => state._tag !== "Open")
        expect(down._tag).toBe("Backoff")
        // Let several sends wait in the outbox, then bring the server back.
        yield* awaitTrue(Effect.sync(() => openAtSend.length >= 15), "ten sends made", 2000)
        yield* peer.restart
        yield* sender.await
        yield* awaitTrue(Effect.sync(() => outcomes.every((outcome) => outcome !== undefined)), "every send settled")
        // The last send goes to the restarted server: once it is there, all before it that will come are.
        const received = () => peer.linesOf("GOT echo ").map((line) => Number(line.split(" ")[0]!.slice(1)))
        yield* awaitTrue(Effect.sync(() => received().includes(COUNT - 1)), "the last send reached the server")
        const got = received()
        // In order, none twice.
        expect(got).toEqual([...got].sort((a, b) => a - b))
        expect(new Set(got).size).toBe(got.length)
        // Each send arrived once or was reported: a failure is a SendError the server never got.
        const failed = outcomes.flatMap((outcome, i) => outcome !== undefined && Either.isLeft(outcome) ? [i] : [])
        for (const i of failed) expect(Either.flip(outcomes[i]!)).toMatchObject({ right: { _tag: "SendError" } })
        expect(failed.filter((i) => got.includes(i))).toEqual([])
        expect(yield* client.failed).toBe(failed.length)
        // Every send made while not Open waited in the outbox and arrived after the restart.
        const queued = openAtSend.flatMap((open, i) => open ? [] : [i])
        expect(queued.length).toBeGreaterThanOrEqual(5)
        expect(queued.filter((i) => !got.includes(i))).toEqual([])
        // Neither arrived nor failed: only a send written to the socket as the server died may be
        // so (written means handed to the kernel: the guide's "Failure modes"), at most one here.
        const lost = Array.from({ length: COUNT }, (_, i) => i).filter((i) => !got.includes(i) && !failed.includes(i))
        expect(lost.every((i) => openAtSend[i])).toBe(true)
        expect(lost.length).toBeLessThanOrEqual(1)
      }).pipe(provideNode),
    20_000
  )

  it.scopedLive.skipIf(!present)(
    "graceful shutdown (SIGTERM: on_shutdown / each handler closes with 1001): Backoff with the server's close (Tornado: 1001; aiohttp: 1000, its own race), retried as transient, then Open again on the restarted server",
    () =>
      Effect.gen(function*() {
        const peer = yield* pythonPeer(kind)
        const client = yield* Client.make({ url: peer.url("/echo"), retry: quickRetry })
        yield* client.awaitOpen
        const firstBackoff = yield* Effect.fork(awaitState(client, isTag("Backoff")))
        yield* peer.terminate
        expect(yield* firstBackoff).toMatchObject({
          _tag: "Backoff",
          attempt: 1,
          // aiohttp's own on_shutdown idiom (ws.close(code=1001) from on_shutdown) sends 1000: the
          // close wakes the handler's `async for`, the handler returns, and aiohttp closes the
          // returned socket with its default 1000 before on_shutdown's close gets to write.
          error: kind === "aiohttp"
            ? { _tag: "Disconnected", code: 1000, reason: "", wasClean: true, initiator: "server" }
            : { _tag: "Disconnected", code: 1001, reason: "server shutting down", wasClean: true, initiator: "server" }
        })
        yield* peer.restart
        const open = yield* awaitState(client, isTag("Open"))
        expect(open._tag).toBe("Open")
        yield* client.send("after")
        yield* awaitLine(peer, (line) => line.startsWith("GOT echo after "), "the restarted server got 'after'")
      }).pipe(provideNode),
    15_000
  )
})
