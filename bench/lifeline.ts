/**
 * lifeline as users run it: the compiled package in `dist/` (`npm run bench` builds it first).
 * Run from source, tsx would compile lifeline with esbuild's `keepNames`, which gives closures a
 * `name` property and so inflates the memory figures (about 0.7 KB per idle Client) with a cost
 * that the published package does not have. Types come from the source.
 */
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type * as Lifeline from "../src/index.js"

const compiled = new URL("../dist/index.js", import.meta.url)
if (!existsSync(fileURLToPath(compiled))) {
  throw new Error("bench: dist/ is missing; run `npm run build` (npm run bench does it)")
}
const lifeline = (await import(compiled.href)) as typeof Lifeline

export const Client = lifeline.Client
export const Connection = lifeline.Connection
export const NodeTransport = lifeline.NodeTransport
