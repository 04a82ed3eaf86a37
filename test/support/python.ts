/**
 * Debian's Python `websockets` (10.4) as a real peer: a server script run with `/usr/bin/python3
 * -u`, which reads its port from stdin (0: any; websockets 10.4's CLI cannot take 0) and prints
 * `PORT <n>` once listening; every other line it prints goes to `onLine`. Killed with the scope.
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { peer } from "./peers.js"
import { awaitTrue } from "./poll.js"

export const PYTHON = "/usr/bin/python3"

export const hasWebsockets = peer(
  ChildProcess.spawnSync(PYTHON, ["-c", "import websockets"], { stdio: "ignore" }).status === 0,
  "Python websockets",
  "python3-websockets"
)

export interface PythonServer {
  readonly child: ChildProcess.ChildProcess
  port: number | undefined
}

/** `text` written as `name` in a temp dir of its own, removed with the scope: the script's path. */
export const scriptFile = (name: string, text: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-py-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => {
    const script = Path.join(dir, name)
    Fs.writeFileSync(script, text)
    return script
  }))

/** Spawns `script` (a path) with `args`; it waits for its port on stdin (`listen`). */
export const spawnPython = (script: string, onLine: (line: string) => void, args: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.sync((): PythonServer => {
      const child = ChildProcess.spawn(PYTHON, ["-u", script, ...args], { stdio: ["pipe", "pipe", "ignore"] })
      const server: PythonServer = { child, port: undefined }
      let rest = ""
      child.stdout!.setEncoding("latin1")
      child.stdout!.on("data", (chunk: string) => {
        const lines = (rest + chunk).split("\n")
        rest = lines.pop()!
        for (const line of lines) {
          if (line.startsWith("PORT ")) server.port = Number(line.slice(5))
          else onLine(line)
        }
      })
      child.stdin!.on("error", () => {})
      return server
    }),
    ({ child }) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGKILL")
      })
  )

/** Tells the server its port and waits until it listens; the port it listens on. */
/** Sends `name` to the server's process and waits (5 s at most) until it has exited. */
export const signalPython = (server: PythonServer, name: NodeJS.Signals) =>
  Effect.async<void>((resume) => {
    const { child } = server
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill(name)
  }).pipe(
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => `the ${name} server never exited` }),
    Effect.orDie
  )

export const listen = (server: PythonServer, port: number) =>
  Effect.gen(function*() {
    server.child.stdin!.write(`${port}\n`)
    yield* awaitTrue(Effect.sync(() => server.port !== undefined), "the Python server listens", 3_000)
    return server.port!
  })

/**
 * An echo server on Python websockets 10.4 (its default `max_size`: 1 MiB; permessage-deflate on)
 * that reads its port from stdin (0: any) and prints `PORT <n>` once listening. `printEach`: it also
 * prints `M <message>` for every (text) message before echoing it; run with -u, each line is one
 * write, so a SIGKILL loses none of what was printed.
 */
/**
 * A server script's last lines: serves its `handler` on 127.0.0.1 at the port it reads from stdin
 * (`listen`), prints `PORT <n>`, and runs until it is killed.
 */
export const SERVE_HANDLER = `async def main():
    async with websockets.serve(handler, "127.0.0.1", port) as server:
        sys.stdout.write("PORT %d\\n" % server.sockets[0].getsockname()[1])
        await asyncio.Future()
asyncio.run(main())
`

export const echoScript = (printEach: boolean): string =>
  `import asyncio, sys, websockets
port = int(sys.stdin.readline())
async def handler(ws):
    async for m in ws:
${
    printEach ?
      `        sys.stdout.write("M " + m + "\\n")
` :
      ""
  }        await ws.send(m)
${SERVE_HANDLER}`

/** Python websockets echoing every message, stopped with the scope: its `ws://127.0.0.1:<port>` URL. */
export const pythonEcho = Effect.gen(function*() {
  const port = yield* listen(yield* spawnPython(yield* scriptFile("echo.py", echoScript(false)), () => {}), 0)
  return `ws://127.0.0.1:${port}`
})
