import { createRequire } from "node:module"
import { availableParallelism } from "node:os"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  // The package by its published name resolves to the source, as tsconfig.json's `paths` says
  // (exact matches: a bare "effect-lifeline" alias would also rewrite "effect-lifeline/testing").
  resolve: {
    alias: [
      { find: /^effect-lifeline$/, replacement: source("./src/index.ts") },
      { find: /^effect-lifeline\/browser$/, replacement: source("./src/browser.ts") },
      { find: /^effect-lifeline\/testing$/, replacement: source("./src/testing/index.ts") },
      { find: /^effect-lifeline\/platform$/, replacement: source("./src/platform.ts") },
      // Node resolves the "node" condition of "./compat": the entry with the Node transport.
      { find: /^effect-lifeline\/compat$/, replacement: source("./src/compatNode.ts") },
      { find: /^effect-lifeline\/schema$/, replacement: source("./src/schema.ts") },
      // graphql 16 has no "exports": Node's ESM loader takes its CommonJS main (as graphql-ws, run by
      // Node, does) and Vite its "module" (index.mjs); two copies refuse each other's schema
      // ("from another module or realm"). One copy: the one Node loads.
      { find: /^graphql$/, replacement: createRequire(import.meta.url).resolve("graphql") },
      // One module by its own path (`effect-lifeline/Client`), as Effect's own modules are.
      {
        find:
          /^effect-lifeline\/(BrowserTransport|CircuitBreaker|Client|Codec|Connection|Errors|LiteClient|NodeTransport|Reconnect|Transport)$/,
        replacement: source("./src/$1.ts")
      }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    pool: "forks",
    // One test file more than the cores: most of the suite waits on sockets, timers and child
    // processes (the CLI, browsers, Python, nginx, HAProxy...), so on a 2-core machine three forks
    // beat two (when the suite took 150 s: 200 s with two), and it still passed under two CPU hogs.
    // (Vitest's default, one fork fewer than the cores, is one here.) Each file has a process of
    // its own: `--no-isolate` took a run from about 505 s to 366-403 s, but tests read state a
    // previous file left (docs/trials.md, "the suite's time").
    maxWorkers: availableParallelism() + 1,
    minWorkers: 1,
    // The WHATWG WebSocket is behind a flag on Node 20; BrowserTransport tests need it.
    poolOptions: { forks: { execArgv: ["--experimental-websocket"] } },
    // Any uncaught exception or unhandled rejection fails the run (vitest's default, stated here
    // because invariant 1 depends on it).
    dangerouslyIgnoreUnhandledErrors: false,
    // Timeouts are hang guards, never timed assertions: at least 30 s, here and in every test that
    // sets its own (this machine ran a fresh-clone suite in 463 to 605 s, and tests given 10 or 15 s
    // ran out under that load).
    // No retries, except the trials against a proxy process (Apache, Caddy, HAProxy, lighttpd),
    // which run a failed test once more and say so (`proxyTrial`, test/support/peers.ts).
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
