// What every contender implements, each in its own library's idiom. All times in milliseconds.
import type { Payload } from "../util.js"

export type ContenderName = "ws" | "partysocket" | "platform" | "connection" | "client" | "lite"

export interface Contender {
  readonly name: ContenderName
  /** A short label for the table. */
  readonly label: string
  /**
   * Pipelined echo: opens a connection, sends `count` copies of `payload` keeping at most `window`
   * unanswered (refilling to `window` once half of it came back), and resolves with the time from
   * the first send to the last echo.
   */
  readonly throughput: (url: string, payload: Payload, count: number, window: number) => Promise<number>
  /** One message in flight: `count` round trips, `spacing` ms apart; resolves with each round trip. */
  readonly latency: (url: string, payload: Payload, count: number, spacing: number) => Promise<Array<number>>
  /** `count` sequential connects, each closed before the next; resolves with each time to open. */
  readonly connect: (url: string, count: number) => Promise<Array<number>>
  /** A set of idle connections that grows on demand (the memory benchmark). */
  readonly pool: (url: string) => Pool
}

export interface Pool {
  /** Opens `count` more connections and resolves when all are open. */
  readonly open: (count: number) => Promise<void>
  readonly close: () => Promise<void>
}

/** A crowd of reconnecting clients (the herd benchmark): lifeline Client and partysocket only. */
export interface Herd {
  /** Resolves when every client is open. */
  readonly opened: Promise<void>
  /** From now on, records when each client next becomes open again (performance.now()). */
  readonly watchReconnects: () => void
  /** The recorded reconnect times, undefined for a client that has not reconnected. */
  readonly reconnectedAt: () => ReadonlyArray<number | undefined>
}
