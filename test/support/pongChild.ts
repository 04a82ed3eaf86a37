// A WebSocket server in a process of its own (ws answers pings) that answers while the test's
// process is held up (test/heartbeatStall.test.ts):
//   node --import tsx test/support/pongChild.ts
// Listens on 127.0.0.1, port 0; prints "PORT <n>"; ends when its stdin closes.
import { WebSocketServer } from "ws"

const server = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () => {
  const address = server.address()
  process.stdout.write(`PORT ${typeof address === "object" && address !== null ? address.port : 0}\n`)
})
server.on("connection", (socket) => {
  socket.on("error", () => {})
  socket.on("message", (data) => {
    if (String(data) === "ping") socket.send("pong")
  })
})
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
