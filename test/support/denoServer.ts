/**
 * A Deno WebSocket server, run by `deno run -A` (test/support/runtimes.ts): `Deno.serve` with
 * `Deno.upgradeWebSocket` on 127.0.0.1, an echo. It prints `{"port":N}` once listening. Its one
 * scenario, `abortRestart`: 300 ms after the first link opens it stops by its `AbortSignal` (Deno's
 * documented stop, which closes each link with code 1005 in its close frame), then serves again on
 * the same port 200 ms later and prints `{"restarted":true}`. It exits when its stdin ends.
 */
// Deno's global, not in this project's types.
declare const Deno: any

const serve = (port: number, onOpen: () => void) => {
  const controller = new AbortController()
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    signal: controller.signal,
    onListen: () => {}
  }, (request: Request) => {
    const { response, socket } = Deno.upgradeWebSocket(request)
    socket.onopen = onOpen
    socket.onmessage = (event: MessageEvent) => socket.send(event.data)
    return response
  })
  return { controller, server }
}

let opened = false
const first = serve(0, () => {
  if (opened) return
  opened = true
  setTimeout(async () => {
    first.controller.abort()
    await first.server.finished
    setTimeout(() => {
      serve(first.server.addr.port, () => {})
      console.log(JSON.stringify({ restarted: true }))
    }, 200)
  }, 300)
})
console.log(JSON.stringify({ port: first.server.addr.port })) // Ends with its stdin (the test's end), as runtimeChild.ts does.
;(async () => {
  for await (const _ of Deno.stdin.readable) {
    // read to the end
  }
  Deno.exit(0)
})()
