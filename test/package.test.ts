/**
 * The package surface as users see it: the three entry points by the published name
 * (`effect-lifeline`, resolved to src/ by vitest.config.ts's alias, as tsconfig.json's `paths`
 * does for tsc and tsx), and what `npm pack` would publish (which runs `prepack`: a clean build).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Lifeline from "effect-lifeline"
import type { ClientError } from "effect-lifeline"
import * as Browser from "effect-lifeline/browser"
import * as BrowserTransportModule from "effect-lifeline/BrowserTransport"
import * as CircuitBreakerModule from "effect-lifeline/CircuitBreaker"
import * as ClientModule from "effect-lifeline/Client"
import * as CodecModule from "effect-lifeline/Codec"
import * as ConnectionModule from "effect-lifeline/Connection"
import * as ErrorsModule from "effect-lifeline/Errors"
import * as LiteClientModule from "effect-lifeline/LiteClient"
import * as NodeTransportModule from "effect-lifeline/NodeTransport"
import * as ReconnectModule from "effect-lifeline/Reconnect"
import * as Testing from "effect-lifeline/testing"
import * as TransportModule from "effect-lifeline/Transport"
import { execFile, execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, normalize } from "node:path"
import { fileURLToPath } from "node:url"
import * as BrowserSource from "../src/browser.js"
import * as Source from "../src/index.js"
import * as TestingSource from "../src/testing/index.js"

const root = fileURLToPath(new URL("..", import.meta.url))

/** What the README documents: `import { ... } from "effect-lifeline"`, the error classes included. */
const documented = {
  BrowserTransport: ["layer", "layerWith", "make", "makeWith"],
  Client: ["Tag", "config", "layer", "layerConfig", "make"],
  LiteClient: ["layer", "make"],
  Connection: ["connect", "layer"],
  NodeTransport: ["layer", "make"],
  Reconnect: ["defaultSchedule", "exponentialBackoff", "isRetryable"],
  Transport: ["Transport"]
} as const
const errorClasses = [
  "CircuitOpenError",
  "ConnectError",
  "DecodeError",
  "Disconnected",
  "OnOpenError",
  "SendError",
  "TimeoutError"
]

/** The modules published by their own paths (`effect-lifeline/Client`), as Effect publishes its own. */
const modules = [
  "BrowserTransport",
  "CircuitBreaker",
  "Client",
  "Codec",
  "Connection",
  "Errors",
  "LiteClient",
  "NodeTransport",
  "Reconnect",
  "Transport"
] as const

describe("the package by its name", () => {
  it("effect-lifeline exports the documented modules and error classes, the very ones of src/index.ts", () => {
    expect(Object.keys(Lifeline).sort()).toEqual(Object.keys(Source).sort())
    for (const [name, value] of Object.entries(Source)) expect(Lifeline[name as keyof typeof Lifeline]).toBe(value)
    expect(Object.keys(Lifeline)).toEqual(expect.arrayContaining([...Object.keys(documented), ...errorClasses]))
    for (const [module, members] of Object.entries(documented)) {
      expect(Object.keys(Lifeline[module as keyof typeof documented])).toEqual(expect.arrayContaining([...members]))
    }
    for (const name of errorClasses) expect(typeof Lifeline[name as keyof typeof Lifeline]).toBe("function")
    // A type-only export of the entry point, checked by tsc.
    const tag: ClientError["_tag"] = "Disconnected"
    expect(tag).toBe("Disconnected")
  })

  // LiteClient is for browsers, but by its own path: a bundle keeps every member of a namespace an
  // entry re-exports, so in this entry it would weigh on every full Client app (and the full
  // Client on every small one).
  it("effect-lifeline/browser is everything but NodeTransport and LiteClient (and Client's Config functions), the same objects", () => {
    expect(Object.keys(Browser).sort()).toEqual(Object.keys(BrowserSource).sort())
    expect(Object.keys(Browser).sort()).toEqual(
      Object.keys(Lifeline).filter((name) => name !== "NodeTransport" && name !== "LiteClient").sort()
    )
    for (const [name, value] of Object.entries(Browser)) {
      if (name !== "Client") expect(value).toBe(Lifeline[name as keyof typeof Lifeline])
    }
    // Its Client is the same functions but Config's (`config`, `layerConfig`: not in a browser bundle).
    expect(Object.keys(Browser.Client).sort()).toEqual(
      Object.keys(Lifeline.Client).filter((name) => name !== "config" && name !== "layerConfig").sort()
    )
    for (const [name, value] of Object.entries(Browser.Client)) {
      expect(value).toBe(Lifeline.Client[name as keyof typeof Lifeline.Client])
    }
  })

  it("each module by its own path is the namespace of the main entry, the same objects", () => {
    const byPath: Record<(typeof modules)[number], Record<string, unknown>> = {
      BrowserTransport: BrowserTransportModule,
      CircuitBreaker: CircuitBreakerModule,
      Client: ClientModule,
      Codec: CodecModule,
      Connection: ConnectionModule,
      Errors: ErrorsModule,
      LiteClient: LiteClientModule,
      NodeTransport: NodeTransportModule,
      Reconnect: ReconnectModule,
      Transport: TransportModule
    }
    for (const name of modules) {
      const namespace: Record<string, unknown> = name === "Errors" ? Lifeline : Lifeline[name]
      for (const [member, value] of Object.entries(byPath[name])) {
        expect([name, member, namespace[member] === value]).toEqual([name, member, true])
      }
      if (name !== "Errors") expect(Object.keys(byPath[name]).sort()).toEqual(Object.keys(namespace).sort())
    }
  })

  it("effect-lifeline/testing exports TestServer.make and FaultProxy.make, the ones of src/testing", () => {
    expect(Object.keys(Testing).sort()).toEqual(["FaultProxy", "TestServer"])
    expect(Testing.TestServer).toBe(TestingSource.TestServer)
    expect(Testing.FaultProxy).toBe(TestingSource.FaultProxy)
    expect(typeof Testing.TestServer.make).toBe("function")
    expect(typeof Testing.FaultProxy.make).toBe("function")
  })
})

describe("the package's fields for older resolvers", () => {
  // TypeScript's `moduleResolution: "node10"` reads neither `exports` nor its conditions: `main` and
  // `types` give it the root, `typesVersions` every other entry (checked by hand against a packed
  // tarball: `import ... from "effect-lifeline/Client"` type-checks under node10, node16 and bundler).
  it("main and types are the root export's; typesVersions names every other export, with its types", () => {
    const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      readonly main: string
      readonly types: string
      readonly exports: Readonly<Record<string, { readonly types: string; readonly default: string }>>
      readonly typesVersions: { readonly "*": Readonly<Record<string, ReadonlyArray<string>>> }
    }
    expect(manifest.main).toBe(manifest.exports["."]!.default)
    expect(manifest.types).toBe(manifest.exports["."]!.types)
    // Every subpath but "." and "./package.json" (the manifest itself, which tools read by name).
    expect(manifest.exports["./package.json"]).toBe("./package.json")
    const subpaths = Object.entries(manifest.exports).filter(([path]) => path !== "." && path !== "./package.json")
    expect(manifest.typesVersions["*"]).toEqual(
      Object.fromEntries(subpaths.map(([path, entry]) => [path.slice(2), [entry.types]]))
    )
  })
})

interface Packed {
  readonly name: string
  readonly version: string
  readonly files: ReadonlyArray<{ readonly path: string }>
}

/**
 * `npm pack --dry-run --json` in the repository: runs `prepack` (removes dist/, builds it again)
 * and lists what the tarball would hold, without writing it. A stale file planted in dist/ first
 * must not be listed (the build starts from an empty dist/).
 */
const pack = Effect.gen(function*() {
  yield* Effect.sync(() => {
    mkdirSync(join(root, "dist"), { recursive: true })
    writeFileSync(join(root, "dist", "stale.js"), "export {}\n")
  })
  const stdout = yield* Effect.async<string, Error>((resume) => {
    const child = execFile(
      "npm",
      ["pack", "--dry-run", "--json"],
      { cwd: root, timeout: 60_000 },
      (error, stdout, stderr) => {
        resume(
          error === null
            ? Effect.succeed(stdout)
            : Effect.fail(new Error(`npm pack failed: ${error.message}\n${stderr}`))
        )
      }
    )
    return Effect.sync(() => child.kill())
  })
  const [packed] = JSON.parse(stdout) as ReadonlyArray<Packed>
  return packed!
})

/** The bare specifiers reachable from a dist/ file by its static imports and re-exports. */
const bareImportsFrom = (entry: string): Set<string> => {
  const bare = new Set<string>()
  const seen = new Set<string>()
  const pending = [join(root, "dist", entry)]
  while (pending.length > 0 && seen.size < 200) {
    const file = pending.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    const text = readFileSync(file, "utf8")
    const statements = /^\s*(?:import|export)\b[^"';]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm
    for (const match of text.matchAll(statements)) {
      const specifier = (match[1] ?? match[2])!
      if (specifier.startsWith(".")) pending.push(normalize(join(dirname(file), specifier)))
      else bare.add(specifier)
    }
  }
  return bare
}

describe("npm pack", () => {
  it.live(
    "ships a fresh dist/ with every entry point and its types, LICENSE and README, and no test, bench, demo or soak file",
    () =>
      Effect.gen(function*() {
        const packed = yield* pack
        const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
          name: string
          version: string
          exports: Record<string, string | { types: string; default: string }>
          bin: Record<string, string>
        }
        expect(packed.name).toBe("effect-lifeline")
        expect(packageJson.name).toBe("effect-lifeline")
        expect(packed.version).toBe(packageJson.version)
        const paths = packed.files.map((file) => file.path)
        expect(paths).toEqual(expect.arrayContaining([
          "LICENSE",
          "README.md",
          "package.json",
          "dist/index.js",
          "dist/index.d.ts",
          "dist/browser.js",
          "dist/browser.d.ts",
          "dist/testing/index.js",
          "dist/testing/index.d.ts",
          "dist/platform.js",
          "dist/platform.d.ts",
          "dist/cli.js",
          "dist/internal/demo/demo.js"
        ]))
        // Every target of `exports` is in the tarball: the entries, and each module by its own path.
        expect(Object.keys(packageJson.exports).sort()).toEqual(
          [
            ".",
            "./browser",
            "./compat",
            "./package.json",
            "./platform",
            "./schema",
            "./testing",
            ...modules.map((name) => `./${name}`)
          ]
            .sort()
        )
        const targets = Object.values(packageJson.exports).flatMap((target) =>
          typeof target === "string" ? [target] : [target.types, target.default]
        )
        expect(paths).toEqual(expect.arrayContaining(targets.map((target) => target.replace(/^\.\//, ""))))
        // `npx effect-lifeline`: the bin is in the tarball, starts with its shebang, and runs from dist/.
        expect(packageJson.bin).toEqual({ "effect-lifeline": "./dist/cli.js" })
        expect(readFileSync(join(root, "dist", "cli.js"), "utf8").split("\n")[0]).toBe("#!/usr/bin/env node")
        expect(
          execFileSync(process.execPath, [join(root, "dist", "cli.js"), "--version"], {
            encoding: "utf8",
            timeout: 10_000
          })
        )
          .toBe(`${packageJson.version}\n`)
        // Node's own resolution of `exports` (the package imports itself by name, so dist/ answers):
        // each module's path gives the same objects as the main entry's namespace.
        const check = [
          `import * as Main from "effect-lifeline"`,
          ...modules.map((name) => `import * as ${name} from "effect-lifeline/${name}"`),
          `const same = (name, path, namespace) => Object.keys(path).length > 0 &&`,
          `  Object.entries(path).every(([key, value]) => namespace[key] === value) ? name : name + " differs"`,
          `console.log([${
            modules.map((name) => `same("${name}", ${name}, ${name === "Errors" ? "Main" : `Main.${name}`})`).join(", ")
          }].join(","))`
        ].join("\n")
        expect(
          execFileSync(process.execPath, ["--input-type=module", "-e", check], {
            cwd: root,
            encoding: "utf8",
            timeout: 10_000
          })
            .trim()
        ).toBe(modules.join(","))
        expect(paths).not.toContain("dist/stale.js")
        expect(paths.filter((path) => /^(test|bench|demo|soak|node_modules|\.ci)\//.test(path))).toEqual([])
        // What the browser entry loads never reaches ws; the Node entry does (through NodeTransport).
        const browser = [...bareImportsFrom("browser.js")]
        expect(browser.filter((specifier) => specifier.startsWith("effect/")).length).toBeGreaterThan(0)
        expect(browser.filter((specifier) => specifier !== "effect" && !specifier.startsWith("effect/"))).toEqual([])
        expect([...bareImportsFrom("index.js")]).toContain("ws")
        // effect-lifeline/compat: the default build never reaches ws or Node; the "node" one does.
        expect([...bareImportsFrom("compat.js")].filter((specifier) =>
          specifier !== "effect" && !specifier.startsWith("effect/")
        )).toEqual([])
        expect([...bareImportsFrom("compatNode.js")]).toContain("ws")
        // A module by its path reaches ws only if it is the Node transport (or Connection's layer, which takes one).
        for (const name of modules) {
          const reachesWs = [...bareImportsFrom(`${name}.js`)].includes("ws")
          expect([name, reachesWs]).toEqual([name, name === "NodeTransport"])
        }
      }),
    60_000
  )
})
