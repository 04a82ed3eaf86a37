/**
 * lifeline for browsers: everything but `NodeTransport`, so a bundle does not pull in `ws`, and a
 * `Client` without `config` and `layerConfig` (see `BrowserClient`).
 *
 * @module effect-lifeline/browser
 * @since 0.1.0
 */
export * as Client from "./BrowserClient.js"
export * as BrowserTransport from "./BrowserTransport.js"
export * as CircuitBreaker from "./CircuitBreaker.js"
export * as Codec from "./Codec.js"
export * as Connection from "./Connection.js"
export * from "./Errors.js"
export * as Reconnect from "./Reconnect.js"
export type { ClientError } from "./Reconnect.js"
export * as Transport from "./Transport.js"
