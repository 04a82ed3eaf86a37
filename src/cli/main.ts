/**
 * The CLI's entry: reads the command line and runs the command; resolves with the exit code,
 * never rejects (a defect is printed and ends with 1).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { readFileSync } from "node:fs"
import { ConnectError } from "../Errors.js"
import { demo } from "../internal/demo/demo.js"
import { checkEndpoint } from "../internal/parseEndpoint.js"
import { redactUnparsedUrl, redactUrlsIn } from "../internal/redactUrl.js"
import * as NodeTransport from "../NodeTransport.js"
import { HELP, parse } from "./args.js"
import type { Io } from "./connect.js"
import { connect } from "./connect.js"
import { ExitCode } from "./exitCodes.js"
import type { ProxyChoice, ProxyEnv } from "./proxy.js"
import { chooseProxy } from "./proxy.js"
import { oneLine } from "./render.js"

/** The package's version: package.json sits one level above both src/cli/ and dist/cli/'s parent. */
const version = (): string => {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8")
  return String((JSON.parse(text) as { version?: unknown }).version)
}

const usage = (io: Io, message: string): Promise<number> => {
  // The message may quote an argument: a URL with a password typed where a flag's value or the
  // command goes. Redacted as the Client's lines are, in one line.
  io.err(`effect-lifeline: ${oneLine(redactUrlsIn(message))}`)
  io.err("Run effect-lifeline --help for the usage.")
  return Promise.resolve(ExitCode.Usage)
}

/**
 * The Node transport for `connect` to `url`: through the proxy `--proxy` or the environment names
 * for it (https-proxy-agent's agent, loaded only then; one line says which, its password
 * redacted), else direct. A URL that does not parse goes direct: the Client reports it.
 */
const transport = (choice: ProxyChoice | undefined, url: string, io: Io, json: boolean) => {
  if (choice === undefined) return Effect.succeed(NodeTransport.layer)
  // The URL as lifeline dials it (http(s):// is ws(s)://); one that cannot be dialled goes direct.
  const endpoint = checkEndpoint(url)
  const through = endpoint instanceof ConnectError ? undefined : choice(endpoint.url)
  if (through === undefined) return Effect.succeed(NodeTransport.layer)
  return Effect.tryPromise(() => import("https-proxy-agent")).pipe(
    Effect.map(({ HttpsProxyAgent }) => {
      const said = `through the proxy ${redactUnparsedUrl(through.href)}`
      if (json) io.out(JSON.stringify({ type: "log", level: "INFO", message: said }))
      else io.err(`effect-lifeline: ${said}`)
      return NodeTransport.layerWith({ agent: new HttpsProxyAgent(through) })
    }),
    Effect.mapError(() =>
      "a proxy is set, and connecting through one needs the https-proxy-agent package, which is not installed " +
      "(npm install https-proxy-agent; it is an optional dependency of effect-lifeline)"
    )
  )
}

export const run = (argv: ReadonlyArray<string>, io: Io, env: ProxyEnv = process.env): Promise<number> => {
  const parsed = parse(argv)
  if (Either.isLeft(parsed)) return usage(io, parsed.left.message)
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
    case "Connect": {
      // A proxy variable that cannot work is a usage error, as --proxy is.
      const choice = chooseProxy(command.proxy, env)
      if (typeof choice === "string") return usage(io, choice)
      program = transport(choice, command.url, io, command.json).pipe(
        Effect.matchEffect({
          onFailure: (message) =>
            Effect.sync(() => {
              io.err(`effect-lifeline: ${message}`)
              return ExitCode.InvalidInput
            }),
          onSuccess: (layer) => Effect.provide(connect(command, io), layer)
        })
      )
      break
    }
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
