/**
 * Round 24: the package as users install it. test/package.test.ts checks what `npm pack` would
 * ship; this file installs it (no registry: the package is built and laid out as npm would lay it
 * out) into apps of their own, and compiles, runs and bundles them as their authors would.
 *
 * - The package: `tsconfig.build.json` emitted in-process (one TypeScript Program, `noCheck`: the
 *   source is type-checked by `npm run typecheck`; the emitted files are the build's) into a temp
 *   dir, with `src/`, README.md, LICENSE and package.json beside it (`files`), never into dist/.
 * - Two app dirs, each with its own copy of the package in `node_modules/effect-lifeline` and the
 *   other packages linked to the repository's: `node` (effect, ws, @types/ws, @types/node,
 *   @effect/platform, the bin in `node_modules/.bin` as npm links it) with a CommonJS app in
 *   `node/cjs`; `bare` (effect and ws only: no @types/*, no @effect/platform).
 * - Type checks: one Program per tsconfig an app author would write, `strict`, `skipLibCheck: false`,
 *   the diagnostics of the app's files and of every effect-lifeline `.d.ts` the Program reaches
 *   (effect's and Node's own declarations are theirs: checked whole by hand with tsc, 0 errors for
 *   each setting below). Parsed declarations are shared between Programs (as a language service's
 *   document registry shares them), which takes each check from seconds to under one.
 * - Runs: the ESM app and the CommonJS app under Node (require of ESM), an app without
 *   @effect/platform, the bin (and its --proxy without and with the optional https-proxy-agent,
 *   in a third app dir, `proxied`); bundles through `exports` with esbuild (browser and Node), and the
 *   ESM app bundled into one file.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as esbuild from "esbuild"
import { execFile } from "node:child_process"
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { TestServer } from "../src/testing/index.js"
import * as ConnectProxy from "./support/connectProxy.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const repositoryModules = realpathSync(join(root, "node_modules"))
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version

let tmp = ""
const nodeApp = () => join(tmp, "node")
const cjsApp = () => join(tmp, "node", "cjs")
const bareApp = () => join(tmp, "bare")

// --- TypeScript, in-process, declarations parsed once ---------------------------------------

/** Parsed declaration files of the repository's node_modules (effect, @types, TypeScript's libs). */
const parsed = new Map<string, ts.SourceFile>()

const hostFor = (options: ts.CompilerOptions): ts.CompilerHost => {
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    if (!fileName.startsWith(repositoryModules) || !fileName.endsWith(".d.ts")) {
      return getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate)
    }
    const settings = typeof languageVersion === "object"
      ? `${languageVersion.languageVersion}/${languageVersion.impliedNodeFormat}/${languageVersion.jsDocParsingMode}`
      : `${languageVersion}`
    const key = `${fileName}|${settings}`
    let file = parsed.get(key)
    if (file === undefined) {
      file = getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate)
      if (file !== undefined) parsed.set(key, file)
    }
    return file
  }
  return host
}

const optionsOf = (json: Record<string, unknown>, dir: string): ts.CompilerOptions => {
  const { errors, options } = ts.convertCompilerOptionsFromJson(json, dir)
  if (errors.length > 0) throw new Error(ts.flattenDiagnosticMessageText(errors[0]!.messageText, "\n"))
  return options
}

/** The package built into `<tmp>/package`: dist/ (emitted, no type check), src/, README, LICENSE, package.json. */
const buildPackage = (into: string) => {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, "tsconfig.build.json"),
    { outDir: join(into, "dist"), noCheck: true, sourceMap: false },
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
      }
    }
  )!
  const program = ts.createProgram({
    rootNames: config.fileNames,
    options: config.options,
    host: hostFor(config.options)
  })
  const emitted = program.emit()
  const problems = [...program.getSyntacticDiagnostics(), ...program.getOptionsDiagnostics(), ...emitted.diagnostics]
  if (emitted.emitSkipped || problems.length > 0) {
    throw new Error(`build: ${problems.map((d) => ts.flattenDiagnosticMessageText(d.messageText, " ")).join("; ")}`)
  }
  cpSync(join(root, "src"), join(into, "src"), { recursive: true })
  for (const file of ["package.json", "README.md", "LICENSE"]) cpSync(join(root, file), join(into, file))
}

/** An app dir: package.json, its own copy of the package, and `packages` linked to the repository's. */
const makeApp = (dir: string, packages: ReadonlyArray<string>) => {
  mkdirSync(join(dir, "node_modules", "@types"), { recursive: true })
  mkdirSync(join(dir, "node_modules", "@effect"), { recursive: true })
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
  cpSync(join(tmp, "package"), join(dir, "node_modules", "effect-lifeline"), { recursive: true })
  for (const name of packages) symlinkSync(join(repositoryModules, name), join(dir, "node_modules", name), "dir")
}

const write = (file: string, lines: ReadonlyArray<string>) => {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, lines.join("\n") + "\n")
}

/**
 * Emits the app's own files, one by one: an emit of the whole Program would first check every
 * declaration file it holds (effect's and Node's too, with skipLibCheck: false), seconds for nothing.
 */
const emitApp = (checked: Checked): boolean =>
  checked.program.getSourceFiles().filter((file) => !file.fileName.includes("/node_modules/")).every((file) =>
    !checked.program.emit(file).emitSkipped
  )

interface Checked {
  /** `path: TSnnnn` of every diagnostic of the app's files and of effect-lifeline's declarations. */
  readonly diagnostics: ReadonlyArray<string>
  /** The same, whole, for a failure's report. */
  readonly messages: string
  /** The effect-lifeline files the Program reached, relative to the package. */
  readonly reached: ReadonlyArray<string>
  readonly program: ts.Program
}

const check = (dir: string, files: ReadonlyArray<string>, json: Record<string, unknown>): Checked => {
  const options = optionsOf({ strict: true, skipLibCheck: false, noEmit: true, target: "ES2022", ...json }, dir)
  const program = ts.createProgram({ rootNames: files.map((file) => join(dir, file)), options, host: hostFor(options) })
  // The package is in the app's node_modules or in a parent's (the CommonJS app in node/cjs).
  const installed = "/node_modules/effect-lifeline/"
  const ours = program.getSourceFiles().filter((file) =>
    file.fileName.includes(installed) || !file.fileName.includes("/node_modules/")
  )
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...ours.flatMap((file) => [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)])
  ]
  return {
    program,
    reached: ours.filter((file) => file.fileName.includes(installed)).map((file) =>
      file.fileName.slice(file.fileName.indexOf(installed) + installed.length)
    ),
    diagnostics: diagnostics.map((diagnostic) =>
      `${diagnostic.file === undefined ? "-" : relative(dir, diagnostic.file.fileName)}: TS${diagnostic.code}`
    ),
    messages: ts.formatDiagnostics(diagnostics, {
      getCanonicalFileName: (name) => name,
      getCurrentDirectory: () => dir,
      getNewLine: () => "\n"
    })
  }
}

// --- the apps -------------------------------------------------------------------------------

/** A Node app as the README writes it: Client.make with options, catchTags, the test kit, compat over ws. */
const nodeMain = [
  `import { Console, Effect, Schedule, Stream } from "effect"`,
  `import { Client, ConnectError, Connection, NodeTransport, Reconnect } from "effect-lifeline"`,
  `import type { ClientError } from "effect-lifeline"`,
  `import ReconnectingWebSocket from "effect-lifeline/compat"`,
  `import { TestServer } from "effect-lifeline/testing"`,
  `import WS from "ws"`,
  ``,
  `export const program = Effect.gen(function*() {`,
  `  const server = yield* TestServer.make()`,
  `  const client = yield* Client.make({`,
  `    url: server.url,`,
  `    retry: Reconnect.exponentialBackoff({ base: "20 millis", cap: "1 second" }).pipe(Schedule.intersect(Schedule.recurs(5))),`,
  `    outbox: { capacity: 16, overflow: "fail" },`,
  `    heartbeat: { interval: "5 seconds", timeout: "2 seconds" },`,
  `    connection: { openTimeout: "2 seconds", protocols: ["v1"] }`,
  `  })`,
  `  yield* client.send("hello")`,
  `  const echo = yield* client.messages.pipe(Stream.take(1), Stream.runCollect)`,
  `  yield* Console.log("echo", ...echo)`,
  `  yield* Console.log("unsent", (yield* client.close()).length)`,
  `  const compat = yield* Effect.async<string>((resume) => {`,
  `    const socket = new ReconnectingWebSocket(server.url, [], { WebSocket: WS, maxRetries: 0 })`,
  `    socket.addEventListener("open", () => socket.send("hi compat"))`,
  `    socket.addEventListener("message", (event) => {`,
  `      socket.close()`,
  `      resume(Effect.succeed(String(event.data)))`,
  `    }, { once: true })`,
  `  })`,
  `  yield* Console.log("compat", compat)`,
  `  yield* server.kill`,
  `  const refused = yield* Connection.connect(server.url, { openTimeout: "2 seconds" }).pipe(`,
  `    Effect.scoped,`,
  `    Effect.as("open"),`,
  `    Effect.catchTags({`,
  `      ConnectError: (e) => Effect.succeed(\`ConnectError \${e.reason} \${e instanceof ConnectError}\`),`,
  `      TimeoutError: (e) => Effect.succeed(\`TimeoutError \${e.operation}\`)`,
  `    })`,
  `  )`,
  `  yield* Console.log(refused)`,
  `  const tag: ClientError["_tag"] = "Disconnected"`,
  `  return tag`,
  `}).pipe(Effect.scoped, Effect.provide(NodeTransport.layer))`
]

/** What the program prints, in either app. */
const appOutput = "echo hello\nunsent 0\ncompat hi compat\nConnectError ConnectionRefused true\n"

/** The ESM app's entry: runs the program (top-level await). */
const esmRun = [
  `import { Effect } from "effect"`,
  `import { program } from "./main.js"`,
  `console.log("done", await Effect.runPromise(program))`
]

/** The CommonJS app's entry: the same program, `require`d (TypeScript emits require calls). */
const cjsRun = [
  `import { ConfigProvider, Effect, Layer, Logger, Schedule } from "effect"`,
  `import { Client, NodeTransport } from "effect-lifeline"`,
  `import { TestServer } from "effect-lifeline/testing"`,
  `import { program } from "./main"`,
  ``,
  `// The CommonJS copy of effect's ConfigProvider and Logger, seen by lifeline's (ESM) Client.`,
  `class Prices extends Client.Tag("Prices")<Prices>() {}`,
  `const logged: Array<string> = []`,
  `const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ logLevel, message }) => {`,
  `  logged.push(\`\${logLevel.label} \${String(message).slice(0, 19)}\`)`,
  `}))`,
  `const configured = Effect.gen(function*() {`,
  `  const server = yield* TestServer.make()`,
  `  const live = Client.layerConfig(Prices, Client.config("PRICES"), { retry: Schedule.spaced("20 millis") })`,
  `  yield* Effect.gen(function*() {`,
  `    const prices = yield* Prices`,
  `    yield* prices.awaitOpen`,
  `    yield* server.kill`,
  `    yield* Effect.sleep("50 millis")`,
  `    yield* server.restart`,
  `    yield* server.awaitConnections(1)`,
  `    yield* prices.awaitOpen`,
  `    // The Client logs "link back" on a fiber of its own: wait for it (at most 2 s).`,
  `    const back = Effect.sync(() => logged.length > 1)`,
  `    yield* Effect.repeat(back, { until: (done) => done, schedule: Schedule.spaced("5 millis") }).pipe(Effect.timeout("2 seconds"))`,
  `  }).pipe(`,
  `    Effect.provide(live.pipe(Layer.provide(NodeTransport.layer))),`,
  `    Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["PRICES.URL", server.url]])))`,
  `  )`,
  `  return yield* server.accepted`,
  `}).pipe(Effect.scoped, Effect.provide(capture))`,
  ``,
  `Effect.runPromise(program).then(async (tag) => {`,
  `  // import() stays an import in CommonJS output: the ESM build of effect, the one lifeline loads.`,
  `  const esm = await import("effect")`,
  `  console.log("two copies of effect", esm.Effect !== Effect)`,
  `  console.log("config and logger", await Effect.runPromise(configured), ...logged)`,
  `  console.log("done", tag)`,
  `})`
]

/** The modules by their own paths, the schema and the platform entries (node10 reads typesVersions for them). */
const subpaths = [
  `import * as ClientModule from "effect-lifeline/Client"`,
  `import * as Codec from "effect-lifeline/Codec"`,
  `import * as Errors from "effect-lifeline/Errors"`,
  `import * as LifelinePlatform from "effect-lifeline/platform"`,
  `import * as LifelineSchema from "effect-lifeline/schema"`,
  `import * as NodeTransport from "effect-lifeline/NodeTransport"`,
  `import { FaultProxy } from "effect-lifeline/testing"`,
  `export const all = [ClientModule.make, Codec.json, Errors.ConnectError, LifelinePlatform.layer, LifelineSchema, NodeTransport.layer, FaultProxy.make]`
]

/**
 * With `exactOptionalPropertyTypes`: options built from values that may be undefined (the runtime
 * takes `undefined` as absent, and every optional field of the options says `| undefined`).
 */
const maybeUndefined = [
  `import { Duration } from "effect"`,
  `import { CircuitBreaker, Client, Connection, Reconnect } from "effect-lifeline"`,
  `import ReconnectingWebSocket from "effect-lifeline/compat"`,
  `import { TestServer } from "effect-lifeline/testing"`,
  `const protocols: Array<string> | undefined = process.env["PROTOCOLS"]?.split(",")`,
  `const capacity: number | undefined = process.env["CAPACITY"] === undefined ? undefined : Number(process.env["CAPACITY"])`,
  `const interval: Duration.DurationInput | undefined = process.env["INTERVAL"] === undefined ? undefined : Duration.millis(Number(process.env["INTERVAL"]))`,
  `const ca: string | undefined = process.env["CA"]`,
  `export const open = Connection.connect("ws://127.0.0.1:1", { protocols, maxPayload: capacity, tls: { ca } })`,
  `export const client = Client.make({`,
  `  url: "ws://127.0.0.1:1",`,
  `  connection: { protocols, openTimeout: interval },`,
  `  outbox: { capacity, overflow: undefined },`,
  `  heartbeat: { interval, timeout: undefined },`,
  `  retry: undefined,`,
  `  whenSuspended: undefined`,
  `})`,
  `export const breaker = CircuitBreaker.make({ endpoint: undefined, trials: capacity })`,
  `export const backoff = Reconnect.exponentialBackoff({ base: interval, cap: undefined })`,
  `export const server = TestServer.make({ protocols, maxPayload: capacity })`,
  `export const socket = new ReconnectingWebSocket("ws://127.0.0.1:1", protocols, { maxRetries: capacity })`
]

/** A browser app: `effect-lifeline/browser`, compat and the modules by path, no Node types. */
const browserMain = [
  `import { Console, Effect, Schedule, Stream } from "effect"`,
  `import { BrowserTransport, Client, Reconnect } from "effect-lifeline/browser"`,
  `import ReconnectingWebSocket from "effect-lifeline/compat"`,
  `import * as ClientModule from "effect-lifeline/Client"`,
  `import * as Codec from "effect-lifeline/Codec"`,
  `import * as LifelineSchema from "effect-lifeline/schema"`,
  `export const program = Effect.gen(function*() {`,
  `  const client = yield* Client.make({`,
  `    url: "wss://example.com/feed",`,
  `    retry: Reconnect.exponentialBackoff({ base: "1 second" }).pipe(Schedule.intersect(Schedule.recurs(3)))`,
  `  })`,
  `  yield* client.send("hi")`,
  `  yield* client.messages.pipe(Stream.take(1), Stream.runForEach(Console.log))`,
  `}).pipe(Effect.scoped, Effect.catchTags({ SendError: (e) => Console.log(e.reason) }), Effect.provide(BrowserTransport.layer))`,
  `const socket = new ReconnectingWebSocket("wss://example.com/feed")`,
  `socket.binaryType = "arraybuffer"`,
  `socket.addEventListener("message", (event) => console.log(event.data), { once: true })`,
  `export const more = [ClientModule.make, Codec.json, LifelineSchema]`
]

/** The Node settings: `lib` without "DOM", as @tsconfig/node20 has it. */
const nodeLib = { lib: ["ES2022"], types: ["node"] }

/** Runs a file or command with Node; its exit code and output. */
const run = (
  file: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly stdin?: string }
) =>
  Effect.async<{ readonly code: number | string | null; readonly stdout: string; readonly stderr: string }>(
    (resume) => {
      const child = execFile(file, [...args], { cwd: options.cwd, timeout: 20_000 }, (error, stdout, stderr) => {
        resume(Effect.succeed({ code: error === null ? 0 : error.code ?? null, stdout, stderr }))
      })
      child.stdin?.end(options.stdin ?? "")
      return Effect.sync(() => child.kill())
    }
  )

/**
 * A `node_modules` above the temporary directory (`/tmp/node_modules`, left by someone's
 * experiment) would be found by Node's and TypeScript's resolution from the installs below it,
 * and the tests of what is missing there would fail for a reason of the machine's.
 */
const ancestorNodeModules = (dir: string): string | undefined => {
  for (let at = dirname(dir);; at = dirname(at)) {
    if (existsSync(join(at, "node_modules"))) return join(at, "node_modules")
    if (dirname(at) === at) return undefined
  }
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "lifeline-installed-"))
  const above = ancestorNodeModules(tmp)
  if (above !== undefined) {
    throw new Error(`${above} is above the test's installs and would be resolved from them: move it away`)
  }
  buildPackage(join(tmp, "package"))
  makeApp(nodeApp(), ["effect", "ws", "@types/ws", "@types/node", "@effect/platform"])
  // npm links each `bin` into node_modules/.bin and makes its target executable.
  mkdirSync(join(nodeApp(), "node_modules", ".bin"))
  chmodSync(join(nodeApp(), "node_modules", "effect-lifeline", "dist", "cli.js"), 0o755)
  symlinkSync("../effect-lifeline/dist/cli.js", join(nodeApp(), "node_modules", ".bin", "effect-lifeline"))
  write(join(nodeApp(), "src", "main.ts"), nodeMain)
  write(join(nodeApp(), "src", "run.ts"), esmRun)
  write(join(nodeApp(), "src", "subpaths.ts"), subpaths)
  write(join(nodeApp(), "src", "maybeUndefined.ts"), maybeUndefined)
  // A CommonJS app (no "type": "module") in the same install.
  write(join(cjsApp(), "package.json"), [JSON.stringify({ name: "cjs-app", private: true, type: "commonjs" })])
  write(join(cjsApp(), "src", "main.ts"), nodeMain)
  write(join(cjsApp(), "src", "run.ts"), cjsRun)
  makeApp(bareApp(), ["effect", "ws"])
  write(join(bareApp(), "src", "browser.ts"), browserMain)
  write(join(bareApp(), "src", "mainEntry.ts"), [
    `import { Client } from "effect-lifeline"`,
    `export const c = Client.make`
  ])
  write(join(bareApp(), "src", "platformEntry.ts"), [
    `import * as LifelinePlatform from "effect-lifeline/platform"`,
    `export const l = LifelinePlatform.layer`
  ])
  write(join(bareApp(), "noPlatform.mjs"), [
    `import { Client, NodeTransport } from "effect-lifeline"`,
    `import { TestServer } from "effect-lifeline/testing"`,
    `console.log(typeof Client.make, typeof NodeTransport.layer, typeof TestServer.make)`,
    `await import("effect-lifeline/platform").then(`,
    `  () => console.log("loaded"),`,
    `  (error) => console.log(error.code, error.message)`,
    `)`
  ])
  // How tools read a dependency's manifest (its version, its fields): through `exports`.
  write(join(bareApp(), "manifest.cjs"), [
    `const manifest = require("effect-lifeline/package.json")`,
    `console.log(manifest.name, manifest.version, require.resolve("effect-lifeline/package.json"))`
  ])
}, 120_000)

afterAll(() => {
  if (tmp !== "") rmSync(tmp, { recursive: true, force: true })
})

/** `app`'s src/run.ts type-checked under nodenext (no diagnostic), emitted, and run: its output. */
const checkedAndRun = (app: string) =>
  Effect.gen(function*() {
    const checked = check(app, ["src/run.ts"], {
      ...nodeLib,
      module: "nodenext",
      moduleResolution: "nodenext",
      noEmit: false,
      outDir: "out"
    })
    expect(checked.diagnostics, checked.messages).toEqual([])
    expect(checked.reached).toEqual(
      expect.arrayContaining(["dist/index.d.ts", "dist/compat.d.ts", "dist/testing/index.d.ts"])
    )
    expect(emitApp(checked)).toBe(true)
    return yield* run(process.execPath, ["out/run.js"], { cwd: app })
  })

describe("round 24: TypeScript apps against the installed declarations (strict, skipLibCheck: false)", () => {
  it.live(
    "an ESM app, module nodenext, lib without DOM: no diagnostic; emitted and run, its exact output",
    () =>
      Effect.gen(function*() {
        const ran = yield* checkedAndRun(nodeApp())
        expect(ran).toEqual({
          code: 0,
          stdout: `${appOutput}done Disconnected\n`,
          stderr: ""
        })
      }),
    60_000
  )

  it.live(
    "a CommonJS app, module nodenext (TypeScript 5.9 allows require of ESM there): no diagnostic; run with Node's require(esm), two copies of effect",
    () =>
      Effect.gen(function*() {
        const ran = yield* checkedAndRun(cjsApp())
        expect(readFileSync(join(cjsApp(), "out", "main.js"), "utf8")).toContain(`require("effect-lifeline")`)
        expect(ran).toEqual({
          code: 0,
          stdout: `${appOutput}two copies of effect true\n` +
            "config and logger 2 WARN lifeline: link down INFO lifeline: link back\ndone Disconnected\n",
          stderr: ""
        })
      }),
    60_000
  )

  it("the same CommonJS app under module node16: TypeScript refuses the require of an ESM package (TS1479), each import", () => {
    const checked = check(cjsApp(), ["src/run.ts"], { ...nodeLib, module: "node16", moduleResolution: "node16" })
    expect(checked.diagnostics).toEqual([
      "src/main.ts: TS1479",
      "src/main.ts: TS1541",
      "src/main.ts: TS1479",
      "src/main.ts: TS1479",
      "src/run.ts: TS1479",
      "src/run.ts: TS1479"
    ])
  })

  it("moduleResolution node16, bundler, and node10 (typesVersions) with every subpath: no diagnostic", () => {
    for (
      const settings of [
        { module: "node16", moduleResolution: "node16" },
        { module: "preserve", moduleResolution: "bundler" },
        { module: "commonjs", moduleResolution: "node10", esModuleInterop: true }
      ]
    ) {
      const checked = check(nodeApp(), ["src/main.ts", "src/subpaths.ts"], { ...nodeLib, ...settings })
      expect([settings.moduleResolution, checked.diagnostics], checked.messages).toEqual([
        settings.moduleResolution,
        []
      ])
      expect(checked.reached).toEqual(
        expect.arrayContaining([
          "dist/Client.d.ts",
          "dist/platform.d.ts",
          "dist/schema.d.ts",
          "dist/testing/index.d.ts"
        ])
      )
    }
  })

  it("exactOptionalPropertyTypes, noUncheckedIndexedAccess and the other strictest flags: no diagnostic in the declarations, nor for options whose values may be undefined (the runtime takes undefined as absent)", () => {
    const checked = check(nodeApp(), ["src/main.ts", "src/subpaths.ts", "src/maybeUndefined.ts"], {
      ...nodeLib,
      module: "nodenext",
      moduleResolution: "nodenext",
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      noImplicitOverride: true,
      noImplicitReturns: true,
      noPropertyAccessFromIndexSignature: true,
      noFallthroughCasesInSwitch: true,
      verbatimModuleSyntax: true
    })
    expect(checked.diagnostics, checked.messages).toEqual([])
  })

  it("a browser app (lib dom, types [], no @types/node or @types/ws installed): effect-lifeline/browser, compat and the modules by path need no Node type", () => {
    const checked = check(bareApp(), ["src/browser.ts"], {
      lib: ["DOM", "ES2022"],
      types: [],
      module: "preserve",
      moduleResolution: "bundler",
      exactOptionalPropertyTypes: true
    })
    expect(checked.diagnostics, checked.messages).toEqual([])
    expect(checked.reached).not.toContain("dist/NodeTransport.d.ts")
  })

  it("the same install: the main entry needs @types/node (NodeTransport), the platform entry @effect/platform: each one TS2307", () => {
    const checked = check(bareApp(), ["src/mainEntry.ts", "src/platformEntry.ts"], {
      lib: ["DOM", "ES2022"],
      types: [],
      module: "preserve",
      moduleResolution: "bundler"
    })
    expect(checked.diagnostics).toEqual([
      "node_modules/effect-lifeline/dist/NodeTransport.d.ts: TS2307",
      "node_modules/effect-lifeline/dist/platform.d.ts: TS2307"
    ])
  })
})

describe("round 24: the installed package at run time", () => {
  it.live("without @effect/platform (an optional peer): the main entry and the test kit load; the platform entry fails naming the package", () =>
    Effect.gen(function*() {
      const ran = yield* run(process.execPath, ["noPlatform.mjs"], { cwd: bareApp() })
      expect(ran).toEqual({
        code: 0,
        stdout: "function object function\nERR_MODULE_NOT_FOUND Cannot find package '@effect/platform' imported from " +
          `${join(bareApp(), "node_modules", "effect-lifeline", "dist", "platform.js")}\n`,
        stderr: ""
      })
    }))

  it.live("effect-lifeline/package.json resolves through exports (tools read a dependency's version so)", () =>
    Effect.gen(function*() {
      const ran = yield* run(process.execPath, ["manifest.cjs"], { cwd: bareApp() })
      expect(ran).toEqual({
        code: 0,
        stdout: `effect-lifeline ${version} ${join(bareApp(), "node_modules", "effect-lifeline", "package.json")}\n`,
        stderr: ""
      })
    }))

  it.live(
    "the bin from node_modules/.bin: --version, and connect against a TestServer: one line sent, its echo printed",
    () =>
      Effect.gen(function*() {
        const bin = join(nodeApp(), "node_modules", ".bin", "effect-lifeline")
        const server = yield* TestServer.make()
        const url = new URL(server.url).href
        const [versionRun, ran] = yield* Effect.all([
          run(bin, ["--version"], { cwd: nodeApp() }),
          run(bin, ["connect", "--wait", "200", server.url], { cwd: nodeApp(), stdin: "hello from stdin\n" })
        ], { concurrency: 2 })
        expect(versionRun).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" })
        expect(ran).toEqual({
          code: 0,
          stdout: "hello from stdin\n",
          stderr: `* connecting to ${url} (attempt 1)\n* open ${url} (attempt 1)\n* closed\n`
        })
        expect(yield* server.received).toEqual(["hello from stdin"])
      }).pipe(Effect.scoped),
    60_000
  )
})

describe("round 24: the installed CLI behind an HTTP proxy (https-proxy-agent, an optional dependency)", () => {
  it.live(
    "without https-proxy-agent installed (optional dependencies left out): --proxy ends with exit 3, saying what to install; the proxy's password is never printed",
    () =>
      Effect.gen(function*() {
        const bin = join(nodeApp(), "node_modules", ".bin", "effect-lifeline")
        const ran = yield* run(bin, ["connect", "--proxy", "http://user:pw@127.0.0.1:9", "ws://echo.test:1/"], {
          cwd: nodeApp()
        })
        expect(ran).toEqual({
          code: 3,
          stdout: "",
          stderr: "effect-lifeline: a proxy is set, and connecting through one needs the https-proxy-agent package, " +
            "which is not installed (npm install https-proxy-agent; it is an optional dependency of effect-lifeline)\n"
        })
      }),
    60_000
  )

  it.live(
    "with it installed as npm lays optional dependencies out (https-proxy-agent, agent-base, debug, ms): HTTP_PROXY takes a ws:// line through the proxy and its echo back",
    () =>
      Effect.gen(function*() {
        const app = join(tmp, "proxied")
        makeApp(app, ["effect", "ws", "https-proxy-agent", "agent-base", "debug", "ms"])
        const server = yield* TestServer.make()
        const proxy = yield* ConnectProxy.make({ names: ["echo.test"] })
        const target = `ws://echo.test:${server.port}/`
        const cli = join(app, "node_modules", "effect-lifeline", "dist", "cli.js")
        const ran = yield* Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
          const child = execFile(process.execPath, [cli, "connect", "--wait", "200", target], {
            cwd: app,
            timeout: 20_000,
            // This machine's own proxy variables (either case) left out: only the kit's.
            env: {
              ...Object.fromEntries(
                Object.entries(process.env).filter(([name]) =>
                  !/_proxy$/i.test(name)
                )
              ),
              HTTP_PROXY: proxy.url()
            }
          }, (error, stdout, stderr) =>
            resume(Effect.succeed({ code: error === null ? 0 : error.code as number, stdout, stderr })))
          child.stdin?.end("hello via the proxy\n")
          return Effect.sync(() =>
            child.kill()
          )
        })
        expect(ran).toEqual({
          code: 0,
          stdout: "hello via the proxy\n",
          stderr: `effect-lifeline: through the proxy ${proxy.url()}/\n* connecting to ${target} (attempt 1)\n` +
            `* open ${target} (attempt 1)\n* closed\n`
        })
        expect(proxy.requests()).toEqual([`echo.test:${server.port}`])
      }).pipe(Effect.scoped),
    60_000
  )
})

describe("round 24: a bundle of the installed package, through its exports conditions", () => {
  const entry = [
    `import ReconnectingWebSocket from "effect-lifeline/compat"`,
    `import { BrowserTransport, Client } from "effect-lifeline/browser"`,
    `import * as Connection from "effect-lifeline/Connection"`,
    `console.log(ReconnectingWebSocket, Client, BrowserTransport, Connection)`
  ].join("\n")
  const bundle = (platform: "browser" | "node") =>
    Effect.promise(() =>
      esbuild.build({
        stdin: { contents: entry, resolveDir: bareApp(), loader: "js" },
        bundle: true,
        platform,
        format: "esm",
        write: false,
        metafile: true,
        logLevel: "silent",
        absWorkingDir: root
      })
    ).pipe(Effect.map((result) => {
      const output = Object.values(result.metafile.outputs)[0]!
      const installed = join(bareApp(), "node_modules", "effect-lifeline")
      const inputs = Object.keys(output.inputs).map((input) => join(root, input))
      return {
        errors: result.errors.length,
        external: output.imports.filter((imported) => imported.external).map((imported) => imported.path),
        compat: inputs.filter((input) => input.startsWith(installed) && /compat(Node)?\.js$/.test(input))
          .map((input) => relative(installed, input)).sort(),
        ws: inputs.some((input) => input.startsWith(join(repositoryModules, "ws")))
      }
    }))

  it.live("platform browser: compat resolves to the non-Node build; no ws, no Node builtin (nothing external)", () =>
    Effect.gen(function*() {
      expect(yield* bundle("browser")).toEqual({ errors: 0, external: [], compat: ["dist/compat.js"], ws: false })
    }))

  it.live("platform node: compat resolves to the Node build, which brings ws", () =>
    Effect.gen(function*() {
      const node = yield* bundle("node")
      expect(node).toMatchObject({ errors: 0, compat: ["dist/compat.js", "dist/compatNode.js"], ws: true })
    }))

  it.live(
    "a Node server bundled into one ESM file (platform node): ws's require of Node's builtins fails at start; with the createRequire banner (the guide's), the app's exact output",
    () =>
      Effect.gen(function*() {
        const bundleApp = (banner: string | undefined, outfile: string) =>
          Effect.promise(() =>
            esbuild.build({
              entryPoints: [join(nodeApp(), "src", "run.ts")],
              bundle: true,
              platform: "node",
              format: "esm",
              outfile: join(nodeApp(), "bundle", outfile),
              logLevel: "silent",
              ...(banner === undefined ? {} : { banner: { js: banner } })
            })
          )
        const [plain, withBanner] = yield* Effect.all([
          bundleApp(undefined, "plain.mjs"),
          bundleApp(
            `import { createRequire } from "node:module"; const require = createRequire(import.meta.url);`,
            "banner.mjs"
          )
        ], { concurrency: 2 })
        expect([plain.errors.length, withBanner.errors.length]).toEqual([0, 0])
        const [failed, ran] = yield* Effect.all([
          run(process.execPath, ["bundle/plain.mjs"], { cwd: nodeApp() }),
          run(process.execPath, ["bundle/banner.mjs"], { cwd: nodeApp() })
        ], { concurrency: 2 })
        expect(failed.code).toBe(1)
        expect(failed.stdout).toBe("")
        // esbuild's ESM output has no require: ws (CommonJS) requires Node's builtins at its first load.
        expect(failed.stderr).toMatch(/^Error: Dynamic require of "\w+" is not supported$/m)
        expect(failed.stderr).toMatch(/^\s+at \S*node_modules\/ws\/lib\/websocket\.js/m)
        expect(ran).toEqual({
          code: 0,
          stdout: `${appOutput}done Disconnected\n`,
          stderr: ""
        })
      }),
    60_000
  )
})
