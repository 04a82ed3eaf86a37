/**
 * A server's reason phrase for a refused upgrade ("400 WebSocket version 13 not supported"), made
 * fit for a `HandshakeRejected` detail (Node transport only: browsers never show the status line).
 * @internal
 */
import { STATUS_CODES } from "node:http"
import { REDACTED } from "./redactUrl.js"

/** The longest phrase shown, in characters; a longer one is cut and ends with "…". */
const MAX_PHRASE = 64

/** Older or other servers' names for a status, which say no more than Node's (nginx, Go, RFC 2616). */
const otherNames: Readonly<Record<number, ReadonlyArray<string>>> = {
  302: ["Moved Temporarily"],
  413: ["Request Entity Too Large"],
  414: ["Request-URI Too Long", "Request-URI Too Large"],
  416: ["Requested Range Not Satisfiable"],
  422: ["Unprocessable Entity"],
  504: ["Gateway Time-out"]
}

const lettersOf = (text: string): string => text.toLowerCase().replace(/[^a-z]/g, "")

/** A URL in a phrase: shown as "(a URL)", so that no part of it (a query, a password) is. */
const urlInPhrase = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s'"`]*/g

/** Node reads a status line as latin1; a phrase whose bytes are UTF-8 (Autobahn's) is read again as such. */
const asUtf8 = (text: string): string => {
  if (!/[\u0080-\u00ff]/.test(text) || Array.from(text).some((char) => char > "\u00ff")) return text
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(text, "latin1"))
  } catch {
    return text
  }
}

/**
 * One short line: C0 and C1 control characters (a tab, NEL, CSI) become "?", at most 64
 * characters. Also a proxy's phrase.
 */
export const tidyPhrase = (text: string): string => {
  const line = Array.from(
    text.slice(0, MAX_PHRASE),
    (char) => char < " " || (char >= "\u007f" && char <= "\u009f") ? "?" : char
  ).join("")
  return text.length > MAX_PHRASE ? `${line}…` : line
}

/**
 * The phrase as a detail shows it, or "" when it says nothing more than the status's name (in any
 * case or spelling: "Gateway Time-out"). What the request sent that could be a secret (`secrets`,
 * read only for a phrase of its own: header values, the URL's user, password and query values) is
 * "redacted" wherever the server repeats it (Autobahn quotes the Origin and the request target);
 * a URL is "(a URL)"; double quotes become single ones, so the phrase stays inside the detail's
 * quotes.
 */
export const ownPhrase = (
  status: number,
  phrase: string | undefined,
  secrets: () => ReadonlyArray<string>
): string => {
  let said = asUtf8(phrase ?? "").trim()
  const names = [STATUS_CODES[status] ?? "", ...(otherNames[status] ?? [])]
  if (said === "" || names.some((name) => lettersOf(name) === lettersOf(said))) return ""
  // Read only for a phrase of its own. Longest first: a value that contains another goes whole.
  for (const secret of [...secrets()].sort((a, b) => b.length - a.length)) {
    if (secret.length >= 3) said = said.split(secret).join(REDACTED)
  }
  return tidyPhrase(said.replace(urlInPhrase, "(a URL)").replace(/"/g, "'"))
}

/** Request headers a refusal may repeat that are the protocol's, not the user's: shown as they are. */
const protocolHeaders = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-version",
  "sec-websocket-key",
  "sec-websocket-extensions",
  "sec-websocket-protocol"
])

/**
 * What a refusal must not repeat: the values of the request's headers other than the protocol's
 * (Origin, Authorization, cookies, the user's own), and the dialled URL's user, password and query
 * values, raw and decoded.
 */
export const secretsOf = (headers: Readonly<Record<string, unknown>>, url: string): Array<string> => {
  const secrets: Array<string> = []
  for (const [name, value] of Object.entries(headers)) {
    if (protocolHeaders.has(name.toLowerCase())) continue
    for (const one of Array.isArray(value) ? value : [value]) {
      if (typeof one === "string" || typeof one === "number") secrets.push(String(one))
    }
  }
  try {
    const parsed = new URL(url)
    secrets.push(parsed.username, parsed.password, decodeSafely(parsed.username), decodeSafely(parsed.password))
    for (const [, value] of parsed.searchParams) secrets.push(value)
    for (const part of parsed.search.slice(1).split("&")) secrets.push(part.slice(part.indexOf("=") + 1))
  } catch {
    // a URL ws dialled always parses; nothing more to hide otherwise
  }
  return secrets.filter((secret) => secret !== "")
}

const decodeSafely = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
