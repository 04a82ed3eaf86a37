/**
 * The option checks as released (4eb30a1, before round 13 rewrote them as tables walked by one
 * `struct`): kept only so that test/review14.test.ts can decode the same inputs through both and
 * diff the outcomes. Not used by the library. Imports point into src/.
 */
/* eslint-disable */
/**
 * The options of `Connection.connect` and `Client.make` as checks: one place for their
 * validation, their defaults and the Config keys that map onto them. A check decodes the options
 * a user wrote (`ConnectOptions`, `Client.Options`) into what the connection and the client run on
 * (`CheckedOptions`, `ClientSettings`). A decoding failure is `ConnectError InvalidOptions` whose
 * one-line detail names the first bad option (`outbox.capacity: must be a positive integer`) and
 * never echoes a value that may be a secret (a header value, a private key).
 *
 * The checks are small functions (a leaf per option, `struct` for a group), not `effect/Schema`:
 * Schema and what it pulls in (fast-check, pure-rand) were about 80 % of lifeline's cost in a
 * browser bundle. They behave as the Schemas did: fields in declaration order, the first problem
 * reported with its path, an absent or undefined field takes its default, unknown keys ignored
 * (but a connection option at the top level of a Client's options is refused, with where it goes).
 *
 * The options only a transport reads (`headers`, `tls`) are checked by the Transport's
 * `checkOptions` (the Node transport's: `nodeOptions.ts`), in their place among the others, so
 * that a browser bundle does not carry them; without it they are not read (browsers), or, for a
 * Node transport, refused (`optionChecksOf`).
 *
 * Functions, Effects and Schedules in the options (url and headers Effects, onOpen, shouldRetry,
 * retry, isPong) are passed through: checked to be a function, an Effect, a Schedule, nothing more.
 *
 * Decoding happens once per `Connection.connect` call and once per `Client.make`: options that
 * were decoded already are recognised by `acquireConnection` (through `resolveOptions`) and used as
 * they are, so a Client's attempts do not check its connection options again.
 */
import type { Schedule } from "effect"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { Options as ClientOptions } from "../../src/Client.js"
import type { Connection, Options as ConnectionOptionsInput } from "../../src/Connection.js"
import { ConnectError } from "../../src/Errors.js"
import type { BackoffOptions, ClientError } from "../../src/Reconnect.js"
import { defaultSchedule, exponentialBackoff, invalidScheduleReason, isRetryable } from "../../src/Reconnect.js"
import type { Message, OptionChecks, OptionProblem, TlsOptions } from "../../src/Transport.js"
import { Transport } from "../../src/Transport.js"
import { INVALID_OPTIONS_HINT } from "../../src/internal/classifyHandshakeError.js"
import type { ResolvedOptions } from "../../src/internal/connection.js"
import type { HeartbeatOptions } from "../../src/internal/heartbeat.js"
import type { Overflow } from "../../src/internal/primitives/outbox.js"
import { isValidSubprotocol } from "../../src/internal/protocol.js"

// ---------------------------------------------------------------------------------------------
// The types: what the checks decode from and to
// ---------------------------------------------------------------------------------------------

/**
 * What `Connection.Options` accepts (a type import: no runtime dependency on the public module),
 * and the decoded options again: a decoded `tls` is Redacted, and `maxMessageSize` may be unset.
 */
export interface ConnectOptions extends Omit<ConnectionOptionsInput, "tls" | "maxMessageSize"> {
  readonly tls?: TlsOptions | Redacted.Redacted<TlsOptions> | undefined
  readonly maxMessageSize?: number | undefined
}

/** Options checked and completed with defaults, plus what the transport needs. */
export interface CheckedOptions extends ResolvedOptions {
  readonly protocols: ReadonlyArray<string>
  readonly headers: Readonly<Record<string, string>>
  /** Only the known keys, copied; Redacted so that it never shows in a log or an inspection. */
  readonly tls: Redacted.Redacted<TlsOptions> | undefined
  readonly maxPayload: number
  readonly perMessageDeflate: boolean
}

/** The Client's options after defaults; built by `Client.make`. */
export interface ClientSettings {
  readonly endpoints: ReadonlyArray<string | URL | Effect.Effect<string>>
  /** Decoded once by `Client.make`, static headers included: `acquireConnection` uses them as they are. */
  readonly connection: CheckedOptions
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
  /** How the next endpoint is picked among several. */
  readonly strategy: Strategy
  /** With `ordered`: how often a Client on another endpoint probes the first one, to go home. */
  readonly returnToPrimary: Duration.Duration | undefined
  /** While the endpoint's breaker is open: sends wait (`queue`) or fail with CircuitOpenError. */
  readonly whenSuspended: WhenSuspended
  /** Why the options cannot work; the client then starts Closed with ConnectError InvalidOptions. */
  readonly invalid: string | undefined
}

// ---------------------------------------------------------------------------------------------
// Defaults: shared and frozen, never copied per client (idle memory per client is a benchmark target)
// ---------------------------------------------------------------------------------------------

const DEFAULT_OPEN_TIMEOUT = Duration.seconds(10)
/** Also a listener's made without options (tests). */
export const DEFAULT_CLOSE_TIMEOUT = Duration.seconds(5)
const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024
const DEFAULT_INBOUND_CAPACITY = 1024
const DEFAULT_INBOUND_BYTES = 16 * 1024 * 1024
const DEFAULT_WRITE_HIGH_WATER_MARK = 1024 * 1024
const DEFAULT_MIN_UPTIME = Duration.seconds(5)
const DEFAULT_HEARTBEAT_INTERVAL = Duration.seconds(20)
const DEFAULT_HEARTBEAT_TIMEOUT = Duration.seconds(10)
const DEFAULT_ON_OPEN_TIMEOUT = Duration.seconds(10)
const DEFAULT_MIN_RETRY_DELAY = 100
export const DEFAULT_OUTBOX_CAPACITY = 1024
export const DEFAULT_OUTBOX_BYTES = 16 * 1024 * 1024
const DEFAULT_EVENTS_CAPACITY = 64

const NO_PROTOCOLS: ReadonlyArray<string> = Object.freeze([])
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({})

// Decoded connection options, by identity: `resolveOptions` uses them without checking again. A
// copy (`{ ...decoded, headers }`) is not in it and is decoded again, which a decoded value survives.
const decoded = new WeakSet<CheckedOptions>()
const markDecoded = <A extends CheckedOptions>(options: A): A => {
  decoded.add(options)
  return options
}

const DEFAULT_CONNECTION: CheckedOptions = markDecoded(Object.freeze({
  openTimeout: DEFAULT_OPEN_TIMEOUT,
  closeTimeout: DEFAULT_CLOSE_TIMEOUT,
  inboundCapacity: DEFAULT_INBOUND_CAPACITY,
  inboundBytes: DEFAULT_INBOUND_BYTES,
  writeHighWaterMark: DEFAULT_WRITE_HIGH_WATER_MARK,
  maxMessageSize: undefined,
  protocols: NO_PROTOCOLS,
  headers: NO_HEADERS,
  tls: undefined,
  maxPayload: DEFAULT_MAX_PAYLOAD,
  perMessageDeflate: true
}))

interface DecodedHeartbeat extends HeartbeatOptions {
  readonly isPong: ((message: Message) => boolean) | undefined
}
const DEFAULT_HEARTBEAT: DecodedHeartbeat = Object.freeze({
  interval: DEFAULT_HEARTBEAT_INTERVAL,
  timeout: DEFAULT_HEARTBEAT_TIMEOUT,
  message: undefined,
  isPong: undefined
})
const NO_HEARTBEAT: DecodedHeartbeat = Object.freeze({ ...DEFAULT_HEARTBEAT })

interface DecodedOutbox {
  readonly capacity: number
  readonly maxBytes: number
  readonly overflow: Overflow
}
const DEFAULT_OUTBOX: DecodedOutbox = Object.freeze({
  capacity: DEFAULT_OUTBOX_CAPACITY,
  maxBytes: DEFAULT_OUTBOX_BYTES,
  overflow: "fail"
})

// ---------------------------------------------------------------------------------------------
// Leaves: one check per option, its message naming what is wrong without echoing the value
// ---------------------------------------------------------------------------------------------

/**
 * What is wrong, and where: `path` leads from the value checked to the bad option (`tls.ca`); a
 * `message` undefined is a group that is not an object (`must be an object` at the top, `has the
 * wrong type` below it).
 */
interface Problem {
  readonly path: ReadonlyArray<string>
  readonly message: string | undefined
}
const problem = (message: string, path: ReadonlyArray<string> = []): Either.Either<never, Problem> =>
  Either.left({ path, message })

/**
 * A check: what users wrote to what lifeline runs on, or the problem. `transport`: the
 * Transport's checks of the options only it reads (`headers`, `tls`), passed down to them.
 */
type Check<A> = (input: unknown, transport: OptionChecks | undefined) => Either.Either<A, Problem>

const decodeDuration = (input: unknown): Option.Option<Duration.Duration> =>
  Option.filter(
    Duration.decodeUnknown(input),
    (value) => Duration.isFinite(value) && Duration.greaterThan(value, Duration.zero)
  )

/** A finite duration above zero. */
const PositiveDuration: Check<Duration.Duration> = (input) => {
  const value = decodeDuration(input)
  return Option.isSome(value) ? Either.right(value.value) : problem("must be a finite duration above zero")
}

/** A safe integer above zero; `unit` is named in the message. */
const positiveInteger = (unit?: string): Check<number> => (input) =>
  typeof input === "number" && Number.isSafeInteger(input) && input > 0
    ? Either.right(input)
    : problem(`must be a positive integer${unit === undefined ? "" : ` (${unit})`}`)

const Protocols: Check<ReadonlyArray<string>> = (input) => {
  if (typeof input !== "string" && !Array.isArray(input)) return problem("must be a string or an array of strings")
  const protocols: ReadonlyArray<unknown> = typeof input === "string" ? [input] : [...(input as ReadonlyArray<unknown>)]
  const seen = new Set<string>()
  for (const protocol of protocols) {
    if (typeof protocol !== "string" || !isValidSubprotocol(protocol)) {
      return problem(`${JSON.stringify(protocol)} is not a valid subprotocol name (RFC 6455 token)`)
    }
    if (seen.has(protocol)) return problem(`"${protocol}" is offered twice`)
    seen.add(protocol)
  }
  return Either.right(protocols.length === 0 ? NO_PROTOCOLS : protocols as ReadonlyArray<string>)
}

/**
 * `headers`: the transport's to check and read (Redacted values); none for a transport that does
 * not send them (browsers). No headers are the shared empty record.
 */
const Headers: Check<Readonly<Record<string, string>>> = (input, transport) => {
  if (transport === undefined) return Either.right(NO_HEADERS)
  return Either.map(transport.headers(input), (headers) => {
    for (const _ in headers) return headers
    return NO_HEADERS
  })
}

/** `tls`: the transport's to check and copy; undefined for a transport that does not read it (browsers). */
const Tls: Check<Redacted.Redacted<TlsOptions> | undefined> = (input, transport) =>
  transport === undefined ? Either.right(undefined) : transport.tls(input)

// A Node transport without `checkOptions` (a wrapper that built its own object rather than
// `{ ...inner, open }`) would send no headers and no tls, silently (no Authorization; a CA that is
// not trusted, a TlsFailed that is retried): every header and any tls is InvalidOptions instead.
const NOT_PASSED_ON = "not sent: this Node transport has no checkOptions (a wrapper passes it on: { ...inner, open })"
const notSent: Either.Either<never, OptionProblem> = Either.left({ path: [], message: NOT_PASSED_ON })
const notPassedOn: OptionChecks = {
  headers: (input) => isEmptyObject(input) ? Either.right(NO_HEADERS) : notSent,
  tls: () => notSent,
  onTls: () => Effect.void
}

/**
 * The checks of `headers` and `tls` for options bound to `transport`: its `checkOptions`; for a
 * transport that does not read them (browsers) none, and they are ignored; for a Node transport
 * without them, checks that refuse any header and any tls.
 */
export const optionChecksOf = (transport: Transport): OptionChecks | undefined =>
  transport.checkOptions ?? (transport.platform === "node" ? notPassedOn : undefined)

const isFunction = (input: unknown): input is (...args: ReadonlyArray<never>) => unknown => typeof input === "function"

/** A function, passed through unchecked beyond that. */
const fn = <F>(): Check<F> => (input) => isFunction(input) ? Either.right(input as F) : problem("must be a function")

/** A Schedule, passed through; `Reconnect.exponentialBackoff` records why its own options cannot work. */
const Retry: Check<Schedule.Schedule<unknown, ClientError>> = (input) => {
  if (typeof input !== "object" || input === null || typeof (input as { step?: unknown }).step !== "function") {
    return problem("must be a Schedule")
  }
  const schedule = input as Schedule.Schedule<unknown, ClientError>
  const reason = invalidScheduleReason(schedule)
  return reason === undefined ? Either.right(schedule) : problem(reason)
}

export type Endpoint = string | URL | Effect.Effect<string>
const isEndpoint = (input: unknown): input is string | URL => typeof input === "string" || input instanceof URL

/** One endpoint or several, as a list; each URL is parsed at its attempt (an Effect's only then). */
export const Url: Check<ReadonlyArray<Endpoint>> = (input) => {
  if (isEndpoint(input) || Effect.isEffect(input)) return Either.right([input as Endpoint])
  if (!Array.isArray(input)) return problem("must be a URL, an Effect of one, or a list of URLs")
  if (input.length === 0) return problem("give at least one endpoint")
  if (!input.every(isEndpoint)) return problem("must be a URL, an Effect of one, or a list of URLs")
  // A copy: the list is the caller's, who may change it later (an attempt read an emptied one).
  return Either.right(input.slice() as ReadonlyArray<Endpoint>)
}

type HeadersEffect = NonNullable<ClientSettings["headers"]>
/** The Client's headers: an Effect (run and checked at every attempt) or fixed ones, checked here once (by the transport). */
const ClientHeaders: Check<HeadersEffect | Readonly<Record<string, string>>> = (input, transport) =>
  Effect.isEffect(input) ? Either.right(input as HeadersEffect) : Headers(input, transport)

const overflows: ReadonlyArray<string> = ["fail", "dropOldest", "suspend"]
export type Strategy = "ordered" | "roundRobin" | "random"
export type WhenSuspended = "queue" | "failFast"

const oneOf = <A extends string>(values: ReadonlyArray<A>): Check<A> => (input) =>
  typeof input === "string" && (values as ReadonlyArray<string>).includes(input)
    ? Either.right(input as A)
    : problem(`must be one of ${values.join(", ")}`)

const StrategyCheck = oneOf<Strategy>(["ordered", "roundRobin", "random"])
const WhenSuspendedCheck = oneOf<WhenSuspended>(["queue", "failFast"])
const OverflowCheck = oneOf(overflows as ReadonlyArray<Overflow>)

/** Milliseconds, at least 1. */
const MinRetryDelay: Check<number> = (input) => {
  const value = decodeDuration(input)
  if (Option.isNone(value)) return problem("must be a finite duration above zero")
  const millis = Duration.toMillis(value.value)
  return millis >= 1 ? Either.right(millis) : problem("must be at least 1 millisecond")
}

const Bool: Check<boolean> = (input) =>
  typeof input === "boolean" ? Either.right(input) : problem("must be true or false")

const Message: Check<Message> = (input) =>
  typeof input === "string" || input instanceof Uint8Array ? Either.right(input) : problem("must be a string or bytes")

// ---------------------------------------------------------------------------------------------
// Groups: a struct of fields, checked in order
// ---------------------------------------------------------------------------------------------

/** A field of a group: its check, and what it is when absent or undefined (a required one must be present). */
interface Field<A> {
  readonly check: Check<A>
  readonly absent: A
  readonly required: boolean
}
const withDefault = <A>(check: Check<A>, value: A): Field<A> => ({ check, absent: value, required: false })
const optional = <A>(check: Check<A>): Field<A | undefined> => ({ check, absent: undefined, required: false })
const required = <A>(check: Check<A>): Field<A> => ({ check, absent: undefined as never, required: true })

type Fields = Readonly<Record<string, Field<unknown>>>
type StructType<F extends Fields> = { readonly [K in keyof F]: F[K] extends Field<infer A> ? A : never }

const NOT_AN_OBJECT: Either.Either<never, Problem> = Either.left({ path: [], message: undefined })

/**
 * An object (not an array, not null) whose fields are checked in their declaration order: the
 * first problem is reported, its path starting with the field's name. A field that is absent
 * (not an own key) or undefined takes its default; a required one is read through the prototype
 * too, and is missing when it is not an own key and does not check. Other
 * keys are ignored. (What `Schema.Struct` with `optional` / `optionalWith({ default })` did.)
 */
const struct = <F extends Fields>(fields: F): Check<StructType<F>> => (input, transport) => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return NOT_AN_OBJECT
  const output: Record<string, unknown> = {}
  for (const name in fields) {
    const field = fields[name]!
    const present = Object.prototype.hasOwnProperty.call(input, name)
    // A required field is read through the prototype too (a getter on a class), as Schema.Struct
    // read it; when it is not an own key and does not check, it is reported missing.
    const value: unknown = present || field.required ? (input as Record<string, unknown>)[name] : undefined
    if (value === undefined && !field.required) {
      output[name] = field.absent
      continue
    }
    const result = field.check(value, transport)
    if (Either.isLeft(result)) {
      if (!present) return problem("is required", [name])
      return Either.left({ path: [name, ...result.left.path], message: result.left.message })
    }
    output[name] = result.right
  }
  return Either.right(output as StructType<F>)
}

// ---------------------------------------------------------------------------------------------
// The options
// ---------------------------------------------------------------------------------------------

/** Every Connection option but `headers`: what a Client's `connection` takes. In `Connection.Options` order. */
const connectionFields = {
  protocols: withDefault(Protocols, NO_PROTOCOLS),
  tls: optional(Tls),
  openTimeout: withDefault(PositiveDuration, DEFAULT_OPEN_TIMEOUT),
  closeTimeout: withDefault(PositiveDuration, DEFAULT_CLOSE_TIMEOUT),
  maxPayload: withDefault(positiveInteger("bytes"), DEFAULT_MAX_PAYLOAD),
  perMessageDeflate: withDefault(Bool, true),
  inboundCapacity: withDefault(positiveInteger("frames"), DEFAULT_INBOUND_CAPACITY),
  inboundBytes: withDefault(positiveInteger("bytes"), DEFAULT_INBOUND_BYTES),
  writeHighWaterMark: withDefault(positiveInteger("bytes"), DEFAULT_WRITE_HIGH_WATER_MARK),
  maxMessageSize: optional(positiveInteger("bytes"))
}
const ClientConnectionFields = struct(connectionFields)
type ConnectionFields = StructType<typeof connectionFields>

/** No headers, and every field its default (the very default values, which the checks keep by identity when absent). */
const isDefault = (fields: ConnectionFields, headers: Readonly<Record<string, string>>): boolean => {
  if (headers !== NO_HEADERS) return false
  for (const name in connectionFields) {
    if (fields[name as keyof ConnectionFields] !== connectionFields[name as keyof ConnectionFields].absent) return false
  }
  return true
}

/** The decoded options; the shared defaults object when every field is a default (`connection: {}` from Config). */
const toChecked = (fields: ConnectionFields, headers: Readonly<Record<string, string>>): CheckedOptions =>
  isDefault(fields, headers) ? DEFAULT_CONNECTION : markDecoded({
    openTimeout: fields.openTimeout,
    closeTimeout: fields.closeTimeout,
    inboundCapacity: fields.inboundCapacity,
    inboundBytes: fields.inboundBytes,
    writeHighWaterMark: fields.writeHighWaterMark,
    maxMessageSize: fields.maxMessageSize,
    protocols: fields.protocols,
    headers,
    tls: fields.tls,
    maxPayload: fields.maxPayload,
    perMessageDeflate: fields.perMessageDeflate
  })

const ConnectionOptionsFields = struct({ ...connectionFields, headers: withDefault(Headers, NO_HEADERS) })

/** `Connection.Options` -> `CheckedOptions`. */
const ConnectionOptions: Check<CheckedOptions> = (input, transport) =>
  Either.map(ConnectionOptionsFields(input, transport), (fields) => toChecked(fields, fields.headers))

const HeartbeatFields = struct({
  interval: withDefault(PositiveDuration, DEFAULT_HEARTBEAT_INTERVAL),
  timeout: withDefault(PositiveDuration, DEFAULT_HEARTBEAT_TIMEOUT),
  message: optional(Message),
  isPong: optional(fn<(message: Message) => boolean>())
})
const Heartbeat: Check<DecodedHeartbeat> = (input, transport) => {
  if (input === false) return Either.right(NO_HEARTBEAT)
  if (typeof input !== "object" || input === null || Array.isArray(input)) return problem("must be an object or false")
  return Either.map(
    HeartbeatFields(input, transport),
    (fields) =>
      fields.interval === DEFAULT_HEARTBEAT_INTERVAL && fields.timeout === DEFAULT_HEARTBEAT_TIMEOUT &&
        fields.message === undefined && fields.isPong === undefined
        ? DEFAULT_HEARTBEAT
        : { interval: fields.interval, timeout: fields.timeout, message: fields.message, isPong: fields.isPong }
  )
}

const OutboxFields = struct({
  capacity: withDefault(positiveInteger(), DEFAULT_OUTBOX_CAPACITY),
  maxBytes: withDefault(positiveInteger(), DEFAULT_OUTBOX_BYTES),
  overflow: withDefault(OverflowCheck, "fail")
})

/** `Client.Options`, field by field, in `Client.Options` order: the first bad one is reported. */
const clientFields = {
  url: required(Url),
  headers: optional(ClientHeaders),
  connection: optional(ClientConnectionFields),
  retry: withDefault(Retry, defaultSchedule),
  shouldRetry: withDefault(fn<(error: ClientError) => boolean>(), isRetryable),
  minUptime: withDefault(PositiveDuration, DEFAULT_MIN_UPTIME),
  outbox: withDefault(OutboxFields, DEFAULT_OUTBOX),
  onOpen: optional(fn<NonNullable<ClientSettings["onOpen"]>>()),
  onOpenTimeout: withDefault(PositiveDuration, DEFAULT_ON_OPEN_TIMEOUT),
  minRetryDelay: withDefault(MinRetryDelay, DEFAULT_MIN_RETRY_DELAY),
  heartbeat: withDefault(Heartbeat, DEFAULT_HEARTBEAT),
  eventsCapacity: withDefault(positiveInteger(), DEFAULT_EVENTS_CAPACITY),
  strategy: withDefault(StrategyCheck, "roundRobin"),
  returnToPrimary: optional(PositiveDuration),
  whenSuspended: withDefault(WhenSuspendedCheck, "queue")
}
const ClientFields = struct(clientFields)

export const toSettings = (fields: StructType<typeof clientFields>): ClientSettings => {
  const headers = fields.headers
  const fixed = headers === undefined || Effect.isEffect(headers)
    ? undefined
    : headers as Readonly<Record<string, string>>
  const heartbeat = fields.heartbeat === NO_HEARTBEAT ? undefined : fields.heartbeat
  // One literal, in one order: every client's settings share one hidden class.
  return {
    endpoints: fields.url,
    connection: fields.connection === undefined
      ? (fixed === undefined ? DEFAULT_CONNECTION : toChecked(DEFAULT_CONNECTION, fixed))
      : toChecked(fields.connection, fixed ?? NO_HEADERS),
    headers: headers !== undefined && Effect.isEffect(headers) ? headers as HeadersEffect : undefined,
    schedule: fields.retry,
    shouldRetry: fields.shouldRetry,
    minUptime: fields.minUptime,
    outboxCapacity: fields.outbox.capacity,
    outboxBytes: fields.outbox.maxBytes,
    overflow: fields.outbox.overflow,
    onOpen: fields.onOpen,
    onOpenTimeout: fields.onOpenTimeout,
    minRetryDelay: fields.minRetryDelay,
    heartbeat,
    isPong: heartbeat?.isPong,
    eventsCapacity: fields.eventsCapacity,
    strategy: fields.strategy,
    returnToPrimary: fields.returnToPrimary,
    whenSuspended: fields.whenSuspended,
    invalid: undefined
  }
}

/** What each Client option is when absent. */
export const CLIENT_DEFAULTS = ((): StructType<typeof clientFields> => {
  const defaults: Record<string, unknown> = {}
  for (const name in clientFields) defaults[name] = clientFields[name as keyof typeof clientFields].absent
  return defaults as StructType<typeof clientFields>
})()

/**
 * Shortcuts the Node transport installs where it is loaded (`urlOnlySettings.ts`): `{ url }`
 * alone, the common case (and the connect benchmark's), decoded without the checks, its settings
 * shared by the Clients to one URL (idle memory per Client). Without them (a browser bundle: a
 * page holds a Client or two) `{ url }` is decoded as any options are, to the same settings.
 */
export const shortcuts: {
  /** The settings of `options` when they are `{ url }` alone with a valid `url`; else undefined. */
  urlOnly?: (options: unknown) => ClientSettings | undefined
} = {}

/** `Client.Options` -> `ClientSettings`. */
const ClientOptionsCheck: Check<ClientSettings> = (input, transport) =>
  Either.flatMap(ClientFields(input, transport), (fields) => {
    // A connection option at the top level (TypeScript refuses it; untyped code had it ignored).
    for (const name in connectionFields) {
      if ((input as Record<string, unknown>)[name] !== undefined) {
        return problem(`a connection option: put it under connection (connection.${name})`, [name])
      }
    }
    return Either.right(toSettings(fields))
  })

// ---------------------------------------------------------------------------------------------
// Decoding: one line naming the first bad option, never a throw
// ---------------------------------------------------------------------------------------------

/** `outbox.capacity: must be a positive integer`: one line, the option's path first. */
const formatProblem = ({ message, path }: Problem): string =>
  path.length === 0
    ? `options: ${message ?? "must be an object"}`
    : `${path.join(".")}: ${message ?? "has the wrong type"}`

/** How many times each kind of options was decoded, for the tests that check the Client decodes once. */
export const decodeCounts = { connection: 0, client: 0 }

const isEmptyObject = (input: unknown): boolean => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return false
  for (const _ in input) return false
  return true
}

/**
 * Decodes `Connection.Options`; the Left is the detail of `InvalidOptions` (without the hint).
 * `transport`: the Transport's `checkOptions`, for `headers` and `tls` (without: not read).
 */
export const decodeConnectOptions = (
  options: unknown,
  transport?: OptionChecks
): Either.Either<CheckedOptions, string> => {
  decodeCounts.connection++
  // `connect(url)`, the common case (and the connect benchmark's): what the check would decode it to.
  if (isEmptyObject(options)) return Either.right(DEFAULT_CONNECTION)
  return Either.mapLeft(ConnectionOptions(options, transport), formatProblem)
}

/** Decodes `Client.Options`; the Left is the detail of `InvalidOptions` (without the hint). `transport`: as above. */
export const decodeClientOptions = (
  options: unknown,
  transport?: OptionChecks
): Either.Either<ClientSettings, string> => {
  decodeCounts.client++
  const urlOnly = shortcuts.urlOnly?.(options)
  if (urlOnly !== undefined) return Either.right(urlOnly)
  return Either.mapLeft(ClientOptionsCheck(options, transport), formatProblem)
}

/**
 * `Client.make`'s settings: decoded once, or, for options that cannot work, defaults with `invalid`
 * set (the client then starts Closed with `ConnectError InvalidOptions`, naming the first bad option).
 */
export const clientSettings = (options: ClientOptions, transport?: OptionChecks): ClientSettings => {
  const result = decodeClientOptions(options, transport)
  if (Either.isRight(result)) return result.right
  const url: unknown = (options as Partial<ClientOptions> | undefined)?.url
  const endpoints = Array.isArray(url)
    ? url.filter(isEndpoint)
    : isEndpoint(url) || Effect.isEffect(url)
    ? [url as Endpoint]
    : []
  // The defaults, without a heartbeat: the client never connects.
  const settings = toSettings({ ...CLIENT_DEFAULTS, url: endpoints, heartbeat: NO_HEARTBEAT })
  return { ...settings, invalid: `${result.left}; ${INVALID_OPTIONS_HINT}` }
}

/**
 * The options of one connect: decoded ones (a Client's, decoded by `Client.make`) as they are,
 * others decoded now, with the Transport's checks; a `tls` goes to the transport's `onTls`
 * (Node: a warning, once per `tls` object, when it turns verification off).
 */
export const resolveOptions = (
  url: string,
  options: ConnectOptions
): Effect.Effect<CheckedOptions, ConnectError, Transport> =>
  Effect.flatMap(Transport, (transport) => {
    const checks = optionChecksOf(transport)
    let checked: CheckedOptions
    if (decoded.has(options as CheckedOptions)) checked = options as CheckedOptions
    else {
      const result = decodeConnectOptions(options, checks)
      if (Either.isLeft(result)) {
        return Effect.fail(
          new ConnectError(
            { reason: "InvalidOptions", url, detail: `${result.left}; ${INVALID_OPTIONS_HINT}` }
          )
        )
      }
      checked = result.right
    }
    const tls = checked.tls
    if (tls === undefined || checks === undefined) return Effect.succeed(checked)
    // What was given: the user's object (a Connection decodes its options at every call), or the
    // decoded one, which copies of decoded options (headers from an Effect) share.
    return Effect.as(checks.onTls(url, tls, options.tls ?? tls), checked)
  })

// ---------------------------------------------------------------------------------------------
// Config: keys mapped onto the same checks
// ---------------------------------------------------------------------------------------------

/** One key read as a string and decoded by an option's check; a bad value is a ConfigError naming the key. */
const configKey = <A>(
  key: string,
  check: Check<A>,
  parse: (text: string) => unknown = (text) => text
): Config.Config<A> =>
  Config.string(key).pipe(
    Config.mapOrFail((text) =>
      Either.mapLeft(check(parse(text.trim()), undefined), (problem) =>
        ConfigError.InvalidData([], problem.message ?? "has the wrong type"))
    )
  )
const integerText = (text: string): unknown => /^-?\d+$/.test(text) ? Number(text) : text

const some = <K extends string, A>(key: K, value: Option.Option<A>): { readonly [_ in K]?: A } =>
  (Option.isSome(value) ? { [key]: value.value } : {}) as { readonly [_ in K]?: A }

const makeClientConfig = (): Config.Config<ClientOptions> =>
  Config.all({
    url: Config.string("URL"),
    openTimeout: Config.option(configKey("OPEN_TIMEOUT", PositiveDuration)),
    closeTimeout: Config.option(configKey("CLOSE_TIMEOUT", PositiveDuration)),
    retryBase: Config.option(configKey("RETRY_BASE", PositiveDuration)),
    retryCap: Config.option(configKey("RETRY_CAP", PositiveDuration)),
    heartbeatInterval: Config.option(configKey("HEARTBEAT_INTERVAL", PositiveDuration)),
    heartbeatTimeout: Config.option(configKey("HEARTBEAT_TIMEOUT", PositiveDuration)),
    outboxCapacity: Config.option(configKey("OUTBOX_CAPACITY", positiveInteger(), integerText))
  }).pipe(Config.map((read): ClientOptions => {
    const backoff: BackoffOptions = { ...some("base", read.retryBase), ...some("cap", read.retryCap) }
    return {
      url: read.url,
      connection: { ...some("openTimeout", read.openTimeout), ...some("closeTimeout", read.closeTimeout) },
      ...(Option.isSome(read.retryBase) || Option.isSome(read.retryCap) ? { retry: exponentialBackoff(backoff) } : {}),
      heartbeat: { ...some("interval", read.heartbeatInterval), ...some("timeout", read.heartbeatTimeout) },
      outbox: some("capacity", read.outboxCapacity)
    }
  }))

let clientConfigOnce: Config.Config<ClientOptions> | undefined

/**
 * `Client.config`: `URL` required, the other keys optional (an absent one keeps the option's
 * default). Built at its first use, so that an app that never reads Config does not bundle it.
 */
export const clientConfig = (): Config.Config<ClientOptions> => clientConfigOnce ??= makeClientConfig()

// ---------------------------------------------------------------------------------------------
// The `{ url }` shortcut as released (4eb30a1's urlOnlySettings.ts), installed here as the Node
// transport installs the current one where it is loaded.
// ---------------------------------------------------------------------------------------------

const hasOnlyUrl = (input: unknown): input is { readonly url: unknown } => {
  if (typeof input !== "object" || input === null) return false
  let url = false
  for (const key in input) {
    if (key !== "url") return false
    url = true
  }
  return url
}

let lastUrlOnly: ClientSettings | undefined

const settingsOf = (url: ReadonlyArray<Endpoint>): ClientSettings => {
  const text = url.length === 1 && typeof url[0] === "string" ? url[0] : undefined
  if (text !== undefined && lastUrlOnly?.endpoints[0] === text) return lastUrlOnly
  const settings = toSettings({ ...CLIENT_DEFAULTS, url })
  if (text !== undefined) lastUrlOnly = settings
  return settings
}

shortcuts.urlOnly = (options: unknown): ClientSettings | undefined => {
  if (!hasOnlyUrl(options)) return undefined
  const url = Url(options.url, undefined)
  return Either.isRight(url) ? settingsOf(url.right) : undefined
}
