/**
 * The Client contract (test/support/clientContract.ts) run against `Client.make` over the Node
 * transport and over the browser transport (ws's WebSocket class as the browser's).
 */
import { WebSocket } from "ws"
import { BrowserTransport, Client, NodeTransport } from "../src/index.js"
import { clientContract } from "./support/clientContract.js"

clientContract("Client (Node transport)", Client.make, NodeTransport.layer)

clientContract(
  "Client (browser transport over ws)",
  Client.make,
  BrowserTransport.layerWith(WebSocket as unknown as BrowserTransport.WebSocketConstructor)
)
