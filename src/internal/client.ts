/**
 * The Client's constructor, and its settings (its options after defaults, decoded once by
 * `Client.make`: `options.ts`). The machinery is in `client/`: `phase.ts` (the lifecycle and its
 * one table of moves), `liveClient.ts` (the transition function and the public surface),
 * `supervisor.ts` (connect, back off, decide), `session.ts` (one open connection), `outbound.ts`
 * (send, enqueue, the outbox), `observe.ts` (state, events, logs), `endpoints.ts` (strategy, breakers), `close.ts` (close, make).
 */
export { makeClient } from "./client/close.js"

/** The Client's options after defaults; decoded once by `Client.make` (options.ts). */
export type { ClientSettings } from "./options.js"
