/**
 * One logical link that stays up: reconnects by any `Schedule`, an outbox that never loses a
 * message silently, heartbeats that find dead peers, observable state and events, metrics.
 * A drop-in for partysocket / reconnecting-websocket inside Effect apps.
 *
 * @since 0.1.0
 */
import type { ConfigError, Duration, Redacted, Schedule, Scope, Sink, Stream, Subscribable } from "effect"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Codec } from "./Codec.js"
import type * as Connection from "./Connection.js"
import type { CircuitOpenError, DecodeError, SendError } from "./Errors.js"
import { makeClient } from "./internal/client.js"
import { makeWith } from "./internal/clientMake.js"
import type { ClientEvent, ClientState } from "./internal/clientState.js"
import { clientConfig } from "./internal/options.js"
import type { Overflow } from "./internal/primitives/outbox.js"
import type { ClientError } from "./Reconnect.js"
import type { Message } from "./Transport.js"
import type { Transport } from "./Transport.js"

export { ClientEvent, ClientState } from "./internal/clientState.js"
export type { Overflow } from "./internal/primitives/outbox.js"
export type { ClientError } from "./Reconnect.js"

/**
 * A long-lived link. Valid until its scope closes or `close` is called.
 *
 * `In`: what `messages` yields, `Out`: what `send`, `enqueue` and `sink` take, `E`: the error of
 * `messages`. All three are the raw ones (frames, no error) unless the client was made with a
 * `codec` (`E` is `DecodeError` under `decodeErrors: "fail"`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Client<In = Message, Out = Message, E = never> {
  /**
   * Idle, Connecting, Open, Backoff, Suspended or Closed: `state.get` now, `state.changes` every
   * transition. Read-only. `changes` ends once `close` has finished (a Client closed by an error
   * may `reconnect`: its `changes` goes on). Each `changes` starts with the current state, then
   * every public state once, in order; unbounded, so a reader that stops pulling keeps every state
   * since (a reader that wants only the latest: `Stream.buffer({ capacity: 1, strategy: "sliding" })`,
   * or `get`). Interrupting a reader, or ending it early (`Stream.take`), removes its listener.
   */
  readonly state: Subscribable.Subscribable<ClientState>
  /**
   * Every transition (with attempt, delay, error), every accepted message that failed later, and
   * (with a codec, under `decodeErrors: "event"`) every inbound frame that did not decode.
   * A new subscriber first receives the 16 most recent events (at most `eventsCapacity`), so the
   * first transitions are not lost to a subscriber that attaches after `make`. Sliding: a reader
   * behind by `eventsCapacity` loses the oldest events, never blocks the client. Ends once `close` has finished, after the failures it
   * reported.
   */
  readonly events: Stream.Stream<ClientEvent>
  /**
   * Inbound frames across reconnects, one stream for the life of the client; ends on `close`
   * (or when its scope closes), and when the Client is Closed by an error, once the frames that
   * came before it are read (`state` says why). After `reconnect`, running `messages` again reads
   * the new connections. Single consumer. Each run is handed its first 64 messages one at a time:
   * one that stops within them (`Stream.runHead`, `Stream.take(n)`) leaves the rest for the next
   * run; after those, every frame waiting comes as one chunk, and a run that stops inside one
   * drops the rest of it. With a codec, decoded values: a frame that does not decode is skipped and
   * published as a `DecodeFailed` event (default), or, under `decodeErrors: "fail"`, fails the
   * stream with `DecodeError` (running `messages` again goes on from the frame after it). The
   * link stays up either way. Heartbeat answers (`isPong`) are taken out before decoding.
   */
  readonly messages: Stream.Stream<In, E>
  /**
   * Sends a frame and completes when the transport reports it written. While disconnected it
   * waits in the outbox (FIFO) and goes out after the next `onOpen`. Fails with `SendError`
   * (`OutboxFull`, `Dropped`, `Closed`, `WriteFailed`), the payload inside, never silently; and
   * with `CircuitOpenError` at once while Suspended under `whenSuspended: "failFast"`. With a
   * codec, the value is encoded first: one it refuses fails at once with `SendError EncodeFailed`
   * (the value as `payload`) and is never queued; later errors carry the encoded frame.
   */
  readonly send: (data: Out) => Effect.Effect<void, SendError | CircuitOpenError>
  /**
   * Queues a frame and completes once it is buffered (or written). Fails at once with `OutboxFull`
   * or `Closed` (or `CircuitOpenError`, as `send`); a later failure is published on `events` as
   * `MessageFailed`, and `close` returns what was still queued. With a codec, encoded first, as `send`.
   */
  readonly enqueue: (data: Out) => Effect.Effect<void, SendError | CircuitOpenError>
  /**
   * Writes a stream through the outbox with backpressure: each frame waits for room, whatever the
   * overflow strategy, so a burst is held to the pace of the peer instead of failing `OutboxFull`.
   * Completes once every frame is buffered or written; a later failure is a `MessageFailed` event.
   * With a codec, a value that does not encode fails the sink with `SendError EncodeFailed`, after
   * the values before it were queued.
   */
  readonly sink: Sink.Sink<void, Out, never, SendError | CircuitOpenError>
  /**
   * Waits until the client is Open; fails with the error that Closed it (or, under `failFast`, the
   * `CircuitOpenError` of a Suspended client). Closing or closed by `close`, whatever its code:
   * `Disconnected` 1000 "client closed" (initiator "client"). Interrupting it removes its listener.
   */
  readonly awaitOpen: Effect.Effect<void, ClientError>
  /**
   * Drops the current connection and connects again, resetting the backoff; restarts a client
   * Closed by an error. The connection is closed politely first (its release waits up to
   * `closeTimeout` for the peer's answer, showing Open meanwhile): a peer found silent is the
   * heartbeat's to drop (`probe: false` for one that pings by itself). Connecting: the attempt under way goes on, and if it fails the next
   * follows at once (a `Backoff` of delay 0). Suspended: one attempt, which the breaker refuses
   * until its `retryAt` (no handshake). Closing or closed by `close`: nothing. Calls while one is
   * under way add nothing: a button pressed many times costs one handshake.
   */
  readonly reconnect: Effect.Effect<void>
  /**
   * Writes what is queued if connected, closes with `code` (default 1000) and `reason`, stops
   * reconnecting, fails every message still queued with `SendError Closed` and returns their
   * payloads. Idempotent. With a codec too, the payloads are the encoded frames, as they would
   * have been written (and so are those of `MessageFailed` events). Interrupting the caller (an
   * `Effect.timeout`, an aborted `runPromise`) does not stop the close: it finishes, bounded by
   * `closeTimeout`, and a later `close` (the scope's finalizer's too) waits for it. Called from
   * the Client's own `onOpen` or URL or headers Effect, it closes the Client and that code is
   * interrupted.
   */
  readonly close: (code?: number, reason?: string) => Effect.Effect<ReadonlyArray<Message>>
  /**
   * Messages accepted and not yet written: queued in the outbox, plus frames handed to the
   * transport whose write has not completed. What the outbox's bounds count.
   */
  readonly outboxSize: Effect.Effect<number>
  /**
   * How many accepted messages were not written, since the client was made: each was also
   * reported once, to its `send` caller or as a `MessageFailed` event. Exact even when a slow
   * `events` reader lost events to the sliding buffer (also the `lifeline_messages_failed` metric).
   */
  readonly failed: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HeartbeatOptions {
  /**
   * Probe once this long has passed since the last sign of life (any inbound frame or pong).
   * Default 20 s. Counted from a pong's arrival exactly, so an idle peer that answers is probed
   * every `interval` (plus the round trip); a data frame is seen at the next quarter-interval
   * sample and counted from the sample before, so the probe follows it by 3/4 `interval` to
   * `interval`, and frames less than 3/4 `interval` apart need no probes. A dead peer is found at
   * most `interval + timeout` after its last sign of life.
   */
  readonly interval?: Duration.DurationInput | undefined
  /** Reconnect (`TimeoutError heartbeat`) if nothing arrives this long after a probe. Default 10 s. */
  readonly timeout?: Duration.DurationInput | undefined
  /** App-level probe for platforms without protocol ping (browsers), e.g. `"ping"`. */
  readonly message?: Message | undefined
  /** Frames that answer `message`; they are kept out of `messages`. */
  readonly isPong?: ((message: Message) => boolean) | undefined
  /**
   * `false`: send no probe, for a peer that pings by itself (Engine.IO / Socket.IO: `interval`
   * its pingInterval, `timeout` its pingTimeout; SignalR's keep-alive): nothing from it for
   * `interval + timeout` (plus at most a quarter `interval`: frames are seen at samples) drops the
   * link as dead (`TimeoutError heartbeat`, the socket terminated).
   * Works where there is no protocol ping (browsers) without a `message`. Default true.
   */
  readonly probe?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where to connect: a URL, an Effect run at every attempt (fresh token), or several endpoints tried in turn. */
  readonly url: string | URL | Effect.Effect<string> | readonly [string | URL, ...Array<string | URL>]
  /** Handshake headers; an Effect is run at every attempt. Values may be `Redacted`. */
  readonly headers?:
    | Readonly<Record<string, string | Redacted.Redacted<string>>>
    | Effect.Effect<Readonly<Record<string, string | Redacted.Redacted<string>>>>
    | undefined
  /** Per-connection options: protocols, openTimeout, closeTimeout, maxPayload, perMessageDeflate, inboundCapacity... */
  readonly connection?: Omit<Connection.Options, "headers"> | undefined
  /** Any Schedule over the error; default `Reconnect.defaultSchedule` (exponential from 1.1 s, x2, jitter 0.9, at most 30 s). */
  readonly retry?: Schedule.Schedule<unknown, ClientError> | undefined
  /** Which errors to retry; default `Reconnect.isRetryable`. */
  readonly shouldRetry?: ((error: ClientError) => boolean) | undefined
  /** A connection that stayed up this long resets the schedule. Default 5 s. */
  readonly minUptime?: Duration.DurationInput | undefined
  /**
   * Bounds on the messages accepted and not yet written, queued or with the transport:
   * `capacity` messages (default 1024) and `maxBytes` bytes (default 16 MiB; a single larger
   * message is accepted when nothing else is pending). At either bound the overflow strategy
   * applies (default `fail`), whether the client is connected or not: a peer that stops reading
   * fills the outbox instead of the process's memory.
   */
  readonly outbox?:
    | {
      readonly capacity?: number | undefined
      readonly maxBytes?: number | undefined
      readonly overflow?: Overflow | undefined
    }
    | undefined
  /**
   * Runs after every (re)connect, before the outbox flushes: authenticate, resubscribe. A failure
   * drops the connection (`OnOpenError`). A link the peer or the network ends while it runs
   * interrupts it, and the attempt fails with that `Disconnected` (its close code for `shouldRetry`).
   */
  readonly onOpen?: ((connection: Connection.Connection) => Effect.Effect<void, unknown>) | undefined
  /** How long `onOpen` may take; past it the connection is dropped with `OnOpenError` (cause: `TimeoutError onOpen`). Default 10 s. */
  readonly onOpenTimeout?: Duration.DurationInput | undefined
  /**
   * The least wait between two attempts, whatever `retry` says, so that no schedule (a zero
   * delay, a misconfigured cap) makes a hot loop. Default 100 ms; at least 1 ms. `reconnect`
   * skips it.
   */
  readonly minRetryDelay?: Duration.DurationInput | undefined
  /** Dead-peer detection; `false` turns it off. */
  readonly heartbeat?: HeartbeatOptions | false | undefined
  /** How many events an `events` reader may fall behind by before it loses the oldest (each reader its own). Default 64. */
  readonly eventsCapacity?: number | undefined
  /**
   * With several endpoints: `roundRobin` (default: in turn), `ordered` (each series of attempts
   * from the first endpoint down; failover), or `random`. Endpoints whose circuit breaker is open
   * are skipped while another is not.
   */
  readonly strategy?: "ordered" | "roundRobin" | "random" | undefined
  /**
   * With `ordered`: a Client open on another endpoint tries a handshake with the first one this
   * often, and reconnects to it once it answers (and the first one's circuit breaker, if any,
   * is closed).
   */
  readonly returnToPrimary?: Duration.DurationInput | undefined
  /**
   * While the endpoint's circuit breaker is open (the Client is `Suspended`, with a
   * `CircuitBreaker.layer` in its context): `queue` (default) keeps sends in the outbox as when
   * disconnected; `failFast` fails new sends and `awaitOpen` at once with `CircuitOpenError`, so
   * callers degrade (`Effect.catchTag("CircuitOpenError", fallback)`) instead of waiting.
   */
  readonly whenSuspended?: "queue" | "failFast" | undefined
}

/**
 * A typed client: `Client.make({ url, codec: Codec.json(schema) })`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CodecOptions<In, Out> extends Options {
  /**
   * Decodes `messages` and encodes what `send`, `enqueue` and `sink` take (see `Codec`). Applied
   * at the edge: the outbox, its bounds, `close` and `MessageFailed` deal in encoded frames; the
   * heartbeat's `message` is sent as it is and `isPong` sees raw frames; `onOpen` gets the raw
   * Connection.
   */
  readonly codec: Codec<In, Out>
  /**
   * What a frame that does not decode does: `"event"` (default) skips it and publishes
   * `DecodeFailed { error }` on `events`; `"fail"` fails `messages` with the `DecodeError` (then
   * `messages`' error type includes it). The link stays up either way.
   */
  readonly decodeErrors?: "event" | "fail" | undefined
}

/**
 * Starts a client in the current scope; it connects at once and keeps connecting until closed.
 * Closing the scope closes it (1000 on success, 1001 on failure) and fails what is still queued.
 * Options that cannot work (a zero capacity, a negative duration, an invalid URL or subprotocol)
 * leave it Closed with `ConnectError InvalidOptions` / `InvalidUrl`.
 *
 * @since 0.1.0
 * @category constructors
 */
export function make<In, Out>(
  options: CodecOptions<In, Out> & { readonly decodeErrors: "fail" }
): Effect.Effect<Client<In, Out, DecodeError>, never, Scope.Scope | Transport>
export function make<In, Out>(
  options: CodecOptions<In, Out> & { readonly decodeErrors?: "event" | undefined }
): Effect.Effect<Client<In, Out>, never, Scope.Scope | Transport>
export function make<In, Out>(
  options: CodecOptions<In, Out>
): Effect.Effect<Client<In, Out, DecodeError>, never, Scope.Scope | Transport>
export function make(options: Options): Effect.Effect<Client, never, Scope.Scope | Transport>
export function make(
  options: Options | CodecOptions<unknown, unknown>
): Effect.Effect<Client<unknown, never, unknown>, never, Scope.Scope | Transport> {
  return makeWith(options, makeClient)
}

/**
 * Declares a tag for one link, so an app can hold several clients.
 *
 * @example
 * ```ts
 * import { Client } from "effect-lifeline"
 *
 * class Prices extends Client.Tag("Prices")<Prices>() {}
 * const PricesLive = Client.layer(Prices, { url: "wss://example.com/prices" })
 * ```
 *
 * // Typed: the client's `In`, `Out` (and `messages`' error) after `Self`.
 * class Ticks extends Client.Tag("Ticks")<Ticks, Tick, Order>() {}
 * const TicksLive = Client.layer(Ticks, { url, codec: Codec.json(Tick, Order) })
 *
 * @since 0.1.0
 * @category tags
 */
export const Tag =
  <const Id extends string>(id: Id) =>
  <Self, In = Message, Out = Message, E = never>(): Context.TagClass<Self, Id, Client<In, Out, E>> =>
    Context.Tag(id)<Self, Client<In, Out, E>>()

/**
 * Provides a client under your tag for the life of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export function layer<I, In, Out>(
  tag: Context.Tag<I, Client<In, Out, DecodeError>>,
  options: CodecOptions<In, Out>
): Layer.Layer<I, never, Transport>
export function layer<I, In, Out>(
  tag: Context.Tag<I, Client<In, Out>>,
  options: CodecOptions<In, Out> & { readonly decodeErrors?: "event" | undefined }
): Layer.Layer<I, never, Transport>
export function layer<I>(tag: Context.Tag<I, Client>, options: Options): Layer.Layer<I, never, Transport>
// The implementation's: each overload above is checked; a Tag's service type is invariant.

export function layer<I>(
  tag: Context.Tag<I, any>,
  options: Options | CodecOptions<unknown, unknown>
): Layer.Layer<I, never, Transport> {
  return Layer.scoped(tag, make(options as CodecOptions<unknown, unknown>))
}

/**
 * Client options read from configuration: `URL` (required), `OPEN_TIMEOUT`, `CLOSE_TIMEOUT`,
 * `RETRY_BASE`, `RETRY_CAP`, `HEARTBEAT_INTERVAL`, `HEARTBEAT_TIMEOUT`, `HEARTBEAT_PROBE` (`true`
 * or `false`), `OUTBOX_CAPACITY`, nested under `name` when given. How a nested key is spelled is
 * the provider's: `ConfigProvider.fromEnv` (Effect's default) joins with `_` (`PRICES_URL`),
 * `ConfigProvider.fromMap` with `.` (`PRICES.URL`). A value that cannot work fails with a `ConfigError` that names its key
 * (e.g. `PRICES.OUTBOX_CAPACITY: must be a positive integer`).
 *
 * @since 0.1.0
 * @category config
 */
export const config = (name?: string): Config.Config<Options> =>
  // The keys are decoded by the same checks as the options they set (internal/options.ts).
  name === undefined ? clientConfig() : Config.nested(clientConfig(), name)

/**
 * `extra` over `read`, field by field: an option group (`connection`, `outbox`, `heartbeat`)
 * given in both keeps the fields of each, `extra`'s winning; anything else in `extra` replaces.
 */
const mergeOptions = (read: Options, extra: Partial<Options>): Options => {
  const merged: Record<string, unknown> = { ...read, ...extra }
  for (const group of ["connection", "outbox", "heartbeat"] as const) {
    const base = read[group]
    const over = extra[group]
    if (typeof base === "object" && base !== null && typeof over === "object" && over !== null) {
      merged[group] = { ...base, ...over }
    }
  }
  return merged as unknown as Options
}

/**
 * Provides a client under your tag with options from `config`, merged with `extra` field by
 * field (`extra` wins; `{ connection: { protocols } }` keeps the configured timeouts). A `codec`
 * in `extra` types the Client, as `layer`'s does: the tag's `In` and `Out` are the codec's.
 *
 * @since 0.1.0
 * @category layers
 */
export function layerConfig<I, In, Out>(
  tag: Context.Tag<I, Client<In, Out, DecodeError>>,
  options: Config.Config<Options>,
  extra: Partial<CodecOptions<In, Out>> & { readonly codec: Codec<In, Out> }
): Layer.Layer<I, ConfigError.ConfigError, Transport>
export function layerConfig<I, In, Out>(
  tag: Context.Tag<I, Client<In, Out>>,
  options: Config.Config<Options>,
  extra: Partial<CodecOptions<In, Out>> & {
    readonly codec: Codec<In, Out>
    readonly decodeErrors?: "event" | undefined
  }
): Layer.Layer<I, ConfigError.ConfigError, Transport>
export function layerConfig<I>(
  tag: Context.Tag<I, Client>,
  options: Config.Config<Options>,
  extra?: Partial<Options>
): Layer.Layer<I, ConfigError.ConfigError, Transport>
// The implementation's: each overload above is checked; a Tag's service type is invariant.

export function layerConfig<I>(
  tag: Context.Tag<I, any>,
  options: Config.Config<Options>,
  extra: Partial<Options> = {}
): Layer.Layer<I, ConfigError.ConfigError, Transport> {
  return Layer.scoped(
    tag,
    Effect.flatMap(options, (read) => make(mergeOptions(read, extra) as CodecOptions<unknown, unknown>))
  )
}
