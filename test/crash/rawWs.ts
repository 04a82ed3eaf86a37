/**
 * The control: what reconnecting wrappers do with raw ws. They drop their listeners, then close a
 * socket that is still CONNECTING; ws 8.x emits 'error' on the next tick and Node throws it.
 * This script must crash, or the test that runs it proves nothing.
 */
import WebSocket from "ws"
import { listenHanging } from "./hangingEndpoint.js"

const endpoint = await listenHanging()
for (let attempt = 0; attempt < 100; attempt++) {
  const socket = new WebSocket(endpoint.url)
  socket.on("error", () => {})
  await new Promise((resolve) => setTimeout(resolve, 5))
  // The wrapper's "open timeout": forget the old socket and close it.
  socket.removeAllListeners()
  socket.close()
}
endpoint.close()
console.log("survived 100 attempts")
