/**
 * Worker script for trialsRound9Browser.test.ts: the page kit of test/browser/client.ts (its `lab`)
 * inside a dedicated or a shared module worker, where there is no `window` and no `document`.
 * Driven over a MessagePort (`{ id, method, args }` in, `{ id, ok }` or `{ id, error }` out) by
 * the page (test/browser/r9page.ts).
 */
// A dynamic import: the package's `sideEffects` list makes esbuild drop a bare `import "./client.js"`.
await import("./client.js")

const scope = globalThis as unknown as {
  lab: Record<string, (...args: ReadonlyArray<unknown>) => unknown>
  onconnect?: unknown
}

/** What the worker saw of the network and of its own failures. */
const seen: Array<string> = []
const errors: Array<string> = []
addEventListener("online", () => seen.push(`online:${navigator.onLine}`))
addEventListener("offline", () => seen.push(`offline:${navigator.onLine}`))
addEventListener("error", (event) => errors.push(`error: ${(event as ErrorEvent).message}`))
addEventListener("unhandledrejection", (event) => errors.push(`unhandledrejection: ${String(event.reason)}`))

const extra: Record<string, (...args: ReadonlyArray<unknown>) => unknown> = {
  globals: () => ({
    window: typeof (globalThis as { window?: unknown }).window,
    document: typeof (globalThis as { document?: unknown }).document,
    onLine: navigator.onLine
  }),
  network: () => ({ onLine: navigator.onLine, seen: [...seen] }),
  errors: () => [...errors]
}

interface Port {
  onmessage: ((event: MessageEvent) => void) | null
  postMessage: (message: unknown) => void
}

const serve = (port: Port): void => {
  port.onmessage = (event: MessageEvent) => {
    const { args, id, method } = event.data as { id: number; method: string; args: ReadonlyArray<unknown> }
    Promise.resolve()
      .then(() => (extra[method] ?? scope.lab[method]!)(...args))
      .then(
        (ok) => port.postMessage({ id, ok }),
        (error: unknown) => port.postMessage({ id, error: error instanceof Error ? error.message : String(error) })
      )
  }
}

if ("onconnect" in scope) {
  scope.onconnect = (event: MessageEvent) => serve(event.ports[0] as unknown as Port)
} else {
  serve(globalThis as unknown as Port)
}
