/** Renders a URL for errors and logs without secrets: userinfo and query values are replaced. */

/** What stands in for a secret in every rendering. */
export const REDACTED = "redacted"

/** The longest rendering of input that did not parse. */
const MAX_UNPARSED = 120

/** `wss://user:pw@host/path?token=abc` -> `wss://redacted@host/path?token=redacted`. */
export const redactUrl = (url: URL): string => {
  // No authority (`xyz:user:pw@host`, an opaque path) or an `@` in the path (`ws://admin:12/34@host`
  // parses, the password split between port and path): redact it as text, as hard as unparsed input.
  if (!url.href.startsWith(`${url.protocol}//`)) {
    return `${url.protocol}${redactUnparsedUrl(url.href.slice(url.protocol.length))}`
  }
  // The same in the fragment (`file:/:pw#@host`: a password holding `#`, typed raw): the fragment is
  // dropped below, but what stood before its `@` is the password, left in the path.
  if (url.pathname.includes("@") || url.hash.includes("@")) return redactUnparsedUrl(url.href)
  const copy = new URL(url.href)
  if (copy.username !== "" || copy.password !== "") {
    copy.username = REDACTED
    copy.password = ""
  }
  if (copy.search !== "") {
    const keys = Array.from(copy.searchParams.keys())
    copy.search = keys.map((key) => `${encodeURIComponent(key)}=${REDACTED}`).join("&")
  }
  copy.hash = ""
  return copy.href
}

/**
 * For input that did not parse as a URL, redacted at least as hard as a parsed one: everything
 * between the scheme and the LAST `@` goes (a password typed raw may hold `@`, `/`, `?` or `#`),
 * every query value goes, the fragment goes. Whitespace and control characters are
 * percent-encoded (one line in a log), and the result is cut at 120 characters.
 */
export const redactUnparsedUrl = (input: string): string => {
  // A scheme counts only with its slashes: in `user:pw@host` the "scheme" is the user name.
  const prefix = /^[A-Za-z][A-Za-z0-9+.-]*:[/\\]+/.exec(input)?.[0] ?? ""
  let rest = input.slice(prefix.length)
  const at = rest.lastIndexOf("@")
  const userinfo = at === -1 ? "" : `${REDACTED}@`
  if (at !== -1) rest = rest.slice(at + 1)
  const hash = rest.indexOf("#")
  if (hash !== -1) rest = rest.slice(0, hash)
  const question = rest.indexOf("?")
  if (question !== -1) {
    const keys = rest.slice(question + 1).split("&").filter((part) => part !== "").map((part) => {
      const equals = part.indexOf("=")
      return `${equals === -1 ? part : part.slice(0, equals)}=${REDACTED}`
    })
    rest = `${rest.slice(0, question)}?${keys.join("&")}`
  }
  const visible = `${prefix}${userinfo}${rest}`.replace(
    /[\x00-\x20\x7f]/g,
    (char) => `%${char.charCodeAt(0).toString(16).padStart(2, "0").toUpperCase()}`
  )
  return visible.length > MAX_UNPARSED ? `${visible.slice(0, MAX_UNPARSED)}…` : visible
}

/** Any URL-ish input, parsed or not: what the Client shows for an endpoint it was given as text. */
export const redactInput = (input: string): string => {
  try {
    return redactUrl(new URL(input.trim()))
  } catch {
    return redactUnparsedUrl(input.trim())
  }
}

// A scheme and `//` followed by something: "a ws:// or wss:// URL" (a hint) holds no URL.
const schemeStart = /[A-Za-z][A-Za-z0-9+.-]*:\/\/(?=[^\s'"`])/g

/**
 * Redacts every URL inside a free text, such as a platform's error message ("Invalid URL:
 * ws://user:pw@..."). A URL runs to its closing quote when it follows a quote, else to the end of
 * the text: a space inside it (an unparseable host) must not leave its query readable.
 */
export const redactUrlsIn = (text: string): string => {
  if (!text.includes("://")) return text
  let out = ""
  let from = 0
  schemeStart.lastIndex = 0
  let match: RegExpExecArray | null
  while ((match = schemeStart.exec(text)) !== null) {
    const start = match.index
    const quote = start > 0 ? text[start - 1]! : ""
    const close = quote === "'" || quote === "\"" || quote === "`" ? text.indexOf(quote, start) : -1
    const end = close === -1 ? text.length : close
    out += text.slice(from, start) + redactInput(text.slice(start, end))
    from = end
    schemeStart.lastIndex = end
  }
  return out + text.slice(from)
}

/** Fields of a Node system error that name the host or the call, never the URL; kept in a safe cause. */
const causeFields = ["code", "errno", "syscall", "address", "port", "hostname"] as const

/**
 * A platform error made safe to keep as a `cause`: a plain Error with the same name, its message
 * with URLs redacted and the system fields above. Nothing else: Node's TypeError for a bad URL
 * keeps the whole input in `input`; ws and browsers put URLs in messages. No stack either (the
 * ConnectError has its own): capturing and formatting one cost 20 µs per failed attempt.
 */
export const redactCause = (error: unknown): Error => {
  const message = error instanceof Error
    ? error.message
    : typeof error === "string"
    ? error
    : "a non-Error value was thrown"
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  const safe = new Error(redactUrlsIn(message))
  Error.stackTraceLimit = limit
  if (error instanceof Error) {
    if (error.name !== "Error") safe.name = error.name
    for (const field of causeFields) {
      const value: unknown = Reflect.get(error, field)
      if (typeof value === "string" || typeof value === "number") {
        Object.defineProperty(safe, field, { value, enumerable: true, writable: true, configurable: true })
      }
    }
  }
  safe.stack = `${safe.name}: ${safe.message}`
  return safe
}
