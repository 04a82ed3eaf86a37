/**
 * The CLI's exit codes: one per way it ends, documented in docs/cli.md. A Client closed by an
 * error maps to a code by the error's tag and reason.
 */
import type { ClientError } from "../Reconnect.js"
import { isRetryable } from "../Reconnect.js"

export const ExitCode = {
  /** stdin ended, every line was written, the connection closed with 1000 (or the server closed with 1000). */
  Ok: 0,
  /** A defect: a bug in the CLI or lifeline. */
  Internal: 1,
  /** The command line cannot be understood, or the --ca file cannot be read. */
  Usage: 2,
  /** ConnectError InvalidUrl or InvalidOptions: the URL or an option cannot work. */
  InvalidInput: 3,
  /** ConnectError HandshakeRejected: the server answered the upgrade with an HTTP status (401, 403, 404...). */
  Rejected: 4,
  /** The server closed with a close code that means "do not retry": 1002, 1003, 1007, 1008, 1009, 1010. */
  FatalClose: 5,
  /** ConnectError TlsFailed: certificate verification or the TLS handshake failed. */
  Tls: 6,
  /** ConnectError ProtocolViolation: the server is not a compliant WebSocket endpoint. */
  ProtocolViolation: 7,
  /** Any other failure that was not retried (--no-reconnect): refused, DNS, timeout, connection lost. */
  NotRetried: 8,
  /** The program ended with lines not written (each was reported), the session open at least once. */
  LinesNotSent: 9,
  /** SIGINT (Ctrl-C). */
  Interrupted: 130,
  /** SIGTERM. */
  Terminated: 143
} as const

/** The exit code of a Client closed by `error`. */
export const exitCodeOf = (error: ClientError): number => {
  switch (error._tag) {
    case "ConnectError":
      switch (error.reason) {
        case "InvalidUrl":
        case "InvalidOptions":
          return ExitCode.InvalidInput
        case "HandshakeRejected":
          return ExitCode.Rejected
        case "TlsFailed":
          return ExitCode.Tls
        case "ProtocolViolation":
          return ExitCode.ProtocolViolation
        default:
          return ExitCode.NotRetried
      }
    case "Disconnected":
      // A close code the default policy does not retry (1002, 1003, 1007-1010).
      if (!isRetryable(error)) return ExitCode.FatalClose
      return error.code === 1000 && error.initiator === "server" ? ExitCode.Ok : ExitCode.NotRetried
    case "TimeoutError":
    case "OnOpenError":
    case "CircuitOpenError":
      return ExitCode.NotRetried
  }
}
