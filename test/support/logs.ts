/** The log lines a program writes, captured: level, message and the `lifeline.url` annotation. */
import { HashMap, Layer, Logger, type LogLevel, Option } from "effect"

export const captureLogs = (minimum: LogLevel.LogLevel) => {
  const lines: Array<{ level: string; message: string; url: unknown }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: String(Array.isArray(message) ? message[0] : message),
      url: HashMap.get(annotations, "lifeline.url").pipe(Option.getOrUndefined)
    })
  })
  return { lines, layer: Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(minimum)) }
}

/** The log lines a Client writes by design (WARN and INFO on its link): the fuzz tests allow only these. */
export const DOCUMENTED_LINES: ReadonlyArray<RegExp> = [
  /^lifeline: (link down|cannot connect): .*; retrying (now|in .*)$/,
  /^lifeline: link back after /,
  /^lifeline: closed by .*; not retrying$/,
  // round 34: a scope's release that failed queued messages
  /^lifeline: closed with \d+ messages never sent$/
]

/** The captured lines that are not documented ones at WARN or INFO, as problems. */
export const undocumentedLines = (
  lines: ReadonlyArray<{ readonly level: string; readonly message: string }>
): Array<string> =>
  lines.filter((line) =>
    !((line.level === "WARN" || line.level === "INFO") &&
      DOCUMENTED_LINES.some((pattern) => pattern.test(line.message)))
  ).map((line) => `log line ${line.level}: ${line.message}`)
