/**
 * lifeline: WebSocket connections for Effect that cannot crash the process.
 *
 * @module effect-lifeline
 * @since 0.1.0
 */
export * as BrowserTransport from "./BrowserTransport.js"
export * as CircuitBreaker from "./CircuitBreaker.js"
export * as Client from "./Client.js"
export * as Codec from "./Codec.js"
export * as Connection from "./Connection.js"
export * from "./Errors.js"
export * as LiteClient from "./LiteClient.js"
export * as NodeTransport from "./NodeTransport.js"
export * as Reconnect from "./Reconnect.js"
export type { ClientError } from "./Reconnect.js"
export * as Transport from "./Transport.js"
