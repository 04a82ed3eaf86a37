// A plain `ws` echo server for the benchmarks, run in its own child process so it has its own core.
// Listens on 127.0.0.1 only. Prints `{"port":N,"listeningAt":T}` on stdout once listening, T in
// epoch milliseconds (performance.timeOrigin + performance.now(), comparable across processes).
//
//   node --import tsx bench/echoServer.ts [--port N] [--wait]
//
// --port N  listen on N (default 0: any free port)
// --wait    print `{"booted":true}`, then listen when a line `listen T` arrives on stdin, at epoch
//           time T by this process's own timer (the herd benchmark brings a server back at a
//           precise moment this way, without start-up time and whatever load its parent is under)
//
// A line `report` on stdin prints `{"accepted":[T, ...]}`: the epoch time of every WebSocket
// handshake accepted so far, as seen by the server (the herd's measure of reconnection load).
import { createInterface } from "node:readline"
import { WebSocketServer } from "ws"

const HOST = "127.0.0.1"

const argumentAfter = (flag: string): string | undefined => {
  const index = process.argv.indexOf(flag)
  return index === -1 ? undefined : process.argv[index + 1]
}

const port = Number(argumentAfter("--port") ?? "0")
const waitForSignal = process.argv.includes("--wait")

const now = (): number => performance.timeOrigin + performance.now()
const accepted: Array<number> = []

const listen = (): void => {
  const server = new WebSocketServer({ host: HOST, port, perMessageDeflate: false, backlog: 4096 })
  server.on("connection", (socket) => {
    accepted.push(now())
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
    process.stdout.write(`${JSON.stringify({ port: bound, listeningAt: now() })}\n`)
  })
}

// The parent owns this process: when it goes away (its end of stdin closes), so does the server.
const stdin = createInterface({ input: process.stdin })
let listening = false
stdin.on("line", (line) => {
  if (line === "report") {
    process.stdout.write(`${JSON.stringify({ accepted })}\n`)
    return
  }
  if (waitForSignal && !listening) {
    listening = true
    const at = Number(line.split(" ")[1])
    const delay = Number.isFinite(at) ? at - now() : 0
    setTimeout(listen, Math.max(0, delay))
  }
})
stdin.on("close", () => process.exit(0))

if (waitForSignal) process.stdout.write(`${JSON.stringify({ booted: true })}\n`)
else {
  listening = true
  listen()
}
