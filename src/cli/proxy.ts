/**
 * `connect`'s HTTP proxy: `--proxy <url>`, or the variables curl and most tools read
 * (`HTTPS_PROXY` for wss://, `HTTP_PROXY` for ws://, either case; `NO_PROXY`). Pure: the
 * environment is given. The connection goes through the proxy by
 * HTTP CONNECT with https-proxy-agent's agent, the one ws users pass (lifeline's Node transport
 * reads its answers: a 407 or a 403 is named as the proxy's).
 */
import { redactUnparsedUrl } from "../internal/redactUrl.js"
import { bypassesProxy } from "../NodeTransport.js"

/** The variables read, by name (both cases, as curl reads them). */
export type ProxyEnv = Readonly<Record<string, string | undefined>>

/** The proxy a URL is dialled through, or undefined to connect directly. */
export type ProxyChoice = (url: URL) => URL | undefined

/**
 * Reads a proxy URL: http:// or https:// (to the proxy itself), with a host; without a scheme,
 * http:// (`HTTP_PROXY=proxy.corp:3128`, as curl takes it). Else why not, its text redacted.
 */
const parseProxyUrl = (text: string, from: string): URL | string => {
  const trimmed = text.trim()
  let url: URL
  try {
    url = new URL(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(trimmed) ? trimmed : `http://${trimmed}`)
  } catch {
    return `${from} is not a URL: "${redactUnparsedUrl(text)}" (give http://host:port)`
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `${from} must be an http:// or https:// proxy (HTTP CONNECT), got ${url.protocol}//`
  }
  if (url.hostname === "") return `${from} names no host`
  return url
}

const variable = (env: ProxyEnv, name: string): string | undefined => {
  const value = env[name.toLowerCase()] ?? env[name.toUpperCase()]
  return value === undefined || value.trim() === "" ? undefined : value
}

/**
 * Loopback: never through a proxy the environment names (Go's rule: the proxy cannot reach this
 * host's). `URL` has lower-cased the host and written its addresses in their short form.
 */
const isLoopback = ({ hostname }: URL): boolean =>
  hostname === "localhost" || hostname.endsWith(".localhost") || hostname === "[::1]" ||
  /^127\.\d+\.\d+\.\d+$/.test(hostname)

/**
 * The proxy choice for `connect`: `--proxy` for every URL (NO_PROXY still applies; `--proxy ""`:
 * none), else
 * `HTTPS_PROXY` for wss:// and `HTTP_PROXY` for ws:// (never for a loopback host), else none.
 * A proxy URL that cannot work is a usage error (its message, the password redacted).
 */
export const chooseProxy = (flag: string | undefined, env: ProxyEnv): ProxyChoice | string | undefined => {
  const noProxy = variable(env, "no_proxy")
  if (flag !== undefined) {
    // `--proxy ""`: no proxy, whatever the environment says (as curl's).
    if (flag.trim() === "") return undefined
    const proxy = parseProxyUrl(flag, "--proxy")
    if (typeof proxy === "string") return proxy
    return (url) => bypassesProxy(noProxy, url) ? undefined : proxy
  }
  const https = variable(env, "https_proxy")
  const http = variable(env, "http_proxy")
  if (https === undefined && http === undefined) return undefined
  const secure = https === undefined ? undefined : parseProxyUrl(https, "HTTPS_PROXY")
  const plain = http === undefined ? undefined : parseProxyUrl(http, "HTTP_PROXY")
  if (typeof secure === "string") return secure
  if (typeof plain === "string") return plain
  return (url) => isLoopback(url) || bypassesProxy(noProxy, url) ? undefined : url.protocol === "wss:" ? secure : plain
}
