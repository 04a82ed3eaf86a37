/**
 * `effect-lifeline/compat` on Node (the package's `"node"` export condition): everything of
 * `compat.ts`, and lifeline's Node transport for `WebSocket: WS` (the `ws` class), so a rejected
 * handshake reports its HTTP status (a 401 is not retried) and every failure its real reason.
 *
 * @since 0.1.0
 */
import { types } from "node:util"
import WebSocket from "ws"
import { looksLikeWs, registerNodeTransport } from "./internal/compat/transports.js"
import * as NodeTransport from "./NodeTransport.js"

registerNodeTransport({
  // The ws class itself (this copy, or another's), not a subclass: a subclass's constructor may
  // set options of its own (an `agent` for a proxy, `ca`, headers) that the Node transport would
  // drop; it gets the browser transport over it, which constructs it. So does a Proxy of ws (its
  // `construct` trap may add those options; the prototype it shows is ws's own).
  isWs: (constructor) =>
    constructor === WebSocket ||
    (!types.isProxy(constructor) && looksLikeWs(constructor) &&
      !looksLikeWs(Object.getPrototypeOf(constructor))),
  transport: NodeTransport.make
})

export * from "./compat.js"
export { default } from "./compat.js"
