/**
 * The Client contract (test/support/clientContract.ts) run against `Client.make` over the Node
 * transport and over the browser transport (ws's WebSocket class as the browser's).
 */
import { WebSocket } from "ws"
import { BrowserTransport, Client, LiteClient, NodeTransport } from "../src/index.js"
import { clientContract } from "./support/clientContract.js"
import type { MakeClient } from "./support/clientContract.js"

clientContract("Client (Node transport)", Client.make, NodeTransport.layer)

clientContract(
  "Client (browser transport over ws)",
  Client.make,
  BrowserTransport.layerWith(WebSocket as unknown as BrowserTransport.WebSocketConstructor)
)

clientContract("LiteClient (Node transport)", LiteClient.make as MakeClient, NodeTransport.layer)

clientContract(
  "LiteClient (browser transport over ws)",
  LiteClient.make as MakeClient,
  BrowserTransport.layerWith(WebSocket as unknown as BrowserTransport.WebSocketConstructor)
)
