#!/usr/bin/env node
/**
 * `npx effect-lifeline`: `connect <url>`, an interactive WebSocket client that survives outages,
 * and `demo`. See docs/cli.md.
 *
 * @since 0.1.0
 */
import { run } from "./cli/main.js"

// A closed stdout (`| head`) or stderr must end the program quietly, not crash it.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", () => {
    process.exit(process.exitCode ?? 0)
  })
}

let signals = 0
const onSignal = (listener: (signal: "SIGINT" | "SIGTERM") => void) => {
  const handle = (signal: "SIGINT" | "SIGTERM") => {
    // A second Ctrl-C does not wait for the close.
    if (++signals > 1) process.exit(signal === "SIGINT" ? 130 : 143)
    listener(signal)
  }
  process.on("SIGINT", handle)
  process.on("SIGTERM", handle)
  return () => {
    process.off("SIGINT", handle)
    process.off("SIGTERM", handle)
  }
}

void run(process.argv.slice(2), {
  stdin: process.stdin,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  onSignal
}).then((code) => {
  process.exitCode = code
  // stdin may still be open (the session ended on an error): let go of it, so the process ends
  // once stdout is flushed; should anything else hold the loop, end it anyway.
  process.stdin.destroy()
  setTimeout(() => process.exit(code), 1_000).unref()
})
