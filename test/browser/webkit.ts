/**
 * Page script for trialsRound21WebKit.test.ts (it bundles for any browser; the Firefox file uses
 * it too): what the platform's own WebSocket does where engines differ (its defaults,
 * `bufferedAmount` once closed, subprotocols), and a Connection's open with subprotocols. Plain
 * data crosses back to Node.
 */
import { Effect, Exit, Layer, Logger } from "effect"
import { BrowserTransport, Connection } from "effect-lifeline/browser"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import { describeExit } from "./exits.js"

const layer = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))

export const webkitPage = {
  /**
   * A raw WebSocket to `url` (offering `protocols`): `binaryType` as made, then once open its
   * `protocol` and `extensions`; then `close()` and a 10-byte send while CLOSING and (once
   * `close` fired) while CLOSED: what each threw and `bufferedAmount` after it. Every event in
   * order, with readyState at each (a message as its text or `binary:<class>:<length>`).
   */
  defaults: (url: string, protocols: Array<string>): Promise<{
    binaryType: string
    protocol: string
    extensions: string
    events: Array<string>
    buffered: Array<string>
  }> =>
    new Promise((resolve) => {
      const socket = new WebSocket(url, protocols)
      const binaryType = socket.binaryType
      let protocol = ""
      let extensions = ""
      const events: Array<string> = []
      const buffered: Array<string> = []
      const send = (when: string) => {
        try {
          socket.send(new Uint8Array(10))
          buffered.push(`${when}: sent, bufferedAmount ${socket.bufferedAmount}`)
        } catch (error) {
          buffered.push(`${when}: threw ${String((error as Error).name)}, bufferedAmount ${socket.bufferedAmount}`)
        }
      }
      const timer = setTimeout(() => {
        events.push("timeout")
        resolve({ binaryType, protocol, extensions, events, buffered })
      }, 5_000)
      socket.onopen = () => {
        events.push(`open:${socket.readyState}`)
        protocol = socket.protocol
        extensions = socket.extensions
        socket.close()
        send("closing")
      }
      socket.onmessage = (event: MessageEvent) => {
        const data: unknown = event.data
        events.push(
          typeof data === "string"
            ? `message:${data}`
            : `message:binary:${Object.prototype.toString.call(data)}:${
              (data as { byteLength?: number; size?: number }).byteLength ??
                (data as { size?: number }).size
            }`
        )
      }
      socket.onerror = () => events.push(`error:${socket.readyState}`)
      socket.onclose = (event) => {
        events.push(`close:${event.code}:${event.reason}:${event.wasClean ? "clean" : "unclean"}:${socket.readyState}`)
        send("closed")
        clearTimeout(timer)
        resolve({ binaryType, protocol, extensions, events, buffered })
      }
    }),

  /**
   * A raw WebSocket to `url` (a server that does not read): `sizes` sends of that many bytes, and
   * `bufferedAmount` after each.
   */
  bufferedWhileOpen: (url: string, sizes: Array<number>): Promise<Array<number>> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url)
      socket.onerror = () => reject(new Error("the raw socket failed"))
      socket.onopen = () => {
        const seen: Array<number> = []
        for (const size of sizes) {
          socket.send(new Uint8Array(size))
          seen.push(socket.bufferedAmount)
        }
        socket.close()
        resolve(seen)
      }
    }),

  /**
   * A compat socket offering `protocols` (retries 50 ms apart, at most 3): its events in order
   * (`close` with its code and reason) until it stops or 3 s pass, and its readyState then.
   */
  compatWith: (url: string, protocols: Array<string>): Promise<{ events: Array<string>; readyState: number }> =>
    new Promise((resolve) => {
      const socket = new ReconnectingWebSocket(url, protocols, {
        maxRetries: 3,
        minReconnectionDelay: 50,
        maxReconnectionDelay: 50
      })
      const events: Array<string> = []
      const done = () => {
        clearTimeout(timer)
        const readyState = socket.readyState
        socket.close()
        resolve({ events, readyState })
      }
      const timer = setTimeout(done, 3_000)
      socket.addEventListener("open", () => events.push(`open:${socket.protocol}`))
      socket.addEventListener("error", () => events.push("error"))
      socket.addEventListener("close", (event) => {
        events.push(`close:${event.code}:${event.reason}`)
        if (event.reason.endsWith("not retrying")) done()
      })
    }),

  /** A Connection offering `protocols`: how its open ended, and the protocol it holds. */
  connectWith: (url: string, protocols: Array<string>): Promise<string> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const exit = yield* Effect.exit(
          Effect.timeout(Connection.connect(url, { protocols, openTimeout: "3 seconds" }), "5 seconds")
        )
        return Exit.isSuccess(exit) ? `open "${exit.value.protocol}"` : describeExit(exit)
      }).pipe(Effect.scoped, Effect.provide(layer))
    )
}

Object.assign(globalThis, { webkitPage, pageReady: true })
