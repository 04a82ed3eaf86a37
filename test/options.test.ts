/**
 * The options Schema (src/internal/options.ts): every bad option is `ConnectError InvalidOptions`
 * with a one-line detail naming it, good ones decode with their defaults, Config keys decode by the
 * same Schemas, and a Client decodes its options once, not at every attempt.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, Layer, Logger, LogLevel, Option, Redacted, Schedule } from "effect"
import { BrowserTransport, Client, Connection, NodeTransport, Reconnect, Transport } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { clientSettings, decodeClientOptions, decodeConnectOptions } from "../src/internal/options.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"

const HINT = "; fix the option named above"

/** The Node transport's checks of the options only it reads (`tls`, header values). */
const node = NodeTransport.make.checkOptions

const connectError = (options: unknown) =>
  Connection.connect("ws://127.0.0.1:1/", options as Connection.Options).pipe(Effect.flip, Effect.scoped, provideNode)

const closedWith = (client: Client.Client) =>
  Effect.map(
    awaitState(client, isTag("Closed"), "20 seconds"),
    (state) => Option.getOrThrow((state as Extract<Client.ClientState, { _tag: "Closed" }>).error)
  )

// [what, options, the detail's first part: the option's path and what is wrong]
const badConnection: ReadonlyArray<readonly [string, unknown, string]> = [
  ["protocols: a number", { protocols: 5 }, "protocols: must be a string or an array of strings"],
  [
    "protocols: an invalid name",
    { protocols: ["bad name"] },
    "protocols: \"bad name\" is not a valid subprotocol name (RFC 6455 token)"
  ],
  ["protocols: offered twice", { protocols: ["a", "a"] }, "protocols: \"a\" is offered twice"],
  ["headers: an invalid name", { headers: { "bad name": "x" } }, "headers: \"bad name\" is not a valid header name"],
  [
    "headers: a value with CR LF",
    { headers: { "x-token": Redacted.make("a\r\nb") } },
    "headers: the value of \"x-token\" is not a valid header value"
  ],
  ["tls: a string", { tls: "yes" }, "tls: must be an object"],
  ["tls.ca: a number", { tls: { ca: 42 } }, "tls.ca: must be PEM text or bytes"],
  ["tls: a key without a cert", { tls: { key: "k" } }, "tls: key and cert go together"],
  [
    "openTimeout: negative",
    { openTimeout: Duration.millis(-1) },
    "openTimeout: must be a finite duration above zero, such as 10 seconds"
  ],
  [
    "openTimeout: unreadable",
    { openTimeout: "soon" },
    "openTimeout: must be a finite duration above zero, such as 10 seconds"
  ],
  [
    "closeTimeout: infinite",
    { closeTimeout: Duration.infinity },
    "closeTimeout: must be a finite duration above zero, such as 10 seconds"
  ],
  ["maxPayload: 1.5", { maxPayload: 1.5 }, "maxPayload: must be a positive integer (bytes)"],
  ["inboundCapacity: 0", { inboundCapacity: 0 }, "inboundCapacity: must be a positive integer (frames)"],
  ["inboundBytes: NaN", { inboundBytes: Number.NaN }, "inboundBytes: must be a positive integer (bytes)"],
  [
    "writeHighWaterMark: a string",
    { writeHighWaterMark: "1024" },
    "writeHighWaterMark: must be a positive integer (bytes)"
  ],
  [
    "the first bad option is named",
    { openTimeout: 0, inboundCapacity: 0 },
    "openTimeout: must be a finite duration above zero, such as 10 seconds"
  ]
]

const url = "ws://127.0.0.1:1/"
const badClient: ReadonlyArray<readonly [string, unknown, string]> = [
  ["url: an empty list", { url: [] }, "url: give at least one endpoint"],
  ["url: a number", { url: 5 }, "url: must be a URL, an Effect of one, or a list of URLs"],
  [
    "headers: an invalid value",
    { url, headers: { a: "x\ny" } },
    "headers: the value of \"a\" is not a valid header value"
  ],
  [
    "connection.protocols: invalid",
    { url, connection: { protocols: ["no way"] } },
    "connection.protocols: \"no way\" is not a valid subprotocol"
  ],
  [
    "connection.tls.servername: a number",
    { url, connection: { tls: { servername: 1 } } },
    "connection.tls.servername: must be a string"
  ],
  [
    "connection.openTimeout: 0",
    { url, connection: { openTimeout: 0 } },
    "connection.openTimeout: must be a finite duration above zero, such as 10 seconds"
  ],
  ["retry: not a Schedule", { url, retry: "often" }, "retry: must be a Schedule"],
  // Before, ignored: untyped code that put a connection option beside the Client's got no error.
  [
    "maxMessageSize at the top level",
    { url, maxMessageSize: 100 },
    "maxMessageSize: a connection option: put it under connection (connection.maxMessageSize)"
  ],
  [
    "openTimeout at the top level",
    { url, openTimeout: "1 second" },
    "openTimeout: a connection option: put it under connection (connection.openTimeout)"
  ],
  // Before, ignored: headers in a `Connection.Options` object given as a Client's connection were not sent (round 20).
  [
    "headers under connection",
    { url, connection: { headers: { authorization: "Bearer t" } } },
    "connection.headers: a Client option: put it at the top level (headers)"
  ],
  [
    "headers under connection beside one at the top level",
    { url, headers: { a: "b" }, connection: { headers: { authorization: "Bearer t" } } },
    "connection.headers: a Client option: put it at the top level (headers)"
  ],
  [
    "retry: an invalid exponentialBackoff",
    { url, retry: Reconnect.exponentialBackoff({ cap: 0 }) },
    "retry: exponentialBackoff: cap must be"
  ],
  ["shouldRetry: not a function", { url, shouldRetry: true }, "shouldRetry: must be a function"],
  [
    "minUptime: unreadable",
    { url, minUptime: "soon" },
    "minUptime: must be a finite duration above zero, such as 10 seconds"
  ],
  ["outbox.capacity: 0", { url, outbox: { capacity: 0 } }, "outbox.capacity: must be a positive integer"],
  ["outbox.maxBytes: -1", { url, outbox: { maxBytes: -1 } }, "outbox.maxBytes: must be a positive integer"],
  [
    "outbox.overflow: unknown",
    { url, outbox: { overflow: "dropNewest" } },
    "outbox.overflow: must be one of fail, dropOldest, suspend"
  ],
  ["onOpen: not a function", { url, onOpen: {} }, "onOpen: must be a function"],
  [
    "onOpenTimeout: 0",
    { url, onOpenTimeout: 0 },
    "onOpenTimeout: must be a finite duration above zero, such as 10 seconds"
  ],
  [
    "minRetryDelay: under a millisecond",
    { url, minRetryDelay: Duration.micros(10n) },
    "minRetryDelay: must be at least 1 millisecond"
  ],
  ["heartbeat: true", { url, heartbeat: true }, "heartbeat: must be an object or false"],
  [
    "heartbeat.interval: negative",
    { url, heartbeat: { interval: Duration.millis(-5) } },
    "heartbeat.interval: must be a finite duration above zero, such as 10 seconds"
  ],
  ["heartbeat.message: a number", { url, heartbeat: { message: 1 } }, "heartbeat.message: must be a string or bytes"],
  ["heartbeat.isPong: not a function", { url, heartbeat: { isPong: "pong" } }, "heartbeat.isPong: must be a function"],
  ["heartbeat.probe: not a boolean", { url, heartbeat: { probe: "no" } }, "heartbeat.probe: must be true or false"],
  [
    "heartbeat.message with probe: false",
    { url, heartbeat: { probe: false, message: "ping" } },
    "heartbeat.message: is not sent with probe: false"
  ],
  ["eventsCapacity: 0", { url, eventsCapacity: 0 }, "eventsCapacity: must be a positive integer"]
]

/** `fields` behind a Proxy that counts the reads of each: how many times options were decoded. */
const countingReads = <const A extends Record<string, unknown>>(fields: A) => {
  const reads: Record<string, number> = {}
  const options = new Proxy(fields, {
    get: (target, key, receiver) => {
      if (typeof key === "string") reads[key] = (reads[key] ?? 0) + 1
      return Reflect.get(target, key, receiver)
    }
  })
  return { options, reads }
}
describe("Connection options", () => {
  it.effect.each(badConnection)(
    "%s: ConnectError InvalidOptions naming it",
    ([_, options, detail]) =>
      Effect.gen(function*() {
        const error = (yield* connectError(options)) as ConnectError
        expect(error).toMatchObject({ _tag: "ConnectError", reason: "InvalidOptions", url })
        expect(error.detail.startsWith(detail)).toBe(true)
        expect(error.detail.endsWith(HINT)).toBe(true)
        expect(error.detail).not.toContain("\n")
      })
  )

  it("no options: every default, shared", () => {
    const none = Either.getOrThrow(decodeConnectOptions({}))
    expect(none).toEqual({
      openTimeout: Duration.seconds(10),
      closeTimeout: Duration.seconds(5),
      inboundCapacity: 1024,
      inboundBytes: 16 * 1024 * 1024,
      writeHighWaterMark: 1024 * 1024,
      protocols: [],
      headers: {},
      tls: undefined,
      maxPayload: 100 * 1024 * 1024,
      perMessageDeflate: true
    })
    expect(Either.getOrThrow(decodeConnectOptions({ openTimeout: undefined }))).toBe(none)
  })

  it("good options: decoded (durations, one protocol as a list, Redacted header values read, tls copied and Redacted)", () => {
    const key = "-----BEGIN PRIVATE KEY-----"
    const checked = Either.getOrThrow(decodeConnectOptions({
      protocols: "v1",
      headers: { authorization: Redacted.make("Bearer t"), "x-id": "7" },
      tls: { key, cert: "c", rejectUnauthorized: true },
      openTimeout: "3 seconds",
      closeTimeout: 250,
      maxPayload: 10,
      inboundCapacity: 2,
      inboundBytes: 3,
      writeHighWaterMark: 4
    }, node))
    expect(checked).toMatchObject({
      protocols: ["v1"],
      headers: { authorization: "Bearer t", "x-id": "7" },
      openTimeout: Duration.seconds(3),
      closeTimeout: Duration.millis(250),
      maxPayload: 10,
      inboundCapacity: 2,
      inboundBytes: 3,
      writeHighWaterMark: 4
    })
    expect(Redacted.value(checked.tls!)).toEqual({ key, cert: "c", rejectUnauthorized: true })
    // Decoded options decode again to the same values (a Client's, with headers from an Effect).
    expect(Either.getOrThrow(decodeConnectOptions({ ...checked, headers: { a: "b" } }, node))).toMatchObject({
      ...checked,
      headers: { a: "b" },
      tls: expect.anything()
    })
  })

  it("headers and tls: checked by the transport that reads them (Node), ignored without its checks (browsers)", () => {
    expect(BrowserTransport.make.checkOptions).toBeUndefined()
    const options = { tls: { ca: 42 }, headers: { "x-token": "a\r\nb" }, openTimeout: "3 seconds" }
    expect(decodeConnectOptions(options, node)).toEqual(
      Either.left("tls.ca: must be PEM text or bytes (string, Buffer, Uint8Array) or an array of them")
    )
    expect(decodeConnectOptions({ ...options, tls: undefined }, node)).toEqual(
      Either.left("headers: the value of \"x-token\" is not a valid header value")
    )
    // Without the checks neither is read: no headers, no tls for the transport; the others decoded.
    for (const bad of [options, { ...options, headers: { "bad name": "x" } }, { headers: 5, tls: "yes" }]) {
      expect(decodeConnectOptions({ ...bad, openTimeout: "3 seconds" }, BrowserTransport.make.checkOptions))
        .toEqual(Either.right({ ...Either.getOrThrow(decodeConnectOptions({})), openTimeout: Duration.seconds(3) }))
    }
    expect(decodeClientOptions({ url, headers: { a: "x\ny" }, connection: { tls: "yes" } })).toMatchObject(
      Either.right({ connection: { headers: {}, tls: undefined }, headers: undefined, invalid: undefined })
    )
    expect(decodeClientOptions({ url, connection: { tls: "yes" } }, node)).toEqual(
      Either.left("connection.tls: must be an object")
    )
    // A Client's connection with empty headers (a Connection.Options object spread) loses nothing: accepted.
    expect(Either.isRight(decodeClientOptions({ url, connection: { headers: {} } }))).toBe(true)
    // Empty headers are the shared empty record: `{ headers: {} }` decodes to the shared defaults.
    expect(decodeConnectOptions({ headers: {} }, node)).toEqual(
      Either.right(Either.getOrThrow(decodeConnectOptions({})))
    )
    expect(Either.getOrThrow(decodeConnectOptions({ headers: {} }, node))).toBe(
      Either.getOrThrow(decodeConnectOptions({}))
    )
  })

  it.live("the browser transport: a Client and a Connection with headers and tls it does not read connect; no warning", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Layer.merge(
        Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => lines.push(String(message)))),
        Logger.minimumLogLevel(LogLevel.Warning)
      )
      const server = yield* TestServer.make()
      yield* Effect.gen(function*() {
        const client = yield* Client.make({
          url: server.url,
          headers: { "x-token": "a\r\nb" },
          connection: { tls: { rejectUnauthorized: false } }
        })
        yield* client.awaitOpen
        // The Client's upgrade, then the Connection's: neither carries the header it was given.
        expect(Object.keys(yield* server.lastRequestHeaders).filter((name) => name.startsWith("x-"))).toEqual([])
        yield* Connection.connect(server.url, { headers: { "x-app": "demo" }, tls: "yes" } as never)
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(capture, BrowserTransport.layer)))
      expect(yield* server.accepted).toBe(2)
      expect((yield* server.lastRequestHeaders)["x-app"]).toBeUndefined()
      expect(lines).toEqual([])
    })))

  it.live("a transport that wraps the Node one passes its checkOptions on: the same InvalidOptions", () =>
    Effect.gen(function*() {
      const wrapped: Transport.Transport = { ...NodeTransport.make, open: NodeTransport.make.open }
      const error = yield* Connection.connect(url, { tls: "yes" } as never).pipe(
        Effect.flip,
        Effect.scoped,
        Effect.provide(Layer.succeed(Transport.Transport, wrapped))
      )
      expect(error).toMatchObject({
        _tag: "ConnectError",
        reason: "InvalidOptions",
        detail: `tls: must be an object${HINT}`
      })
    }))

  it.live("one decode per connect call", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const { options, reads } = countingReads({ openTimeout: "5 seconds" })
      for (let i = 0; i < 3; i++) yield* Effect.scoped(Connection.connect(server.url, options))
      expect(reads.openTimeout).toBe(3)
    })).pipe(provideNode))
})

describe("Client options", () => {
  it.live.each(badClient)(
    "%s: Closed with ConnectError InvalidOptions naming it, no attempt",
    ([_, options, detail]) =>
      Effect.gen(function*() {
        const error = (yield* closedWith(yield* Client.make(options as Client.Options))) as ConnectError
        expect(error).toMatchObject({ _tag: "ConnectError", reason: "InvalidOptions" })
        expect(error.detail.startsWith(detail)).toBe(true)
        expect(error.detail.endsWith(HINT)).toBe(true)
        expect(error.detail).not.toContain("\n")
      }).pipe(Effect.scoped, provideNode)
  )

  it("no options but the URL: every default, the connection and heartbeat defaults shared by every client", () => {
    const settings = clientSettings({ url })
    expect(settings).toMatchObject({
      endpoints: [url],
      headers: undefined,
      schedule: Reconnect.defaultSchedule,
      shouldRetry: Reconnect.isRetryable,
      minUptime: Duration.seconds(5),
      outboxCapacity: 1024,
      outboxBytes: 16 * 1024 * 1024,
      overflow: "fail",
      onOpen: undefined,
      onOpenTimeout: Duration.seconds(10),
      minRetryDelay: 100,
      heartbeat: { interval: Duration.seconds(20), timeout: Duration.seconds(10), message: undefined },
      isPong: undefined,
      eventsCapacity: 64,
      invalid: undefined
    })
    expect(settings.connection).toEqual(Either.getOrThrow(decodeConnectOptions({})))
    const other = clientSettings({ url: "ws://127.0.0.1:2/", connection: {}, heartbeat: {} })
    expect(other.connection).toBe(settings.connection)
    expect(other.heartbeat).toBe(settings.heartbeat)
    expect(Object.isFrozen(settings.connection)).toBe(true)
    // `{ url }` alone skips the Schema: the same settings as through it.
    expect(settings).toEqual(Either.getOrThrow(decodeClientOptions({ url, eventsCapacity: undefined })))
  })

  it("good options: decoded, fixed headers checked into the connection options, heartbeat false is none", () => {
    const isPong = (message: unknown) => message === "pong"
    const headersEffect = Effect.succeed({ a: "b" })
    const retry = Schedule.spaced("1 second")
    const settings = Either.getOrThrow(decodeClientOptions({
      url: [url, new URL("ws://127.0.0.1:2/")],
      headers: { authorization: Redacted.make("Bearer t") },
      connection: { protocols: ["v1"], openTimeout: "2 seconds" },
      retry,
      minUptime: 1000,
      outbox: { capacity: 5, maxBytes: 6, overflow: "dropOldest" },
      minRetryDelay: "20 millis",
      heartbeat: { interval: "1 second", message: "ping", isPong },
      eventsCapacity: 8
    }, node))
    expect(settings).toMatchObject({
      endpoints: [url, new URL("ws://127.0.0.1:2/")],
      connection: {
        protocols: ["v1"],
        openTimeout: Duration.seconds(2),
        headers: { authorization: "Bearer t" },
        inboundCapacity: 1024
      },
      headers: undefined,
      schedule: retry,
      minUptime: Duration.seconds(1),
      outboxCapacity: 5,
      outboxBytes: 6,
      overflow: "dropOldest",
      minRetryDelay: 20,
      heartbeat: { interval: Duration.seconds(1), timeout: Duration.seconds(10), message: "ping" },
      isPong,
      eventsCapacity: 8
    })
    const withEffect = Either.getOrThrow(decodeClientOptions({ url, headers: headersEffect, heartbeat: false }))
    expect(withEffect.headers).toBe(headersEffect)
    expect(withEffect.connection.headers).toEqual({})
    expect(withEffect.heartbeat).toBeUndefined()
  })

  it.live("a Client decodes its options once: reconnects decode nothing again", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = countingReads({ protocols: [], openTimeout: "5 seconds" })
        const top = countingReads({
          url: server.url,
          headers: { "x-id": "7" },
          connection: connection.options,
          minRetryDelay: "1 millis"
        })
        const client = yield* Client.make(top.options)
        yield* client.awaitOpen
        for (let i = 0; i < 3; i++) {
          yield* client.reconnect
          for (let turn = 0; turn < 500 && (yield* server.accepted) < i + 2; turn++) yield* Effect.sleep("2 millis")
          yield* awaitState(client, isTag("Open"))
        }
        expect(yield* server.accepted).toBe(4)
        // Each option was read by the one decode (the absent ones too: a connection option at
        // the top level is refused), and never again.
        expect(top.reads).toMatchObject({ url: 1, headers: 1, connection: 1, minRetryDelay: 1 })
        expect(connection.reads).toMatchObject({ protocols: 1, openTimeout: 1 })
        expect(new Set([...Object.values(top.reads), ...Object.values(connection.reads)])).toEqual(new Set([1]))
      }).pipe(Effect.scoped)
    ).pipe(provideNode))

  it.live("a Client with headers from an Effect and tls.rejectUnauthorized false: one warning, however many attempts", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Layer.merge(
        Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ message }) => lines.push(String(Array.isArray(message) ? message[0] : message)))
        ),
        Logger.minimumLogLevel(LogLevel.Warning)
      )
      const server = yield* TestServer.make()
      yield* Effect.gen(function*() {
        const client = yield* Client.make({
          url: server.url,
          headers: Effect.succeed({ "x-id": "7" }),
          connection: { tls: { rejectUnauthorized: false } },
          minRetryDelay: "1 millis"
        })
        yield* client.awaitOpen
        for (let i = 0; i < 2; i++) {
          yield* client.reconnect
          for (let turn = 0; turn < 500 && (yield* server.accepted) < i + 2; turn++) yield* Effect.sleep("2 millis")
          yield* awaitState(client, isTag("Open"))
        }
      }).pipe(Effect.scoped, Effect.provide(capture))
      expect(yield* server.accepted).toBe(3)
      expect(lines.filter((line) => line.includes("tls.rejectUnauthorized: false"))).toHaveLength(1)
    })).pipe(provideNode))
})

describe("Client.config: keys decoded by the option Schemas", () => {
  const read = (entries: Record<string, string>) =>
    Client.config("PRICES").pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries)))))

  it.effect.each(
    [
      ["PRICES.OPEN_TIMEOUT", "soon", "must be a finite duration above zero, such as 10 seconds"],
      ["PRICES.OPEN_TIMEOUT", "10s", "must be a finite duration above zero, such as 10 seconds"],
      ["PRICES.CLOSE_TIMEOUT", "0 millis", "must be a finite duration above zero, such as 10 seconds"],
      ["PRICES.HEARTBEAT_TIMEOUT", "-3 seconds", "must be a finite duration above zero, such as 10 seconds"],
      ["PRICES.HEARTBEAT_PROBE", "no", "must be true or false"],
      ["PRICES.HEARTBEAT_PROBE", "FALSE", "must be true or false"],
      ["PRICES.OUTBOX_CAPACITY", "1.5", "must be a positive integer"],
      ["PRICES.OUTBOX_CAPACITY", "-1", "must be a positive integer"],
      ["PRICES.URL", "127.0.0.1:8080/feed", "the URL does not parse; use a ws:// or wss:// URL"],
      ["PRICES.URL", "ftp://127.0.0.1/", `the scheme is "ftp:"`]
    ] as const
  )(
    "%s = %s: a ConfigError naming the key, with the option's message",
    ([key, value, message]) =>
      Effect.gen(function*() {
        const error = String(yield* Effect.flip(read({ "PRICES.URL": url, [key]: value })))
        // never the value given (a URL may hold a password)
        if (key === "PRICES.URL") expect(error).not.toContain(value)
        expect(error).toContain(key)
        expect(error).toContain(message)
      })
  )

  it.effect("good keys: options that decode to the values given, absent keys keep the defaults", () =>
    Effect.gen(function*() {
      const options = yield* read({
        "PRICES.URL": url,
        "PRICES.OPEN_TIMEOUT": "2 seconds",
        "PRICES.HEARTBEAT_INTERVAL": "3 seconds",
        "PRICES.OUTBOX_CAPACITY": "7"
      })
      const settings = Either.getOrThrow(decodeClientOptions(options))
      expect(settings).toMatchObject({
        endpoints: [url],
        connection: { openTimeout: Duration.seconds(2), closeTimeout: Duration.seconds(5) },
        schedule: Reconnect.defaultSchedule,
        heartbeat: { interval: Duration.seconds(3), timeout: Duration.seconds(10) },
        outboxCapacity: 7
      })
      const minimal = Either.getOrThrow(decodeClientOptions(yield* read({ "PRICES.URL": url })))
      expect(minimal.connection).toBe(clientSettings({ url }).connection)
      expect(minimal.heartbeat?.probe).toBe(true)
    }))

  it.effect("HEARTBEAT_PROBE: false watches the peer's own frames (no probe), true is the default; beside the other heartbeat keys", () =>
    Effect.gen(function*() {
      const off = Either.getOrThrow(decodeClientOptions(
        yield* read({
          "PRICES.URL": url,
          "PRICES.HEARTBEAT_PROBE": " false ",
          "PRICES.HEARTBEAT_INTERVAL": "25 seconds"
        })
      ))
      expect(off.heartbeat).toMatchObject({
        probe: false,
        interval: Duration.seconds(25),
        timeout: Duration.seconds(10)
      })
      const on = Either.getOrThrow(
        decodeClientOptions(yield* read({ "PRICES.URL": url, "PRICES.HEARTBEAT_PROBE": "true" }))
      )
      expect(on.heartbeat).toMatchObject({ probe: true })
      // and through layerConfig with a message given in code: the option check's own refusal
      const options = yield* read({ "PRICES.URL": url, "PRICES.HEARTBEAT_PROBE": "false" })
      const refused = decodeClientOptions({ ...options, heartbeat: { ...options.heartbeat, message: "ping" } })
      expect(Either.isLeft(refused) && String(refused.left)).toContain(
        "heartbeat.message: is not sent with probe: false"
      )
    }))
})

describe("options from untyped code: what the Schema did, never a throw", () => {
  const notObjects: ReadonlyArray<readonly [string, unknown]> = [["null", null], ["a string", "ws://127.0.0.1:1/"], [
    "a number",
    5
  ]]

  it.effect.each(notObjects)(
    "Connection.connect with %s as options: ConnectError InvalidOptions, not a throw",
    ([_, options]) =>
      Effect.gen(function*() {
        const error = (yield* Effect.suspend(() => connectError(options))) as ConnectError
        expect(error).toMatchObject({
          _tag: "ConnectError",
          reason: "InvalidOptions",
          url,
          detail: `options: must be an object${HINT}`
        })
      })
  )

  it.live.each(notObjects)(
    "Client.make with %s as options: Closed with ConnectError InvalidOptions, not a throw",
    ([_, options]) =>
      Effect.gen(function*() {
        const client = yield* Effect.suspend(() => Client.make(options as Client.Options))
        const error = (yield* closedWith(client)) as ConnectError
        expect(error).toMatchObject({
          _tag: "ConnectError",
          reason: "InvalidOptions",
          detail: `options: must be an object${HINT}`
        })
      }).pipe(Effect.scoped, provideNode)
  )

  it("a url read from a getter (a settings class) is accepted with other options too, not only alone", () => {
    class Settings {
      readonly minUptime = "1 second"
      get url(): string {
        return url
      }
    }
    const settings = Either.getOrThrow(decodeClientOptions(new Settings()))
    expect(settings).toMatchObject({ endpoints: [url], minUptime: Duration.seconds(1), invalid: undefined })
    expect(clientSettings(new Settings() as unknown as Client.Options).invalid).toBeUndefined()
    // Missing for real: still `is required`; present but undefined: the check's own message.
    expect(decodeClientOptions({ minUptime: "1 second" })).toEqual(Either.left("url: is required"))
    expect(decodeClientOptions({ url: undefined, minUptime: "1 second" })).toEqual(
      Either.left("url: must be a URL, an Effect of one, or a list of URLs")
    )
  })
})
