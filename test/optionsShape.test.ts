/**
 * The option checks' tables (src/internal/options.ts): a group that is not an object is named
 * with what it must be, and every decoded object of a kind has one shape (the keys of its
 * defaults, in their order), whichever options were given, so that the objects a Client keeps
 * share one hidden class.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Redacted } from "effect"
import { NodeTransport } from "../src/index.js"
import { clientSettings, decodeClientOptions, decodeConnectOptions } from "../src/internal/options.js"

const url = "ws://127.0.0.1:1/"
const node = NodeTransport.make.checkOptions

describe("a group of options that is not an object", () => {
  it.each(
    [
      ["outbox: a number", { url, outbox: 5 }, "outbox: must be an object"],
      ["connection: null", { url, connection: null }, "connection: must be an object"],
      ["connection: a list", { url, connection: [] }, "connection: must be an object"],
      ["the options: a string", "ws://127.0.0.1:1/", "options: must be an object"]
    ] as const
  )("%s: named with what it must be", (_, options, detail) => {
    expect(decodeClientOptions(options)).toEqual(Either.left(detail))
  })
})

describe("one shape per kind of decoded object", () => {
  const connectionKeys = Object.keys(Either.getOrThrow(decodeConnectOptions({})))

  it("connection options: the keys of the defaults, in their order, whatever was given", () => {
    const given = [
      decodeConnectOptions({ openTimeout: "1 second" }),
      decodeConnectOptions({ maxMessageSize: 10, protocols: "v1" }),
      decodeConnectOptions({ headers: { a: "b" } }, node),
      decodeConnectOptions({ tls: { rejectUnauthorized: true }, perMessageDeflate: false }, node)
    ].map(Either.getOrThrow)
    for (const options of given) expect(Object.keys(options)).toEqual(connectionKeys)
    const settings = [
      clientSettings({ url, connection: { inboundCapacity: 5 } }),
      clientSettings({ url, headers: { authorization: Redacted.make("Bearer t") } }, node),
      clientSettings({ url, headers: { a: "b" }, connection: { closeTimeout: 100 } }, node),
      clientSettings({ url, headers: Effect.succeed({ a: "b" }), connection: { protocols: ["v1"] } })
    ]
    for (const { connection } of settings) {
      expect(Object.keys(connection)).toEqual(connectionKeys)
      expect(Object.isFrozen(connection)).toBe(false)
    }
    expect(settings[1]!.connection.headers).toEqual({ authorization: "Bearer t" })
    expect(settings[2]!.connection).toMatchObject({ headers: { a: "b" }, closeTimeout: Duration.millis(100) })
  })

  it("client settings and heartbeats: the same keys, in the same order, valid or not", () => {
    const defaults = clientSettings({ url })
    const others = [
      clientSettings({ url, minUptime: 1000, outbox: { overflow: "dropOldest" } }),
      clientSettings({ url, heartbeat: { message: "ping" }, retry: defaults.schedule }),
      clientSettings({ url, heartbeat: false }),
      clientSettings({ url, outbox: { capacity: 0 } } as never)
    ]
    for (const settings of others) expect(Object.keys(settings)).toEqual(Object.keys(defaults))
    expect(others[3]!.invalid).toMatch(/^outbox\.capacity: must be a positive integer; /)
    expect(Object.keys(others[1]!.heartbeat!)).toEqual(Object.keys(defaults.heartbeat!))
    expect(others[1]!.heartbeat).toMatchObject({ message: "ping", interval: defaults.heartbeat!.interval })
  })
})
