/**
 * The real peers some tests run against (Debian's nginx, Python `websockets`, openssl...): when one
 * is missing here, its tests skip, and this says so once per test file, loudly, with the package
 * that brings it (`.ci/run` installs them all).
 */
const warned = new Set<string>()

/** `found`, after one loud warning naming `what` and the Debian `pkg` when it is false. */
export const peer = (found: boolean, what: string, pkg: string): boolean => {
  if (!found && !warned.has(what)) {
    warned.add(what)
    console.warn(
      `\n*** tests against ${what} SKIPPED: it is not installed here (apt-get install ${pkg}; .ci/run does). ***\n`
    )
  }
  return found
}
