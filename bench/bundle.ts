// `npm run bench:bundle`: lifeline's cost in a browser bundle. esbuild (the one tsx brings)
// bundles bench/bundle/bare.ts (Effect alone) and bench/bundle/client.ts (the same plus a
// lifeline Client) for the browser, minified; prints both sizes, raw and gzip, and the difference.
import { build } from "esbuild"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

const sizeOf = async (entry: string) => {
  const result = await build({
    entryPoints: [here(entry)],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    alias: { "effect-lifeline/browser": here("../src/browser.ts") },
    logLevel: "silent"
  })
  const code = result.outputFiles[0]!.contents
  return { raw: code.byteLength, gzip: gzipSync(code).byteLength }
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`
const bare = await sizeOf("./bundle/bare.ts")
const client = await sizeOf("./bundle/client.ts")
console.log(`Effect alone:          ${kib(bare.raw)} minified, ${kib(bare.gzip)} gzip`)
console.log(`with a lifeline Client: ${kib(client.raw)} minified, ${kib(client.gzip)} gzip`)
console.log(`lifeline's own cost:    ${kib(client.raw - bare.raw)} minified, ${kib(client.gzip - bare.gzip)} gzip`)
