/**
 * lifeline as users run it: the compiled package in `dist/` (`npm run bench` builds it first).
 * Run from source, tsx would compile lifeline with esbuild's `keepNames`, which gives closures a
 * `name` property and so inflates the memory figures (about 0.7 KB per idle Client) with a cost
 * that the published package does not have. Types come from the source.
 */
import { existsSync } from "node:fs"
import { resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import type * as Lifeline from "../src/index.js"

// LIFELINE_DIST=<directory> runs another build (a copy of dist/ from another commit, inside the
// project so that it finds effect and ws), to compare two builds alternated on the same machine.
const distDirectory = process.env["LIFELINE_DIST"]
const compiled = distDirectory === undefined
  ? new URL("../dist/index.js", import.meta.url)
  : pathToFileURL(`${resolve(distDirectory)}/index.js`)
if (!existsSync(fileURLToPath(compiled))) {
  throw new Error(`bench: ${fileURLToPath(compiled)} is missing; run \`npm run build\` (npm run bench does it)`)
}
const lifeline = (await import(compiled.href)) as typeof Lifeline

export const Client = lifeline.Client
export const LiteClient = lifeline.LiteClient
export const Connection = lifeline.Connection
export const NodeTransport = lifeline.NodeTransport
