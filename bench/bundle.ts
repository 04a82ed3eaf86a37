// `npm run bench:bundle`: lifeline's cost in a browser bundle. esbuild (the one tsx brings)
// bundles bench/bundle/bare.ts (an Effect app alone), bench/bundle/client.ts (the same app plus
// a lifeline Client, from effect-lifeline/browser), bench/bundle/clientModules.ts (the same, by
// module paths) and bench/bundle/connection.ts (a Connection instead of the Client) for the
// browser, minified; prints the sizes, raw and gzip, and the differences, then the modules that
// make the difference (minified bytes each, from esbuild's metafile; `-- --top N` lists N of them,
// default 15). bench/bundle/lite.ts is the same app with the small Client (effect-lifeline/LiteClient).
// test/bundle.test.ts checks the same build. `-- --shares` also prints each of
// lifeline's modules' share of the gzip size: the bundle's gzip bytes minus those of the same
// bundle with that module's code left out.
//
// Those apps import Effect from its index, which esbuild keeps whole modules of: the Effect code
// lifeline uses is then mostly in the baseline already. bench/bundle/effectPaths/ holds the same
// apps with Effect imported by module paths, and Vite (Rollup, which tree-shakes Effect's index as
// esbuild does module paths) builds the index apps too: there the Effect modules only lifeline uses
// count in its cost. Both are printed, with lifeline's own code's share of each bundle.
import { build, transform } from "esbuild"
import { fileURLToPath } from "node:url"
import { gzipSync } from "node:zlib"
import { build as viteBuild } from "vite"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/** The package's entries the apps import, resolved to src/. */
const alias = {
  "effect-lifeline/browser": here("../src/browser.ts"),
  "effect-lifeline/BrowserTransport": here("../src/BrowserTransport.ts"),
  "effect-lifeline/Client": here("../src/Client.ts"),
  "effect-lifeline/Connection": here("../src/Connection.ts"),
  "effect-lifeline/LiteClient": here("../src/LiteClient.ts")
}

/** One entry bundled for the browser, minified: its size raw and gzip, the bytes each input module adds, its code. */
export const bundle = async (entry: string) => {
  const result = await build({
    entryPoints: [here(entry)],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    alias,
    logLevel: "silent"
  })
  const code = result.outputFiles[0]!.contents
  const output = Object.values(result.metafile.outputs)[0]!
  const modules = new Map(
    Object.entries(output.inputs).map(([path, input]) => [path.replace(/^.*node_modules\//, ""), input.bytesInOutput])
  )
  return { raw: code.byteLength, gzip: gzipSync(code).byteLength, modules, text: result.outputFiles[0]!.text }
}

/**
 * `entry` bundled with identifiers and syntax minified but not whitespace, so that esbuild marks
 * where each module's code starts (`// src/...`): its sections, and the gzip size of the whole
 * without those that `leftOut` picks, whitespace minified (the rest keeps its names, so only the
 * bytes of what is left out go).
 */
const sectioned = async (entry: string) => {
  const result = await build({
    entryPoints: [here(entry)],
    bundle: true,
    minifySyntax: true,
    minifyIdentifiers: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    alias,
    logLevel: "silent"
  })
  const text = result.outputFiles[0]!.text
  const marks = [...text.matchAll(/^\/\/ (\S+)$/gm)]
  const sections = marks.map((mark, i) => ({
    module: mark[1]!,
    start: mark.index,
    end: marks[i + 1]?.index ?? text.length
  }))
  const gzipWithout = async (leftOut: (module: string) => boolean) => {
    const code = text.slice(0, sections[0]?.start ?? 0) +
      sections.filter(({ module }) => !leftOut(module)).map(({ end, start }) => text.slice(start, end)).join("")
    return gzipSync((await transform(code, { minifyWhitespace: true, format: "esm" })).code).byteLength
  }
  const isOwn = (module: string) => module.startsWith("src/")
  return { modules: [...new Set(sections.map(({ module }) => module).filter(isOwn))], gzipWithout, isOwn }
}

/**
 * Each lifeline module's share of `entry`'s gzip size, largest first: [module, gzip bytes]: the
 * gzip size of the whole minus that of the whole without that module's sections.
 */
export const shares = async (entry: string): Promise<ReadonlyArray<readonly [string, number]>> => {
  const { gzipWithout, modules } = await sectioned(entry)
  const whole = await gzipWithout(() => false)
  const measured = await Promise.all(
    modules.map(async (module) => [module, whole - (await gzipWithout((other) => other === module))] as const)
  )
  return measured.sort((a, b) => b[1] - a[1])
}

/** lifeline's own code's share of `entry`'s gzip size: the whole's minus that without any of lifeline's sections. */
export const ownShare = async (entry: string): Promise<number> => {
  const { gzipWithout, isOwn } = await sectioned(entry)
  return (await gzipWithout(() => false)) - (await gzipWithout(isOwn))
}

/** `entry` built by Vite (Rollup, esbuild's minifier), as an app's production build: its gzip size. */
export const viteGzip = async (entry: string): Promise<number> => {
  const built = await viteBuild({
    configFile: false,
    logLevel: "silent",
    resolve: { alias },
    build: {
      write: false,
      minify: "esbuild",
      target: "es2022",
      modulePreload: false,
      rollupOptions: { input: here(entry), output: { format: "es", inlineDynamicImports: true } }
    }
  })
  const outputs = (Array.isArray(built) ? built[0] : built) as {
    output: ReadonlyArray<{ type: string; code?: string }>
  }
  return gzipSync(outputs.output.map((chunk) => chunk.type === "chunk" ? chunk.code! : "").join("")).byteLength
}

/** The modules that are in `client` and not (or smaller) in `bare`, largest first: [module, bytes added]. */
export const difference = (
  bare: ReadonlyMap<string, number>,
  client: ReadonlyMap<string, number>
): ReadonlyArray<readonly [string, number]> =>
  [...client]
    .map(([path, bytes]) => [path, bytes - (bare.get(path) ?? 0)] as const)
    .filter(([, bytes]) => bytes > 0)
    .sort((a, b) => b[1] - a[1])

const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const topIndex = process.argv.indexOf("--top")
  const top = topIndex === -1 ? 15 : Number(process.argv[topIndex + 1])
  const bare = await bundle("./bundle/bare.ts")
  const client = await bundle("./bundle/client.ts")
  const modules = await bundle("./bundle/clientModules.ts")
  console.log(`Effect alone:           ${kib(bare.raw)} minified, ${kib(bare.gzip)} gzip`)
  console.log(`with a lifeline Client: ${kib(client.raw)} minified, ${kib(client.gzip)} gzip`)
  console.log(`lifeline's own cost:    ${kib(client.raw - bare.raw)} minified, ${kib(client.gzip - bare.gzip)} gzip`)
  console.log(
    `  by module paths:      ${kib(modules.raw - bare.raw)} minified, ${kib(modules.gzip - bare.gzip)} gzip` +
      ` (effect-lifeline/Client and /BrowserTransport)`
  )
  const connection = await bundle("./bundle/connection.ts")
  console.log(
    `  a Connection alone:   ${kib(connection.raw - bare.raw)} minified, ${kib(connection.gzip - bare.gzip)} gzip` +
      ` (effect-lifeline/Connection, no Client)`
  )
  const lite = await bundle("./bundle/lite.ts")
  console.log(
    `  the small Client:     ${kib(lite.raw - bare.raw)} minified, ${kib(lite.gzip - bare.gzip)} gzip` +
      ` (effect-lifeline/LiteClient)`
  )
  // Where Effect's modules that only lifeline uses count too.
  const paths = {
    bare: await bundle("./bundle/effectPaths/bare.ts"),
    client: await bundle("./bundle/effectPaths/client.ts"),
    lite: await bundle("./bundle/effectPaths/lite.ts")
  }
  const vite = {
    bare: await viteGzip("./bundle/bare.ts"),
    client: await viteGzip("./bundle/clientModules.ts"),
    lite: await viteGzip("./bundle/lite.ts")
  }
  const own = { client: await ownShare("./bundle/clientModules.ts"), lite: await ownShare("./bundle/lite.ts") }
  console.log(
    `\nwhere Effect's modules that only lifeline uses count too (gzip over the same app without lifeline):`
  )
  console.log(`${"".padEnd(28)}the Client  the small Client  the app without lifeline`)
  const row = (name: string, client: number, lite: number, bare?: number) =>
    console.log(
      `  ${name.padEnd(26)}${kib(client).padStart(10)}${kib(lite).padStart(17)}${
        (bare === undefined ? "-" : kib(bare)).padStart(26)
      }`
    )
  row(
    "esbuild, Effect's paths",
    paths.client.gzip - paths.bare.gzip,
    paths.lite.gzip - paths.bare.gzip,
    paths.bare.gzip
  )
  row("Vite, Effect's index", vite.client - vite.bare, vite.lite - vite.bare, vite.bare)
  row("lifeline's own code", own.client, own.lite)
  const added = difference(bare.modules, modules.modules)
  const ownBytes = added.filter(([path]) => path.startsWith("src/")).reduce((sum, [, bytes]) => sum + bytes, 0)
  const total = added.reduce((sum, [, bytes]) => sum + bytes, 0)
  console.log(
    `\nwhat the Client adds by module paths (minified): lifeline's src ${
      kib(ownBytes)
    }, the rest (Effect modules, the app) ${kib(total - ownBytes)}`
  )
  for (const [path, bytes] of added.slice(0, top)) console.log(`${String(bytes).padStart(8)}  ${path}`)
  if (process.argv.includes("--shares")) {
    console.log("\neach lifeline module's share by module paths (gzip bytes the bundle loses without it):")
    for (const [path, bytes] of await shares("./bundle/clientModules.ts")) {
      console.log(`${String(bytes).padStart(8)}  ${path}`)
    }
  }
}
