// partysocket (a reconnecting-websocket fork) over `ws`, with its defaults except binaryType
// "arraybuffer" (its default "blob" would hand every binary message over as a Blob).
import { WebSocket as PartySocket } from "partysocket"
import WS from "ws"
import type { Payload } from "../util.js"
import { inBatches, sizeOf, sleep, withTimeout } from "../util.js"
import type { Contender, Herd } from "./types.js"

let _received = 0

const read = (event: MessageEvent): void => {
  _received += sizeOf(event.data as string | ArrayBuffer)
}

const create = (url: string, options?: { readonly minReconnectionDelay: number }): PartySocket => {
  const socket = new PartySocket(url, [], { WebSocket: WS, ...options })
  socket.binaryType = "arraybuffer"
  return socket
}

const whenOpen = (socket: PartySocket): Promise<void> =>
  new Promise((resolve) => socket.addEventListener("open", () => resolve(), { once: true }))

const open = async (url: string): Promise<PartySocket> => {
  const socket = create(url)
  await withTimeout(whenOpen(socket), 10_000, "partysocket open")
  return socket
}

const close = (socket: PartySocket): Promise<void> =>
  withTimeout(
    new Promise<void>((resolve) => {
      if (socket.readyState === PartySocket.CLOSED) return resolve()
      socket.addEventListener("close", () => resolve(), { once: true })
      socket.close()
    }),
    5_000,
    "partysocket close"
  )

const throughput = async (url: string, payload: Payload, count: number, window: number): Promise<number> => {
  const socket = await open(url)
  const elapsed = await new Promise<number>((resolve) => {
    let sent = 0
    let echoed = 0
    const fill = (): void => {
      while (sent < count && sent - echoed < window) {
        socket.send(payload)
        sent++
      }
    }
    socket.addEventListener("message", (event) => {
      read(event)
      echoed++
      if (echoed === count) resolve(performance.now() - started)
      else if (sent - echoed <= window / 2) fill()
    })
    const started = performance.now()
    fill()
  })
  await close(socket)
  return elapsed
}

const latency = async (url: string, payload: Payload, count: number, spacing: number): Promise<Array<number>> => {
  const socket = await open(url)
  let onEcho: (() => void) | undefined
  socket.addEventListener("message", (event) => {
    read(event)
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

/**
 * The herd's minimum reconnect delay per socket when `jittered`: 0.5 s plus up to 3 s at random,
 * drawn for each socket. partysocket 1.3.0's default (3 s for every socket) brings a process's
 * sockets back in one burst; drawn per socket, they come back spread over about as long as
 * lifeline's default schedule spreads its Clients (server peak 6-7 % per 100 ms, median about 1.1 s
 * after the return, against lifeline's 8 % and 0.8 s), so that the CPU each costs is compared for
 * herds of the same shape.
 */
const JITTERED_MIN_DELAY = { base: 500, spread: 3000 }

/** `count` partysockets with every default (reconnect delays included), or with the delay above (`jittered`). */
export const partysocketHerd = (url: string, count: number, jittered = false): Herd => {
  const sockets = Array.from({ length: count }, () =>
    create(
      url,
      jittered
        ? { minReconnectionDelay: JITTERED_MIN_DELAY.base + Math.random() * JITTERED_MIN_DELAY.spread }
        : undefined
    ))
  const reconnectedAt: Array<number | undefined> = new Array(count).fill(undefined)
  return {
    opened: Promise.all(sockets.map(whenOpen)).then(() => undefined),
    watchReconnects: () => {
      sockets.forEach((socket, index) => {
        socket.addEventListener("open", () => {
          reconnectedAt[index] = performance.now()
        }, { once: true })
      })
    },
    reconnectedAt: () => reconnectedAt
  }
}

export const partysocket: Contender = {
  name: "partysocket",
  label: "partysocket",
  throughput,
  latency,
  connect,
  pool: (url) => {
    const sockets: Array<PartySocket> = []
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
