// Raw ws's side of the round-trip A/B scripts (abRoundTrip.ts, abRoundTripInterleaved.ts): one
// socket to the echo server, and a round trip (send 64 B, wait for the echo) timed in ms.
import WebSocket from "ws"

export const rawRoundTrips = async (url: string, payload: string) => {
  const socket = new WebSocket(url)
  await new Promise((done) => socket.once("open", done))
  let onEcho: (() => void) | undefined
  socket.on("message", () => {
    const done = onEcho
    onEcho = undefined
    done?.()
  })
  const roundTrip = async (): Promise<number> => {
    const echo = new Promise<void>((done) => (onEcho = done))
    const started = performance.now()
    socket.send(payload)
    await echo
    return performance.now() - started
  }
  return { roundTrip, close: () => socket.close() }
}
