/**
 * The small Client: the same `Client` interface as `effect-lifeline/Client`, over one URL, at 0.73
 * of its cost in a browser bundle (0.76 to 0.77 under Vite, or when the app imports Effect by module
 * paths too). It reconnects by any `Schedule` (with `Retry-After`, `online`,
 * `minUptime`), keeps an outbox that never loses a message silently, runs the same heartbeat,
 * reads its connections in order under one inbound bound, and reports state and events as the
 * full Client does. It has no failover across endpoints, no circuit breaker, no metrics and no
 * Config: for those, use `effect-lifeline/Client`. Both are held to one test suite.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as BrowserTransport from "effect-lifeline/BrowserTransport"
 * import * as LiteClient from "effect-lifeline/LiteClient"
 *
 * const program = Effect.gen(function*() {
 *   const client = yield* LiteClient.make({ url: "wss://example.com/feed" })
 *   yield* client.send("hello")
 *   yield* Stream.runForEach(client.messages, Effect.log)
 * }).pipe(Effect.scoped, Effect.provide(BrowserTransport.layer))
 * ```
 *
 * @since 0.1.0
 */
import type { Context, Effect, Scope } from "effect"
import * as Layer from "effect/Layer"
import type { Client, CodecOptions, Options } from "./Client.js"
import type { DecodeError } from "./Errors.js"
import { makeWith } from "./internal/clientMake.js"
import { makeLiteClient } from "./internal/liteClient.js"
import type { Transport } from "./Transport.js"

/**
 * The options the small Client has no use for: each is refused (`ConnectError InvalidOptions`,
 * the Client starts Closed), never ignored.
 */
const NOT_HERE = "not in LiteClient: use effect-lifeline/Client"

/**
 * `Client.Options` with one URL, without `strategy`, `returnToPrimary` and `whenSuspended`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LiteOptions extends Omit<Options, "url" | "strategy" | "returnToPrimary" | "whenSuspended"> {
  readonly url: string | URL | Effect.Effect<string>
}

/**
 * `LiteOptions` with a codec (see `Client.CodecOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export interface LiteCodecOptions<In, Out> extends LiteOptions, Pick<CodecOptions<In, Out>, "codec" | "decodeErrors"> {}

/**
 * Makes a small Client, started: it connects in the background and lives until its scope closes
 * or `close` is called. Options that cannot work never throw: the Client starts Closed with
 * `ConnectError InvalidOptions` naming the first bad option.
 *
 * @since 0.1.0
 * @category constructors
 */
export function make<In, Out>(
  options: LiteCodecOptions<In, Out> & { readonly decodeErrors: "fail" }
): Effect.Effect<Client<In, Out, DecodeError>, never, Scope.Scope | Transport>
export function make<In, Out>(
  options: LiteCodecOptions<In, Out> & { readonly decodeErrors?: "event" | undefined }
): Effect.Effect<Client<In, Out>, never, Scope.Scope | Transport>
export function make<In, Out>(
  options: LiteCodecOptions<In, Out>
): Effect.Effect<Client<In, Out, DecodeError>, never, Scope.Scope | Transport>
export function make(options: LiteOptions): Effect.Effect<Client, never, Scope.Scope | Transport>
export function make(
  options: LiteOptions | LiteCodecOptions<unknown, unknown>
): Effect.Effect<Client<unknown, never, unknown>, never, Scope.Scope | Transport> {
  return makeWith(options as Options, makeLiteClient, notHere)
}

/** The first option given that only the full Client has, as the detail of InvalidOptions. */
const notHere = (options: Options): string | undefined => {
  try {
    const given: Partial<Options> = options
    if (Array.isArray(given.url)) return `url: one URL, ${NOT_HERE}`
    for (const name of ["strategy", "returnToPrimary", "whenSuspended"] as const) {
      if (given[name] !== undefined) return `${name}: ${NOT_HERE}`
    }
  } catch {
    // The options checks read them first: what cannot be read was refused there.
  }
  return undefined
}

/**
 * Provides a small Client under your tag (`Client.Tag`) for the life of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export function layer<I, In, Out>(
  tag: Context.Tag<I, Client<In, Out, DecodeError>>,
  options: LiteCodecOptions<In, Out>
): Layer.Layer<I, never, Transport>
export function layer<I, In, Out>(
  tag: Context.Tag<I, Client<In, Out>>,
  options: LiteCodecOptions<In, Out> & { readonly decodeErrors?: "event" | undefined }
): Layer.Layer<I, never, Transport>
export function layer<I>(tag: Context.Tag<I, Client>, options: LiteOptions): Layer.Layer<I, never, Transport>
export function layer<I>(
  tag: Context.Tag<I, any>,
  options: LiteOptions | LiteCodecOptions<unknown, unknown>
): Layer.Layer<I, never, Transport> {
  return Layer.scoped(tag, make(options as LiteCodecOptions<unknown, unknown>))
}
