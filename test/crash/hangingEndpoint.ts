/** An endpoint that accepts TCP on 127.0.0.1 and never answers the HTTP upgrade. */
import * as Net from "node:net"

export const listenHanging = (): Promise<{ readonly url: string; readonly close: () => void }> =>
  new Promise((resolve) => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("close", () => sockets.delete(socket))
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resolve({
        url: `ws://127.0.0.1:${port}`,
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      })
    })
  })
