/**
 * Bun and Deno, the other runtimes Effect apps run on, as places to run lifeline: test/support/
 * runtimeChild.ts bundled by esbuild and run by `bun` or `deno run -A` (opsSpawn.ts's child), its
 * servers in the test's own Node process. A runtime is `LIFELINE_BUN` / `LIFELINE_DENO` when set
 * (only there), else the version `.ci/run` installs from the npm registry into
 * node_modules/.cache/runtimes, else one on PATH; when it is missing its tests skip, saying so
 * loudly.
 *
 * On Bun, `ws` is left out of the bundle: Bun answers `import "ws"` with a `ws` of its own, which is
 * what a Bun user's NodeTransport runs on. Deno runs the npm `ws` (bundled) over its `node:`
 * modules.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { type ChildRuntime, spawnChild } from "./opsSpawn.js"

const installed = fileURLToPath(new URL("../../node_modules/.cache/runtimes/node_modules/", import.meta.url))

const find = (variable: string, name: string, below: string): string | undefined => {
  const given = process.env[variable]
  if (given !== undefined && given !== "") return Fs.existsSync(given) ? given : undefined
  const onPath = (process.env.PATH ?? "").split(Path.delimiter).map((dir) => Path.join(dir, name))
  return [Path.join(installed, below), ...onPath].find((file) => Fs.existsSync(file))
}

export interface Runtime {
  readonly name: "bun" | "deno"
  /** How to run a child there; absent when the runtime is not installed here. */
  readonly child: ChildRuntime | undefined
}

const runtime = (
  name: Runtime["name"],
  binary: string | undefined,
  args: ReadonlyArray<string>,
  external: ReadonlyArray<string>
): Runtime => ({
  name,
  child: binary === undefined ? undefined : { binary, args, external }
})

export const runtimes: ReadonlyArray<Runtime> = [
  runtime("bun", find("LIFELINE_BUN", "bun", "@oven/bun-linux-x64/bin/bun"), [], ["ws"]),
  runtime("deno", find("LIFELINE_DENO", "deno", "@deno/linux-x64-glibc/deno"), ["run", "-A", "--no-prompt"], [])
]

const warned = new Set<string>()

/** Whether `runtime` is here; once per test file, a loud warning when it is not. */
export const present = (runtime: Runtime): boolean => {
  if (runtime.child === undefined && !warned.has(runtime.name)) {
    warned.add(runtime.name)
    console.warn(
      `\n*** tests on ${runtime.name} SKIPPED: it is not installed here (.ci/run installs it from the npm registry into node_modules/.cache/runtimes). ***\n`
    )
  }
  return runtime.child !== undefined
}

/**
 * `scenario` of runtimeChild.ts on `runtime` with `input` (its JSON argument): a child the test
 * talks to by lines (opsSpawn.ts), its result the JSON line it prints last; killed after `bound` ms.
 */
export const onRuntime = (runtime: Runtime, scenario: string, input: unknown, bound = 25_000) =>
  spawnChild("runtimeChild.ts", [scenario, JSON.stringify(input)], { runtime: runtime.child!, bound })
