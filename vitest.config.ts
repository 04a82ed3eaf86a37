import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // The WHATWG WebSocket is behind a flag on Node 20; BrowserTransport tests need it.
    poolOptions: { forks: { execArgv: ["--experimental-websocket"] } },
    // Any uncaught exception or unhandled rejection fails the run (vitest's default, stated here
    // because invariant 1 depends on it).
    dangerouslyIgnoreUnhandledErrors: false,
    testTimeout: 20_000,
    hookTimeout: 20_000
  }
})
