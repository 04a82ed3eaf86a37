/**
 * `Client.make({ url })`, the common case (and the connect benchmark's), where the Node transport
 * is loaded: what the checks would decode it to, without running them, and many Clients to one URL
 * share one settings object (they are never changed): one per Client was a twentieth of an idle
 * Client's heap. A browser bundle does without this (a page holds a Client or two): there `{ url }`
 * is decoded as any options are, to the same settings.
 */
import * as Either from "effect/Either"
import type { ClientSettings, Endpoint } from "./options.js"
import { attempt, CLIENT_DEFAULTS, shortcuts, toSettings, Url } from "./options.js"

const hasOnlyUrl = (input: unknown): input is { readonly url: unknown } => {
  if (typeof input !== "object" || input === null) return false
  let url = false
  for (const key in input) {
    if (key !== "url") return false
    url = true
  }
  return url
}

// The settings of the last `{ url }` with a URL given as text (so one endpoint).
let lastUrlOnly: ClientSettings | undefined

const settingsOf = (url: ReadonlyArray<Endpoint>): ClientSettings => {
  const text = url.length === 1 && typeof url[0] === "string" ? url[0] : undefined
  if (text !== undefined && lastUrlOnly?.endpoints[0] === text) return lastUrlOnly
  const settings = toSettings({ ...CLIENT_DEFAULTS, url })
  if (text !== undefined) lastUrlOnly = settings
  return settings
}

const urlOnly = (options: unknown): ClientSettings | undefined => {
  if (!hasOnlyUrl(options)) return undefined
  const url = attempt(() => Url(options.url), () => undefined)
  return Either.isRight(url) ? settingsOf(url.right) : undefined
}

/** `{ url }` alone is decoded here, for every Client made from now on (the Node transport calls it where it is loaded). */
export const install = (): void => {
  shortcuts.urlOnly = urlOnly
}
