/**
 * The `Client` of `effect-lifeline/browser`: everything of `Client` but `config` and
 * `layerConfig`, so that a browser bundle does not carry Effect's Config code and the keys behind
 * them (about 1 KiB gzip: esbuild keeps every member of a namespace it exports). A browser app
 * that reads its options from Config imports `Client` from `effect-lifeline/Client` (no `ws`
 * comes with it).
 *
 * @since 0.1.0
 */
export { ClientEvent, ClientState, layer, make, Tag } from "./Client.js"
export type { Client, ClientError, CodecOptions, HeartbeatOptions, Options, Overflow } from "./Client.js"
