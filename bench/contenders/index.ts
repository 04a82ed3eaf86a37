// Every contender, in table order: the baseline first.
import type { Contender, ContenderName } from "./types.js"

export type { Contender, ContenderName } from "./types.js"

export const CONTENDER_NAMES: ReadonlyArray<ContenderName> = ["ws", "partysocket", "platform", "connection", "client"]

/** Contenders a run names itself (`--contenders`), never in the default set: the small Client. */
const EXTRA_NAMES: ReadonlyArray<ContenderName> = ["lite"]

export const isContenderName = (name: string): name is ContenderName =>
  ([...CONTENDER_NAMES, ...EXTRA_NAMES] as ReadonlyArray<string>).includes(name)

/**
 * The contenders of this run, in table order: `LIFELINE_BENCH_CONTENDERS` (a comma list, which
 * `--contenders` sets so that every child process runs the same set), else the default five.
 */
export const contenderNames = (): ReadonlyArray<ContenderName> => {
  const chosen = process.env["LIFELINE_BENCH_CONTENDERS"]
  if (chosen === undefined || chosen === "") return CONTENDER_NAMES
  const names = chosen.split(",")
  const unknown = names.filter((name) => !isContenderName(name))
  if (unknown.length > 0) throw new Error(`no contender named ${unknown.join(", ")}`)
  return names as ReadonlyArray<ContenderName>
}

/** Loads one contender's module only, so that a child process pays only for its own library. */
export const loadContender = async (name: string): Promise<Contender> => {
  if (!isContenderName(name)) throw new Error(`no contender named ${name}; one of ${CONTENDER_NAMES.join(", ")}`)
  switch (name) {
    case "ws":
      return (await import("./ws.js")).ws
    case "partysocket":
      return (await import("./partysocket.js")).partysocket
    case "platform":
      return (await import("./platform.js")).platform
    case "connection":
      return (await import("./connection.js")).connection
    case "client":
      return (await import("./client.js")).client
    case "lite":
      return (await import("./lite.js")).lite
  }
}

export const loadContenders = (): Promise<Array<Contender>> => Promise.all(contenderNames().map(loadContender))
