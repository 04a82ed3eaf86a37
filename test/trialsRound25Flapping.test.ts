/**
 * Round 25: the compat facade as partysocket apps write it, against a real peer that flaps. Debian's
 * Python `websockets` 10.4 greets each connection ("hi <n>") and closes it at once with 1012
 * ("restart"), as a server being redeployed does; the app reconnects with no delay
 * (`minReconnectionDelay: 0`), and its `onclose` reads `readyState` to show "offline", the common
 * pattern. Each close event must see CLOSED, whatever the Client has begun since (this stop's fix:
 * the facade hears of the Client's transitions a little late, and a close event once saw
 * CONNECTING under load). On an unloaded machine it passes with or without that fix (the lag did
 * not show in Node); it pins the pattern's whole outcome. docs/trials.md, "what the last CI run and
 * this stop's runs found".
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ReconnectingWebSocket } from "effect-lifeline/compat"
import WS from "ws"
import { hasWebsockets, listen, scriptFile, spawnPython } from "./support/python.js"

const FLAPPING_SERVER = `import asyncio, sys, websockets
port = int(sys.stdin.readline())
count = 0
async def greet(ws):
    global count
    count += 1
    await ws.send("hi %d" % count)
    await ws.close(1012, "restart")
async def main():
    async with websockets.serve(greet, "127.0.0.1", port) as server:
        sys.stdout.write("PORT %d\\n" % server.sockets[0].getsockname()[1])
        await asyncio.Future()
asyncio.run(main())
`

const CYCLES = 30

describe.skipIf(!hasWebsockets)("round 25: compat against a Python server that greets and closes 1012 at once", () => {
  for (
    const [name, WebSocket] of [["WebSocket: WS (Node transport)", WS], [
      "the global WebSocket (browser transport)",
      globalThis.WebSocket
    ]] as const
  ) {
    it.scopedLive(
      `${name}, minReconnectionDelay 0: ${CYCLES} cycles of open, "hi n", close 1012; every close event sees readyState CLOSED, every greeting arrives once, in order`,
      () =>
        Effect.gen(function*() {
          const server = yield* spawnPython(yield* scriptFile("flapping.py", FLAPPING_SERVER), () => {})
          const port = yield* listen(server, 0)
          const seen = yield* Effect.promise(() =>
            new Promise<{ lines: Array<string>; statesAtClose: Array<number> }>((resolve, reject) => {
              const socket = new ReconnectingWebSocket(`ws://127.0.0.1:${port}`, undefined, {
                WebSocket: WebSocket as never,
                minReconnectionDelay: 0,
                maxReconnectionDelay: 0,
                reconnectionDelayJitter: 0
              })
              const lines: Array<string> = []
              const statesAtClose: Array<number> = []
              const timer = setTimeout(() => {
                socket.close()
                reject(new Error(`${CYCLES} cycles not done in 20 s: ${JSON.stringify(lines.slice(-6))}`))
              }, 20_000)
              socket.onopen = () => lines.push("open")
              socket.onmessage = (event) => lines.push(String(event.data))
              socket.onerror = (event) =>
                lines.push(`error ${String((event as { error?: { _tag?: string } }).error?._tag)}`)
              socket.onclose = (event) => {
                statesAtClose.push(socket.readyState)
                lines.push(`close ${event.code} ${event.reason}`)
                if (statesAtClose.length === CYCLES) {
                  clearTimeout(timer)
                  socket.close()
                  resolve({ lines, statesAtClose })
                }
              }
            })
          )
          expect(seen.statesAtClose).toEqual(Array.from({ length: CYCLES }, () => ReconnectingWebSocket.CLOSED))
          expect(seen.lines).toEqual(
            Array.from({ length: CYCLES }, (_, k) => ["open", `hi ${k + 1}`, "close 1012 restart"]).flat()
          )
        }),
      30_000
    )
  }
})
