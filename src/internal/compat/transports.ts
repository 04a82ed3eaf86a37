/**
 * Which lifeline Transport a `ReconnectingWebSocket` uses, from its `WebSocket` option. This module
 * imports nothing from Node: the Node entry (`compatNode.ts`) registers the Node transport here,
 * so a browser bundle of `effect-lifeline/compat` never reaches `ws`.
 */
import * as BrowserTransport from "../../BrowserTransport.js"
import type { Transport } from "../../Transport.js"

interface NodeTransportEntry {
  /** True for the `ws` class (the one a Node user passes as `WebSocket: WS`). */
  readonly isWs: (constructor: unknown) => boolean
  readonly transport: Transport
}

let node: NodeTransportEntry | undefined = undefined

/** Called once by the Node entry point. */
export const registerNodeTransport = (entry: NodeTransportEntry): void => {
  node = entry
}

/**
 * The transport for the `WebSocket` option: the ws class -> the Node transport (when the Node
 * entry is loaded); any other constructor -> the browser transport over it; none -> the Node
 * transport (Node entry: Node 22's global WebSocket has no protocol ping, so a half-open peer was
 * never found, and hides a rejected handshake's status), else the global `WebSocket` (browsers),
 * else a transport whose every open fails with `InvalidOptions` ("no global WebSocket").
 */
export const transportFor = (constructor: unknown): Transport => {
  if (constructor !== undefined && constructor !== null) {
    if (node !== undefined && node.isWs(constructor)) return node.transport
    return BrowserTransport.makeWith(constructor as BrowserTransport.WebSocketConstructor)
  }
  return node?.transport ?? BrowserTransport.make
}

/** Duck-typing of the ws class: a constructor whose sockets have `terminate`, `ping` and `pause`. */
export const looksLikeWs = (constructor: unknown): boolean => {
  if (typeof constructor !== "function") return false
  const prototype: unknown = (constructor as { prototype?: unknown }).prototype
  if (typeof prototype !== "object" || prototype === null) return false
  return ["terminate", "ping", "pause"].every((name) => typeof Reflect.get(prototype, name) === "function")
}
