/**
 * The CLI's entry: reads the command line and runs the command; resolves with the exit code,
 * never rejects (a defect is printed and ends with 1).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { readFileSync } from "node:fs"
import { demo } from "../internal/demo/demo.js"
import { redactUrlsIn } from "../internal/redactUrl.js"
import * as NodeTransport from "../NodeTransport.js"
import { HELP, parse } from "./args.js"
import type { Io } from "./connect.js"
import { connect } from "./connect.js"
import { ExitCode } from "./exitCodes.js"
import { oneLine } from "./render.js"

/** The package's version: package.json sits one level above both src/cli/ and dist/cli/'s parent. */
const version = (): string => {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8")
  return String((JSON.parse(text) as { version?: unknown }).version)
}

export const run = (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const parsed = parse(argv)
  if (Either.isLeft(parsed)) {
    // The message may quote an argument: a URL with a password typed where a flag's value or the
    // command goes. Redacted as the Client's lines are, in one line.
    io.err(`effect-lifeline: ${oneLine(redactUrlsIn(parsed.left.message))}`)
    io.err("Run effect-lifeline --help for the usage.")
    return Promise.resolve(ExitCode.Usage)
  }
  const command = parsed.right
  let program: Effect.Effect<number>
  switch (command._tag) {
    case "Help":
      program = Effect.sync(() => {
        io.out(HELP.trimEnd())
        return ExitCode.Ok
      })
      break
    case "Version":
      program = Effect.sync(() => {
        io.out(version())
        return ExitCode.Ok
      })
      break
    case "Demo":
      program = demo
      break
    case "Connect":
      program = Effect.provide(connect(command, io), NodeTransport.layer)
      break
  }
  return Effect.runPromise(program.pipe(
    Effect.catchAllCause((cause) =>
      Effect.sync(() => {
        io.err(`effect-lifeline: internal error: ${Cause.pretty(cause)}`)
        return ExitCode.Internal
      })
    )
  )).catch((error: unknown) => {
    io.err(`effect-lifeline: internal error: ${String(error)}`)
    return ExitCode.Internal
  })
}
