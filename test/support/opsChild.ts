// What the round 13 children share: a quiet Node layer, one JSON report line, what reached the
// process uncaught, the warnings it emitted, and bounded waits on real time.
import { Effect, Layer, Logger } from "effect"
import { readdirSync } from "node:fs"
import { NodeTransport } from "../../src/index.js"

export const quiet = Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))

/** Uncaught exceptions and unhandled rejections: a report carries them (expected empty). */
export const strays: Array<string> = []
const stray = (error: unknown) => {
  strays.push(String(error))
  process.stderr.write(`stray: ${error instanceof Error ? error.stack : String(error)}\n`)
}
process.on("uncaughtException", stray)
process.on("unhandledRejection", stray)

/** Every process warning by name (MaxListenersExceededWarning and the like). */
export const warnings: Array<string> = []
process.on("warning", (warning) => warnings.push(`${warning.name}: ${warning.message}`))

export const emit = (line: unknown): void => {
  process.stdout.write(`${typeof line === "string" ? line : JSON.stringify(line)}\n`)
}

/** The process's open file descriptors (the listing's own descriptor not counted). */
export const openDescriptors = (): number => readdirSync("/proc/self/fd").length - 1

/** Polls `check` every `every` ms of real time until it holds; dies after `within` ms with `what`. */
export const until = (check: () => boolean, what: string, within = 15_000, every = 20) =>
  Effect.gen(function*() {
    const polls = Math.ceil(within / every)
    for (let poll = 0; poll < polls; poll++) {
      if (check()) return
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, every)))
    }
    return yield* Effect.dieMessage(`never: ${what}`)
  })

/** `_tag` and `reason` (or close code) of a Client error: what the report counts by. */
export const describeError = (error: { readonly _tag: string }): string => {
  const reason = Reflect.get(error, "reason")
  const code = Reflect.get(error, "code")
  if (error._tag === "Disconnected") return `Disconnected ${String(code)}`
  if (error._tag === "TimeoutError") return `TimeoutError ${String(Reflect.get(error, "operation"))}`
  return reason === undefined ? error._tag : `${error._tag} ${String(reason)}`
}
