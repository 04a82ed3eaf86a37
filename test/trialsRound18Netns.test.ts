/**
 * Round 18 trials: faults made by the kernel, in a private network namespace per trial
 * (test/support/netns.ts, netnsChild.ts): the server and the Client share that namespace's
 * 127.0.0.1; `lo down` is a partition (nothing ACKed: the sender's kernel keeps and retransmits),
 * `tbf` a slow link. Never the host's namespace. Skipped, with one loud warning, where this
 * process cannot make namespaces (not root, no CAP_NET_ADMIN).
 * - an open Client, heartbeat 1 s / 1 s, the link cut while idle, and while a backlog is written;
 * - a Connection (no heartbeat) on a cut link: write, send, sink, close, release; a Client's close;
 * - a slow link (tbf): no false heartbeat timeout while the kernel drains, and where it must come;
 * - connecting during the cut, and with no address at all.
 * Outcomes exact where the kernel's timing does not decide them; the times are in docs/trials.md
 * (round 18), never asserted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { canMakeNetns, netns, spawnInNetns } from "./support/netns.js"
import { peer } from "./support/peers.js"

const can = peer(canMakeNetns, "a private network namespace (ip netns add: root or CAP_NET_ADMIN)", "iproute2")

/** Runs `trial` in a fresh namespace; its one report, once the child exited 0 with nothing on stderr. */
const run = (trial: string, ...args: Array<string>) =>
  Effect.gen(function*() {
    const name = yield* netns
    const exit = yield* spawnInNetns(name, "netnsChild.ts", [trial, ...args])
    expect(exit.stderr).toBe("")
    expect(exit.code).toBe(0)
    const [report] = exit.reports
    expect(report.error).toBeUndefined()
    expect(report.strays).toEqual([])
    expect(report.warnings).toEqual([])
    return report
  }).pipe(Effect.scoped)

const tags = (seen: ReadonlyArray<{ state: string; error?: string }>) =>
  seen.map((s) => s.error === undefined ? s.state : `${s.state} ${s.error}`)

const labels = (prefix: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`)

/** The cut Client's path: the heartbeat finds it, one attempt times out, then (healed) Open. */
const cutPath = [
  "Connecting",
  "Open",
  "Backoff TimeoutError heartbeat",
  "Connecting",
  "Backoff TimeoutError open",
  "Connecting",
  "Open",
  "Closed"
]

describe.concurrent("round 18: faults in the kernel (a private network namespace)", () => {
  it.live.skipIf(!can)(
    "a Client cut while idle (lo down): TimeoutError heartbeat, the attempt during the cut TimeoutError open (a silent drop, no ENETUNREACH), healed: Open; the 5 frames written into the kernel during the cut are not failed: the dead socket's kernel delivers them late, on the old connection, once the link is back (each once, in order among themselves)",
    () =>
      Effect.gen(function*() {
        const report = yield* run("client-idle")
        expect(tags(report.seen)).toEqual(cutPath)
        expect(report.seen[2].message).toMatch(/^heartbeat timed out after 1s on ws:\/\/127\.0\.0\.1:\d+\/$/)
        expect(report.seen[4].message).toMatch(/^open timed out after 1s on ws:\/\/127\.0\.0\.1:\d+\/$/)
        // c1..c5 went into the old socket's kernel buffer during the cut ("written": not failed).
        // Closed with a FIN (ws's terminate), that socket lives on in the kernel, which retransmits
        // them (RTO 0.2 s doubling: 3.0 and 6.2 s after the cut) once the link is back: they reach
        // the server on the old connection, in the runs seen after d1..d5 of the new one (the order
        // between the two connections is the kernel's timing: not asserted; docs/trials.md).
        const received: Array<string> = report.received
        expect([...received].sort()).toEqual([...labels("a", 1, 5), ...labels("c", 1, 5), ...labels("d", 1, 5)])
        for (const prefix of ["a", "c", "d"]) {
          expect(received.filter((l) => l.startsWith(prefix))).toEqual(labels(prefix, 1, 5))
        }
        expect(received.slice(0, 5)).toEqual(labels("a", 1, 5))
        expect(report.failed).toEqual([])
        expect(report.failedCount).toBe(0)
        expect(report.connections).toBe(2)
        expect(report.leftover).toEqual([])
      }),
    90_000
  )

  it.live.skipIf(!can)(
    "a Client cut while a 2.5 MiB backlog goes through an 8 Mbit/s link: TimeoutError heartbeat once the backlog stops moving; failed 0 (the kernel had taken every frame); what arrives, each once and in order within its kind, is at least the frames before the cut and every frame after the heal",
    () =>
      Effect.gen(function*() {
        const report = yield* run("client-backlog")
        expect(tags(report.seen)).toEqual(cutPath)
        expect(report.backlogAtCut).toBe(0)
        const received: Array<string> = report.received
        expect(new Set(received).size).toBe(received.length)
        expect(received.slice(0, 5)).toEqual(labels("a", 1, 5))
        const bs = received.filter((l) => l.startsWith("b"))
        const cs = received.filter((l) => l.startsWith("c"))
        // what the dead socket's kernel held arrives late, or not yet when the child stops (8 s)
        expect(bs.length).toBeGreaterThanOrEqual(5)
        expect(bs).toEqual(labels("b", 1, bs.length))
        expect(cs).toEqual(labels("c", 1, cs.length))
        expect(received.filter((l) => l.startsWith("d"))).toEqual(labels("d", 1, 5))
        expect(report.failed).toEqual([])
        expect(report.failedCount).toBe(0)
      }),
    90_000
  )

  it.live.skipIf(!can)(
    "a Connection on a cut link: write returns at once, send and sink wait (no bound without a heartbeat), close ends in closeTimeout with 1006 (client, not clean), the waiting sink fails WriteFailed, a later write NotOpen, the release does not hang, no descriptor left but the server's own end",
    () =>
      Effect.gen(function*() {
        const report = yield* run("connection")
        expect(report.write).toBe("Right")
        expect(report.send).toBe("still waiting")
        expect(report.sinkStillWaiting).toBe(true)
        expect(report.closed).toEqual({ code: 1006, initiator: "client", wasClean: false })
        expect(report.sinkAfterClose).toBe("SendError WriteFailed")
        expect(report.readyState).toBe(3)
        expect(report.afterWrite).toBe("SendError NotOpen")
        // the server's end (same process) never heard the client's end go: the partition ate it
        expect(report.serverSide).toBe(1)
        expect(report.descriptorsLeft).toBe(report.serverSide)
      }),
    90_000
  )

  it.live.skipIf(!can)(
    "close of an open Client on a cut link (closeTimeout 1 s), 3 small frames and 4 of 1 MiB sent after the cut: Closed within closeTimeout; what the kernel could not take (the last frames) is returned and failed Closed, once each; the release does not hang, no descriptor left but the server's own end",
    () =>
      Effect.gen(function*() {
        const report = yield* run("client-close")
        expect(report.seen).toEqual(["Connecting", "Open", "Closed"])
        expect(report.state).toBe("Closed")
        const leftover: Array<string> = report.leftover
        // the kernel's send buffer took about 3 MiB: a suffix of f1..f4 was still in ws
        expect(leftover.length).toBeGreaterThanOrEqual(1)
        expect(leftover).toEqual(labels("f", 5 - leftover.length, 4))
        expect(report.failed).toEqual(leftover.map((l) => `${l} Closed`))
        expect(report.failedCount).toBe(leftover.length)
        expect(report.serverSide).toBe(1)
        expect(report.descriptorsLeft).toBe(report.serverSide)
      }),
    90_000
  )

  it.live.skipIf(!can)(
    "a 1 MiB backlog through a 2 Mbit/s tbf link, heartbeat 1 s / 2 s: the kernel drains it in steps, no heartbeat timeout, all 64 frames arrive in order on one connection",
    () =>
      Effect.gen(function*() {
        const report = yield* run("slow", "2mbit", "1048576", "2 seconds")
        expect(tags(report.seen)).toEqual(["Connecting", "Open", "Closed"])
        expect(report.received).toBe(64)
        expect(report.inOrder).toBe(true)
        expect(report.connections).toBe(1)
        expect(report.failed).toEqual([])
      }),
    90_000
  )

  it.live.skipIf(!can)(
    "a 256 KiB backlog through 256 kbit/s with a 1 s timeout (below what the kernel holds ahead of the probe, as the guide warns): TimeoutError heartbeat",
    () =>
      Effect.gen(function*() {
        const report = yield* run("slow", "256kbit", "262144", "1 second")
        expect(tags(report.seen)).toEqual(["Connecting", "Open", "Backoff TimeoutError heartbeat", "Closed"])
        expect(report.received).toBeLessThan(16)
      }),
    90_000
  )

  it.live.skipIf(!can)(
    "connecting during the cut: the kernel drops the SYN (no error), a Connection TimeoutError open, a Client's attempts TimeoutError open retried by the default schedule, Open at the attempt after the heal; no address on lo: ConnectError NetworkUnreachable (ENETUNREACH) at once, with its hint",
    () =>
      Effect.gen(function*() {
        const report = yield* run("connect")
        expect(report.raw).toBe("no answer within 1.5 s")
        expect(report.connection).toBe("TimeoutError open")
        expect(tags(report.seen)).toEqual([
          "Connecting",
          "Backoff TimeoutError open",
          "Connecting",
          "Backoff TimeoutError open",
          "Connecting",
          "Open",
          "Closed"
        ])
        // the default schedule: 1.1 s x 2^(n-1), jitter 0.9 (0.1 to 1.9 times)
        expect(report.seen[1].delay).toBeGreaterThanOrEqual(110)
        expect(report.seen[1].delay).toBeLessThanOrEqual(2090)
        expect(report.seen[3].delay).toBeGreaterThanOrEqual(220)
        expect(report.seen[3].delay).toBeLessThanOrEqual(4180)
        expect(report.unreachable.error).toBe("ConnectError NetworkUnreachable")
        expect(report.unreachable.message).toMatch(
          /^NetworkUnreachable connecting to ws:\/\/127\.0\.0\.1:(\d+)\/: connect ENETUNREACH 127\.0\.0\.1:\1 - Local \(0\.0\.0\.0:0\); no route to the host; check the network$/
        )
        expect(report.unreachableClient.error).toBe("ConnectError NetworkUnreachable")
      }),
    90_000
  )
})
