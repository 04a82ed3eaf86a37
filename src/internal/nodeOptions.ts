/**
 * The checks of the options only the Node transport reads (`headers`, `tls`), as
 * `NodeTransport.make.checkOptions`: `options.ts` runs them in their place among the other
 * options' checks when the Transport has them, so the errors are the same, and a browser bundle,
 * whose transport reads neither option, does not carry them. Never echoes a value: a header value
 * or a private key may be a secret.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import type { OptionChecks, OptionProblem, TlsOptions } from "../Transport.js"
import { shortcuts } from "./options.js"

const problem = (message: string, path: ReadonlyArray<string> = []): Either.Either<never, OptionProblem> =>
  Either.left({ path, message })

const headerName = /^[!#$%&'*+\-.^_`|~\dA-Za-z]+$/
// RFC 9110 field-value: visible characters, spaces and tabs; never CR or LF.
const headerValue = /^[\t\x20-\x7e\x80-\xff]*$/

/** Header names to values, the values read when Redacted. */
const headers = (input: unknown): Either.Either<Readonly<Record<string, string>>, OptionProblem> => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return problem("must be an object of header names to values")
  }
  const copy: Record<string, string> = {}
  for (const [name, value] of Object.entries(input)) {
    const plain: unknown = Redacted.isRedacted(value) ? Redacted.value(value) : value
    if (!headerName.test(name)) return problem(`${JSON.stringify(name)} is not a valid header name`)
    if (typeof plain !== "string" || !headerValue.test(plain)) {
      return problem(`the value of "${name}" is not a valid header value`)
    }
    copy[name] = plain
  }
  return Either.right(copy)
}

const TLS_KEYS: ReadonlyArray<string> = ["ca", "cert", "key", "passphrase", "servername", "rejectUnauthorized"]
const isPem = (value: unknown): value is string | Uint8Array => typeof value === "string" || value instanceof Uint8Array

// Node ignores `ca` text without a PEM certificate in it (a file path, DER bytes): the connection
// then trusts no CA at all, and fails as if the CA had not been given.
const pemCertificate = /-----BEGIN [A-Z0-9 ]*CERTIFICATE-----/
const pemText = (value: string | Uint8Array): string =>
  typeof value === "string" ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("latin1")
const holdsCertificate = (value: string | Uint8Array): boolean => pemCertificate.test(pemText(value))
// An encrypted private key (PKCS#8 "ENCRYPTED PRIVATE KEY", or a legacy "Proc-Type: 4,ENCRYPTED"
// header) without `passphrase`: Node's error ("bad decrypt") does not say why.
const encryptedKey = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED/
const noCertificate = (entry: string) =>
  problem(
    `${entry}holds no PEM certificate (-----BEGIN CERTIFICATE-----), and Node would ignore it; ` +
      "a file path or DER bytes? give the PEM text (e.g. fs.readFileSync(path, \"utf8\"))",
    ["ca"]
  )

/** Checks the shape of `tls` and copies the known keys; never echoes a value (a private key). */
const tls = (input: unknown): Either.Either<Redacted.Redacted<TlsOptions>, OptionProblem> => {
  const given: unknown = Redacted.isRedacted(input) ? Redacted.value(input) : input
  if (typeof given !== "object" || given === null || Array.isArray(given)) return problem("must be an object")
  const copy: { -readonly [K in keyof TlsOptions]: TlsOptions[K] } = {}
  for (const [name, value] of Object.entries(given)) {
    if (!TLS_KEYS.includes(name)) {
      return problem(`unknown option ${JSON.stringify(name)} (known: ${TLS_KEYS.join(", ")})`)
    }
    if (value === undefined) continue
    switch (name) {
      case "ca":
      case "cert":
      case "key":
        if (isPem(value)) copy[name] = value
        else if (Array.isArray(value) && value.every(isPem)) copy[name] = [...value]
        else return problem("must be PEM text or bytes (string, Buffer, Uint8Array) or an array of them", [name])
        if (name === "ca") {
          const entries = Array.isArray(value) ? value : [value]
          const empty = entries.findIndex((entry) => !holdsCertificate(entry))
          if (empty !== -1) return noCertificate(Array.isArray(value) ? `entry ${empty} ` : "")
        }
        if (
          name === "key" && (given as TlsOptions).passphrase === undefined &&
          (Array.isArray(value) ? value : [value]).some((entry) => encryptedKey.test(pemText(entry)))
        ) {
          return problem("an encrypted private key: give its passphrase in tls.passphrase", [name])
        }
        break
      case "passphrase":
        if (typeof value !== "string") return problem("must be a string", [name])
        copy.passphrase = value
        break
      case "servername":
        if (typeof value !== "string") return problem("must be a string", [name])
        copy.servername = value
        break
      case "rejectUnauthorized":
        if (typeof value !== "boolean") return problem("must be true or false", [name])
        copy.rejectUnauthorized = value
        break
    }
  }
  if ((copy.key === undefined) !== (copy.cert === undefined)) {
    return problem("key and cert go together (a client certificate)")
  }
  return Either.right(Redacted.make(copy))
}

// `tls` objects whose `rejectUnauthorized: false` was already logged: one warning per options object.
const warnedNoVerification = new WeakSet<object>()

const warnNoVerification = (url: string, tls: Redacted.Redacted<TlsOptions>, given: object): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (Redacted.value(tls).rejectUnauthorized !== false || warnedNoVerification.has(given)) return Effect.void
    warnedNoVerification.add(given)
    return Effect.logWarning(
      `lifeline: TLS certificate verification is off (tls.rejectUnauthorized: false) for ${url}; ` +
        "anyone on the path can read and change the traffic (logged once per tls options object)"
    )
  })

/** The Node transport's option checks. */
export const nodeOptionChecks: OptionChecks = { headers, tls, onTls: warnNoVerification }

// A Node transport without `checkOptions` (a wrapper that built its own object rather than
// `{ ...inner, open }`) would send no headers and no tls, silently (no Authorization; a CA that is
// not trusted, a TlsFailed that is retried): every header and any tls is InvalidOptions instead.
const NOT_PASSED_ON = "not sent: this Node transport has no checkOptions (a wrapper passes it on: { ...inner, open })"
const notSent: Either.Either<never, OptionProblem> = problem(NOT_PASSED_ON)
const notPassedOn: OptionChecks = {
  // None (`{}`) loses nothing.
  headers: (input) => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) return notSent
    for (const _ in input) return notSent
    return Either.right({})
  },
  tls: () => notSent,
  onTls: () => Effect.void
}

/** The checks above, for a Node transport without its own (the Node transport calls it where it is loaded). */
export const install = (): void => {
  shortcuts.uncheckedNode = notPassedOn
}
