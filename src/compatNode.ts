/**
 * `effect-lifeline/compat` on Node (the package's `"node"` export condition): everything of
 * `compat.ts`, and lifeline's Node transport for `WebSocket: WS` (the `ws` class), so a rejected
 * handshake reports its HTTP status (a 401 is not retried) and every failure its real reason.
 *
 * @since 0.1.0
 */
import WebSocket from "ws"
import { looksLikeWs, registerNodeTransport } from "./internal/compat/transports.js"
import * as NodeTransport from "./NodeTransport.js"

registerNodeTransport({
  isWs: (constructor) => constructor === WebSocket || looksLikeWs(constructor),
  transport: NodeTransport.make
})

export * from "./compat.js"
export { default } from "./compat.js"
