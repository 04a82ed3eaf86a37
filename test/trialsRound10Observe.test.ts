/**
 * Round 10 trials: logs, metrics and traces wired the Effect way, as a service that holds Clients
 * does (its own Logger and level, `annotateLogs` / `withLogSpan` around `make`, `Metric.snapshot`,
 * a Tracer), against real TestServers on 127.0.0.1:
 * - the lines of a link that goes down and of a close carry the endpoint (fixed: a `link down`
 *   WARN, a Backoff and a Closed had no `lifeline.url`, and a Disconnected's message has no URL:
 *   a service with two Clients could not tell which link went down);
 * - `lifeline_outbox_depth` is the messages waiting in every Client's outbox (fixed: each Client
 *   set the process-wide gauge to its own size, so a second Client's open or close reset it to 0
 *   while the first's messages still waited);
 * - the metrics' exact counts and tags, with a URL that holds a password and a token, and two
 *   Clients on one endpoint; a JSON logger's fields keep no secret;
 * - the spans: `lifeline.connect` per attempt under the span around `make`, `lifeline.send` under
 *   the sender's span.
 * Quiet: every logger here captures, none prints. Loopback only; every wait bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Effect,
  Exit,
  Fiber,
  HashMap,
  Layer,
  List,
  Logger,
  LogLevel,
  Metric,
  Option,
  Schedule,
  Stream,
  Tracer
} from "effect"
import { Client, NodeTransport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"
import { closedPort } from "./support/ports.js"

/** The Client's attempts on callbacks (no option runs user code), or on the supervisor fiber (an `onOpen`). */
const paths = [
  ["on callbacks", {}],
  ["on the supervisor fiber", { onOpen: () => Effect.void }]
] as const

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
  readonly spans: ReadonlyArray<string>
}

/** A Logger that keeps every line (level, message, annotations, log spans), at LogLevel.All. */
const capturing = () => {
  const lines: Array<Line> = []
  const logger = Logger.make(({ annotations, logLevel, message, spans }) => {
    lines.push({
      level: logLevel.label,
      message: String(Array.isArray(message) ? message[0] : message),
      annotations: Object.fromEntries(HashMap.toEntries(annotations)),
      spans: List.toArray(spans).map((span) => span.label)
    })
  })
  return {
    lines,
    layer: Layer.mergeAll(
      NodeTransport.layer,
      Logger.replace(Logger.defaultLogger, logger),
      Logger.minimumLogLevel(LogLevel.All)
    )
  }
}

const quiet = Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))
const fast = Schedule.spaced("10 millis")

/** lifeline's metrics in the default registry, as a user reads them (`Metric.snapshot`). */
const lifelineMetrics = Effect.map(
  Metric.snapshot,
  (pairs) => pairs.filter((pair) => pair.metricKey.name.startsWith("lifeline_"))
)

/** The state of metric `name` whose tags are exactly `tags` (undefined if there is none). */
const metricState = (name: string, tags: Record<string, string> = {}) =>
  Effect.map(lifelineMetrics, (pairs) => {
    for (const pair of pairs) {
      const keyTags = pair.metricKey.tags
      if (pair.metricKey.name !== name || keyTags.length !== Object.keys(tags).length) continue
      if (keyTags.every((tag) => tags[tag.key] === tag.value)) return pair.metricState as unknown
    }
    return undefined
  })

const count = (name: string, tags: Record<string, string> = {}) =>
  Effect.map(metricState(name, tags), (state) => (state as { count?: number } | undefined)?.count ?? 0)

const outboxDepth = Effect.map(
  metricState("lifeline_outbox_depth"),
  (state) => (state as { value?: number } | undefined)?.value ?? 0
)

describe("round 10: logs", () => {
  for (const [path, extra] of paths) {
    it.live(`${path}: every line carries the annotations and log span of make; link down, back and Closed name the endpoint`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const capture = capturing()
        const url = yield* Effect.gen(function*() {
          const server = yield* TestServer.make()
          const client = yield* Client.make({ url: server.url, retry: fast, ...extra }).pipe(
            Effect.annotateLogs("tenant", "t1"),
            Effect.withLogSpan("boot")
          )
          yield* client.awaitOpen
          yield* server.kill
          yield* awaitState(client, isTag("Backoff"))
          yield* server.restart
          yield* awaitState(client, isTag("Open"))
          // Closed by the scope's finalizer, as an app's Layer closes it.
          return `${server.url}/`
        }).pipe(Effect.scoped, Effect.provide(capture.layer))
        const lines = capture.lines.filter((line) => line.message.startsWith("lifeline:"))
        const kinds = lines.map((line) => [line.level, line.message.split(/[ :]+/)[1]])
        expect(kinds).toEqual([
          ["DEBUG", "Connecting"],
          ["DEBUG", "Open"],
          ["WARN", "link"],
          ["DEBUG", "Connecting"],
          ["INFO", "link"],
          ["DEBUG", "Closed"]
        ])
        expect(lines[2]!.message).toMatch(/^lifeline: link down: disconnected by transport with code 1006/)
        // The Disconnected's message has no URL: the annotation is what names the link.
        expect(lines[2]!.message).not.toContain("127.0.0.1")
        for (const line of lines) {
          expect(line.annotations).toEqual({ tenant: "t1", "lifeline.url": url })
          expect(line.spans).toEqual(["boot"])
        }
      })))
  }

  it.live("close called under other annotations: the Closed line carries make's, and names the link it closed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const capture = capturing()
      const url = yield* Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url }).pipe(Effect.annotateLogs("tenant", "t1"))
        yield* client.awaitOpen
        yield* client.close().pipe(Effect.annotateLogs("request", "r9"), Effect.withLogSpan("shutdown"))
        return `${server.url}/`
      }).pipe(Effect.scoped, Effect.provide(capture.layer))
      const closed = capture.lines.filter((line) => line.message === "lifeline: Closed")
      expect(closed.map((line) => [line.level, line.annotations, line.spans])).toEqual([
        ["DEBUG", { tenant: "t1", "lifeline.url": url }, []]
      ])
    })))

  it.live("a Closed by an error after a Disconnected (the schedule gave up) names the endpoint", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const capture = capturing()
      const url = yield* Effect.gen(function*() {
        const server = yield* TestServer.make()
        const client = yield* Client.make({ url: server.url, retry: Schedule.recurs(0) })
        yield* client.awaitOpen
        yield* server.closeAll(4000, "bye")
        const closed = (yield* awaitState(client, isTag("Closed"))) as Extract<Client.ClientState, { _tag: "Closed" }>
        expect(Option.map(closed.error, (error) => error._tag)).toEqual(Option.some("Disconnected"))
        return `${server.url}/`
      }).pipe(Effect.scoped, Effect.provide(capture.layer))
      const warnings = capture.lines.filter((line) => line.level === "WARN")
      expect(warnings.map((line) => line.message)).toEqual([
        "lifeline: closed by disconnected by server with code 4000 \"bye\"; not retrying"
      ])
      expect(warnings[0]!.annotations).toEqual({ "lifeline.url": url })
    })))

  it.live("Logger.json: no field of any line holds the URL's password, its token or a header value", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const lines: Array<string> = []
      const json = Logger.map(Logger.jsonLogger, (line) => {
        lines.push(line)
      })
      yield* Effect.gen(function*() {
        const server = yield* TestServer.make()
        const url = `${server.url.replace("ws://", "ws://user:hunter2@")}/feed?token=s3cr3t`
        const client = yield* Client.make({ url, retry: fast, headers: { authorization: "Bearer t0k3n" } }).pipe(
          Effect.annotateLogs("service", "quotes")
        )
        yield* client.awaitOpen
        yield* server.kill
        yield* awaitState(client, isTag("Backoff"))
        yield* server.restart
        yield* awaitState(client, isTag("Open"))
      }).pipe(
        Effect.scoped,
        Effect.provide(Layer.mergeAll(
          NodeTransport.layer,
          Logger.replace(Logger.defaultLogger, json),
          Logger.minimumLogLevel(LogLevel.All)
        ))
      )
      const parsed = lines.map((line) => JSON.parse(line) as { annotations: Record<string, unknown> })
      expect(parsed.length).toBeGreaterThanOrEqual(6)
      for (const line of parsed) {
        expect(line.annotations["lifeline.url"]).toMatch(/^ws:\/\/redacted@127\.0\.0\.1:\d+\/feed\?token=redacted$/)
        expect(line.annotations["service"]).toBe("quotes")
      }
      for (const secret of ["hunter2", "s3cr3t", "t0k3n"]) expect(lines.join("\n")).not.toContain(secret)
    })))
})

describe("round 10: metrics", () => {
  it.live("exact counts and redacted tags: two Clients on one endpoint, failures by reason, a reconnect, frames both ways", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ handler: "ignore" })
      const url = `${server.url.replace("ws://", "ws://user:hunter2@")}/m?token=s3cr3t`
      const endpoint = { endpoint: `ws://redacted@127.0.0.1:${server.port}/m?token=redacted` }
      const before = {
        out: yield* count("lifeline_messages_out"),
        bytesOut: yield* count("lifeline_bytes_out"),
        in: yield* count("lifeline_messages_in"),
        bytesIn: yield* count("lifeline_bytes_in")
      }
      yield* server.rejectNext(503, {}, 3)
      const a = yield* Client.make({ url, retry: fast })
      yield* a.awaitOpen
      const b = yield* Client.make({ url, retry: fast })
      yield* b.awaitOpen
      expect(yield* count("lifeline_connect_failures", { reason: "HandshakeRejected", ...endpoint })).toBe(3)
      expect(yield* count("lifeline_connects", endpoint)).toBe(2)
      expect(yield* count("lifeline_reconnects", endpoint)).toBe(0)
      yield* server.kill
      yield* awaitState(a, isTag("Backoff"))
      yield* awaitState(b, isTag("Backoff"))
      yield* server.restart
      yield* a.awaitOpen
      yield* b.awaitOpen
      expect(yield* count("lifeline_connects", endpoint)).toBe(4)
      expect(yield* count("lifeline_reconnects", endpoint)).toBe(2)
      yield* a.send("héllo")
      yield* a.send(new Uint8Array(3))
      yield* b.send("x")
      expect((yield* count("lifeline_messages_out")) - before.out).toBe(3)
      expect((yield* count("lifeline_bytes_out")) - before.bytesOut).toBe(9)
      const readers = yield* Effect.fork(Effect.all([Stream.runHead(a.messages), Stream.runHead(b.messages)]))
      yield* server.broadcast("ünder")
      expect(yield* Fiber.join(readers)).toEqual([Option.some("ünder"), Option.some("ünder")])
      expect((yield* count("lifeline_messages_in")) - before.in).toBe(2)
      expect((yield* count("lifeline_bytes_in")) - before.bytesIn).toBe(10)
      // Every key that holds the endpoint holds it redacted.
      const pairs = yield* lifelineMetrics
      const texts = pairs.flatMap((pair) => pair.metricKey.tags.map((tag) => tag.value))
      expect(texts.filter((text) => text.includes("hunter2") || text.includes("s3cr3t"))).toEqual([])
    })).pipe(Effect.scoped, Effect.provide(quiet)))

  it.live("lifeline_outbox_depth counts the messages waiting in every Client's outbox", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const start = yield* outboxDepth
      const down = yield* Effect.map(closedPort, (port) => `ws://127.0.0.1:${port}`)
      const server = yield* TestServer.make()
      const a = yield* Client.make({ url: down, retry: fast })
      const b = yield* Client.make({ url: down, retry: fast })
      for (let index = 0; index < 3; index++) yield* a.enqueue(`a${index}`)
      for (let index = 0; index < 2; index++) yield* b.enqueue(`b${index}`)
      expect(yield* outboxDepth).toBe(start + 5)
      // A send whose sender stops waiting (a timeout) leaves the outbox, and the count.
      const timedOut = yield* a.send("late").pipe(Effect.timeout("20 millis"), Effect.exit)
      expect(Exit.isFailure(timedOut)).toBe(true)
      expect(yield* outboxDepth).toBe(start + 5)
      // A third Client that opens (its empty outbox flushed) and closes leaves the count as it was.
      yield* Effect.gen(function*() {
        const c = yield* Client.make({ url: server.url })
        yield* c.awaitOpen
        expect(yield* outboxDepth).toBe(start + 5)
      }).pipe(Effect.scoped)
      expect(yield* outboxDepth).toBe(start + 5)
      // Closing one fails its queued messages: only its own leave the count, and each is counted failed.
      const failed = yield* count("lifeline_messages_failed")
      expect(yield* b.close()).toEqual(["b0", "b1"])
      expect(yield* outboxDepth).toBe(start + 3)
      expect((yield* count("lifeline_messages_failed")) - failed).toBe(2)
      expect(yield* a.close()).toEqual(["a0", "a1", "a2"])
      expect(yield* outboxDepth).toBe(start)
      expect((yield* count("lifeline_messages_failed")) - failed).toBe(5)
    })).pipe(Effect.scoped, Effect.provide(quiet)))
})

describe("round 10: traces", () => {
  interface Recorded {
    readonly name: string
    readonly span: Tracer.Span
  }
  /** A Tracer that keeps every span it makes (Effect's own spans underneath), as `Layer.setTracer` installs it. */
  const recording = (spans: Array<Recorded>) =>
    Layer.unwrapEffect(Effect.map(Effect.tracer, (inner) =>
      Layer.setTracer(Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          const span = inner.span(name, parent, context, links, startTime, kind, options)
          spans.push({ name, span })
          return span
        },
        context: (f, fiber) => inner.context(f, fiber)
      }))))

  const parentName = (spans: ReadonlyArray<Recorded>, span: Tracer.Span): string | undefined =>
    Option.match(span.parent, {
      onNone: () => undefined,
      onSome: (parent) => spans.find((recorded) => recorded.span.spanId === parent.spanId)?.name
    })

  const exitTag = (span: Tracer.Span): string | undefined =>
    span.status._tag === "Ended" ? (Exit.isSuccess(span.status.exit) ? "Success" : "Failure") : undefined

  for (const [path, extra] of paths) {
    it.live(`${path}: each attempt's lifeline.connect is a child of the span around make, a queued send's lifeline.send of its sender's`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const spans: Array<Recorded> = []
        yield* Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.kill
          const client = yield* Client.make({ url: `${server.url}/t?token=s3cr3t`, retry: fast, ...extra }).pipe(
            Effect.withSpan("app.boot")
          )
          const queued = yield* Effect.fork(client.send("queued").pipe(Effect.withSpan("app.publish")))
          yield* awaitState(client, isTag("Backoff"))
          yield* server.restart
          yield* Fiber.join(queued)
          yield* client.send("direct").pipe(Effect.withSpan("app.direct"))
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(quiet, recording(spans))))
        const connects = spans.filter((recorded) => recorded.name === "lifeline.connect")
        expect(connects.length).toBeGreaterThanOrEqual(2)
        for (const { span } of connects) {
          expect(parentName(spans, span)).toBe("app.boot")
          expect(span.attributes.get("lifeline.url")).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/t\?token=redacted$/)
        }
        expect(connects.map(({ span }) => exitTag(span))).toEqual([
          ...connects.slice(1).map(() => "Failure"),
          "Success"
        ])
        const sends = spans.filter((recorded) => recorded.name === "lifeline.send")
        expect(sends.map(({ span }) => [parentName(spans, span), exitTag(span)])).toEqual([["app.publish", "Success"]])
        expect(spans.map((recorded) => recorded.name).filter((name) => name.startsWith("lifeline.")).sort()).toEqual(
          [...connects.map(() => "lifeline.connect"), "lifeline.send"]
        )
        expect(spans.filter(({ span }) => span.status._tag !== "Ended")).toEqual([])
      })))

    it.live(`${path}: an attempt cut short by close ends its span (interrupted), and so does a send that waited`, () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const spans: Array<Recorded> = []
        yield* Effect.gen(function*() {
          const server = yield* TestServer.make()
          yield* server.hangHandshake
          const client = yield* Client.make({ url: server.url, retry: fast, ...extra })
          const queued = yield* Effect.fork(Effect.exit(client.send("queued").pipe(Effect.withSpan("app.publish"))))
          yield* awaitState(client, isTag("Connecting"))
          yield* awaitTrue(Effect.map(server.requests, (requests) => requests >= 1), "the handshake began")
          yield* client.close()
          const sent = yield* Fiber.join(queued)
          expect(Exit.isFailure(sent)).toBe(true)
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(quiet, recording(spans))))
        const lifeline = spans.filter(({ name }) => name.startsWith("lifeline."))
        expect(lifeline.map(({ name, span }) => [name, exitTag(span)]).sort()).toEqual([
          ["lifeline.connect", "Failure"],
          ["lifeline.send", "Failure"]
        ])
      })))
  }
})
