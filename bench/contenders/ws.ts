// Raw `ws`: the baseline. Callbacks only, nothing between the application and the socket.
import WebSocket from "ws"
import type { Payload } from "../util.js"
import { inBatches, sizeOf, sleep, withTimeout } from "../util.js"
import type { Contender } from "./types.js"

let _received = 0

/** What an application reading the message does: binary as bytes, text decoded to a string. */
const read = (data: WebSocket.RawData, isBinary: boolean): void => {
  _received += sizeOf(isBinary ? (data as Buffer) : data.toString())
}

const open = (url: string): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once("error", reject)
    socket.once("open", () => {
      socket.off("error", reject)
      socket.on("error", () => {})
      resolve(socket)
    })
  })

const close = (socket: WebSocket): Promise<void> =>
  withTimeout(
    new Promise<void>((resolve) => {
      if (socket.readyState === WebSocket.CLOSED) return resolve()
      socket.once("close", () => resolve())
      socket.close()
    }),
    5_000,
    "ws close"
  ).catch(() => socket.terminate())

const throughput = async (url: string, payload: Payload, count: number, window: number): Promise<number> => {
  const socket = await open(url)
  const elapsed = await new Promise<number>((resolve, reject) => {
    let sent = 0
    let echoed = 0
    const fill = (): void => {
      while (sent < count && sent - echoed < window) {
        socket.send(payload)
        sent++
      }
    }
    socket.on("close", () => reject(new Error("ws: closed during the run")))
    socket.on("message", (data, isBinary) => {
      read(data, isBinary)
      echoed++
      if (echoed === count) resolve(performance.now() - started)
      else if (sent - echoed <= window / 2) fill()
    })
    const started = performance.now()
    fill()
  })
  socket.removeAllListeners("close")
  await close(socket)
  return elapsed
}

const latency = async (url: string, payload: Payload, count: number, spacing: number): Promise<Array<number>> => {
  const socket = await open(url)
  let onEcho: (() => void) | undefined
  socket.on("message", (data, isBinary) => {
    read(data, isBinary)
    const resolve = onEcho
    onEcho = undefined
    resolve?.()
  })
  const rtts: Array<number> = []
  for (let index = 0; index < count; index++) {
    const echo = new Promise<void>((resolve) => {
      onEcho = resolve
    })
    const started = performance.now()
    socket.send(payload)
    await echo
    rtts.push(performance.now() - started)
    await sleep(spacing)
  }
  await close(socket)
  return rtts
}

const connect = async (url: string, count: number): Promise<Array<number>> => {
  const times: Array<number> = []
  for (let index = 0; index < count; index++) {
    const started = performance.now()
    const socket = await open(url)
    times.push(performance.now() - started)
    await close(socket)
  }
  return times
}

export const ws: Contender = {
  name: "ws",
  label: "ws (raw)",
  throughput,
  latency,
  connect,
  pool: (url) => {
    const sockets: Array<WebSocket> = []
    return {
      open: async (count) => {
        sockets.push(...await inBatches(count, 100, () => open(url)))
      },
      close: async () => {
        await Promise.all(sockets.map(close))
      }
    }
  }
}
