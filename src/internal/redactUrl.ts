/** Renders a URL for errors and logs without secrets: userinfo and query values are replaced. */

const REDACTED = "redacted"

/** `wss://user:pw@host/path?token=abc` -> `wss://redacted@host/path?token=redacted`. */
export const redactUrl = (url: URL): string => {
  const copy = new URL(url.href)
  if (copy.username !== "" || copy.password !== "") {
    copy.username = REDACTED
    copy.password = ""
  }
  if (copy.search !== "") {
    const keys = Array.from(copy.searchParams.keys())
    copy.search = keys.map((key) => `${encodeURIComponent(key)}=${REDACTED}`).join("&")
  }
  copy.hash = ""
  return copy.href
}

/** For input that did not parse as a URL: keep the scheme and host-ish prefix only. */
export const redactUnparsedUrl = (input: string): string => {
  const cut = input.search(/[@?#]/)
  const visible = cut === -1 ? input : `${input.slice(0, cut)}…`
  return visible.length > 120 ? `${visible.slice(0, 120)}…` : visible
}
