import type { Transport } from "../../src/index.js"

/** The network as a switch for a Transport: `set(true)` fires the `online` listeners, as a browser does. */
export const makeSwitch = () => {
  let online = true
  const listeners = new Set<() => void>()
  const network: Transport.Network = {
    isOnline: () => online,
    onOnline: (callback) => {
      listeners.add(callback)
      return () => listeners.delete(callback)
    }
  }
  return {
    network,
    listeners,
    /** Changes what `isOnline` reads without calling the listeners: a Chromium worker fires no `online`. */
    setSilently: (value: boolean) => {
      online = value
    },
    set: (value: boolean) => {
      const wasOnline = online
      online = value
      if (value && !wasOnline) { for (const listener of [...listeners]) listener() }
    }
  }
}
