/**
 * `headers` and `tls` are checked and read by the Transport's `checkOptions` (the Node transport's).
 * A transport that wraps the Node one and builds its own object (`{ platform: "node", open }`)
 * has none: it would send no headers and no tls, silently (no Authorization header; a CA not
 * trusted, so a TlsFailed the Client retries). It is `InvalidOptions` naming the option instead.
 * A wrapper made as `{ ...inner, open }` keeps the checks, and sends both.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Logger, Redacted } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Client, Connection, NodeTransport, Transport } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { makeRecordingTransport } from "./support/recordingTransport.js"
import type { Material } from "./support/tlsMaterial.js"
import { hasOpenssl, makeMaterial, noMaterial } from "./support/tlsMaterial.js"
import { withSend } from "./support/wrappedTransport.js"

const dir = hasOpenssl ? mkdtempSync(join(tmpdir(), "lifeline-wrap-")) : undefined
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})
const material: Material = dir === undefined ? noMaterial : makeMaterial(dir)

const NOT_SENT =
  "not sent: this Node transport has no checkOptions (a wrapper passes it on: { ...inner, open }); fix the option named above"

/** The Node transport behind a wrapper that builds its own object: no `checkOptions`. */
const bare: Transport.Transport = {
  platform: "node",
  open: (request, listener) => NodeTransport.make.open(request, listener)
}
/** The same wrapper made the documented way. */
const spread: Transport.Transport = {
  ...NodeTransport.make,
  open: (request, listener) => NodeTransport.make.open(request, listener)
}

const over = (transport: Transport.Transport) =>
  Effect.provide(Layer.merge(Layer.succeed(Transport.Transport, transport), Logger.remove(Logger.defaultLogger)))

const token = { authorization: Redacted.make("Bearer s3cret") }

const invalid = (detail: string) => ({ _tag: "ConnectError", reason: "InvalidOptions", detail })

describe("a Node transport without checkOptions", () => {
  it.live("Connection.connect: a header or a tls is InvalidOptions naming it, before any socket; none or {} connects", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const failure = (options: Connection.Options) =>
        Connection.connect(server.url, options).pipe(Effect.flip, Effect.scoped, over(bare))
      expect(yield* failure({ headers: token })).toMatchObject(invalid(`headers: ${NOT_SENT}`))
      expect(yield* failure({ headers: { "x-app": "demo" }, openTimeout: "1 second" })).toMatchObject(
        invalid(`headers: ${NOT_SENT}`)
      )
      expect(yield* failure({ tls: { rejectUnauthorized: true } })).toMatchObject(invalid(`tls: ${NOT_SENT}`))
      expect(yield* server.accepted).toBe(0)
      // Nothing to send: nothing refused.
      yield* Connection.connect(server.url, { headers: {} }).pipe(Effect.scoped, over(bare))
      yield* Connection.connect(server.url).pipe(Effect.scoped, over(bare))
      expect(yield* server.accepted).toBe(2)
    })))

  it.live("Client.make: fixed headers, connection.tls and headers from an Effect close the Client with InvalidOptions, no handshake", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const closedWith = (options: Client.Options) =>
        Effect.gen(function*() {
          const client = yield* Client.make(options)
          return yield* Effect.flip(client.awaitOpen)
        }).pipe(Effect.scoped, over(bare))
      expect(yield* closedWith({ url: server.url, headers: token })).toMatchObject(invalid(`headers: ${NOT_SENT}`))
      expect(yield* closedWith({ url: server.url, connection: { tls: {} } })).toMatchObject(
        invalid(`connection.tls: ${NOT_SENT}`)
      )
      // Read at the attempt: the same refusal, which the Client does not retry.
      expect(yield* closedWith({ url: server.url, headers: Effect.succeed(token), heartbeat: false })).toMatchObject(
        invalid(`headers: ${NOT_SENT}`)
      )
      expect(yield* server.accepted).toBe(0)
    })))
})

describe("a wrapper of the Node transport that passes checkOptions on", () => {
  it.live("{ ...inner, open }: a Client's and a Connection's Redacted headers reach the server", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      yield* Connection.connect(server.url, { headers: token }).pipe(Effect.scoped, over(spread))
      expect((yield* server.lastRequestHeaders)["authorization"]).toBe("Bearer s3cret")
      yield* Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, headers: Effect.succeed({ "x-app": "demo" }) })
        yield* client.awaitOpen
      }).pipe(Effect.scoped, over(spread))
      expect((yield* server.lastRequestHeaders)["x-app"]).toBe("demo")
    })))

  it.live.skipIf(!hasOpenssl)(
    "{ ...inner, open }: tls.ca reaches the socket: a wss server with a private CA opens",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ tls: { cert: material.serverCert, key: material.serverKey } })
        const result = yield* Connection.connect(server.url, { tls: { ca: material.caCert } }).pipe(
          Effect.either,
          Effect.scoped,
          over(spread)
        )
        expect(Either.isRight(result) ? "open" : (result.left as ConnectError).reason).toBe("open")
      }))
  )

  it.live("the test kit's own wrappers (withSend, the recording transport) send headers", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const sent = withSend(NodeTransport.make, (socket, data, callback) => socket.send(data, callback))
      for (const transport of [sent, makeRecordingTransport().transport]) {
        yield* Connection.connect(server.url, { headers: token }).pipe(Effect.scoped, over(transport))
        expect((yield* server.lastRequestHeaders)["authorization"]).toBe("Bearer s3cret")
      }
    })))
})
