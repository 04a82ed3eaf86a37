/**
 * Shared by the page scripts firefox.ts and webkit.ts (not a page itself): an Effect exit as plain
 * data for Node.
 */
import { Cause, Exit } from "effect"

/** An exit as plain data: "success", "interrupted", "defect", or "<_tag> <reason or operation>". */
export const describeExit = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "success"
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") return Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "defect"
  const error = failure.value as { _tag: string; reason?: string; operation?: string }
  return `${error._tag} ${String(error.reason ?? error.operation)}`
}
