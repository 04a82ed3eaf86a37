/**
 * Page script for trialsRound20Firefox.test.ts (it bundles for any browser: round 20 ran the same
 * calls by hand in Chromium, to compare): the platform's own WebSocket on a refused handshake, the crash pattern
 * (Connections, Clients and compat sockets closed while CONNECTING), and close codes and reasons
 * the platform refuses, through a Connection, a Client and the compat facade. Plain data crosses
 * back to Node.
 */
import { Effect, Exit, Fiber, Layer, Logger, Scope } from "effect"
import { BrowserTransport, Client, Connection } from "effect-lifeline/browser"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import { describeExit } from "./exits.js"

const layer = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/** What a platform call threw, or "" */
const thrown = (run: () => void): string => {
  try {
    run()
    return ""
  } catch (error) {
    const e = error as { name?: string; message?: string }
    return `${String(e.name)}: ${String(e.message)}`
  }
}

/** Counts each value. */
const tally = (values: ReadonlyArray<string>): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1
  return counts
}

export const firefoxPage = {
  userAgent: (): string => navigator.userAgent,

  /**
   * The platform alone: a WebSocket to `url`, its events in order (with readyState at each) until
   * `close`, bounded by `within` ms; and how long that took.
   */
  rawEvents: (
    url: string,
    within = 5_000,
    closeOnOpen = false
  ): Promise<{ events: Array<string>; millis: number; opened: number }> =>
    new Promise((resolve) => {
      const started = performance.now()
      const events: Array<string> = []
      let opened = -1
      const socket = new WebSocket(url)
      const done = () => resolve({ events, millis: Math.round(performance.now() - started), opened })
      const timer = setTimeout(() => {
        events.push("timeout")
        socket.close()
        done()
      }, within)
      const at = () => Math.round(performance.now() - started)
      socket.onopen = () => {
        events.push(`open:${socket.readyState}`)
        opened = at()
        if (closeOnOpen) socket.close()
      }
      socket.onerror = () => events.push(`error:${socket.readyState}`)
      socket.onclose = (event) => {
        events.push(`close:${event.code}:${event.reason}:${event.wasClean ? "clean" : "unclean"}:${socket.readyState}`)
        clearTimeout(timer)
        done()
      }
    }),

  /**
   * The platform alone: `count` WebSockets to `url` (a server that hangs its handshakes), each
   * closed `after` ms later while CONNECTING; resolves once each has reported `close`.
   */
  rawAbandon: (url: string, count: number, after: number): Promise<Array<string>> =>
    Promise.all(Array.from({ length: count }, () =>
      new Promise<string>((resolve) => {
        const socket = new WebSocket(url)
        const events: Array<string> = []
        socket.onerror = () => events.push("error")
        socket.onclose = (event) => {
          events.push(`close:${event.code}`)
          resolve(events.join(","))
        }
        setTimeout(() => socket.close(), after)
      }))),

  /** The platform's `close(code, reason)` on an open socket: what it threw, "" if nothing. */
  rawClose: (url: string, code: number, reason: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(url)
      socket.onerror = () => reject(new Error("the raw socket failed"))
      socket.onopen = () => {
        const result = thrown(() => socket.close(code, reason))
        if (result !== "") socket.close()
        resolve(result)
      }
    }),

  /**
   * The crash pattern, `count` of each, against a server that hangs its handshakes (all stay
   * CONNECTING): Connections whose open is interrupted, Clients closed, compat sockets closed
   * (at once, and a turn later). How each ended, and how long the whole took.
   */
  storm: (url: string, count: number): Promise<{
    connections: Record<string, number>
    clients: Record<string, number>
    clientStates: Record<string, number>
    compat: Record<string, number>
    compatReadyStates: Record<string, number>
    millis: number
  }> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const started = performance.now()
        // Connections: each open forked, then interrupted while CONNECTING (the first after no wait).
        const fibers = []
        for (let index = 0; index < count; index++) {
          fibers.push(yield* Effect.fork(Effect.scoped(Connection.connect(url))))
          if (index % 2 === 1) yield* Effect.yieldNow()
        }
        const connections: Array<string> = []
        for (const fiber of fibers) connections.push(describeExit(yield* Fiber.interrupt(fiber)))
        // Clients: made, then closed before their first handshake ends.
        const clients: Array<string> = []
        const clientStates: Array<string> = []
        for (let index = 0; index < count; index++) {
          const scope = yield* Scope.make()
          const client = yield* Scope.extend(Client.make({ url }), scope)
          if (index % 2 === 1) yield* Effect.sleep("1 millis")
          clients.push(describeExit(yield* Effect.exit(client.close())))
          const state = yield* client.state.get
          clientStates.push(state._tag)
          yield* Scope.close(scope, Exit.void)
        }
        // compat sockets: closed at once, or a turn later, while CONNECTING.
        const events: Array<string> = []
        const readyStates: Array<string> = []
        for (let index = 0; index < count; index++) {
          const socket = new ReconnectingWebSocket(url, [], { maxRetries: 0 })
          socket.addEventListener("close", (event) => events.push(`close:${event.code}`))
          socket.addEventListener("error", (event) => events.push(`error:${String(event.message)}`))
          if (index % 2 === 1) yield* Effect.promise(() => sleep(0))
          socket.close()
          readyStates.push(String(socket.readyState))
        }
        yield* Effect.promise(() => sleep(100))
        return {
          connections: tally(connections),
          clients: tally(clients),
          clientStates: tally(clientStates),
          compat: tally(events),
          compatReadyStates: tally(readyStates),
          millis: Math.round(performance.now() - started)
        }
      }).pipe(Effect.provide(layer))
    ),

  /** A Client to `url` after the storm: how long until it is open (bounded: 15 s). */
  openAfter: (url: string): Promise<{ exit: string; millis: number }> =>
    Effect.runPromise(
      Effect.gen(function*() {
        const started = performance.now()
        const client = yield* Client.make({ url })
        const exit = yield* Effect.exit(Effect.timeout(client.awaitOpen, "15 seconds"))
        return { exit: describeExit(exit), millis: Math.round(performance.now() - started) }
      }).pipe(Effect.scoped, Effect.provide(layer))
    ),

  /**
   * Close codes and reasons, one connection each, in turn: `Connection.close(code, reason)`,
   * `client.close(code, reason)`, compat `close(code, reason)` (once open). What each returned,
   * and what each saw of its own close.
   */
  closeWith: (
    url: string,
    via: "connection" | "client" | "compat",
    code: number,
    reason: string
  ): Promise<string> => {
    if (via === "compat") {
      return new Promise((resolve) => {
        const socket = new ReconnectingWebSocket(url, [], { maxRetries: 0 })
        const seen: Array<string> = []
        socket.addEventListener("error", (event) => seen.push(`error:${String(event.message)}`))
        socket.addEventListener("open", () => {
          const result = thrown(() => socket.close(code, reason))
          const [close] = seen.filter((each) => each.startsWith("close:"))
          resolve(
            `threw "${result}"; ${close ?? "no close event"}; ${
              seen.filter((each) => each.startsWith("error")).join(",")
            }`
          )
        })
        socket.addEventListener(
          "close",
          (event) => seen.push(`close:${event.code}:${event.reason.length}:${event.wasClean ? "clean" : "unclean"}`)
        )
      })
    }
    if (via === "connection") {
      return Effect.runPromise(
        Effect.gen(function*() {
          const connection = yield* Connection.connect(url)
          const exit = yield* Effect.exit(connection.close(code, reason))
          if (Exit.isSuccess(exit)) {
            const { code, initiator, reason, wasClean } = exit.value
            return `Disconnected ${code} reason ${new TextEncoder().encode(reason).length} bytes ${initiator} ${
              wasClean ? "clean" : "unclean"
            }`
          }
          return describeExit(exit)
        }).pipe(Effect.scoped, Effect.provide(layer))
      )
    }
    return Effect.runPromise(
      Effect.gen(function*() {
        const client = yield* Client.make({ url })
        yield* client.awaitOpen
        const exit = yield* Effect.exit(client.close(code, reason))
        const state = yield* client.state.get
        return `${describeExit(exit)} ${state._tag}`
      }).pipe(Effect.scoped, Effect.provide(layer))
    )
  }
}

Object.assign(globalThis, { firefoxPage, pageReady: true })
