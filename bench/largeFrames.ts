// Where the time goes with large frames: the same pipelined echo as the throughput section, for
// raw ws, raw ws with its reads handled in a microtask, lifeline's Node transport driven by plain
// callbacks (no fiber, no Stream), and lifeline Connection reading `messages`. They take turns in
// one process against one echo server; prints the median time per run, the ratio to raw ws and
// how busy the main thread was (event-loop utilisation).
//
//   node --expose-gc --import tsx bench/largeFrames.ts [bytes] [frames per run] [runs] [text|binary] [full|none]
//
// Defaults: 65536 bytes, 2560 frames (20 windows of 128), 8 runs, text, and a full garbage
// collection before each run as the throughput section does (`none`: no forced collection; the
// variants take turns in another order each run, so each meets the others' garbage alike). Loopback only.
import { performance } from "node:perf_hooks"
import WebSocket from "ws"
import { connection } from "./contenders/connection.js"
import { ws } from "./contenders/ws.js"
import { NodeTransport } from "./lifeline.js"
import { startEchoServer } from "./server.js"
import { windowFor } from "./throughput.js"
import type { Payload } from "./util.js"
import { forceGc, makePayload, median, sizeOf, turnOrder, withTimeout } from "./util.js"

const bytes = Number(process.argv[2] ?? 65536)
const frames = Number(process.argv[3] ?? 2560)
const runs = Number(process.argv[4] ?? 8)
const kind = process.argv[5] === "binary" ? "binary" : "text"
const collectBeforeRuns = process.argv[6] !== "none"
const RUN_LIMIT_MS = 60_000

type Run = (url: string, payload: Payload, count: number, window: number) => Promise<number>

/** Raw ws, but the echoes are read (and the window refilled) in a microtask, a batch at a time. */
const wsDeferred: Run = (url, payload, count, window) =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once("error", reject)
    socket.once("open", () => {
      let sent = 0
      let echoed = 0
      let queued: Array<WebSocket.RawData | string> = []
      const fill = (): void => {
        while (sent < count && sent - echoed < window) {
          socket.send(payload)
          sent++
        }
      }
      const drain = (): void => {
        const batch = queued
        queued = []
        for (const message of batch) sizeOf(message as string | Buffer)
        echoed += batch.length
        if (echoed >= count) {
          socket.close()
          resolve(performance.now() - started)
        } else if (sent - echoed <= window / 2) fill()
      }
      socket.on("message", (data, isBinary) => {
        if (queued.push(isBinary ? data : data.toString()) === 1) queueMicrotask(drain)
      })
      const started = performance.now()
      fill()
    })
  })

/** lifeline's Node transport with plain callbacks: what the Connection adds is everything else. */
const transportOnly: Run = (url, payload, count, window) =>
  new Promise((resolve, reject) => {
    let sent = 0
    let echoed = 0
    let started = 0
    const fill = (): void => {
      while (sent < count && sent - echoed < window) {
        socket.send(payload)
        sent++
      }
    }
    const opened = NodeTransport.make.open({
      url: new URL(url),
      protocols: [],
      headers: {},
      maxPayload: 100 * 1024 * 1024
    }, {
      onOpen: () => {
        started = performance.now()
        fill()
      },
      onMessage: (message) => {
        sizeOf(message)
        echoed++
        if (echoed === count) {
          socket.close(1000, "")
          resolve(performance.now() - started)
        } else if (sent - echoed <= window / 2) fill()
      },
      onPong: () => {},
      onHandshakeFailure: (failure) => reject(new Error(failure.detail)),
      onProtocolError: () => {},
      onClose: () => {}
    })
    if (opened._tag === "Left") throw new Error(opened.left.detail)
    const socket = opened.right
  })

const variants: ReadonlyArray<readonly [string, Run]> = [
  ["raw ws", ws.throughput],
  ["raw ws, reads in a microtask", wsDeferred],
  ["lifeline transport, callbacks", transportOnly],
  ["lifeline Connection, messages", connection.throughput]
]

const server = await startEchoServer()
try {
  const payload = makePayload(bytes, kind)
  const window = windowFor(bytes)
  for (const [, run] of variants) await run(server.url, payload, Math.max(100, Math.round(frames / 4)), window)
  const times = new Map<string, Array<number>>()
  const busy = new Map<string, Array<number>>()
  for (let round = 0; round < runs; round++) {
    for (const index of turnOrder(round, variants.length)) {
      const [label, run] = variants[index]!
      if (collectBeforeRuns) forceGc()
      const before = performance.eventLoopUtilization()
      const elapsed = await withTimeout(run(server.url, payload, frames, window), RUN_LIMIT_MS, label)
      const use = performance.eventLoopUtilization(before)
      ;(times.get(label) ?? times.set(label, []).get(label)!).push(elapsed)
      ;(busy.get(label) ?? busy.set(label, []).get(label)!).push(use.utilization)
    }
  }
  const baseline = median(times.get("raw ws")!)
  console.log(
    `${bytes} B ${kind}, ${frames} frames per run, window ${window}, median of ${runs} runs, ${
      collectBeforeRuns ? "full GC before each run" : "no forced GC"
    }`
  )
  for (const [label] of variants) {
    const ms = median(times.get(label)!)
    console.log(
      `${label.padEnd(32)} ${ms.toFixed(0).padStart(6)} ms  ${(baseline / ms).toFixed(2)}x raw ws  main thread busy ${
        (median(busy.get(label)!) * 100).toFixed(0)
      } %`
    )
  }
} finally {
  await server.stop()
}
process.exit(0)
