/**
 * How `util.inspect` shows a `ConnectError` where the Node transport is loaded (it calls `install`):
 * the message, the stack frames and the redacted cause, never the raw fields. Elsewhere (a browser
 * bundle, which never calls it and does not carry it) Effect's own: the message and the stack.
 */
import * as Inspectable from "effect/Inspectable"
import { ConnectError } from "../Errors.js"
import { redactCause } from "./redactUrl.js"

function inspectConnectError(this: ConnectError): string {
  const frames = this.stack === undefined ? [] : this.stack.split("\n").filter((line) => /^\s+at /.test(line))
  const lines = [this.toString(), ...frames]
  if (this.cause !== undefined) {
    const cause = redactCause(this.cause)
    const code: unknown = Reflect.get(cause, "code")
    lines.push(`  [cause]: ${cause.name}: ${cause.message}${code === undefined ? "" : ` (${String(code)})`}`)
  }
  return lines.join("\n")
}

/** `util.inspect` of every ConnectError from now on. */
export const install = (): void => {
  Object.defineProperty(ConnectError.prototype, Inspectable.NodeInspectSymbol, {
    value: inspectConnectError,
    writable: true,
    configurable: true
  })
}
