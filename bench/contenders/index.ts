// Every contender, in table order: the baseline first.
import type { Contender, ContenderName } from "./types.js"

export type { Contender, ContenderName } from "./types.js"

export const CONTENDER_NAMES: ReadonlyArray<ContenderName> = ["ws", "partysocket", "platform", "connection", "client"]

export const isContenderName = (name: string): name is ContenderName =>
  (CONTENDER_NAMES as ReadonlyArray<string>).includes(name)

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
  }
}

export const loadContenders = (): Promise<Array<Contender>> => Promise.all(CONTENDER_NAMES.map(loadContender))
