/**
 * The Client's settings (its options after defaults) and its constructor. The machinery is in
 * `client/`: `phase.ts` (the lifecycle and its one table of moves), `liveClient.ts` (the
 * transition function and the public surface), `supervisor.ts` (connect, back off, decide),
 * `session.ts` (one open connection), `outbound.ts` (send, enqueue, the outbox), `observe.ts`
 * (state, events, logs).
 */
import type { Duration, Effect, Redacted, Schedule } from "effect"
import type { Connection } from "../Connection.js"
import type { ClientError } from "../Reconnect.js"
import type { Message } from "../Transport.js"
import type { HeartbeatOptions } from "./heartbeat.js"
import type { ConnectOptions } from "./parseEndpoint.js"
import type { Overflow } from "./primitives/outbox.js"

export { makeClient } from "./client/liveClient.js"

/** The Client's options after defaults; built by `Client.make`. */
export interface ClientSettings {
  readonly endpoints: ReadonlyArray<string | URL | Effect.Effect<string>>
  readonly connection: ConnectOptions
  readonly headers: Effect.Effect<Readonly<Record<string, string | Redacted.Redacted<string>>>> | undefined
  readonly schedule: Schedule.Schedule<unknown, ClientError>
  readonly shouldRetry: (error: ClientError) => boolean
  readonly minUptime: Duration.Duration
  readonly outboxCapacity: number
  readonly outboxBytes: number
  readonly overflow: Overflow
  readonly onOpen: ((connection: Connection) => Effect.Effect<void, unknown>) | undefined
  readonly onOpenTimeout: Duration.Duration
  /** The least wait between two attempts, in milliseconds, whatever the schedule says. */
  readonly minRetryDelay: number
  readonly heartbeat: HeartbeatOptions | undefined
  readonly isPong: ((message: Message) => boolean) | undefined
  readonly eventsCapacity: number
  /** Why the options cannot work; the client then starts Closed with ConnectError InvalidOptions. */
  readonly invalid: string | undefined
}
