/**
 * The command line, read with `node:util`'s `parseArgs`: `connect <url> [flags]`, `demo`,
 * `--help`, `--version`. Pure: no I/O; a mistake is a `UsageError` whose message names it.
 */
import * as Either from "effect/Either"
import { parseArgs } from "node:util"
import { redactUnparsedUrl } from "../internal/redactUrl.js"

/** How binary inbound frames are printed in the human format. */
export type BinaryFormat = "summary" | "base64"

export interface ConnectCommand {
  readonly _tag: "Connect"
  readonly url: string
  /** Handshake headers, names as given; a name given twice has its values joined with ", ". */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly protocols: ReadonlyArray<string>
  /** A file of PEM certificates to trust (lifeline's `tls.ca`). */
  readonly caFile: string | undefined
  /** `tls.rejectUnauthorized: false`. */
  readonly insecure: boolean
  /** `--proxy`, as given: read with the environment's by `chooseProxy` (proxy.ts; "": none). */
  readonly proxy: string | undefined
  /** Heartbeat interval and timeout in ms; 0 turns it off; undefined: lifeline's default. */
  readonly heartbeatMillis: number | undefined
  /** `--no-probe`: the heartbeat sends no probe and watches the peer's own frames (`probe: false`). */
  readonly probe: boolean
  readonly reconnect: boolean
  readonly json: boolean
  readonly binary: BinaryFormat
  /** At stdin's end: how long to wait for the queued lines to be written. */
  readonly drainTimeoutMillis: number
  /** At stdin's end, once everything is written: how long to keep printing inbound messages. */
  readonly waitMillis: number
}

export type Command =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Demo" }
  | ConnectCommand

/** The command line cannot be understood; `message` says why, in one line. */
export class UsageError {
  readonly _tag = "UsageError"
  constructor(readonly message: string) {}
}

const DEFAULT_DRAIN_TIMEOUT_MILLIS = 10_000

export const HELP = `Usage: effect-lifeline <command> [options]

Commands:
  connect <url>            an interactive WebSocket client that survives outages: each stdin
                           line is sent as a text frame (queued while disconnected), each inbound
                           message is printed on stdout, the connection state on stderr
  demo                     the chaos demo: typed failures, then a client under scripted faults

Options of connect:
  -H, --header <h>         a handshake header, "Name: value" (repeatable)
  -s, --subprotocol <p>    a subprotocol to offer (repeatable)
      --ca <file>          trust the CA certificate(s) in this PEM file (wss://)
      --insecure           do not verify the server's certificate (wss://; never in production)
      --proxy <url>        connect through this HTTP proxy (CONNECT; http://user:pw@host:port);
                           without it, HTTPS_PROXY (wss://) or HTTP_PROXY (ws://) is used, except
                           for NO_PROXY's hosts and loopback (--proxy "": none)
      --heartbeat <ms>     probe the peer after <ms> of silence, drop it after <ms> more
                           (0: off; default 20000 / 10000)
      --no-probe           send no probe: the peer's own frames and pings are its signs of
                           life, and its silence for both <ms> drops it (for servers that
                           keep the link alive themselves, as Socket.IO's do)
      --no-reconnect       one attempt: a failure or a lost connection ends the program
      --json               JSON lines on stdout for every event instead of the human format
      --binary <format>    binary messages as "summary" (<binary N bytes>, default) or "base64"
      --drain-timeout <ms> at the end of stdin, wait at most this long for the queued lines to be
                           written, and for a first open (default ${DEFAULT_DRAIN_TIMEOUT_MILLIS})
  -w, --wait <ms>          at the end of stdin, once the lines are written, keep printing inbound
                           messages this long before closing (default 0)

  -h, --help               this help
      --version            the version

Exit codes: 0 ok, 1 internal error, 2 usage, 3 invalid URL or options, 4 handshake rejected
(HTTP status), 5 closed by the server with a fatal close code, 6 TLS failed, 7 protocol
violation, 8 connection failed or lost and not retried, 9 lines not sent, 130 / 143 SIGINT /
SIGTERM.
Details: docs/cli.md in the lifeline repository.
`

/**
 * An argument quoted in a message: a plain word as it is; anything else redacted as a URL (it may
 * be one typed in the wrong place, with a password: `effect-lifeline wss://u:pw@host`).
 */
const shown = (argument: string): string => /^[\w.+-]{0,40}$/.test(argument) ? argument : redactUnparsedUrl(argument)

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

const millis = (flag: string, value: string | undefined): Either.Either<number | undefined, UsageError> => {
  if (value === undefined) return Either.right(undefined)
  if (!/^\d{1,9}$/.test(value)) {
    return Either.left(new UsageError(`${flag} takes a whole number of milliseconds, got "${shown(value)}"`))
  }
  return Either.right(Number(value))
}

const header = (text: string): Either.Either<readonly [string, string], UsageError> => {
  const colon = text.indexOf(":")
  const name = colon < 0 ? "" : text.slice(0, colon).trim()
  if (!HEADER_NAME.test(name)) {
    // Not the text itself: it may be a token typed without its name ("Bearer abc"), or with a space.
    const got = colon < 0 ? "no \":\"" : name === "" ? "an empty name" : "a name with a character not allowed"
    return Either.left(new UsageError(`-H takes "Name: value" with a valid header name, got ${got}`))
  }
  return Either.right([name, text.slice(colon + 1).trim()] as const)
}

/** Joins the values of a name given twice (case-insensitive), in the order given. */
const mergeHeaders = (pairs: ReadonlyArray<readonly [string, string]>): ReadonlyArray<readonly [string, string]> => {
  const merged = new Map<string, [string, string]>()
  for (const [name, value] of pairs) {
    const known = merged.get(name.toLowerCase())
    if (known === undefined) merged.set(name.toLowerCase(), [name, value])
    else known[1] = `${known[1]}, ${value}`
  }
  return [...merged.values()]
}

const options = {
  header: { type: "string", short: "H", multiple: true },
  subprotocol: { type: "string", short: "s", multiple: true },
  ca: { type: "string" },
  insecure: { type: "boolean" },
  proxy: { type: "string" },
  heartbeat: { type: "string" },
  "no-probe": { type: "boolean" },
  "no-reconnect": { type: "boolean" },
  json: { type: "boolean" },
  binary: { type: "string" },
  "drain-timeout": { type: "string" },
  wait: { type: "string", short: "w" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" }
} as const

/** Reads the arguments after the program name. */
export const parse = (argv: ReadonlyArray<string>): Either.Either<Command, UsageError> => {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true; strict: true }>>
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
  } catch (error) {
    return Either.left(new UsageError(error instanceof Error ? error.message : String(error)))
  }
  const { positionals, values } = parsed
  if (values.help === true) return Either.right({ _tag: "Help" })
  if (values.version === true) return Either.right({ _tag: "Version" })
  const [command, ...rest] = positionals
  switch (command) {
    case undefined:
      return Either.left(new UsageError("a command is missing: connect <url> or demo (see --help)"))
    case "help":
      return Either.right({ _tag: "Help" })
    case "demo": {
      const extra = rest.length > 0 ? rest : Object.keys(values)
      if (extra.length > 0) {
        return Either.left(new UsageError(`demo takes no arguments or options, got ${extra.map(shown).join(" ")}`))
      }
      return Either.right({ _tag: "Demo" })
    }
    case "connect":
      break
    default:
      return Either.left(new UsageError(`unknown command "${shown(command)}": connect <url> or demo (see --help)`))
  }
  if (rest.length !== 1) {
    return Either.left(
      new UsageError(
        rest.length === 0 ? "connect needs a URL: connect <url>" : `connect takes one URL, got ${rest.length}`
      )
    )
  }
  const binary = values.binary ?? "summary"
  if (binary !== "summary" && binary !== "base64") {
    return Either.left(new UsageError(`--binary takes "summary" or "base64", got "${shown(binary)}"`))
  }
  return Either.gen(function*() {
    const headers: Array<readonly [string, string]> = []
    for (const text of values.header ?? []) headers.push(yield* header(text))
    const protocols = values.subprotocol ?? []
    const empty = protocols.find((protocol) => protocol.trim() === "")
    if (empty !== undefined) return yield* Either.left(new UsageError("-s takes a subprotocol name, got an empty one"))
    const heartbeatMillis = yield* millis("--heartbeat", values.heartbeat)
    const probe = values["no-probe"] !== true
    if (!probe && heartbeatMillis === 0) {
      return yield* Either.left(
        new UsageError("--no-probe watches the peer with the heartbeat, which --heartbeat 0 turns off")
      )
    }
    const drainTimeoutMillis = yield* millis("--drain-timeout", values["drain-timeout"])
    const waitMillis = yield* millis("--wait", values.wait)
    const command: ConnectCommand = {
      _tag: "Connect",
      url: rest[0]!,
      headers: mergeHeaders(headers),
      protocols,
      caFile: values.ca,
      insecure: values.insecure === true,
      proxy: values.proxy,
      heartbeatMillis,
      probe,
      reconnect: values["no-reconnect"] !== true,
      json: values.json === true,
      binary,
      drainTimeoutMillis: drainTimeoutMillis ?? DEFAULT_DRAIN_TIMEOUT_MILLIS,
      waitMillis: waitMillis ?? 0
    }
    return command
  })
}
