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

/** Accepts ws: and wss: URLs (http: and https: as those) with a host and no fragment. */
export const parseEndpoint = (input: string | URL): Effect.Effect<Endpoint, ConnectError> =>
  Effect.suspend(() => {
    const parsed = checkEndpoint(input)
    return parsed instanceof ConnectError ? Effect.fail(parsed) : Effect.succeed(parsed)
  })

/** `parseEndpoint`, synchronous: the endpoint or why it cannot be dialled. */
export const checkEndpoint = (input: string | URL): Endpoint | ConnectError => {
  const text = typeof input === "string" ? input.trim() : input.href
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
