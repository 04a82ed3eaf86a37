/**
 * A child script (test/support/*Child.ts, workerParent.ts, netnsChild.ts) bundled by esbuild once
 * per test process and run by plain `node`: a child started with `--import tsx` spends about 3.3 s
 * of CPU compiling src/ and the script on each start, a bundle about 0.35 s (measured on this
 * 2-core machine; the suite starts dozens of children). The bundle holds the script, src/ and the
 * packages, as test/support/workerBundle.ts's does for Workers; esbuild stays a package (it cannot
 * be bundled), so the bundles live under node_modules/.cache, where `node` finds it. Each test
 * process writes a directory of its own (about 1 MB a script).
 */
import { Effect } from "effect"
import { build } from "esbuild"
import { mkdirSync, readdirSync, rmSync } from "node:fs"
import { basename, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))
const built = new Map<string, Promise<string>>()
let directory: string | undefined

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * This process's directory. vitest ends its forks with a signal, so no exit handler of theirs runs:
 * each process removes the directories of processes that are gone instead.
 */
const ownDirectory = (): string => {
  if (directory === undefined) {
    const parent = join(root, "node_modules", ".cache", "lifeline-test-children")
    mkdirSync(parent, { recursive: true })
    for (const entry of readdirSync(parent)) {
      const pid = Number(entry)
      if (Number.isInteger(pid) && pid !== process.pid && !isAlive(pid)) {
        rmSync(join(parent, entry), { recursive: true, force: true })
      }
    }
    const made = join(parent, String(process.pid))
    mkdirSync(made, { recursive: true })
    process.once("exit", () => rmSync(made, { recursive: true, force: true }))
    directory = made
  }
  return directory
}

const bundle = async (script: string, external: ReadonlyArray<string>): Promise<string> => {
  const outfile = join(ownDirectory(), `${basename(script, ".ts")}-${built.size}.mjs`)
  await build({
    entryPoints: [script],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    logLevel: "error",
    // ws's optional native helpers, which it loads in a try/catch; esbuild, which workerParent.ts
    // imports and which finds its binary by its own path.
    external: ["bufferutil", "utf-8-validate", "esbuild", ...external],
    // A `require` for the packages' CommonJS (ws), under a name no script imports itself.
    banner: {
      js:
        "import { createRequire as createRequireOfBundle } from \"node:module\"; const require = createRequireOfBundle(import.meta.url);"
    }
  })
  return outfile
}

/**
 * The bundle of `script` (an absolute path to a .ts file), built at the first call in this process;
 * the packages named in `external` are left to the runtime that runs it (Bun's own `ws`).
 */
export const bundledChild = (script: string, external: ReadonlyArray<string> = []): Effect.Effect<string> =>
  Effect.promise(() => {
    const key = [script, ...external].join("\0")
    let file = built.get(key)
    if (file === undefined) {
      file = bundle(script, external)
      built.set(key, file)
    }
    return file
  })
