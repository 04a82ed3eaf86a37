/**
 * A peer server in a child process of another language (Go's gorilla, Jetty) that reads the port
 * to listen on from its stdin (0: any free one), prints `PORT <n>` once it listens, and prints
 * lines of its own about what it saw, which the test reads.
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import { awaitTrue } from "./poll.js"

/**
 * Spawns `command args`, asks it for `port`, collects its lines into `lines`, and waits (at most
 * `polls` x 5 ms) until it listens; `release` ends it with the scope.
 */
export const spawnPortPeer = (
  command: string,
  args: ReadonlyArray<string>,
  port: number,
  lines: Array<string>,
  what: string,
  polls: number,
  release: (child: ChildProcess.ChildProcess) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const state = { port: undefined as number | undefined }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = ChildProcess.spawn(command, [...args], { stdio: ["pipe", "pipe", "ignore"] })
        let rest = ""
        child.stdout!.setEncoding("utf8")
        child.stdout!.on("data", (chunk: string) => {
          const split = (rest + chunk).split("\n")
          rest = split.pop()!
          for (const line of split) {
            if (line.startsWith("PORT ")) state.port = Number(line.slice(5))
            else lines.push(line)
          }
        })
        child.stdin!.on("error", () => {})
        child.stdin!.write(`${port}\n`)
        return child
      }),
      release
    )
    yield* awaitTrue(Effect.sync(() => state.port !== undefined), what, polls)
    return { child, port: state.port! }
  })
