/** Ports on 127.0.0.1 for tests. */
import { Effect } from "effect"
import * as Net from "node:net"

/** A port where nothing listens: a server's port after the server is closed. */
export const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
)
