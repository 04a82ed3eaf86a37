// Self time per function in a V8 .cpuprofile (from `node --cpu-prof`), heaviest first.
import { readFileSync } from "node:fs"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface SelfTime {
  readonly name: string
  readonly where: string
  /** lifeline, effect, @effect/platform, ws, partysocket, node, or (program/gc/idle). */
  readonly origin: string
  readonly ms: number
  readonly share: number
}

const originOf = (url: string, name: string): string => {
  if (url === "") return name.startsWith("(") ? name : "native"
  if (url.includes("/node_modules/effect/")) return "effect"
  if (url.includes("/node_modules/@effect/platform/")) return "@effect/platform"
  if (url.includes("/node_modules/ws/")) return "ws"
  if (url.includes("/node_modules/partysocket/")) return "partysocket"
  if (url.includes("/src/") || url.includes("/dist/")) return "lifeline"
  if (url.includes("/bench/")) return "bench"
  if (url.startsWith("node:")) return "node"
  return "other"
}

const shorten = (url: string): string =>
  url.replace(/^file:\/\//, "").replace(/^.*\/(node_modules|src|dist|bench)\//, "$1/")

export const selfTimes = (file: string): Array<SelfTime> => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const totals = new Map<string, { frame: CallFrame; micros: number }>()
  let all = 0
  profile.samples.forEach((id, index) => {
    const frame = byId.get(id)?.callFrame
    const delta = profile.timeDeltas[index] ?? 0
    if (frame === undefined) return
    all += delta
    const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}`
    const entry = totals.get(key)
    if (entry === undefined) totals.set(key, { frame, micros: delta })
    else entry.micros += delta
  })
  return [...totals.values()]
    .map(({ frame, micros }) => ({
      name: frame.functionName === "" ? "(anonymous)" : frame.functionName,
      where: frame.url === "" ? "" : `${shorten(frame.url)}:${frame.lineNumber + 1}`,
      origin: originOf(frame.url, frame.functionName),
      ms: micros / 1000,
      share: all === 0 ? 0 : micros / all
    }))
    .sort((a, b) => b.ms - a.ms)
}

/** The self time added up per origin, then the top functions (of the given origins, if any). */
export const renderSelfTimes = (
  times: ReadonlyArray<SelfTime>,
  top: number,
  origins?: ReadonlyArray<string>
): string => {
  const byOrigin = new Map<string, number>()
  for (const time of times) byOrigin.set(time.origin, (byOrigin.get(time.origin) ?? 0) + time.share)
  const summary = [...byOrigin.entries()].sort((a, b) => b[1] - a[1])
    .map(([origin, share]) => `${origin} ${(share * 100).toFixed(1)}%`).join(", ")
  const shown = origins === undefined ? times : times.filter((time) => origins.includes(time.origin))
  const lines = shown.slice(0, top).map((time) =>
    `${(time.share * 100).toFixed(1).padStart(5)}%  ${time.ms.toFixed(0).padStart(6)} ms  ${
      time.origin.padEnd(16)
    } ${time.name}  ${time.where}`
  )
  const heading = origins === undefined ? "top functions" : `top functions from ${origins.join(", ")}`
  return [`self time by origin: ${summary}`, `${heading}:`, ...lines].join("\n")
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, top, origins] = process.argv.slice(2)
  if (file === undefined) throw new Error("usage: profileTop.ts <file.cpuprofile> [top] [origin,origin...]")
  process.stdout.write(`${renderSelfTimes(selfTimes(file), Number(top ?? "30"), origins?.split(","))}\n`)
}
