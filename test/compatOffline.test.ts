/**
 * `effect-lifeline/compat` over the browser transport (the standard WebSocket, on Node behind
 * --experimental-websocket) honours the network like the Client does: while `navigator.onLine` is
 * false it makes no attempt, and the `online` event attempts at once. With protocols given as an
 * array and as a function (whose attempts run through a wrapped transport). Real TestServer on
 * 127.0.0.1; the network globals stubbed (test/support/browserGlobals.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import { TestServer } from "../src/testing/index.js"
import { withBrowserNetwork } from "./support/browserGlobals.js"

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const opened = (socket: ReconnectingWebSocket) =>
  new Promise<void>((resolve) => socket.addEventListener("open", () => resolve(), { once: true }))

describe("compat offline (browser transport)", () => {
  const cases: ReadonlyArray<readonly [string, ConstructorParameters<typeof ReconnectingWebSocket>[1]]> = [
    ["an array", ["p1"]],
    ["a function", () => ["p1"]]
  ]
  for (const [name, protocols] of cases) {
    it.scopedLive(`protocols as ${name}: no attempt while offline, the online event attempts at once`, () =>
      Effect.gen(function*() {
        const server = yield* TestServer.make({ protocols: ["p1"] })
        yield* Effect.promise(() =>
          withBrowserNetwork(async ({ goOnline, navigator }) => {
            const socket = new ReconnectingWebSocket(server.url, protocols, {
              WebSocket: globalThis.WebSocket,
              minReconnectionDelay: 10,
              maxReconnectionDelay: 10
            })
            try {
              await opened(socket)
              navigator.onLine = false
              await Effect.runPromise(server.kill)
              // Twenty reconnection delays: online, about twenty handshakes.
              await sleep(200)
              const requests = await Effect.runPromise(server.requests)
              await Effect.runPromise(server.restart)
              await sleep(100)
              expect(await Effect.runPromise(server.requests)).toBe(requests)
              const back = opened(socket)
              goOnline()
              await back
              expect(socket.protocol).toBe("p1")
              expect(await Effect.runPromise(server.requests)).toBe(requests + 1)
            } finally {
              socket.close()
              await sleep(20)
            }
          })
        )
      }))
  }
})
