/** Validates a connect request before any socket exists: the URL (here) and every option (options.ts), as typed errors. */
import * as Effect from "effect/Effect"
import { ConnectError } from "../Errors.js"
import { INVALID_URL_HINT } from "./classifyHandshakeError.js"
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
    detail: `${detail}; ${INVALID_URL_HINT}`,
    // Never the platform's error itself: Node's TypeError keeps the whole input (password, query) in `input`.
    ...(cause === undefined ? {} : { cause: redactCause(cause) })
  })

/** A URL given as it is (a string or a URL object), not an Effect of one. */
export const isStaticUrl = (given: unknown): given is string | URL => typeof given === "string" || given instanceof URL

/**
 * Whether a `url` argument is an Effect to run for the URL (else it is parsed, and anything but a
 * string or a URL refused). Never throws: a Proxy of untyped code whose traps throw is parsed (refused).
 */
export const isUrlEffect = (url: unknown): boolean => {
  try {
    return !isStaticUrl(url) && Effect.isEffect(url)
  } catch {
    return false
  }
}

/** Accepts ws: and wss: URLs (http: and https: as those) with a host and no fragment. */
export const parseEndpoint = (input: string | URL): Effect.Effect<Endpoint, ConnectError> =>
  Effect.suspend(() => {
    const parsed = checkEndpoint(input)
    return parsed instanceof ConnectError ? Effect.fail(parsed) : Effect.succeed(parsed)
  })

/** `parseEndpoint`, synchronous: the endpoint or why it cannot be dialled. */
export const checkEndpoint = (input: string | URL): Endpoint | ConnectError => {
  let text: string
  try {
    // Untyped code: anything else (a number, an Effect's value) is refused, named by its type only.
    const given: unknown = input
    if (!isStaticUrl(given)) {
      return invalidUrl("", `the URL must be a string or a URL, got ${given === null ? "null" : typeof given}`)
    }
    text = typeof input === "string" ? input.trim() : input.href
  } catch {
    // A Proxy whose traps throw, a URL object whose href cannot be read (`Object.create(URL.prototype)`).
    return invalidUrl("", "the URL cannot be read (reading it threw)")
  }
  if (text === "") return invalidUrl("", "the URL is empty")
  let url: URL
  try {
    url = new URL(text)
  } catch (cause) {
    return invalidUrl(redactUnparsedUrl(text), "the URL does not parse", cause)
  }
  // http: and https: are dialled as ws: and wss:, as the WHATWG WebSocket and ws do.
  if (url.protocol === "http:" || url.protocol === "https:") url.protocol = url.protocol === "http:" ? "ws:" : "wss:"
  const redacted = redactUrl(url)
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return invalidUrl(redacted, `the scheme is "${url.protocol}"`)
  }
  if (url.hostname === "") return invalidUrl(redacted, "the URL has no host")
  if (url.hash !== "") return invalidUrl(redacted, "the URL has a fragment (#...)")
  return { url, redacted }
}
