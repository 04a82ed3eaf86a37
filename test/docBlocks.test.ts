/**
 * Every TypeScript block the documentation shows compiles against the source, so a renamed option
 * or export cannot leave a README example behind. One TypeScript Program, in memory, with
 * tsconfig.json's options and `paths` (`effect-lifeline` is src/index.ts), checks them all.
 *
 * Where the blocks come from:
 * - README.md and docs/*.md: every fenced block whose info string starts with `ts` or `typescript`;
 * - src/**\/*.ts: every `@example` section of a doc comment: the ```ts fenced blocks in it, or the
 *   whole section when it has no fence (TypeDoc shows such a section as code).
 *
 * How a block is compiled (the info string decides):
 * - ```ts           a module, as a user would paste it into a file of their own: it brings its own
 *                   imports (nothing is added). This is the default and the preferred form.
 * - ```ts fragment  a few statements that are not a program by themselves: compiled as the body of
 *                   `Effect.gen(function*() { ... })` (so `yield*` works), after the fixed PRELUDE
 *                   of imports below. A fragment has no imports of its own.
 * Any other info string (```sh, ```text, a bare ```) is not compiled: show pseudo-code that way.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))

/** What a ```ts fragment may use without importing it. */
const PRELUDE = [
  `import { Chunk, Console, Context, Duration, Effect, Layer, Option, Schedule, Scope, Stream } from "effect"`,
  `import { CircuitBreaker, Client, Connection, NodeTransport, Reconnect, Transport } from "effect-lifeline"`,
  `import { FaultProxy, TestServer } from "effect-lifeline/testing"`,
  `export const fragment = Effect.gen(function*() {`
]
const PRELUDE_END = "})"

interface Block {
  /** Where it is shown, `file:line` of its first line of code. */
  readonly name: string
  readonly file: string
  readonly line: number
  readonly fragment: boolean
  readonly code: string
}

/** The info string's meaning, or an error for a `ts` info string this test does not know. */
const kindOf = (info: string): "module" | "fragment" | "other" => {
  const [lang = "", ...flags] = info.trim().split(/\s+/)
  if (lang !== "ts" && lang !== "typescript") return "other"
  if (flags.length === 0) return "module"
  if (flags.length === 1 && flags[0] === "fragment") return "fragment"
  throw new Error(`unknown code block info string "${info}" (the conventions are at the top of test/docBlocks.test.ts)`)
}

/**
 * The fenced ts blocks of `lines` (markdown, or a doc comment without its `*`s). `firstLine` is the
 * 1-based line number of `lines[0]` in `file`.
 */
const fencedBlocks = (file: string, lines: ReadonlyArray<string>, firstLine: number): Array<Block> => {
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})(.*)$/.exec(lines[i]!)
    if (open === null) continue
    const [, indent = "", fence = "", info = ""] = open
    let end = i + 1
    while (end < lines.length && !new RegExp(`^\\s*${fence}\\s*$`).test(lines[end]!)) end++
    const kind = kindOf(info)
    if (kind !== "other") {
      const code = lines.slice(i + 1, end).map((line) => line.startsWith(indent) ? line.slice(indent.length) : line)
      const line = firstLine + i + 1
      blocks.push({ name: `${file}:${line}`, file, line, fragment: kind === "fragment", code: code.join("\n") })
    }
    i = end
  }
  return blocks
}

const markdownBlocks = (file: string): Array<Block> =>
  fencedBlocks(file, readFileSync(join(root, file), "utf8").split("\n"), 1)

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
      ? [join(dir, entry.name)]
      : []
  )

/** The `@example` sections of the doc comments of a source file. */
const exampleBlocks = (file: string): Array<Block> => {
  const text = readFileSync(join(root, file), "utf8")
  const blocks: Array<Block> = []
  for (const comment of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const startLine = text.slice(0, comment.index).split("\n").length
    // The comment's lines without `/**`, `*/` and the leading ` * `.
    const lines = comment[0]
      .replace(/^\/\*\*/, "")
      .replace(/\*\/$/, "")
      .split("\n")
      .map((line) => line.replace(/^\s*\* ?/, ""))
    for (let i = 0; i < lines.length; i++) {
      if (!/^\s*@example\b/.test(lines[i]!)) continue
      // The section: up to the next block tag outside a fence, or the end of the comment.
      let end = i + 1
      let inFence = false
      while (end < lines.length && (inFence || !/^\s*@\w/.test(lines[end]!))) {
        if (/^\s*`{3,}/.test(lines[end]!)) inFence = !inFence
        end++
      }
      const section = lines.slice(i + 1, end)
      if (section.some((line) => /^\s*`{3,}/.test(line))) {
        blocks.push(...fencedBlocks(file, section, startLine + i + 1))
      } else {
        const code = section.join("\n").trim()
        const line = startLine + i + 1
        if (code !== "") blocks.push({ name: `${file}:${line}`, file, line, fragment: false, code })
      }
      i = end - 1
    }
  }
  return blocks
}

const markdownFiles = [
  "README.md",
  ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)
]
const blocks: ReadonlyArray<Block> = [
  ...markdownFiles.flatMap(markdownBlocks),
  ...sourceFiles("src").flatMap(exampleBlocks)
]

/** Blocks that must NOT compile: they show that a broken block fails this test. */
const controls: ReadonlyArray<Block & { readonly expected: ReadonlyArray<number> }> = [
  {
    name: "control: an export that does not exist",
    file: "control",
    line: 1,
    fragment: false,
    code:
      `import { Connection, NoSuchExport } from "effect-lifeline"\nexport const x = [Connection.connect, NoSuchExport]`,
    expected: [2305]
  },
  {
    name: "control: an option that does not exist",
    file: "control",
    line: 1,
    fragment: false,
    code:
      `import { Client } from "effect-lifeline"\nexport const c = Client.make({ url: "wss://example.com", noSuchOption: 1 })`,
    expected: [2769] // "no overload matches": Client.make has one overload per codec mode
  },
  {
    name: "control: a fragment that yields a value of the wrong type",
    file: "control",
    line: 1,
    fragment: true,
    code: `const state = yield* Effect.succeed(1)\nconst name: string = state`,
    expected: [2322]
  }
]

/** A fragment that must compile: the prelude and the generator body work. */
const fragmentControl: Block = {
  name: "control: a fragment that compiles",
  file: "control",
  line: 1,
  fragment: true,
  code: `const server = yield* TestServer.make()\nyield* Effect.log(server.url, Schedule.spaced("1 second"))`
}

/** The whole text of a block's module, and how many lines come before its first line of code. */
const moduleOf = (block: Block): { readonly text: string; readonly offset: number } =>
  block.fragment
    ? { text: [...PRELUDE, block.code, PRELUDE_END].join("\n") + "\n", offset: PRELUDE.length }
    : { text: block.code + "\n", offset: 0 }

const virtualDir = join(root, ".doc-blocks")
const virtualPath = (block: Block, index: number) =>
  join(virtualDir, `${index}_${block.file.replace(/[^A-Za-z0-9]/g, "_")}_${block.line}.ts`)

interface Checked {
  readonly block: Block
  readonly diagnostics: ReadonlyArray<{ readonly code: number; readonly text: string }>
}

/** One Program for every block and control; each block's diagnostics, located in its document. */
const check = (): ReadonlyArray<Checked> => {
  const config = ts.readConfigFile(join(root, "tsconfig.json"), ts.sys.readFile)
  if (config.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"))
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root)
  const all: ReadonlyArray<Block> = [...blocks, ...controls, fragmentControl]
  const files = new Map(all.map((block, index) => [virtualPath(block, index), { block, ...moduleOf(block) }]))
  const host = ts.createCompilerHost(options, true)
  const { directoryExists, fileExists, getSourceFile, readFile } = host
  host.fileExists = (path) => files.has(path) || fileExists.call(host, path)
  host.readFile = (path) => files.get(path)?.text ?? readFile.call(host, path)
  host.directoryExists = (path) => path === virtualDir || (directoryExists?.call(host, path) ?? true)
  host.getSourceFile = (path, language, ...rest) => {
    const file = files.get(path)
    return file !== undefined
      ? ts.createSourceFile(path, file.text, language, true)
      : getSourceFile.call(host, path, language, ...rest)
  }
  const program = ts.createProgram({ rootNames: [...files.keys()], options, host })
  return [...files].map(([path, { block, offset }]) => {
    const source = program.getSourceFile(path)!
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    return {
      block,
      diagnostics: diagnostics.map((diagnostic) => {
        const at = diagnostic.start === undefined ? 0 : source.getLineAndCharacterOfPosition(diagnostic.start).line
        const line = block.line + Math.max(0, at - offset)
        const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ")
        return { code: diagnostic.code, text: `${block.file}:${line}: TS${diagnostic.code}: ${message}` }
      })
    }
  })
}

let checked: ReadonlyArray<Checked> = []
const resultOf = (name: string): Checked => {
  const result = checked.find((entry) => entry.block.name === name)
  if (result === undefined) throw new Error(`no result for ${name}`)
  return result
}

describe("code blocks in the docs compile", () => {
  // About 4 s of CPU (most of it reading effect's and Node's declarations); the bound is generous
  // for a machine busy with other work.
  beforeAll(() => {
    checked = check()
  }, 120_000)

  it("finds the blocks of README.md, docs/guide.md and the doc comments of src", () => {
    const files = new Set(blocks.map((block) => block.file.startsWith("src/") ? "src" : block.file))
    expect([...files].sort()).toEqual(expect.arrayContaining(["README.md", "docs/guide.md", "src"]))
  })

  it("a broken block fails: the controls fail with the expected errors, a good fragment passes", () => {
    for (const control of controls) {
      expect({ name: control.name, codes: resultOf(control.name).diagnostics.map((d) => d.code) })
        .toEqual({ name: control.name, codes: control.expected })
    }
    expect(resultOf(fragmentControl.name).diagnostics).toEqual([])
  })

  for (const block of blocks) {
    it(block.name, () => {
      expect(resultOf(block.name).diagnostics.map((diagnostic) => diagnostic.text)).toEqual([])
    })
  }
})

describe("the README", () => {
  it("is at most 25 KB: a newcomer's path; run-by-run figures go to bench/README.md and soak/README.md", () => {
    expect(readFileSync(join(root, "README.md")).byteLength).toBeLessThanOrEqual(25_000)
  })
})
