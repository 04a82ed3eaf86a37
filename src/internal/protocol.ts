/** RFC 6455 constants in one place: ready states and close codes. */

/** The WebSocket readyState values, identical in `ws` and the WHATWG WebSocket. */
export const CONNECTING = 0
export const OPEN = 1
export const CLOSING = 2
export const CLOSED = 3

/** A readyState. @useDeclaredType */
export type ReadyState = typeof CONNECTING | typeof OPEN | typeof CLOSING | typeof CLOSED

/** A frame's size: exact for bytes, a lower bound for a string (UTF-16 code units). */
export const approximateBytes = (data: string | { readonly byteLength: number }): number =>
  typeof data === "string" ? data.length : data.byteLength

/**
 * `approximateBytes` of what a caller gave to send, checked: NaN for what is not a frame (a Blob,
 * a number, null: untyped code), which a browser would send as text or not at all, and whose
 * size no bound could count.
 */
export const frameBytes = (data: unknown): number => {
  if (typeof data === "string") return data.length
  if (ArrayBuffer.isView(data)) return data.byteLength
  try {
    return data instanceof ArrayBuffer ? data.byteLength : NaN
  } catch {
    // A Proxy whose getPrototypeOf trap throws (untyped code): not a frame, never a defect.
    return NaN
  }
}

/** Normal closure: the purpose of the connection was fulfilled. */
export const NORMAL_CLOSURE = 1000
/** The endpoint is going away (scope failed or interrupted). */
export const GOING_AWAY = 1001
/** Reserved: no close frame was received (abnormal closure); never sent on the wire. */
export const ABNORMAL_CLOSURE = 1006
/** The endpoint received a message that violates its policy. */
export const POLICY_VIOLATION = 1008

/** Close codes an endpoint may send (RFC 6455 §7.4, same rule as ws's `isValidStatusCode`). */
export const isSendableCloseCode = (code: number): boolean =>
  Number.isInteger(code) &&
  ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999))

/** A close reason may be at most 123 bytes of UTF-8 (the control frame's 125 minus the code). */
export const MAX_CLOSE_REASON_BYTES = 123

/** RFC 6455 §4.1: a subprotocol is a token (RFC 7230 tchar). */
export const isValidSubprotocol = (name: string): boolean => /^[!#$%&'*+\-.^_`|~\dA-Za-z]+$/.test(name)
