/** `ServerControl` over the test kit's TestServer, for running the portable scenarios in Node. */
import { Effect } from "effect"
import type { TestServer } from "../../src/testing/index.js"
import type { ServerControl } from "./scenarios.js"

export const serverControl = (server: TestServer.TestServer): ServerControl => {
  const run = <A>(effect: Effect.Effect<A>): Promise<A> => Effect.runPromise(effect)
  return {
    kill: () => run(server.kill),
    restart: () => run(server.restart),
    closeWith: (code, reason) => run(server.closeAll(code, reason)),
    reject: (status, count) => run(server.rejectNext(status, {}, count)),
    hang: () => run(server.hangHandshake),
    behave: () => run(server.behave),
    send: (frame) => run(server.broadcast(frame)),
    sendThenClose: (frames, code, reason) =>
      run(Effect.zipRight(Effect.forEach(frames, server.broadcast, { discard: true }), server.closeAll(code, reason))),
    sent: () => run(server.received),
    requests: () => run(server.requests),
    accepted: () => run(server.accepted),
    offeredProtocols: () =>
      run(Effect.map(server.lastRequestHeaders, (headers) => {
        const value = headers["sec-websocket-protocol"]
        return typeof value === "string" ? value : ""
      }))
  }
}
