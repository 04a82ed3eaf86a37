/**
 * A browser's network globals on Node, for the length of `body`: `navigator.onLine` (a field the
 * test sets) and the global `online` event (`addEventListener`, fired by `goOnline`). Put back
 * as they were after.
 */
export const withBrowserNetwork = async <A>(
  body: (network: {
    readonly navigator: { onLine: boolean }
    /** Fires a global event (`online`, `offline`) at the listeners added through the global scope. */
    readonly dispatch: (type: string) => void
    /** `navigator.onLine` true, then the `online` event. */
    readonly goOnline: () => void
  }) => Promise<A> | A
): Promise<A> => {
  const target = new EventTarget()
  const globals = globalThis as unknown as Record<string, unknown>
  const saved = {
    navigator: Object.getOwnPropertyDescriptor(globalThis, "navigator"),
    add: globals["addEventListener"],
    remove: globals["removeEventListener"]
  }
  const navigator = { onLine: true }
  Object.defineProperty(globalThis, "navigator", { value: navigator, configurable: true, writable: true })
  globals["addEventListener"] = target.addEventListener.bind(target)
  globals["removeEventListener"] = target.removeEventListener.bind(target)
  try {
    const dispatch = (type: string) => {
      target.dispatchEvent(new Event(type))
    }
    return await body({
      navigator,
      dispatch,
      goOnline: () => {
        navigator.onLine = true
        dispatch("online")
      }
    })
  } finally {
    if (saved.navigator === undefined) delete globals["navigator"]
    else Object.defineProperty(globalThis, "navigator", saved.navigator)
    if (saved.add === undefined) delete globals["addEventListener"]
    else globals["addEventListener"] = saved.add
    if (saved.remove === undefined) delete globals["removeEventListener"]
    else globals["removeEventListener"] = saved.remove
  }
}
