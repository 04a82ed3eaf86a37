// A plain `ws` echo server for the benchmarks, run in its own child process so it has its own core.
// Listens on 127.0.0.1 only. Prints `{"port":N}` on stdout once listening.
//
//   node --import tsx bench/echoServer.ts [--port N] [--wait]
//
// --port N  listen on N (default 0: any free port)
// --wait    print `{"booted":true}`, then listen only when a line arrives on stdin (the herd
//           benchmark uses this to bring a server back at a precise moment, without start-up time)
import { createInterface } from "node:readline"
import { WebSocketServer } from "ws"

const HOST = "127.0.0.1"

const argumentAfter = (flag: string): string | undefined => {
  const index = process.argv.indexOf(flag)
  return index === -1 ? undefined : process.argv[index + 1]
}

const port = Number(argumentAfter("--port") ?? "0")
const waitForSignal = process.argv.includes("--wait")

const listen = (): void => {
  const server = new WebSocketServer({ host: HOST, port, perMessageDeflate: false, backlog: 4096 })
  server.on("connection", (socket) => {
    socket.on("error", () => {})
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }))
  })
  server.on("error", (error) => {
    process.stderr.write(`echo server: ${error.message}\n`)
    process.exit(1)
  })
  server.on("listening", () => {
    const address = server.address()
    const bound = typeof address === "object" && address !== null ? address.port : port
    process.stdout.write(`${JSON.stringify({ port: bound })}\n`)
  })
}

// The parent owns this process: when it goes away (its end of stdin closes), so does the server.
const stdin = createInterface({ input: process.stdin })
let listening = false
stdin.on("line", () => {
  if (waitForSignal && !listening) {
    listening = true
    listen()
  }
})
stdin.on("close", () => process.exit(0))

if (waitForSignal) process.stdout.write(`${JSON.stringify({ booted: true })}\n`)
else {
  listening = true
  listen()
}
