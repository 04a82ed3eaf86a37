// test/support/workerClient.ts bundled into one ES module (esbuild) for `new Worker(file)`: a
// Worker gets none of tsx's hooks (its `register` API works, but a Worker then starts in about
// 2.8 s, the bundle in about 230 ms). Built once per test file, in a directory of its own.
import { build } from "esbuild"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const buildWorkerBundle = async (): Promise<{ readonly file: string; readonly remove: () => void }> => {
  const dir = mkdtempSync(join(tmpdir(), "lifeline-worker-"))
  const file = join(dir, "workerClient.mjs")
  await build({
    entryPoints: [fileURLToPath(new URL("./workerClient.ts", import.meta.url))],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile: file,
    logLevel: "error",
    // ws's optional native helpers, which it loads in a try/catch.
    external: ["bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire } from \"node:module\"; const require = createRequire(import.meta.url);" }
  })
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) }
}
