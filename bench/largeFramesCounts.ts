// What lifeline's Connection does per large frame beyond raw ws, counted rather than timed, in
// the throughput section's pipelined echo (`write` up to the window, refill once half is back):
// how many times the reader is woken (chunks pulled) and how many messages each chunk holds, the
// check-phase callbacks (`setImmediate`) the inbound buffer schedules, socket pauses (the inbound
// bounds), and the socket's writes (`writeBuffer` for one frame, `writev` for frames Node held
// back behind a pending write) against raw ws's on the same workload.
//
//   npx tsx bench/largeFramesCounts.ts [bytes] [frames] [text|binary]
//
// setImmediate is wrapped before lifeline loads (the inbound buffer takes it when its module
// loads), so only the calls made after the wrapper counts are lifeline's and the bench's.
import { Effect, Stream } from "effect"
import WebSocket from "ws"
import { startEchoServer } from "./server.js"
import { windowFor } from "./throughput.js"
import { makePayload, sizeOf } from "./util.js"

const bytes = Number(process.argv[2] ?? 65536)
const frames = Number(process.argv[3] ?? 1280)
const kind = process.argv[4] === "text" ? "text" : "binary"

let immediates = 0
const realImmediate = globalThis.setImmediate
globalThis.setImmediate = ((callback: (...args: Array<unknown>) => void, ...args: Array<unknown>) => {
  immediates++
  return realImmediate(callback, ...args)
}) as typeof setImmediate
let pauses = 0
const realPause = WebSocket.prototype.pause
WebSocket.prototype.pause = function(this: WebSocket) {
  pauses++
  return realPause.call(this)
}
const { Connection } = await import("./lifeline.js")
const { runLifeline } = await import("./contenders/connection.js")

// The TCP handle's writes, counted on the prototype Node's sockets share.
const writes = { buffer: 0, writev: 0, string: 0 }
const counted = new Set<object>()
const countWrites = (socket: unknown): void => {
  const handle = Reflect.get(socket as object, "_handle") as object | null
  if (handle === null) return
  const proto = Object.getPrototypeOf(handle) as Record<string, (...args: Array<unknown>) => unknown>
  if (counted.has(proto)) return
  counted.add(proto)
  for (const [name, key] of [["writeBuffer", "buffer"], ["writev", "writev"], ["writeUtf8String", "string"]] as const) {
    const real = proto[name]!
    proto[name] = function(this: unknown, ...args: Array<unknown>) {
      writes[key]++
      return real.apply(this, args)
    }
  }
}

const reset = () => {
  immediates = 0
  pauses = 0
  writes.buffer = writes.writev = writes.string = 0
}
const server = await startEchoServer()
const payload = makePayload(bytes, kind)
const window = windowFor(bytes)

const rawRun = () =>
  new Promise<void>((resolve) => {
    const socket = new WebSocket(server.url)
    socket.once("open", () => {
      countWrites(Reflect.get(socket, "_socket"))
      reset()
      let sent = 0
      let echoed = 0
      const fill = () => {
        while (sent < frames && sent - echoed < window) {
          socket.send(payload)
          sent++
        }
      }
      socket.on("message", (data, isBinary) => {
        sizeOf(isBinary ? (data as Buffer) : data.toString())
        if (++echoed === frames) {
          const counted = { ...writes }
          socket.once("close", () => {
            console.log(`raw ws: writes ${JSON.stringify(counted)}`)
            resolve()
          })
          socket.close()
        } else if (sent - echoed <= window / 2) fill()
      })
      fill()
    })
  })

const lifelineRun = () =>
  runLifeline(Effect.gen(function*() {
    const connection = yield* Connection.connect(server.url)
    countWrites(Reflect.get(Reflect.get(Reflect.get(connection, "socket") as object, "ws") as object, "_socket"))
    const pull = yield* Stream.toPull(connection.messages)
    reset()
    let sent = 0
    let echoed = 0
    const sizes: Array<number> = []
    const refill = Effect.whileLoop({
      while: () => sent < frames && sent - echoed < window,
      body: () => connection.write(payload),
      step: () => {
        sent++
      }
    })
    yield* refill
    while (echoed < frames) {
      const chunk = yield* Effect.orDie(pull)
      for (const message of chunk) sizeOf(message)
      sizes.push(chunk.length)
      echoed += chunk.length
      if (sent - echoed <= window / 2) yield* refill
    }
    const sorted = [...sizes].sort((a, b) => a - b)
    console.log(
      `lifeline Connection: ${sizes.length} chunks (wakes) for ${frames} frames, messages per chunk median ${
        sorted[Math.floor(sorted.length / 2)]
      } [${sorted[0]}..${sorted[sorted.length - 1]}], setImmediate ${immediates}, pauses ${pauses}, writes ${
        JSON.stringify(writes)
      }`
    )
  }))

try {
  for (let round = 0; round < 3; round++) {
    await rawRun()
    await lifelineRun()
  }
} finally {
  await server.stop()
}
process.exit(0)
