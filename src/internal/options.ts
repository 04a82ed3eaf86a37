/**
 * The options of `Connection.connect` and `Client.make` as checks: one place for their
 * validation, their defaults and the Config keys that map onto them. A check decodes the options
 * a user wrote (`ConnectOptions`, `Client.Options`) into what the connection and the client run on
 * (`CheckedOptions`, `ClientSettings`). A decoding failure is `ConnectError InvalidOptions` whose
 * one-line detail names the first bad option (`outbox.capacity: must be a positive integer`) and
 * never echoes a value that may be a secret (a header value, a private key).
 *
 * The checks are small functions (a leaf per option) and tables of fields (`[check, default]`,
 * walked by `struct`, one per group), not `effect/Schema`: Schema and what it pulls in
 * (fast-check, pure-rand) were about 80 % of lifeline's cost in a browser bundle. They behave as
 * the Schemas did: fields in declaration order, the first problem reported with its path, an
 * absent or undefined field takes its default, unknown keys ignored (but a connection option at
 * the top level of a Client's options is refused, with where it goes). A check returns the
 * decoded value or throws a `Problem` (`fail`), which `attempt` catches once, at the top. Any
 * other throw while reading the caller's options (a getter or a Proxy trap of untyped code) is a
 * problem too ("cannot be read"), at the field being read: never a defect (round 22).
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
import type { Options as ClientOptions } from "../Client.js"
import type { Connection, Options as ConnectionOptionsInput } from "../Connection.js"
import { ConnectError } from "../Errors.js"
import type { BackoffOptions, ClientError } from "../Reconnect.js"
import { defaultSchedule, exponentialBackoff, invalidScheduleReason, isRetryable } from "../Reconnect.js"
import type { Message, OptionChecks, OptionProblem, TlsOptions } from "../Transport.js"
import { Transport } from "../Transport.js"
import { INVALID_OPTIONS_HINT } from "./classifyHandshakeError.js"
import type { ResolvedOptions } from "./connection.js"
import type { HeartbeatOptions } from "./heartbeat.js"
import { checkEndpoint, isStaticUrl } from "./parseEndpoint.js"
import type { Overflow } from "./primitives/outbox.js"
import { isValidSubprotocol } from "./protocol.js"

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
// Problems: thrown by a check, caught once (`attempt`), one line naming the first bad option
// ---------------------------------------------------------------------------------------------

/**
 * What is wrong, and where: `path` leads from the value checked to the bad option (`tls.ca`; empty:
 * the options themselves). Each group a problem passes through puts its field's name in front.
 */
class Problem {
  declare readonly message: string
  declare readonly path: Array<string>
  constructor(message: string, path: Array<string>) {
    this.message = message
    this.path = path
  }
}

/** Throws the problem: `message`, at `path` below the value checked. */
const fail = (message: string, ...path: Array<string>): never => {
  throw new Problem(message, path)
}

/**
 * What an option is when reading it threw (a getter or a Proxy trap of the caller's, a value whose
 * conversion throws: untyped code). What was thrown is not shown: it is the caller's and may hold
 * anything.
 */
export const UNREADABLE = "cannot be read (reading it threw: a getter or a Proxy?)"

/** A throw while reading the caller's options: a problem at the field being read, never a defect. */
const unreadable = (): Problem => new Problem(UNREADABLE, [])

/** `run`'s value, or `onProblem`'s when a check in it fails or reading the options throws. */
export const attempt = <A, E>(run: () => A, onProblem: (problem: Problem) => E): Either.Either<A, E> => {
  try {
    return Either.right(run())
  } catch (error) {
    return Either.left(onProblem(error instanceof Problem ? error : unreadable()))
  }
}

/** The detail of `ConnectError InvalidOptions`: the problem, then what to do. */
const withHint = (problem: string): string => `${problem}; ${INVALID_OPTIONS_HINT}`

/** `outbox.capacity: must be a positive integer`: one line, the option's path first. */
const formatProblem = ({ message, path }: Problem): string => `${path.join(".") || "options"}: ${message}`

/**
 * A check: what users wrote to what lifeline runs on; a problem is thrown (`fail`). `transport`:
 * the Transport's checks of the options only it reads (`headers`, `tls`), passed down to them.
 */
type Check<A> = (input: unknown, transport?: OptionChecks) => A

// ---------------------------------------------------------------------------------------------
// Leaves: one check per option, its message naming what is wrong without echoing the value
// ---------------------------------------------------------------------------------------------

/** The input itself when `test` holds, else `message`. */
const is = <A>(test: (input: unknown) => boolean, message: string): Check<A> => (input) =>
  test(input) ? input as A : fail(message)

const isRecord = (input: unknown): input is Record<string, unknown> =>
  typeof input === "object" && input !== null && !Array.isArray(input)

/** A finite duration above zero. The message says how one is written: "10s" is none. */
const positiveDuration: Check<Duration.Duration> = (input) => {
  let value: Duration.Duration | undefined
  try {
    value = Duration.decode(input as Duration.DurationInput)
  } catch {
    // Not a duration: the message below.
  }
  return value !== undefined && Duration.isFinite(value) && Duration.greaterThan(value, Duration.zero)
    ? value
    : fail(`must be a finite duration above zero, such as 10 seconds`)
}

/** A safe integer above zero; `unit` is named in the message. */
const positiveInteger = (unit?: string): Check<number> =>
  is(
    (input) => Number.isSafeInteger(input) && (input as number) > 0,
    `must be a positive integer${unit === undefined ? "" : ` (${unit})`}`
  )
const count = positiveInteger()
const bytes = positiveInteger("bytes")

const protocols: Check<ReadonlyArray<string>> = (input) => {
  // A copy: the list is the caller's, who may change it later.
  const list: Array<unknown> = typeof input === "string"
    ? [input]
    : Array.isArray(input)
    ? [...input]
    : fail("must be a string or an array of strings")
  list.forEach((protocol, index) => {
    if (typeof protocol !== "string" || !isValidSubprotocol(protocol)) {
      fail(`${JSON.stringify(protocol)} is not a valid subprotocol name (RFC 6455 token)`)
    }
    if (list.indexOf(protocol) < index) fail(`"${protocol}" is offered twice`)
  })
  return list.length === 0 ? NO_PROTOCOLS : list as ReadonlyArray<string>
}

/** A transport check's value, or its problem thrown. */
const fromTransport = <A>(result: Either.Either<A, OptionProblem>): A =>
  Either.isRight(result) ? result.right : fail(result.left.message, ...result.left.path)

/**
 * `headers`: the transport's to check and read (Redacted values); none for a transport that does
 * not send them (browsers). No headers are the shared empty record.
 */
const headers: Check<Readonly<Record<string, string>>> = (input, transport) => {
  if (transport === undefined) return NO_HEADERS
  const checked = fromTransport(transport.headers(input))
  for (const _ in checked) return checked
  return NO_HEADERS
}

/** `tls`: the transport's to check and copy; undefined for a transport that does not read it (browsers). */
const tls: Check<Redacted.Redacted<TlsOptions> | undefined> = (input, transport) =>
  transport === undefined ? undefined : fromTransport(transport.tls(input))

/**
 * The checks of `headers` and `tls` for options bound to `transport`: its `checkOptions`; for a
 * transport that does not read them (browsers) none, and they are ignored; for a Node transport
 * without them, checks that refuse any header and any tls (`shortcuts.uncheckedNode`, installed
 * with the Node transport: such a transport wraps it, so it is loaded).
 */
export const optionChecksOf = (transport: Transport): OptionChecks | undefined =>
  transport.checkOptions ?? (transport.platform === "node" ? shortcuts.uncheckedNode : undefined)

/** A function, passed through unchecked beyond that (typed where it is used). */
const fn: Check<never> = is((input) => typeof input === "function", "must be a function")

/** A Schedule, passed through; `Reconnect.exponentialBackoff` records why its own options cannot work. */
const retry: Check<Schedule.Schedule<unknown, ClientError>> = (input) => {
  const schedule = input as Schedule.Schedule<unknown, ClientError>
  if (typeof input !== "object" || input === null || typeof (input as { step?: unknown }).step !== "function") {
    fail("must be a Schedule")
  }
  const reason = invalidScheduleReason(schedule)
  return reason === undefined ? schedule : fail(reason)
}

export type Endpoint = string | URL | Effect.Effect<string>
const NOT_AN_ENDPOINT = "must be a URL, an Effect of one, or a list of URLs"

/** One endpoint or several, as a list; each URL is parsed at its attempt (an Effect's only then). */
export const Url: Check<ReadonlyArray<Endpoint>> = (input) => {
  if (isStaticUrl(input) || Effect.isEffect(input)) return [input as Endpoint]
  if (!Array.isArray(input)) fail(NOT_AN_ENDPOINT)
  if ((input as Array<unknown>).length === 0) fail("give at least one endpoint")
  // A copy: the list is the caller's, who may change it later (an attempt read an emptied one).
  return (input as Array<unknown>).every(isStaticUrl) ? (input as Array<Endpoint>).slice() : fail(NOT_AN_ENDPOINT)
}

type HeadersEffect = NonNullable<ClientSettings["headers"]>
/** The Client's headers: an Effect (run and checked at every attempt) or fixed ones, checked here once (by the transport). */
const clientHeaders: Check<HeadersEffect | Readonly<Record<string, string>>> = (input, transport) =>
  Effect.isEffect(input) ? input as HeadersEffect : headers(input, transport)

export type Strategy = "ordered" | "roundRobin" | "random"
export type WhenSuspended = "queue" | "failFast"

const oneOf = <A extends string>(...values: ReadonlyArray<A>): Check<A> =>
  is((input) => values.includes(input as A), `must be one of ${values.join(", ")}`)

/** Milliseconds, at least 1. */
const minRetryDelay: Check<number> = (input) => {
  const millis = Duration.toMillis(positiveDuration(input))
  return millis >= 1 ? millis : fail("must be at least 1 millisecond")
}

const bool: Check<boolean> = is((input) => typeof input === "boolean", "must be true or false")

const message: Check<Message> = is(
  (input) => typeof input === "string" || input instanceof Uint8Array,
  "must be a string or bytes"
)

// ---------------------------------------------------------------------------------------------
// Groups: a table of checks and a table of defaults, walked by `struct`
// ---------------------------------------------------------------------------------------------

/**
 * An object (not an array, not null) whose fields are checked in the order of `checks`: the
 * first problem is reported, its path starting with the field's name. The result is a copy of
 * `defaults` (one shape for every result: its keys, in its order) with the fields given checked
 * into it: a field that is absent (not an own key) or undefined keeps its default (undefined when
 * `defaults` has none). The `required` one is read through the prototype too (a getter on a class,
 * as `Schema.Struct` read it), and is missing (`is required`) when it is not an own key and does
 * not check. Other keys are ignored. (What `Schema.Struct` with `optional` /
 * `optionalWith({ default })` did.)
 */
const struct = <A>(
  checks: { readonly [K in keyof A]?: Check<A[K]> },
  defaults: Partial<A>,
  required?: keyof A
): Check<A> =>
(input, transport) => {
  if (!isRecord(input)) fail("must be an object")
  const output: Record<string, unknown> = { ...defaults }
  for (const name in checks) {
    let present = true
    try {
      present = Object.hasOwn(input as object, name)
      const value = present || name === required ? (input as Record<string, unknown>)[name] : undefined
      if (value === undefined && name !== required) continue
      output[name] = checks[name]!(value, transport)
    } catch (thrown) {
      // A getter or Proxy trap of the caller's that threw is a problem of this field too.
      const error = thrown instanceof Problem ? thrown : unreadable()
      if (!present && thrown instanceof Problem) fail("is required", name)
      error.path.unshift(name)
      throw error
    }
  }
  return output as A
}

/** Every field of `value` is its default, the very default value (the checks keep it by identity when absent). */
const allDefault = <A extends object>(value: A, defaults: A): boolean => {
  for (const name in defaults) if (value[name] !== defaults[name]) return false
  return true
}

// ---------------------------------------------------------------------------------------------
// The options, and their defaults: written once, shared, never copied per client (idle memory
// per client is a benchmark target)
// ---------------------------------------------------------------------------------------------

/** Also a listener's made without options (tests). */
export const DEFAULT_CLOSE_TIMEOUT = Duration.seconds(5)
export const DEFAULT_OUTBOX_CAPACITY = 1024
export const DEFAULT_OUTBOX_BYTES = 16 * 1024 * 1024

const NO_PROTOCOLS: ReadonlyArray<string> = Object.freeze([])
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({})

/**
 * The connection options' defaults, in the order of `CheckedOptions`' one shape: every decoded
 * options object is a copy of it (not frozen: a copy of a frozen object is a slower, larger one).
 */
const CONNECTION: CheckedOptions = {
  openTimeout: Duration.seconds(10),
  closeTimeout: DEFAULT_CLOSE_TIMEOUT,
  inboundCapacity: 1024,
  inboundBytes: 16 * 1024 * 1024,
  writeHighWaterMark: 1024 * 1024,
  maxMessageSize: undefined,
  protocols: NO_PROTOCOLS,
  headers: NO_HEADERS,
  tls: undefined,
  maxPayload: 100 * 1024 * 1024,
  perMessageDeflate: true
}

/** Every Connection option but `headers`: what a Client's `connection` takes. In `Connection.Options` order. */
const connectionChecks = {
  protocols,
  tls,
  openTimeout: positiveDuration,
  closeTimeout: positiveDuration,
  maxPayload: bytes,
  perMessageDeflate: bool,
  inboundCapacity: positiveInteger("frames"),
  inboundBytes: bytes,
  writeHighWaterMark: bytes,
  maxMessageSize: bytes
}

// Decoded connection options, by identity: `resolveOptions` uses them without checking again. A
// copy (`{ ...decoded, headers }`) is not in it and is decoded again, which a decoded value survives.
const decoded = new WeakSet<CheckedOptions>()

/** Every option its default, no headers: shared by every connection and client without options. */
const DEFAULT_CONNECTION: CheckedOptions = Object.freeze({ ...CONNECTION })
decoded.add(DEFAULT_CONNECTION)

/** The decoded options, marked as such; the shared defaults object when every field is a default (`connection: {}` from Config). */
const toChecked = (options: CheckedOptions): CheckedOptions => {
  if (allDefault(options, CONNECTION)) return DEFAULT_CONNECTION
  decoded.add(options)
  return options
}

const connectionFields = struct<CheckedOptions>({ ...connectionChecks, headers }, CONNECTION)

/** `Connection.Options` -> `CheckedOptions`. */
const connectionOptions: Check<CheckedOptions> = (input, transport) => toChecked(connectionFields(input, transport))

interface DecodedHeartbeat extends HeartbeatOptions {
  readonly isPong: ((message: Message) => boolean) | undefined
}
const DEFAULT_HEARTBEAT: DecodedHeartbeat = Object.freeze({
  interval: Duration.seconds(20),
  timeout: Duration.seconds(10),
  message: undefined,
  isPong: undefined,
  probe: true
})
const NO_HEARTBEAT: DecodedHeartbeat = Object.freeze({ ...DEFAULT_HEARTBEAT })
const heartbeatFields = struct<DecodedHeartbeat>({
  interval: positiveDuration,
  timeout: positiveDuration,
  message,
  isPong: fn,
  probe: bool
}, DEFAULT_HEARTBEAT)

/** `false` (none), or the heartbeat's options: the shared defaults when every one is a default. */
const heartbeat: Check<DecodedHeartbeat> = (input, transport) => {
  if (input === false) return NO_HEARTBEAT
  if (!isRecord(input)) fail("must be an object or false")
  const fields = heartbeatFields(input, transport)
  if (!fields.probe && fields.message !== undefined) fail("is not sent with probe: false", "message")
  return allDefault(fields, DEFAULT_HEARTBEAT) ? DEFAULT_HEARTBEAT : fields
}

interface DecodedOutbox {
  readonly capacity: number
  readonly maxBytes: number
  readonly overflow: Overflow
}
const DEFAULT_OUTBOX: DecodedOutbox = {
  capacity: DEFAULT_OUTBOX_CAPACITY,
  maxBytes: DEFAULT_OUTBOX_BYTES,
  overflow: "fail"
}

/** `Client.Options` decoded, before they become `ClientSettings`. */
interface ClientFields extends
  Pick<
    ClientSettings,
    | "shouldRetry"
    | "minUptime"
    | "onOpenTimeout"
    | "minRetryDelay"
    | "eventsCapacity"
    | "strategy"
    | "whenSuspended"
  >
{
  readonly url: ReadonlyArray<Endpoint>
  readonly headers?: HeadersEffect | Readonly<Record<string, string>> | undefined
  readonly connection?: CheckedOptions | undefined
  readonly onOpen?: ClientSettings["onOpen"]
  readonly returnToPrimary?: ClientSettings["returnToPrimary"]
  readonly retry: ClientSettings["schedule"]
  readonly outbox: DecodedOutbox
  readonly heartbeat: DecodedHeartbeat
}

/** What each Client option is when absent (those not here: undefined); `url` has no default: it is required. */
export const CLIENT_DEFAULTS: Omit<ClientFields, "url"> = {
  retry: defaultSchedule,
  shouldRetry: isRetryable,
  minUptime: Duration.seconds(5),
  outbox: DEFAULT_OUTBOX,
  onOpenTimeout: Duration.seconds(10),
  minRetryDelay: 100,
  heartbeat: DEFAULT_HEARTBEAT,
  eventsCapacity: 64,
  strategy: "roundRobin",
  whenSuspended: "queue"
}

/** `Client.Options`, field by field, in `Client.Options` order: the first bad one is reported. */
const clientFields = struct<ClientFields>(
  {
    url: Url,
    headers: clientHeaders,
    // Headers in a `Connection.Options` given as is were not sent (round 20): the Client's are its
    // own (no headers, `{}`, lose nothing).
    connection: struct<CheckedOptions>({
      ...connectionChecks,
      headers: is((input) => isEmptyObject(input), "a Client option: put it at the top level (headers)")
    }, CONNECTION),
    retry,
    shouldRetry: fn,
    minUptime: positiveDuration,
    outbox: struct<DecodedOutbox>({
      capacity: count,
      maxBytes: count,
      overflow: oneOf("fail", "dropOldest", "suspend")
    }, DEFAULT_OUTBOX),
    onOpen: fn,
    onOpenTimeout: positiveDuration,
    minRetryDelay,
    heartbeat,
    eventsCapacity: count,
    strategy: oneOf("ordered", "roundRobin", "random"),
    returnToPrimary: positiveDuration,
    whenSuspended: oneOf("queue", "failFast")
  },
  CLIENT_DEFAULTS,
  "url"
)

/** The settings of decoded options; `invalid`: why they cannot work (then they are the defaults). */
export const toSettings = (fields: ClientFields, invalid?: string): ClientSettings => {
  const headers = fields.headers
  const effect = Effect.isEffect(headers) ? headers as HeadersEffect : undefined
  const heartbeat = fields.heartbeat === NO_HEARTBEAT ? undefined : fields.heartbeat
  // One literal, in one order: every client's settings share one hidden class.
  return {
    endpoints: fields.url,
    // Fixed headers are checked into the connection options; an Effect's are read at each attempt.
    connection: toChecked({
      ...(fields.connection ?? CONNECTION),
      headers: headers === undefined || effect !== undefined ? NO_HEADERS : headers as Readonly<Record<string, string>>
    }),
    headers: effect,
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
    invalid
  }
}

/**
 * What the Node transport installs where it is loaded, and a browser bundle does without:
 * `urlOnly` (`urlOnlySettings.ts`) decodes `{ url }` alone, the common case (and the connect
 * benchmark's), without the checks, its settings shared by the Clients to one URL (idle memory per
 * Client; a page holds a Client or two, and there `{ url }` is decoded as any options are, to the
 * same settings); `uncheckedNode` (`nodeOptions.ts`) is for a wrapper of the Node transport
 * without its `checkOptions`.
 */
export const shortcuts: {
  /** The settings of `options` when they are `{ url }` alone with a valid `url`; else undefined. */
  urlOnly?: (options: unknown) => ClientSettings | undefined
  /** The checks for a Node transport without `checkOptions` (`nodeOptions.ts`): every header and any tls refused. */
  uncheckedNode?: OptionChecks
} = {}

/** `Client.Options` -> `ClientSettings`. */
const clientOptions: Check<ClientSettings> = (input, transport) => {
  const fields = clientFields(input, transport)
  // A connection option at the top level (TypeScript refuses it; untyped code had it ignored).
  for (const name in connectionChecks) {
    if ((input as Record<string, unknown>)[name] !== undefined) {
      fail(`a connection option: put it under connection (connection.${name})`, name)
    }
  }
  return toSettings(fields)
}

// ---------------------------------------------------------------------------------------------
// Decoding: one line naming the first bad option, never a throw
// ---------------------------------------------------------------------------------------------

const isEmptyObject = (input: unknown): boolean => {
  if (!isRecord(input)) return false
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
): Either.Either<CheckedOptions, string> =>
  // `connect(url)`, the common case (and the connect benchmark's): what the check would decode it to.
  attempt(() => isEmptyObject(options) ? DEFAULT_CONNECTION : connectionOptions(options, transport), formatProblem)

/** Decodes `Client.Options`; the Left is the detail of `InvalidOptions` (without the hint). `transport`: as above. */
export const decodeClientOptions = (
  options: unknown,
  transport?: OptionChecks
): Either.Either<ClientSettings, string> =>
  attempt(() => shortcuts.urlOnly?.(options) ?? clientOptions(options, transport), formatProblem)

/**
 * `Client.make`'s settings: decoded once, or, for options that cannot work, defaults with `invalid`
 * set (the client then starts Closed with `ConnectError InvalidOptions`, naming the first bad option).
 */
export const clientSettings = (options: ClientOptions, transport?: OptionChecks): ClientSettings => {
  const result = decodeClientOptions(options, transport)
  if (Either.isRight(result)) return result.right
  // Read again for the state's endpoint labels; options whose reading throws have none.
  const endpoints = Either.getOrElse(
    attempt((): ReadonlyArray<Endpoint> => {
      const url: unknown = (options as Partial<ClientOptions> | undefined)?.url
      return Array.isArray(url)
        ? url.filter(isStaticUrl)
        : isStaticUrl(url) || Effect.isEffect(url)
        ? [url as Endpoint]
        : []
    }, () => undefined),
    (): ReadonlyArray<Endpoint> => []
  )
  // The defaults, without a heartbeat: the client never connects.
  return toSettings({ ...CLIENT_DEFAULTS, url: endpoints, heartbeat: NO_HEARTBEAT }, withHint(result.left))
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
    const result = decoded.has(options as CheckedOptions)
      ? Either.right(options as CheckedOptions)
      : decodeConnectOptions(options, checks)
    if (Either.isLeft(result)) {
      return Effect.fail(new ConnectError({ reason: "InvalidOptions", url, detail: withHint(result.left) }))
    }
    const checked = result.right
    const tls = checked.tls
    // What was given: the user's object (a Connection decodes its options at every call), or the
    // decoded one, which copies of decoded options (headers from an Effect) share.
    return tls === undefined || checks === undefined
      ? Effect.succeed(checked)
      : Effect.as(checks.onTls(url, tls, options.tls ?? tls), checked)
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
      attempt(
        () => check(parse(text.trim()), undefined),
        (problem) => ConfigError.InvalidData([], problem.message)
      )
    )
  )
/**
 * A URL that can be dialled: one that cannot fails the Config, naming the key, as the other keys'
 * bad values do (the detail never shows the URL: it may hold a password).
 */
const dialable: Check<string> = (input) => {
  const endpoint = checkEndpoint(input as string)
  return endpoint instanceof ConnectError ? fail(endpoint.detail) : input as string
}
const integerText = (text: string): unknown => /^-?\d+$/.test(text) ? Number(text) : text
const booleanText = (text: string): unknown => text === "true" ? true : text === "false" ? false : text

const some = <K extends string, A>(key: K, value: Option.Option<A>): { readonly [_ in K]?: A } =>
  (Option.isSome(value) ? { [key]: value.value } : {}) as { readonly [_ in K]?: A }

const makeClientConfig = (): Config.Config<ClientOptions> =>
  Config.all({
    url: configKey("URL", dialable),
    openTimeout: Config.option(configKey("OPEN_TIMEOUT", positiveDuration)),
    closeTimeout: Config.option(configKey("CLOSE_TIMEOUT", positiveDuration)),
    retryBase: Config.option(configKey("RETRY_BASE", positiveDuration)),
    retryCap: Config.option(configKey("RETRY_CAP", positiveDuration)),
    heartbeatInterval: Config.option(configKey("HEARTBEAT_INTERVAL", positiveDuration)),
    heartbeatTimeout: Config.option(configKey("HEARTBEAT_TIMEOUT", positiveDuration)),
    heartbeatProbe: Config.option(configKey("HEARTBEAT_PROBE", bool, booleanText)),
    outboxCapacity: Config.option(configKey("OUTBOX_CAPACITY", count, integerText))
  }).pipe(Config.map((read): ClientOptions => {
    const backoff: BackoffOptions = { ...some("base", read.retryBase), ...some("cap", read.retryCap) }
    return {
      url: read.url,
      connection: { ...some("openTimeout", read.openTimeout), ...some("closeTimeout", read.closeTimeout) },
      ...(Option.isSome(read.retryBase) || Option.isSome(read.retryCap) ? { retry: exponentialBackoff(backoff) } : {}),
      heartbeat: {
        ...some("interval", read.heartbeatInterval),
        ...some("timeout", read.heartbeatTimeout),
        ...some("probe", read.heartbeatProbe)
      },
      outbox: some("capacity", read.outboxCapacity)
    }
  }))

let clientConfigOnce: Config.Config<ClientOptions> | undefined

/**
 * `Client.config`: `URL` required, the other keys optional (an absent one keeps the option's
 * default). Built at its first use, so that an app that never reads Config does not bundle it.
 */
export const clientConfig = (): Config.Config<ClientOptions> => clientConfigOnce ??= makeClientConfig()
