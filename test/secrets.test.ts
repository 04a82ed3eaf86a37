/**
 * Invariant 6 as a scan: every failure mode, with a URL that carries a userinfo password and a
 * query token (and a header value), times every channel a secret could leave by: the error's
 * renderings, the log lines, the Client's state, events and inspection, the spans, the Exit.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Logger, LogLevel, Option, Schedule, Stream, Tracer } from "effect"
import type { Layer, Scope } from "effect"
import * as Util from "node:util"
import { BrowserTransport, Client, ConnectError, Connection, NodeTransport } from "../src/index.js"
import type { Transport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { closedPort } from "./support/ports.js"

const SECRETS = ["s3cret", "t0ps3cret"] as const
/** Header values given as plain strings: they must not show anywhere either. */
const HEADERS = { authorization: "Bearer s3cret-header", "x-api-key": "t0ps3cret-key" }

const provideNode = Effect.provide(NodeTransport.layer)

/** `ws://user:s3cret@127.0.0.1:${port}/?token=t0ps3cret&id=1` */
const withSecrets = (port: number) => `ws://user:s3cret@127.0.0.1:${port}/?token=t0ps3cret&id=1`

/** What one case shows, channel by channel. */
type Channels = Map<string, Array<string>>

const inspect = (value: unknown): string => Util.inspect(value, { depth: 10 })

/** Every rendering of an error a user might log or send somewhere. */
const errorChannels = (channels: Channels, error: unknown, withCause = true): void => {
  const add = (channel: string, text: string) => channels.set(channel, [...(channels.get(channel) ?? []), text])
  const e = error as { message: string; toJSON: () => unknown }
  add("e.message", e.message)
  add("String(e)", String(error))
  add("JSON.stringify(e)", JSON.stringify(error))
  add("e.toJSON()", inspect(e.toJSON()))
  add("util.inspect(e)", inspect(error))
  // The cause itself, as a user who logs `e.cause` sees it: lifeline's causes keep no URL text.
  const cause: unknown = Reflect.get(error as object, "cause")
  if (withCause && cause !== undefined) {
    add("e.cause", `${inspect(cause)}\n${JSON.stringify(cause)}\n${Object.values(cause as object).join("\n")}`)
  }
}

/**
 * A logfmt logger at LogLevel.All (annotations and causes included) and a Tracer that keeps every
 * span, its attributes and its exit, around `self`; the Client picks both up when made inside.
 */
const instrumented = <A, E, R>(self: (channels: Channels) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const channels: Channels = new Map()
    const logs: Array<string> = []
    const spans: Array<Tracer.Span> = []
    const inner = yield* Effect.tracer
    const tracer = Tracer.make({
      span: (name, parent, context, links, startTime, kind, options) => {
        const span = inner.span(name, parent, context, links, startTime, kind, options)
        spans.push(span)
        return span
      },
      context: (f, fiber) => inner.context(f, fiber)
    })
    const logger = Logger.map(Logger.logfmtLogger, (line) => {
      logs.push(line)
    })
    const exit = yield* Effect.exit(
      self(channels).pipe(
        Effect.withTracer(tracer),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.All)
      )
    )
    channels.set("logs", logs)
    channels.set(
      "spans",
      spans.map((span) =>
        inspect({ name: span.name, attributes: Object.fromEntries(span.attributes), status: span.status })
      )
    )
    return { channels, exit }
  })

/** Fails the test if a secret shows anywhere, or if an expected channel is empty. */
const expectNoSecrets = (channels: Channels, expected: ReadonlyArray<string>): void => {
  for (const name of expected) {
    const texts = channels.get(name) ?? []
    expect(texts.filter((text) => text.length > 0).length, `channel ${name} is empty`).toBeGreaterThan(0)
  }
  const leaks: Array<string> = []
  for (const [name, texts] of channels) {
    for (const text of texts) {
      for (const secret of [...SECRETS, ...Object.values(HEADERS)]) {
        const at = text.indexOf(secret)
        if (at !== -1) leaks.push(`${name}: ...${text.slice(Math.max(0, at - 60), at + 30)}...`)
      }
    }
  }
  expect(leaks).toEqual([])
}

const ERROR_CHANNELS = ["e.message", "String(e)", "JSON.stringify(e)", "e.toJSON()", "util.inspect(e)"]
const CONNECTION_CHANNELS = [...ERROR_CHANNELS, "logs", "spans", "exit"]
const CLIENT_CHANNELS = [...ERROR_CHANNELS, "logs", "spans", "state", "events", "client"]

/**
 * One `Connection.connect` that must fail with `tag` / `reason`; the error goes through every
 * channel, including the logs as a user would write them (`Effect.logError(e)`, and the cause).
 */
const connectFails = (
  url: Effect.Effect<string, never, Scope.Scope>,
  expected: { readonly _tag: string; readonly reason?: string; readonly status?: number; readonly operation?: string },
  options: Connection.Options = {},
  transport: Layer.Layer<Transport.Transport> = NodeTransport.layer,
  required: ReadonlyArray<string> = CONNECTION_CHANNELS
) =>
  withNoHandlesLeft(Effect.gen(function*() {
    const target = yield* url
    const { channels, exit } = yield* instrumented((channels) =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.scoped(Connection.connect(target, { headers: HEADERS, ...options })))
        channels.set("exit", [inspect(exit)])
        if (Exit.isSuccess(exit)) return yield* Effect.dieMessage("the connect succeeded")
        const error = Cause.squash(exit.cause)
        errorChannels(channels, error)
        yield* Effect.logError(error)
        yield* Effect.logError("connect failed", exit.cause)
        return error
      })
    )
    expect(Exit.isSuccess(exit) ? exit.value : Cause.pretty(exit.cause)).toMatchObject(expected)
    expectNoSecrets(channels, required)
  })).pipe(Effect.provide(transport))

/** Events replayed to a new subscriber, up to the transition into `tag`. */
const eventsUntil = (client: Client.Client, tag: Client.ClientState["_tag"]) =>
  client.events.pipe(
    Stream.takeUntil((event) => event._tag === "Transition" && event.to._tag === tag),
    Stream.runCollect,
    Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => "no such event" as const }),
    Effect.orDie
  )

/** The client's state, events and own renderings, once it reached `tag`. */
const clientChannels = (channels: Channels, client: Client.Client, tag: Client.ClientState["_tag"]) =>
  Effect.gen(function*() {
    const state = yield* awaitState(client, isTag(tag))
    channels.set("state", [inspect(state), JSON.stringify(state)])
    channels.set("events", [inspect(yield* eventsUntil(client, tag)), JSON.stringify(yield* eventsUntil(client, tag))])
    channels.set("client", [inspect(client), JSON.stringify(client)])
    return state
  })

/** A Client that must end up in `tag` with an error of `expected`; that error goes through every channel too. */
const clientFails = (
  setup: Effect.Effect<
    { readonly url: Client.Options["url"]; readonly after?: Effect.Effect<void> },
    never,
    Scope.Scope
  >,
  tag: "Backoff" | "Closed",
  expected: {
    readonly _tag: string
    readonly reason?: string
    readonly status?: number
    readonly code?: number
    readonly operation?: string
  },
  options: Partial<Client.Options> = {},
  channelsExpected: ReadonlyArray<string> = CLIENT_CHANNELS
) =>
  withNoHandlesLeft(Effect.gen(function*() {
    const { url: target, after = Effect.void } = yield* setup
    const { channels, exit } = yield* instrumented((channels) =>
      Effect.scoped(Effect.gen(function*() {
        const client = yield* Client.make({ url: target, headers: HEADERS, heartbeat: false, ...options })
        yield* after
        const state = yield* clientChannels(channels, client, tag)
        const error = state._tag === "Backoff"
          ? state.error
          : state._tag === "Closed"
          ? Option.getOrUndefined(state.error)
          : undefined
        errorChannels(channels, error)
        yield* Effect.logError(error)
        return error
      }))
    )
    expect(Exit.isSuccess(exit) ? exit.value : Cause.pretty(exit.cause)).toMatchObject(expected)
    expectNoSecrets(channels, channelsExpected)
  })).pipe(provideNode)

const server = (options?: TestServer.Options) => TestServer.make(options)
/** Waits (bounded, real time) until the server holds a connection. */
const untilConnected = (test: TestServer.TestServer) =>
  test.connections.pipe(
    Effect.repeat({
      until: (count) => count > 0,
      schedule: Schedule.spaced("5 millis").pipe(Schedule.intersect(Schedule.recurs(400)))
    }),
    Effect.asVoid
  )
const fixed = (url: string) => Effect.succeed(url)
/** A fresh server scripted by `script`, and the secret-laden URL to it. */
const scripted = (script: (test: TestServer.TestServer) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const test = yield* server()
    yield* script(test)
    return withSecrets(test.port)
  })

describe("secrets: Connection failures", () => {
  const invalidUrl = { _tag: "ConnectError", reason: "InvalidUrl" }
  it.live.each(
    [
      ["unparseable: IPv6 bracket not closed", "ws://user:s3cret@[::1/?token=t0ps3cret"],
      ["unparseable: port 99999", "ws://user:s3cret@127.0.0.1:99999/?token=t0ps3cret"],
      ["unparseable: a space in the host", "ws://user:s3cret@local host/?token=t0ps3cret"],
      ["unparseable: userinfo with @ and /", "ws://us@er:s3cret/@127.0.0.1:1/?token=t0ps3cret"],
      ["unparseable: userinfo with ? and #", "ws://user:s3cret?#x@127.0.0.1:1/?token=t0ps3cret"],
      ["unparseable: no scheme", "user:s3cret@127.0.0.1:1/?token=t0ps3cret x"],
      ["scheme ftp:", "ftp://user:s3cret@127.0.0.1:1/?token=t0ps3cret"],
      ["a fragment", "ws://user:s3cret@127.0.0.1:1/?token=t0ps3cret#s3cret"],
      ["an opaque URL", "xyz:user:s3cret@127.0.0.1?token=t0ps3cret"]
    ] as const
  )("%s: ConnectError InvalidUrl", ([_, url]) => connectFails(fixed(url), invalidUrl))

  // Node's TypeError keeps the whole input in `input`: it is not the cause.
  it.live.each(
    [
      ["unparseable: IPv6 bracket not closed", "ws://user:s3cret@[::1/?token=t0ps3cret"],
      ["unparseable: port 99999", "ws://user:s3cret@127.0.0.1:99999/?token=t0ps3cret"],
      ["unparseable: a space in the host", "ws://user:s3cret@local host/?token=t0ps3cret"]
    ] as const
  )(
    "%s: the cause keeps no input",
    ([_, url]) => connectFails(fixed(url), invalidUrl, {}, NodeTransport.layer, [...CONNECTION_CHANNELS, "e.cause"])
  )

  it.live("refused, password percent-encoded (%40) and repeated query keys: ConnectionRefused", () =>
    connectFails(
      Effect.map(closedPort, (port) => `ws://user:s3cret%40x@127.0.0.1:${port}/?token=t0ps3cret&token=t0ps3cret`),
      { _tag: "ConnectError", reason: "ConnectionRefused" }
    ))

  it.live("parses with the password split between port and path (ws://admin:PORT/s3cret@host): ConnectionRefused", () =>
    connectFails(
      Effect.map(closedPort, (port) => `ws://127.0.0.1:${port}/s3cret@127.0.0.1/?token=t0ps3cret`),
      { _tag: "ConnectError", reason: "ConnectionRefused" }
    ))

  it.live("unknown host (.invalid): DnsLookupFailed", () =>
    connectFails(fixed("ws://user:s3cret@lifeline-test.invalid/?token=t0ps3cret"), {
      _tag: "ConnectError",
      reason: "DnsLookupFailed"
    }))

  it.live.each([401, 503] as const)("HTTP %d: HandshakeRejected", (status) =>
    connectFails(
      scripted((test) => test.rejectNext(status, status === 503 ? { "retry-after": "2" } : {})),
      { _tag: "ConnectError", reason: "HandshakeRejected", status }
    ))

  it.live("socket reset during the handshake: ConnectionReset", () =>
    connectFails(scripted((test) => test.resetDuringHandshake), { _tag: "ConnectError", reason: "ConnectionReset" }))

  it.live("wrong Sec-WebSocket-Accept: ProtocolViolation", () =>
    connectFails(scripted((test) => test.badAcceptKey), { _tag: "ConnectError", reason: "ProtocolViolation" }))

  it.live("no answer to the upgrade: TimeoutError open", () =>
    connectFails(scripted((test) => test.hangHandshake), { _tag: "TimeoutError", operation: "open" }, {
      openTimeout: "100 millis"
    }))

  // Chrome's constructor names the URL in its SyntaxError (ws names it in "Invalid URL: ..." for a
  // redirect): whatever a transport reports, detail and cause are redacted. A fake of a platform
  // that cannot run here; no socket behaviour is faked.
  it.live("a transport whose error message holds the URL: detail and cause redacted", () => {
    const ChromeLike = function(url: string) {
      throw new SyntaxError(`Failed to construct 'WebSocket': The URL '${url} x' is invalid.`)
    } as unknown as BrowserTransport.WebSocketConstructor
    return connectFails(
      fixed("ws://user:s3cret@127.0.0.1:1/?token=t0ps3cret"),
      { _tag: "ConnectError", reason: "InvalidUrl" },
      {},
      BrowserTransport.layerWith(ChromeLike)
    )
  })

  it.live("server closes with 1008: Disconnected, and the open connection inspected", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const test = yield* server()
      const { channels, exit } = yield* instrumented((channels) =>
        Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(withSecrets(test.port), { headers: HEADERS })
          channels.set("connection", [inspect(connection), JSON.stringify(connection), connection.url])
          yield* test.closeAll(1008, "policy")
          const ended = yield* connection.closed
          errorChannels(channels, ended)
          yield* Effect.logError(ended)
          return ended
        }))
      )
      expect(Exit.isSuccess(exit) ? exit.value : Cause.pretty(exit.cause)).toMatchObject({
        _tag: "Disconnected",
        code: 1008
      })
      expectNoSecrets(channels, [...ERROR_CHANNELS, "logs", "spans", "connection"])
    })).pipe(provideNode))
})

describe("secrets: a ConnectError made elsewhere", () => {
  // By a custom Transport or user code, with the raw URL in every field and Node's TypeError (whose
  // `input` is the whole URL) as the cause: every rendering still redacts. (The cause object itself
  // is whoever made it's.)
  it.effect("renders redacted in message, String, JSON, toJSON and util.inspect, and in a logged Cause", () =>
    Effect.gen(function*() {
      const raw = "ws://user:s3cret@exa mple.com/?token=t0ps3cret"
      const cause = yield* Effect.try({ try: () => new URL(raw), catch: (error) => error }).pipe(Effect.flip)
      const error = new ConnectError({ reason: "InvalidUrl", url: raw, detail: `Invalid URL: ${raw}`, cause })
      const { channels } = yield* instrumented((channels) =>
        Effect.gen(function*() {
          errorChannels(channels, error, false)
          channels.set("exit", [inspect(Exit.fail(error))])
          yield* Effect.logError(error)
          return error
        })
      )
      expect(error.message).toBe(
        "InvalidUrl connecting to ws://redacted@exa%20mple.com/?token=redacted: Invalid URL: ws://redacted@exa%20mple.com/?token=redacted"
      )
      expectNoSecrets(channels, [...ERROR_CHANNELS, "exit", "logs"])
    }))

  it.effect("util.inspect, where the Node transport is loaded: the message, only the stack's frames, then the cause, redacted, with its code", () =>
    Effect.gen(function*() {
      const raw = "ws://user:s3cret@exa mple.com/?token=t0ps3cret"
      const cause = yield* Effect.try({ try: () => new URL(raw), catch: (error) => error }).pipe(Effect.flip)
      const error = new ConnectError({ reason: "InvalidUrl", url: raw, detail: "bad", cause })
      const lines = inspect(error).split("\n")
      expect(lines[0]).toBe(`ConnectError: ${error.message}`)
      expect(lines.slice(1, -1).every((line) => /^\s+at /.test(line))).toBe(true)
      expect(lines.length).toBeGreaterThan(2)
      expect(lines.at(-1)).toBe("  [cause]: TypeError: Invalid URL (ERR_INVALID_URL)")
    }))
})

describe("secrets: Client failures", () => {
  const at = (url: Client.Options["url"]) => Effect.succeed({ url })
  const atServer = (
    script: (test: TestServer.TestServer) => Effect.Effect<void>,
    after?: (test: TestServer.TestServer) => Effect.Effect<void>
  ) =>
    Effect.gen(function*() {
      const test = yield* server()
      yield* script(test)
      return { url: withSecrets(test.port), ...(after === undefined ? {} : { after: after(test) }) }
    })

  it.live("unparseable URL: Closed by ConnectError InvalidUrl", () =>
    clientFails(at("ws://user:s3cret@[::1/?token=t0ps3cret"), "Closed", { _tag: "ConnectError", reason: "InvalidUrl" }))

  it.live("unparseable URL from an Effect: Closed by ConnectError InvalidUrl", () =>
    clientFails(at(Effect.succeed("ws://user:s3cret@127.0.0.1:99999/?token=t0ps3cret")), "Closed", {
      _tag: "ConnectError",
      reason: "InvalidUrl"
    }))

  it.live("several endpoints, one unparseable, and an invalid option: Closed by ConnectError InvalidOptions", () =>
    clientFails(
      at(["ws://user:s3cret@[::1/?token=t0ps3cret", "ws://user:s3cret@127.0.0.1:1/?token=t0ps3cret"]),
      "Closed",
      { _tag: "ConnectError", reason: "InvalidOptions" },
      { outbox: { capacity: 0 } },
      // No attempt is made: no span.
      CLIENT_CHANNELS.filter((channel) => channel !== "spans")
    ))

  it.live("refused: in Backoff", () =>
    clientFails(
      Effect.map(closedPort, (port) => ({ url: withSecrets(port) })),
      "Backoff",
      { _tag: "ConnectError", reason: "ConnectionRefused" },
      { retry: Schedule.spaced("1 hour") }
    ))

  it.live("HTTP 401: Closed by HandshakeRejected (fatal)", () =>
    clientFails(atServer((test) => test.rejectNext(401)), "Closed", {
      _tag: "ConnectError",
      reason: "HandshakeRejected",
      status: 401
    }))

  it.live("HTTP 503 with Retry-After: in Backoff", () =>
    clientFails(atServer((test) => test.rejectNext(503, { "retry-after": "3600" })), "Backoff", {
      _tag: "ConnectError",
      reason: "HandshakeRejected",
      status: 503
    }))

  it.live("no answer to the upgrade: in Backoff after TimeoutError open", () =>
    clientFails(atServer((test) => test.hangHandshake), "Backoff", { _tag: "TimeoutError", operation: "open" }, {
      connection: { openTimeout: "100 millis" },
      retry: Schedule.spaced("1 hour")
    }))

  it.live("server closes with 1008: Closed by Disconnected 1008", () =>
    clientFails(
      atServer(() => Effect.void, (test) => Effect.zipRight(untilConnected(test), test.closeAll(1008, "policy"))),
      "Closed",
      { _tag: "Disconnected", code: 1008 }
    ))

  it.live("open with a secret URL and header values: state, events and the client inspected", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const test = yield* server()
      const { channels, exit } = yield* instrumented((channels) =>
        Effect.scoped(Effect.gen(function*() {
          const client = yield* Client.make({ url: withSecrets(test.port), headers: HEADERS, heartbeat: false })
          return yield* clientChannels(channels, client, "Open")
        }))
      )
      expect(Exit.isSuccess(exit) ? exit.value : Cause.pretty(exit.cause)).toMatchObject({ _tag: "Open" })
      expectNoSecrets(channels, ["logs", "spans", "state", "events", "client"])
    })).pipe(provideNode))
})
