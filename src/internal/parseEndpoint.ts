/** Validates a connect request before any socket exists: the URL and every option, as typed errors. */
import { Duration, Effect, Option, Redacted } from "effect"
import { ConnectError } from "../Errors.js"
import { hintFor } from "./classifyHandshakeError.js"
import type { TlsOptions } from "../Transport.js"
import type { ResolvedOptions } from "./connection.js"
import { isValidSubprotocol } from "./protocol.js"
import { redactCause, redactUnparsedUrl, redactUrl } from "./redactUrl.js"

/** A URL that a transport can open, with its redacted rendering for errors and logs. */
export interface Endpoint {
  readonly url: URL
  readonly redacted: string
}

const invalidUrl = (url: string, detail: string, cause?: unknown): ConnectError =>
  new ConnectError({
    reason: "InvalidUrl",
    url,
    detail: `${detail}; ${hintFor("InvalidUrl")}`,
    // Never the platform's error itself: Node's TypeError keeps the whole input (password, query) in `input`.
    ...(cause === undefined ? {} : { cause: redactCause(cause) })
  }, true)

/** Accepts ws: and wss: URLs with a host and no fragment. */
export const parseEndpoint = (input: string | URL): Effect.Effect<Endpoint, ConnectError> =>
  Effect.suspend(() => {
    const text = typeof input === "string" ? input.trim() : input.href
    if (text === "") return Effect.fail(invalidUrl("", "the URL is empty"))
    let url: URL
    try {
      url = new URL(text)
    } catch (cause) {
      return Effect.fail(invalidUrl(redactUnparsedUrl(text), "the URL does not parse", cause))
    }
    const redacted = redactUrl(url)
    if (url.protocol !== "ws:" && url.protocol !== "wss:") {
      return Effect.fail(invalidUrl(redacted, `the scheme is "${url.protocol}"`))
    }
    if (url.hostname === "") return Effect.fail(invalidUrl(redacted, "the URL has no host"))
    if (url.hash !== "") return Effect.fail(invalidUrl(redacted, "the URL has a fragment (#...)"))
    return Effect.succeed({ url, redacted })
  })

/** What `Connection.Options` accepts, restated here so internal code does not import the public module. */
export interface ConnectOptions {
  readonly protocols?: string | ReadonlyArray<string>
  readonly headers?: Readonly<Record<string, string | Redacted.Redacted<string>>>
  readonly tls?: TlsOptions
  readonly openTimeout?: Duration.DurationInput
  readonly closeTimeout?: Duration.DurationInput
  readonly maxPayload?: number
  readonly inboundCapacity?: number
  readonly inboundBytes?: number
  readonly writeHighWaterMark?: number
}

/** Options checked and completed with defaults, plus what the transport needs. */
export interface CheckedOptions extends ResolvedOptions {
  readonly protocols: ReadonlyArray<string>
  readonly headers: Readonly<Record<string, string>>
  /** Only the known keys, copied; Redacted so that it never shows in a log or an inspection. */
  readonly tls: Redacted.Redacted<TlsOptions> | undefined
  readonly maxPayload: number
}

export const DEFAULT_OPEN_TIMEOUT = Duration.seconds(10)
export const DEFAULT_CLOSE_TIMEOUT = Duration.seconds(5)
export const DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024
export const DEFAULT_INBOUND_CAPACITY = 1024
export const DEFAULT_INBOUND_BYTES = 16 * 1024 * 1024
export const DEFAULT_WRITE_HIGH_WATER_MARK = 1024 * 1024

const headerName = /^[!#$%&'*+\-.^_`|~\dA-Za-z]+$/
// RFC 9110 field-value: visible characters, spaces and tabs; never CR or LF.
const headerValue = /^[\t\x20-\x7e\x80-\xff]*$/

const TLS_KEYS: ReadonlyArray<string> = ["ca", "cert", "key", "servername", "rejectUnauthorized"]
const isPem = (value: unknown): value is string | Uint8Array => typeof value === "string" || value instanceof Uint8Array
// `tls` objects whose `rejectUnauthorized: false` was already logged: a Client reuses its options
// on every attempt, and one warning per options object is enough.
const warnedNoVerification = new WeakSet<object>()

/** Checks the shape of `tls`; never echoes a value (a private key). Returns the error's detail or the copy. */
const checkTls = (tls: unknown): { readonly detail: string } | { readonly copy: TlsOptions } => {
  if (typeof tls !== "object" || tls === null || Array.isArray(tls)) return { detail: "tls: must be an object" }
  const copy: { -readonly [K in keyof TlsOptions]: TlsOptions[K] } = {}
  for (const [name, value] of Object.entries(tls)) {
    if (!TLS_KEYS.includes(name)) {
      return { detail: `tls: unknown option ${JSON.stringify(name)} (known: ${TLS_KEYS.join(", ")})` }
    }
    if (value === undefined) continue
    switch (name) {
      case "ca":
      case "cert":
      case "key":
        if (isPem(value)) copy[name] = value
        else if (Array.isArray(value) && value.every(isPem)) copy[name] = [...value]
        else return { detail: `tls.${name}: must be PEM text or bytes (string, Buffer, Uint8Array) or an array of them` }
        break
      case "servername":
        if (typeof value !== "string") return { detail: "tls.servername: must be a string" }
        copy.servername = value
        break
      case "rejectUnauthorized":
        if (typeof value !== "boolean") return { detail: "tls.rejectUnauthorized: must be true or false" }
        copy.rejectUnauthorized = value
        break
    }
  }
  if ((copy.key === undefined) !== (copy.cert === undefined)) return { detail: "tls: key and cert go together (a client certificate)" }
  return { copy }
}

/** Checks the options and completes them with defaults; logs once per `tls` object that turns verification off. */
export const resolveOptions = (url: string, options: ConnectOptions): Effect.Effect<CheckedOptions, ConnectError> => {
  const checked = checkOptions(url, options)
  const tls = options.tls
  return tls?.rejectUnauthorized === false ? Effect.tap(checked, () => warnNoVerification(url, tls)) : checked
}

const warnNoVerification = (url: string, tls: TlsOptions): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (warnedNoVerification.has(tls)) return Effect.void
    warnedNoVerification.add(tls)
    return Effect.logWarning(
      `lifeline: TLS certificate verification is off (tls.rejectUnauthorized: false) for ${url}; ` +
        "anyone on the path can read and change the traffic (logged once per tls options object)"
    )
  })

const checkOptions = (url: string, options: ConnectOptions): Effect.Effect<CheckedOptions, ConnectError> =>
  Effect.suspend(() => {
    const invalid = (detail: string) =>
      Effect.fail(new ConnectError({ reason: "InvalidOptions", url, detail: `${detail}; ${hintFor("InvalidOptions")}` }, true))

    const protocols = options.protocols === undefined
      ? []
      : typeof options.protocols === "string"
      ? [options.protocols]
      : [...options.protocols]
    const seen = new Set<string>()
    for (const protocol of protocols) {
      if (typeof protocol !== "string" || !isValidSubprotocol(protocol)) {
        return invalid(`protocols: ${JSON.stringify(protocol)} is not a valid subprotocol name (RFC 6455 token)`)
      }
      if (seen.has(protocol)) return invalid(`protocols: "${protocol}" is offered twice`)
      seen.add(protocol)
    }

    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      const plain = Redacted.isRedacted(value) ? Redacted.value(value) : value
      if (!headerName.test(name)) return invalid(`headers: ${JSON.stringify(name)} is not a valid header name`)
      // The value is never echoed: it may be a credential.
      if (typeof plain !== "string" || !headerValue.test(plain)) return invalid(`headers: the value of "${name}" is not a valid header value`)
      headers[name] = plain
    }

    let tls: Redacted.Redacted<TlsOptions> | undefined = undefined
    if (options.tls !== undefined) {
      const checked = checkTls(options.tls)
      if ("detail" in checked) return invalid(checked.detail)
      tls = Redacted.make(checked.copy)
    }

    const duration = (input: Duration.DurationInput | undefined, fallback: Duration.Duration) =>
      input === undefined
        ? Option.some(fallback)
        : Option.filter(Duration.decodeUnknown(input), (value) => Duration.isFinite(value) && Duration.greaterThan(value, Duration.zero))
    const openTimeout = duration(options.openTimeout, DEFAULT_OPEN_TIMEOUT)
    if (Option.isNone(openTimeout)) return invalid("openTimeout: must be a finite duration above zero")
    const closeTimeout = duration(options.closeTimeout, DEFAULT_CLOSE_TIMEOUT)
    if (Option.isNone(closeTimeout)) return invalid("closeTimeout: must be a finite duration above zero")

    const positiveInteger = (value: number | undefined, fallback: number) =>
      value === undefined ? fallback : Number.isSafeInteger(value) && value > 0 ? value : undefined
    const maxPayload = positiveInteger(options.maxPayload, DEFAULT_MAX_PAYLOAD)
    if (maxPayload === undefined) return invalid("maxPayload: must be a positive integer (bytes)")
    const inboundCapacity = positiveInteger(options.inboundCapacity, DEFAULT_INBOUND_CAPACITY)
    if (inboundCapacity === undefined) return invalid("inboundCapacity: must be a positive integer (frames)")
    const inboundBytes = positiveInteger(options.inboundBytes, DEFAULT_INBOUND_BYTES)
    if (inboundBytes === undefined) return invalid("inboundBytes: must be a positive integer (bytes)")
    const writeHighWaterMark = positiveInteger(options.writeHighWaterMark, DEFAULT_WRITE_HIGH_WATER_MARK)
    if (writeHighWaterMark === undefined) return invalid("writeHighWaterMark: must be a positive integer (bytes)")

    return Effect.succeed({
      protocols,
      headers,
      tls,
      maxPayload,
      inboundCapacity,
      inboundBytes,
      writeHighWaterMark,
      openTimeout: openTimeout.value,
      closeTimeout: closeTimeout.value
    })
  })
