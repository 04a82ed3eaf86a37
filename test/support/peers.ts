/**
 * The real peers some tests run against (Debian's nginx, Python `websockets`, openssl...): when one
 * is missing here, its tests skip, and this says so once per test file, loudly, with the package
 * that brings it (`.ci/run` installs them all).
 */
import { afterEach } from "vitest"

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

/**
 * The options of the trials against a proxy process (Apache, Caddy, HAProxy, lighttpd): one retry.
 * Those trials stop, reload and restart a real proxy under the whole suite's load on 2 cores, and
 * fresh-clone CI runs failed one of them now and then on the proxy's own timing (Caddy serving a
 * certificate after writing it, lighttpd resetting links at a fork, HAProxy's queue), a different
 * test each time, each passing alone (docs/trials.md, "this stop's CI runs"). A test that passes
 * only on its second run shows "(retry x1)" in the log; one that fails twice fails the run.
 */
export const proxyTrial = { retry: 1 } as const

/** In a proxy trial's block: says loudly when a test runs a second time (the log then shows why). */
export const reportRetries = (): void => {
  afterEach((context) => {
    const retried = context.task.result?.retryCount ?? 0
    if (retried > 0) console.warn(`\n*** proxy trial run again (run ${retried + 1}): ${context.task.name} ***\n`)
  })
}
