/**
 * Maps whatever a platform reports while CONNECTING to one ConnectError reason. The only place
 * that reads Node error codes and `ws` messages; `ws` messages are matched as of ws 8.18.
 */
import type { ConnectErrorReason } from "../Errors.js"
import { redactUrl } from "./redactUrl.js"

/** A classified handshake failure, before the URL is attached. */
export interface HandshakeFailure {
  readonly reason: ConnectErrorReason
  readonly detail: string
  readonly status?: number
  readonly retryAfter?: import("effect").Duration.Duration
  readonly cause?: unknown
}

// Maps, not object literals: an error's code is any string (an agent's, a library's), `constructor` too.
const reasonByCode = new Map<string, ConnectErrorReason>([
  ["ECONNREFUSED", "ConnectionRefused"],
  ["ENOTFOUND", "DnsLookupFailed"],
  ["EAI_AGAIN", "DnsLookupFailed"],
  ["EAI_NODATA", "DnsLookupFailed"],
  ["EAI_FAIL", "DnsLookupFailed"],
  ["EHOSTUNREACH", "NetworkUnreachable"],
  ["ENETUNREACH", "NetworkUnreachable"],
  ["EHOSTDOWN", "NetworkUnreachable"],
  ["ENETDOWN", "NetworkUnreachable"],
  ["EADDRNOTAVAIL", "NetworkUnreachable"],
  ["ECONNRESET", "ConnectionReset"],
  ["ECONNABORTED", "ConnectionReset"],
  ["EPIPE", "ConnectionReset"],
  ["ETIMEDOUT", "ConnectionReset"],
  ["EPROTO", "TlsFailed"]
])

// OpenSSL's certificate verification errors as Node reports them (`error.code`), besides those
// with CERT in their name: e.g. a private CA's leaf certificate without a trusted issuer.
const certificateVerifyCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_CRL",
  "UNABLE_TO_DECRYPT_CRL_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CRL_SIGNATURE_FAILURE",
  "CRL_NOT_YET_VALID",
  "CRL_HAS_EXPIRED",
  "ERROR_IN_CRL_LAST_UPDATE_FIELD",
  "ERROR_IN_CRL_NEXT_UPDATE_FIELD",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "HOSTNAME_MISMATCH"
])

// ws 8.x: the server answered without Sec-WebSocket-Protocol although some were offered.
const NO_SUBPROTOCOL = "Server sent no subprotocol"

// ws 8.x: the server chose a subprotocol although none was offered (RFC 6455 forbids it).
const UNASKED_SUBPROTOCOL = "Server sent a subprotocol but none was requested"

// ws 8.x `abortHandshake` messages for a 101 answer that breaks RFC 6455.
const protocolViolations = [
  "Invalid Upgrade header",
  "Invalid Sec-WebSocket-Accept header",
  UNASKED_SUBPROTOCOL,
  "Server sent an invalid subprotocol",
  "Sec-WebSocket-Extensions",
  "Server indicated an extension that was not requested"
]

// The hints of the reasons every platform reports (lifeline's own checks; a browser's one
// reason), as constants: a browser bundle carries these three, not the table of Node's reasons.
/** What to do about `InvalidUrl`. */
export const INVALID_URL_HINT = "use a ws:// or wss:// URL without a fragment"
/** What to do about `InvalidOptions`. */
export const INVALID_OPTIONS_HINT = "fix the option named above"
/** A server that accepted none of the offered subprotocols (Node's ws, and the browser transport). */
export const NO_SUBPROTOCOL_DETAIL =
  "the server accepted none of the offered subprotocols (it answered without Sec-WebSocket-Protocol, " +
  "which RFC 6455 allows); offer one the server supports, or none"
/** What to do about `ClosedBeforeOpen`. */
export const CLOSED_BEFORE_OPEN_HINT = "the socket closed before it opened"

const hint: Readonly<Record<ConnectErrorReason, string>> = {
  InvalidUrl: INVALID_URL_HINT,
  InvalidOptions: INVALID_OPTIONS_HINT,
  DnsLookupFailed: "check the host name",
  ConnectionRefused: "nothing listens there; retrying helps if the server is starting",
  NetworkUnreachable: "no route to the host; check the network",
  ConnectionReset: "the connection dropped during the handshake; retrying usually helps",
  TlsFailed: "check the certificate, and that the server speaks TLS on that port",
  HandshakeRejected: "the server refused the upgrade",
  ProtocolViolation: "the server is not a compliant WebSocket endpoint",
  ClosedBeforeOpen: CLOSED_BEFORE_OPEN_HINT
}

// What to do about the TlsFailed causes users meet most, by Node's code; the others get the
// reason's hint. Node's message names the cause ("certificate has expired"); these say what to do.
const UNTRUSTED =
  "the issuer is not trusted: give its CA in tls.ca (a server must also send its intermediate certificates)"
const CLIENT_CERTIFICATE = "the server refused the client certificate or got none: check tls.cert and tls.key, " +
  "and that the server trusts their CA"
const NO_VERSION = "the server and Node share no TLS version (Node's default minimum is TLS 1.2)"
const NOT_TLS = "the server does not speak TLS on that port (a ws:// server?)"
const tlsHints: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: "the server's certificate has expired (or this machine's clock is wrong): the server must renew it",
  CERT_NOT_YET_VALID: "the server's certificate is not valid yet (or this machine's clock is wrong)",
  ERR_TLS_CERT_ALTNAME_INVALID:
    "the certificate does not name the host dialled: dial a name it lists, or set tls.servername to one",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNTRUSTED,
  SELF_SIGNED_CERT_IN_CHAIN: UNTRUSTED,
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed: give that certificate in tls.ca to trust it",
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: CLIENT_CERTIFICATE,
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: CLIENT_CERTIFICATE,
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: CLIENT_CERTIFICATE,
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: CLIENT_CERTIFICATE,
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: NO_VERSION,
  ERR_SSL_UNSUPPORTED_PROTOCOL: NO_VERSION,
  ERR_SSL_WRONG_VERSION_NUMBER: NOT_TLS
}

// OpenSSL's reason, for an error Node reports as a failed write (EPROTO): the same causes, by text.
const tlsHintsByReason: ReadonlyArray<readonly [string, string]> = [
  ["wrong version number", NOT_TLS],
  ["alert protocol version", NO_VERSION],
  ["unsupported protocol", NO_VERSION],
  ["alert certificate required", CLIENT_CERTIFICATE],
  ["alert unknown ca", CLIENT_CERTIFICATE],
  ["alert bad certificate", CLIENT_CERTIFICATE],
  ["alert certificate unknown", CLIENT_CERTIFICATE],
  // Go's TLS (Caddy, Traefik, Go services) when it has no certificate for the name: none is sent
  // to an IP address; Caddy also until it has obtained one (`tls internal`: just after it starts)
  [
    "alert internal error",
    "the server failed the TLS handshake; one that picks its certificate by name (Caddy, Go servers) does so " +
    "when it has none for the name sent (none is sent when dialling an IP address: set tls.servername) " +
    "or has not obtained it yet (retrying helps)"
  ]
]

const tlsHint = (code: string | undefined, message: string): string =>
  (code === undefined ? undefined : tlsHints[code]) ??
    tlsHintsByReason.find(([reason]) => message.includes(reason))?.[1] ??
    hint.TlsFailed

/**
 * OpenSSL's error text as Node passes it on, `<address>:error:<code>:<library>:<function>:<reason>:
 * <file>:<line>:<data>` and a newline, shortened to its reason and data ("wrong version number",
 * "tlsv13 alert certificate required (SSL alert number 116)"): one line, no build path.
 */
const openSslText = /[0-9A-F]+:error:[0-9A-F]+:[^:\n]*:[^:\n]*:([^:\n]+):[^:\n]*:\d+:([^\n]*)\n?/g
const tidyOpenSsl = (message: string): string =>
  message.includes(":error:")
    ? message.replace(openSslText, (_, reason: string, data: string) =>
      data.trim() === "" ? reason : `${reason} (${data.trim()})`).trim()
    : message

// A wss:// connection that the server closed after the TLS handshake, before any HTTP answer.
const AFTER_TLS = "after the TLS handshake, before the server answered the upgrade; a server that requires a " +
  "client certificate closes so when it gets none or one it does not trust (tls.cert, tls.key); " +
  "else retrying usually helps"

// A ws:// connection that offered subprotocols and that the server closed without answering.
const UNANSWERED_WITH_PROTOCOLS = "the server closed the connection without answering the upgrade; a server that " +
  "supports none of the offered subprotocols may refuse so (libwebsockets does): check protocols; " +
  "else retrying usually helps"

const errorCode = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined
  return typeof error.code === "string" ? error.code : undefined
}

/** An error's message; Node's AggregateError (every address failed) by its errors'. */
export const errorMessage = (error: unknown): string =>
  error instanceof AggregateError && error.message === ""
    // Node's, when every address of a host failed (autoSelectFamily: `localhost` as ::1 and
    // 127.0.0.1): no message of its own, each address's error inside.
    ? error.errors.map(errorMessage).join(", ")
    : error instanceof Error
    ? error.message
    : String(error)

// What a non-101 answer means where a proxy often gives it (HAProxy, nginx and load balancers
// answer these themselves): "the server refused the upgrade" sent users to a server that was down.
const rejectionHints: Readonly<Record<number, string>> = {
  200: "a plain HTTP answer: nothing upgrades at that host and path (a web page, or a proxy with no route " +
    "for them: Caddy answers an empty 200 when no site matches the Host); check the URL and the Host header",
  407: "a proxy on the way wants credentials (Proxy Authentication Required): connect through it with an " +
    "agent that has them (NodeTransport.layerWith), or check those the agent has",
  502: "a proxy answers so when the server behind it failed or closed; retrying helps once it is back",
  503: "a proxy answers so when no server behind it is up or has room (HAProxy: all down, or its queue " +
    "timed out), a server when overloaded; retrying helps once one is back",
  504: "a proxy answers so when the server behind it did not answer in time; retrying helps once it does"
}

/** The longest redirect target shown in a detail. */
const MAX_LOCATION = 200

/**
 * A redirect's target in a detail: redacted, quoted (a URL in a detail runs to its closing quote,
 * else to the end of the text), cut to 200 characters (a Location may be as long as Node's header
 * limit, 16 KiB).
 */
export const quotedLocation = (target: URL): string => {
  const shown = redactUrl(target)
  return shown.length > MAX_LOCATION
    ? `"${shown.slice(0, MAX_LOCATION)}" (its first ${MAX_LOCATION} characters)`
    : `"${shown}"`
}

/**
 * The detail of a `HandshakeRejected`: the status, the server's own reason phrase when it says
 * more than the status's name (`phrase`, made one short line), what it means, and for a redirect
 * where it points (redacted; an http(s):// one is dialled as ws(s)://: redirects are not followed,
 * so that is the URL to dial).
 */
export const rejectionDetail = (
  status: number,
  location: string | undefined,
  url: string,
  phrase = ""
): string => {
  const answered = `the server answered HTTP ${status}${phrase === "" ? "" : ` "${phrase}"`} instead of 101`
  if (status >= 300 && status < 400 && location !== undefined) {
    try {
      const target = new URL(location, url)
      // As it is: an http(s):// URL is dialled as ws(s):// (parseEndpoint). javascript:, file:,
      // data:... is no URL to dial, and is not shown.
      if (!["ws:", "wss:", "http:", "https:"].includes(target.protocol)) {
        return `${answered}, a redirect to a URL that is not http(s) nor ws(s) (not shown); ${hint.HandshakeRejected}`
      }
      return `${answered}, a redirect to ${quotedLocation(target)}; redirects are not followed: dial that URL`
    } catch {
      // a Location that does not parse: the generic hint
    }
  }
  return `${answered}; ${rejectionHints[status] ?? hint.HandshakeRejected}`
}

// Errors with no reason of their own (ClosedBeforeOpen) whose cause the detail can name.
const codeHints = new Map<string, string>([
  [
    "EMFILE",
    "this process has no file descriptor left (its limit: ulimit -n, LimitNOFILE): raise it, or look for " +
    "sockets or files it leaks; retried, an attempt succeeds once one is free"
  ],
  ["ENFILE", "the system has no file descriptor left (fs.file-max); retried, an attempt succeeds once one is free"]
])

/** What the user can do about a failure of this reason. */
export const hintFor = (reason: ConnectErrorReason): string => hint[reason]

// The failure was the agent's own connection to its proxy (`toProxy`): what to do is the proxy's.
const PROXY_TLS = "TLS to the proxy itself (an https:// proxy URL) failed: the proxy's CA goes to the agent's " +
  "options, e.g. new HttpsProxyAgent(url, { ca }), not to tls.ca"
const PROXY_DOWN = "nothing listens at the proxy's address: the proxy is down, or the proxy URL given to the agent " +
  "(e.g. HTTPS_PROXY) is wrong; retrying helps once it is back"

/** What is known of the attempt an error ended (each false when absent). */
export interface HandshakeContext {
  /** The connection was wss:// and its TLS handshake had completed. */
  readonly afterTls?: boolean
  /** The request named subprotocols. */
  readonly offeredProtocols?: boolean
  /**
   * The error is an agent's, on its connection to its HTTP proxy (the server was not reached): a
   * refusal or a TLS failure gets the proxy's hint, not the server's.
   */
  readonly toProxy?: boolean
}

/** Classifies an error that `ws` (or Node's http/tls underneath it) emitted before OPEN. */
export const classifyHandshakeError = (
  error: unknown,
  { afterTls = false, offeredProtocols = false, toProxy = false }: HandshakeContext = {}
): HandshakeFailure => {
  const code = errorCode(error)
  const message = tidyOpenSsl(errorMessage(error))
  const failure = (reason: ConnectErrorReason): HandshakeFailure => ({
    reason,
    detail: `${message}${code !== undefined && !message.includes(code) ? ` (${code})` : ""}; ${
      toProxy && reason === "TlsFailed"
        ? PROXY_TLS
        : toProxy && reason === "ConnectionRefused"
        ? PROXY_DOWN
        : reason === "TlsFailed"
        ? tlsHint(code, message)
        : reason === "ConnectionReset" && afterTls
        ? AFTER_TLS
        : reason === "ConnectionReset" && offeredProtocols && message === "socket hang up"
        ? UNANSWERED_WITH_PROTOCOLS
        : (code === undefined ? undefined : codeHints.get(code)) ?? hint[reason]
    }`,
    cause: error
  })
  if (code !== undefined) {
    if (
      code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code.includes("CERT") ||
      code.includes("SELF_SIGNED") ||
      certificateVerifyCodes.has(code)
    ) {
      return failure("TlsFailed")
    }
    // Node reports a peer that hangs up before the TLS handshake completed as ECONNRESET.
    if (message.includes("before secure TLS connection was established")) return failure("TlsFailed")
    const reason = reasonByCode.get(code)
    if (reason !== undefined) return failure(reason)
    // Node's HTTP parser refused the answer (HPE_*): not HTTP at all (an SSH banner, a TLS alert
    // from a wss:// port), a bad status line, a head over Node's maxHeaderSize. Whatever listens
    // there is no WebSocket endpoint and answers the same way again (was ClosedBeforeOpen, retried).
    if (code.startsWith("HPE_")) return failure("ProtocolViolation")
  }
  if (error instanceof SyntaxError) {
    return failure(message.includes("subprotocol") ? "InvalidOptions" : "InvalidUrl")
  }
  if (message === "socket hang up") return failure("ConnectionReset")
  if (message === NO_SUBPROTOCOL) {
    return {
      reason: "ProtocolViolation",
      detail: NO_SUBPROTOCOL_DETAIL,
      cause: error
    }
  }
  if (message === UNASKED_SUBPROTOCOL) {
    return {
      reason: "ProtocolViolation",
      detail: `${message}; the server chose a subprotocol although none was offered (lighttpd's mod_wstunnel ` +
        `answers "binary" for wstunnel.frame-type "binary"): offer the one it chooses in protocols`,
      cause: error
    }
  }
  if (protocolViolations.some((fragment) => message.includes(fragment))) return failure("ProtocolViolation")
  return failure("ClosedBeforeOpen")
}
