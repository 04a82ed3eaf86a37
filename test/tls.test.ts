// The `tls` option over real wss:// on 127.0.0.1: a throwaway CA and a server certificate for
// 127.0.0.1 (an IP subjectAltName) are made with the openssl CLI when the file runs, in a temp
// directory removed afterwards.
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Logger, LogLevel, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inspect } from "node:util"
import { Client, Connection, NodeTransport } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { awaitTrue } from "./support/poll.js"
import type { Material } from "./support/tlsMaterial.js"
import { hasOpenssl, makeMaterial, noMaterial, OPENSSL } from "./support/tlsMaterial.js"

if (!hasOpenssl) {
  console.warn(`\n*** test/tls.test.ts SKIPPED: ${OPENSSL} is missing, so no certificate can be made ***\n`)
}
const dir = hasOpenssl ? mkdtempSync(join(tmpdir(), "lifeline-tls-")) : undefined
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})
const material: Material = dir === undefined ? noMaterial : makeMaterial(dir)

const provideNode = Effect.provide(NodeTransport.layer)
const tlsServer = TestServer.make({ tls: { cert: material.serverCert, key: material.serverKey } })

const connectError = (url: string, options?: Connection.Options) =>
  Connection.connect(url, options).pipe(Effect.flip, Effect.scoped, provideNode)

const expectConnectError = (error: unknown): ConnectError => {
  expect(error).toMatchObject({ _tag: "ConnectError" })
  return error as ConnectError
}

/** A logger that keeps every line at Warning and above. */
const captureWarnings = () => {
  const lines: Array<{ level: string; message: string }> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push({ level: logLevel.label, message: String(Array.isArray(message) ? message[0] : message) })
  })
  return {
    lines,
    layer: Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.Warning))
  }
}

/** Any PEM body line of the key or certificate: none may show in an error, however deep. */
const pemLines = (pem: string) => pem.split("\n").filter((line) => line.length > 20 && !line.startsWith("-----"))

const echoOnce = (connection: Connection.Connection, text: string) =>
  Effect.gen(function*() {
    yield* connection.send(text)
    return Chunk.toArray(yield* connection.messages.pipe(Stream.take(1), Stream.runCollect))
  })

describe.skipIf(!hasOpenssl)("tls: wss:// to a server with a private CA", () => {
  it.live("default options: ConnectError TlsFailed (the CA is not trusted)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* tlsServer
      expect(server.url.startsWith("wss://127.0.0.1:")).toBe(true)
      const error = expectConnectError(yield* connectError(server.url))
      expect(error.reason).toBe("TlsFailed")
      expect(error.detail).toContain("UNABLE_TO_VERIFY_LEAF_SIGNATURE")
      expect(yield* server.accepted).toBe(0)
    })))

  it.live("tls.ca as PEM text: opens and echoes", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* tlsServer
      const connection = yield* Connection.connect(server.url, { tls: { ca: material.caCert } })
      expect(yield* echoOnce(connection, "over tls")).toEqual(["over tls"])
    })).pipe(provideNode))

  it.live("an https:// URL is dialled as wss:// (as the WHATWG WebSocket and ws do)", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* tlsServer
      const url = server.url.replace(/^wss:/, "https:")
      const connection = yield* Connection.connect(url, { tls: { ca: material.caCert } })
      expect(connection.url).toBe(new URL(server.url).href)
      expect(yield* echoOnce(connection, "https")).toEqual(["https"])
    })).pipe(provideNode))

  it.live("tls.ca as bytes in an array: opens and echoes", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* tlsServer
      const connection = yield* Connection.connect(server.url, {
        tls: { ca: [new TextEncoder().encode(material.caCert)] }
      })
      expect(yield* echoOnce(connection, "bytes")).toEqual(["bytes"])
    })).pipe(provideNode))

  it.live("tls.servername is used for the certificate check: a name the certificate lacks is TlsFailed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* tlsServer
      const error = expectConnectError(
        yield* connectError(server.url, { tls: { ca: material.caCert, servername: "example.com" } })
      )
      expect(error.reason).toBe("TlsFailed")
      expect(error.detail).toContain("ERR_TLS_CERT_ALTNAME_INVALID")
    })))

  it.live("rejectUnauthorized: false opens; two connects with the same options log exactly one warning", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const capture = captureWarnings()
      const server = yield* tlsServer
      const options: Connection.Options = { tls: { rejectUnauthorized: false } }
      for (let attempt = 0; attempt < 2; attempt++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const connection = yield* Connection.connect(server.url, options)
          expect(yield* echoOnce(connection, `unverified ${attempt}`)).toEqual([`unverified ${attempt}`])
        })).pipe(Effect.provide(capture.layer))
      }
      expect(yield* server.accepted).toBe(2)
      expect(capture.lines).toEqual([{
        level: "WARN",
        message: `lifeline: TLS certificate verification is off (tls.rejectUnauthorized: false) for ${server.url}/; ` +
          "anyone on the path can read and change the traffic (logged once per tls options object)"
      }])
    })).pipe(provideNode))

  it.live("rejectUnauthorized: false on a Client that reconnects: one warning", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const capture = captureWarnings()
      const server = yield* tlsServer
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Client.make({ url: server.url, connection: { tls: { rejectUnauthorized: false } } })
        yield* client.awaitOpen
        yield* client.reconnect
        yield* awaitTrue(Effect.map(server.accepted, (n) => n >= 2), "2 accepted")
        yield* awaitState(client, isTag("Open"))
        expect(yield* server.accepted).toBe(2)
      })).pipe(Effect.provide(capture.layer))
      expect(capture.lines.map((line) => line.level)).toEqual(["WARN"])
      expect(capture.lines[0]?.message).toContain("tls.rejectUnauthorized: false")
    })).pipe(provideNode))

  it.live("a client key and certificate never show in an error, its message, inspection or JSON", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* tlsServer
      // Valid material (the server's own pair, as a client certificate) but an untrusted CA: TlsFailed.
      const error = expectConnectError(
        yield* connectError(server.url, { tls: { cert: material.serverCert, key: material.serverKey } })
      )
      expect(error.reason).toBe("TlsFailed")
      const rendered = [
        error.message,
        error.detail,
        String(error),
        inspect(error, { depth: null }),
        JSON.stringify(error)
      ].join("\n")
      for (const line of [...pemLines(material.serverKey), ...pemLines(material.serverCert)]) {
        expect(rendered).not.toContain(line)
      }
      expect(rendered).not.toContain("PRIVATE KEY")
    })))

  it.live("key material Node cannot use: ConnectError InvalidOptions, the material not echoed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* tlsServer
      const secret = "not-a-key-but-a-secret-all-the-same"
      const error = expectConnectError(
        yield* connectError(server.url, { tls: { ca: material.caCert, cert: material.serverCert, key: secret } })
      )
      expect(error.reason).toBe("InvalidOptions")
      expect(error.detail).toContain("tls: Node cannot use the ca, cert or key given")
      expect([error.message, inspect(error, { depth: null }), JSON.stringify(error)].join("\n")).not.toContain(secret)
    })))
})

describe("tls: option shape", () => {
  const secret = "-----BEGIN PRIVATE KEY-----secret"
  it.effect.each(
    [
      ["tls that is not an object", { tls: "yes" }, "tls: must be an object"],
      ["an unknown tls key", { tls: { rejectUnauthorised: false } }, "tls: unknown option \"rejectUnauthorised\""],
      ["a number as ca", { tls: { ca: 42 } }, "tls.ca: must be PEM text or bytes"],
      [
        "an array with a number as cert",
        { tls: { cert: ["pem", 1], key: secret } },
        "tls.cert: must be PEM text or bytes"
      ],
      ["an object as key", { tls: { key: { pem: secret }, cert: "pem" } }, "tls.key: must be PEM text or bytes"],
      ["a key without a cert", { tls: { key: secret } }, "tls: key and cert go together"],
      ["a number as servername", { tls: { servername: 1 } }, "tls.servername: must be a string"],
      [
        "a string as rejectUnauthorized",
        { tls: { rejectUnauthorized: "false" } },
        "tls.rejectUnauthorized: must be true or false"
      ]
    ] as const
  )("%s: ConnectError InvalidOptions, no value echoed", ([_, options, detail]) =>
    Effect.gen(function*() {
      const error = expectConnectError(
        yield* connectError("wss://127.0.0.1:1/", options as unknown as Connection.Options)
      )
      expect(error.reason).toBe("InvalidOptions")
      expect(error.detail.startsWith(detail)).toBe(true)
      expect([error.message, inspect(error, { depth: null })].join("\n")).not.toContain("secret")
    }))
})
