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
