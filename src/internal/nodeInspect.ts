/**
 * How `util.inspect` shows lifeline's objects where the Node transport is loaded (it calls
 * `install`); a browser bundle never calls it and does not carry it.
 * - A `ConnectError`: the message, the stack frames and the redacted cause, never the raw fields.
 *   Elsewhere Effect's own: the message and the stack.
 * - A Connection: its `toJSON` (the redacted URL, the subprotocol, the readyState), never its
 *   options, whose headers the Node transport sends. Elsewhere its fields: no transport but
 *   Node's sends headers, so they hold none.
 */
import * as Inspectable from "effect/Inspectable"
import { ConnectError } from "../Errors.js"
import { LiveConnection } from "./connection.js"
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

function inspectConnection(this: LiveConnection): unknown {
  return this.toJSON()
}

const define = (prototype: object, inspect: (this: never) => unknown) =>
  Object.defineProperty(prototype, Inspectable.NodeInspectSymbol, {
    value: inspect,
    writable: true,
    configurable: true
  })

/** `util.inspect` of every ConnectError and Connection from now on. */
export const install = (): void => {
  define(ConnectError.prototype, inspectConnectError)
  define(LiveConnection.prototype, inspectConnection)
}
