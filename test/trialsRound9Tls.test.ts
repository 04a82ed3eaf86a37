/**
 * Round 9: wss:// against real TLS stacks on 127.0.0.1, as a service adopting lifeline meets them:
 * nginx terminating TLS in front of a TestServer (certificate rotation by reload, SNI with
 * `server_name` blocks, an `http2` listen), Python's `ssl` under `websockets` 10.4 (echo, close
 * codes, a server that requires a client certificate), certificates that are wrong in the ways
 * users meet (expired, not yet valid, another name, self-signed, a chain without its
 * intermediate), and servers that stall the handshake. Certificates are made with the openssl CLI
 * in a temp directory when the file runs (no key material is committed). Skipped with one warning
 * when openssl, nginx or Python's websockets is missing.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Option, Redacted, Stream } from "effect"
import * as Fs from "node:fs"
import * as Https from "node:https"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"
import { inspect } from "node:util"
import { Client, Connection, Reconnect } from "../src/index.js"
import type { ConnectError } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import type { TlsOptions } from "../src/Transport.js"
import { awaitState, isTag } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { hasNginx, nginx, proxyTo } from "./support/nginx.js"
import { provideNode } from "./support/node.js"
import { closedPort } from "./support/ports.js"
import { hasWebsockets, listen, pythonEcho, spawnPython } from "./support/python.js"
import type { Issued } from "./support/tlsMaterial.js"
import { encryptedKey, hasOpenssl, issue } from "./support/tlsMaterial.js"

const missing = [
  ...(hasOpenssl ? [] : ["openssl"]),
  ...(hasNginx ? [] : ["nginx"]),
  ...(hasWebsockets ? [] : ["python3 websockets"])
]
if (missing.length > 0) {
  console.warn(`\n*** test/trialsRound9Tls.test.ts: parts SKIPPED, missing: ${missing.join(", ")} ***\n`)
}

const dir = hasOpenssl ? Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-r9tls-")) : ""
afterAll(() => {
  if (dir !== "") Fs.rmSync(dir, { recursive: true, force: true })
})

const make = () => {
  const ca = issue(dir, "CA one", undefined, { ca: true })
  const otherCa = issue(dir, "CA two", undefined, { ca: true })
  const intermediate = issue(dir, "Intermediate one", ca, { ca: true })
  const viaIntermediate = issue(dir, "via-intermediate", intermediate)
  return {
    ca,
    otherCa,
    intermediate,
    server: issue(dir, "server", ca),
    rotated: issue(dir, "rotated", ca),
    recovered: issue(dir, "recovered", ca),
    fromOtherCa: issue(dir, "other-ca-server", otherCa),
    client: issue(dir, "client", ca),
    rogueClient: issue(dir, "rogue-client", otherCa),
    expired: issue(dir, "expired", ca, { startdate: "20200101000000Z", enddate: "20200102000000Z" }),
    notYetValid: issue(dir, "not-yet-valid", ca, { startdate: "20400101000000Z", enddate: "20400102000000Z" }),
    otherName: issue(dir, "example.com", ca, { san: "DNS:example.com" }),
    selfSigned: issue(dir, "self-signed", undefined),
    viaIntermediate,
    a: issue(dir, "a.test", ca, { san: "DNS:a.test" }),
    b: issue(dir, "b.test", ca, { san: "DNS:b.test" })
  }
}
type Certificates = ReturnType<typeof make>
const certs: Certificates = hasOpenssl ? make() : (undefined as unknown as Certificates)

const expectConnectError = (error: unknown): ConnectError => {
  expect(error).toMatchObject({ _tag: "ConnectError" })
  return error as ConnectError
}

const connectError = (url: string, options?: Connection.Options) =>
  Connection.connect(url, { openTimeout: "5 seconds", ...options }).pipe(Effect.flip, Effect.scoped)

/** Every rendering of an error: none may show a PEM body line or a private key's header. */
const rendered = (error: ConnectError) =>
  [error.message, error.detail, String(error), inspect(error, { depth: null }), JSON.stringify(error)].join("\n")

const pemLines = (...pems: Array<string>) =>
  pems.flatMap((pem) => pem.split("\n").filter((line) => line.length > 20 && !line.startsWith("-----")))

const expectNoSecrets = (error: ConnectError, ...pairs: Array<Issued>) => {
  const text = rendered(error)
  for (const line of pemLines(...pairs.flatMap((pair) => [pair.key, pair.cert]))) expect(text).not.toContain(line)
  expect(text).not.toContain("PRIVATE KEY")
}

const echoOnce = (connection: Connection.Connection, text: string) =>
  Effect.gen(function*() {
    yield* connection.send(text)
    return Chunk.toArray(yield* connection.messages.pipe(Stream.take(1), Stream.runCollect))
  })

/** A short backoff: a TlsFailed that is retried shows its attempts within a bounded wait. */
const shortRetry = Reconnect.exponentialBackoff({ base: "20 millis", cap: "100 millis" })

const UNTRUSTED_HINT =
  "the issuer is not trusted: give its CA in tls.ca (a server must also send its intermediate certificates)"
const AFTER_TLS = "after the TLS handshake, before the server answered the upgrade; a server that requires a " +
  "client certificate closes so when it gets none or one it does not trust (tls.cert, tls.key); " +
  "else retrying usually helps"

describe.skipIf(!hasOpenssl)("round 9: certificates wrong in the ways users meet (a Node https server)", () => {
  it.effect.each(
    [
      [
        "expired",
        "expired",
        "certificate has expired (CERT_HAS_EXPIRED); the server's certificate has expired " +
        "(or this machine's clock is wrong): the server must renew it"
      ],
      [
        "not yet valid",
        "notYetValid",
        "certificate is not yet valid (CERT_NOT_YET_VALID); the server's certificate is not valid yet " +
        "(or this machine's clock is wrong)"
      ],
      [
        "for another name (DNS:example.com, dialled as 127.0.0.1)",
        "otherName",
        "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list:  " +
        "(ERR_TLS_CERT_ALTNAME_INVALID); the certificate does not name the host dialled: dial a name it lists, " +
        "or set tls.servername to one"
      ],
      [
        "self-signed leaf",
        "selfSigned",
        "self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT); the server's certificate is self-signed: " +
        "give that certificate in tls.ca to trust it"
      ],
      [
        "chain missing its intermediate",
        "viaIntermediate",
        `unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE); ${UNTRUSTED_HINT}`
      ],
      [
        "from another CA",
        "fromOtherCa",
        `unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE); ${UNTRUSTED_HINT}`
      ]
    ] as const
  )(
    "%s: ConnectError TlsFailed, the detail names the cause and what to do, no key material",
    ([_, which, detail]) =>
      withNoHandlesLeft(Effect.gen(function*() {
        const pair = certs[which]
        const server = yield* TestServer.make({ tls: pair })
        const error = expectConnectError(yield* connectError(server.url, { tls: { ca: certs.ca.cert } }))
        expect(error.reason).toBe("TlsFailed")
        expect(error.detail).toBe(detail)
        expect(yield* server.accepted).toBe(0)
        expectNoSecrets(error, pair, certs.ca)
      })).pipe(provideNode)
  )

  it.live("a Node https server that requires a client certificate and gets none: TlsFailed, OpenSSL's alert in one line, the hint names tls.cert", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = Https.createServer({
        cert: certs.server.cert,
        key: certs.server.key,
        ca: certs.ca.cert,
        requestCert: true,
        rejectUnauthorized: true
      })
      server.on("tlsClientError", () => {})
      const port = yield* Effect.acquireRelease(
        Effect.async<number>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
        }),
        () =>
          Effect.async<void>((resume) => {
            server.closeAllConnections()
            server.close(() => resume(Effect.void))
          })
      )
      const error = expectConnectError(yield* connectError(`wss://127.0.0.1:${port}/`, { tls: { ca: certs.ca.cert } }))
      expect(error.reason).toBe("TlsFailed")
      expect(error.detail).toBe(
        "tlsv13 alert certificate required (SSL alert number 116) (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED); " +
          "the server refused the client certificate or got none: check tls.cert and tls.key, " +
          "and that the server trusts their CA"
      )
    })).pipe(provideNode))

  it.effect.each(
    [
      ["a file path", "path", ""],
      ["DER bytes", "der", ""],
      ["a file path after a good CA in an array", "array", "entry 1 "]
    ] as const
  )(
    "tls.ca given as %s (Node would ignore it and trust no CA): InvalidOptions naming it, not retried, nothing dialled",
    ([_, given, entry]) =>
      withNoHandlesLeft(Effect.gen(function*() {
        const server = yield* TestServer.make({ tls: certs.server })
        const der = new Uint8Array(Buffer.from(certs.ca.cert.replace(/-----[A-Z ]+-----|\s/g, ""), "base64"))
        const ca = given === "path"
          ? certs.ca.certFile
          : given === "der"
          ? der
          : [certs.otherCa.cert, certs.ca.certFile]
        const client = yield* Client.make({ url: server.url, connection: { tls: { ca } }, retry: shortRetry })
        const closed = yield* awaitState(client, isTag("Closed"))
        const error = expectConnectError(
          Option.getOrThrow((closed as Extract<Client.ClientState, { _tag: "Closed" }>).error)
        )
        expect(error.reason).toBe("InvalidOptions")
        expect(error.detail).toBe(
          `connection.tls.ca: ${entry}holds no PEM certificate (-----BEGIN CERTIFICATE-----), and Node would ignore it; ` +
            "a file path or DER bytes? give the PEM text (e.g. fs.readFileSync(path, \"utf8\")); fix the option named above"
        )
        expect(error.detail).not.toContain(certs.ca.certFile)
        expect(yield* server.accepted).toBe(0)
      })).pipe(provideNode)
  )

  it.live("an encrypted client key without tls.passphrase: InvalidOptions that says so, before any socket, the key not echoed", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ tls: certs.server })
      const key = encryptedKey(certs.client, "passphrase-9")
      const error = expectConnectError(
        yield* connectError(server.url, { tls: { ca: certs.ca.cert, cert: certs.client.cert, key } })
      )
      expect(error.reason).toBe("InvalidOptions")
      expect(error.detail).toBe(
        "tls.key: an encrypted private key: give its passphrase in tls.passphrase; fix the option named above"
      )
      for (const line of pemLines(key)) expect(rendered(error)).not.toContain(line)
      expect(yield* server.accepted).toBe(0)
    })).pipe(provideNode))

  it.live("an encrypted client key with its tls.passphrase opens; a wrong passphrase is InvalidOptions, never shown", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ tls: certs.server })
      const key = encryptedKey(certs.client, "passphrase-9")
      const tls = { ca: certs.ca.cert, cert: certs.client.cert, key }
      const opened = yield* Effect.scoped(
        Effect.flatMap(
          Connection.connect(server.url, { tls: { ...tls, passphrase: "passphrase-9" } }),
          (connection) => echoOnce(connection, "decrypted")
        )
      )
      expect(opened).toEqual(["decrypted"])
      const error = expectConnectError(
        yield* connectError(server.url, { tls: { ...tls, passphrase: "wrong-passphrase-7" } })
      )
      expect(error.reason).toBe("InvalidOptions")
      // OpenSSL's words depend on the garbage a wrong passphrase decrypts to: "bad decrypt" when the
      // padding check fails, a DECODER error in the rare run (about 1 in 256) where it passes.
      expect(error.detail).toMatch(
        /^tls: Node cannot use the ca, cert or key given \(.*(bad decrypt|DECODER routines).*\); fix the option named above$/
      )
      expect(rendered(error)).not.toContain("wrong-passphrase-7")
      expect(yield* server.accepted).toBe(1)
    })).pipe(provideNode))

  it.live("tls.cert given as a file path: InvalidOptions that names PEM text, before any socket", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ tls: certs.server })
      const error = expectConnectError(
        yield* connectError(server.url, {
          tls: { ca: certs.ca.cert, cert: certs.client.certFile, key: certs.client.key }
        })
      )
      expect(error.reason).toBe("InvalidOptions")
      expect(error.detail).toBe(
        "tls: Node cannot use the ca, cert or key given (error:0480006C:PEM routines::no start line), not PEM text: " +
          "a file path or DER bytes? give the PEM text; fix the option named above"
      )
      expect(yield* server.accepted).toBe(0)
    })).pipe(provideNode))

  it.live("a server that speaks TLS 1.1 at most: TlsFailed, OpenSSL's alert in one line, the hint names the version", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = Tls.createServer({
        cert: certs.server.cert,
        key: certs.server.key,
        minVersion: "TLSv1",
        maxVersion: "TLSv1.1",
        ciphers: "DEFAULT:@SECLEVEL=0"
      })
      server.on("tlsClientError", () => {})
      const port = yield* Effect.acquireRelease(
        Effect.async<number>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
        }),
        () =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
          })
      )
      const error = expectConnectError(yield* connectError(`wss://127.0.0.1:${port}/`, { tls: { ca: certs.ca.cert } }))
      expect(error.reason).toBe("TlsFailed")
      expect(error.detail).toBe(
        "write EPROTO tlsv1 alert protocol version (SSL alert number 70); " +
          "the server and Node share no TLS version (Node's default minimum is TLS 1.2)"
      )
    })).pipe(provideNode))

  it.live("an expired certificate on a Client: TlsFailed retried with its backoff (default shouldRetry), never opened, not spinning", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make({ tls: certs.expired })
      const client = yield* Client.make({
        url: server.url,
        connection: { tls: { ca: certs.ca.cert } },
        retry: shortRetry
      })
      const backoff = yield* awaitState(client, (s) => s._tag === "Backoff" && s.attempt === 3)
      expect(backoff).toMatchObject({ _tag: "Backoff", error: { _tag: "ConnectError", reason: "TlsFailed" } })
      // 500 ms with delays of 20 to 100 ms (jittered): a handful of attempts, not thousands
      yield* Effect.sleep("500 millis")
      const state = yield* client.state.get
      expect(state._tag === "Backoff" || state._tag === "Connecting").toBe(true)
      const attempt = (state as { attempt: number }).attempt
      expect(attempt).toBeGreaterThan(3)
      expect(attempt).toBeLessThan(60)
      expect(yield* server.accepted).toBe(0)
      expect(yield* client.close()).toEqual([])
    })).pipe(provideNode))

  it.effect.each(
    [
      ["the full chain served (leaf and intermediate)", "chain", { ca: "root" }],
      ["the intermediate given in tls.ca with the root", "leaf", { ca: "root+intermediate" }],
      ["a CA bundle whose first CA is unrelated", "server", { ca: "other+root" }],
      ["tls as a Redacted", "server", { ca: "redacted" }]
    ] as const
  )("%s: opens and echoes", ([_, served, { ca }]) =>
    withNoHandlesLeft(Effect.gen(function*() {
      const pair = served === "chain"
        ? { cert: certs.viaIntermediate.cert + certs.intermediate.cert, key: certs.viaIntermediate.key }
        : served === "leaf"
        ? certs.viaIntermediate
        : certs.server
      const tls = ca === "root"
        ? { ca: certs.ca.cert }
        : ca === "root+intermediate"
        ? { ca: [certs.ca.cert, certs.intermediate.cert] }
        : ca === "other+root"
        ? { ca: [certs.otherCa.cert, new TextEncoder().encode(certs.ca.cert)] }
        : Redacted.make({ ca: certs.ca.cert })
      const server = yield* TestServer.make({ tls: pair })
      const connection = yield* Connection.connect(server.url, { tls })
      expect(yield* echoOnce(connection, "chain")).toEqual(["chain"])
    })).pipe(provideNode))
})

describe.skipIf(!hasOpenssl)("round 9: a handshake that stalls", () => {
  /** A server on 127.0.0.1 whose accepted sockets are destroyed with the scope. */
  const serve = (server: Net.Server) =>
    Effect.acquireRelease(
      Effect.async<{ port: number; sockets: Array<Net.Socket> }>((resume) => {
        const sockets: Array<Net.Socket> = []
        // a tls.Server's 'connection' is the TCP socket under its TLS one
        server.on("connection", (socket: Net.Socket) => sockets.push(socket))
        server.on("tlsClientError", () => {})
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          resume(Effect.succeed({ port: typeof address === "object" && address !== null ? address.port : 0, sockets }))
        })
      }),
      ({ sockets }) =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )

  it.live("wss:// to a TCP server that accepts and sends nothing: TimeoutError open, no handle left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const { port } = yield* serve(Net.createServer())
      const error = yield* connectError(`wss://127.0.0.1:${port}/`, {
        tls: { ca: certs.ca.cert },
        openTimeout: "300 millis"
      })
      expect(error).toMatchObject({ _tag: "TimeoutError", operation: "open" })
    })).pipe(provideNode))

  it.live("wss:// to a tls.Server that reads the ClientHello and never answers: TimeoutError open, no handle left", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      // the SNI callback that never calls back holds the handshake after the ClientHello
      const stalled = Tls.createServer({ cert: certs.server.cert, key: certs.server.key, SNICallback: () => {} })
      const { port } = yield* serve(stalled)
      const error = yield* connectError(`wss://127.0.0.1:${port}/`, {
        tls: { ca: certs.ca.cert, servername: "localhost" },
        openTimeout: "300 millis"
      })
      expect(error).toMatchObject({ _tag: "TimeoutError", operation: "open" })
    })).pipe(provideNode))
})

/** nginx terminating TLS on `tlsPort` with `pair`, and plain HTTP on `plainPort`, both to `upstream`. */
const terminating = (tlsPort: number, plainPort: number, upstream: number, pair: Issued) => `
  server {
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${pair.certFile};
    ssl_certificate_key ${pair.keyFile};
${proxyTo(upstream)}
  }
  server {
    listen 127.0.0.1:${plainPort};
${proxyTo(upstream)}
  }`

/** A short, exact description of a state, for the record of transitions. */
const describeState = (state: Client.ClientState): string => {
  switch (state._tag) {
    case "Connecting":
    case "Open":
      return `${state._tag} #${state.attempt}`
    case "Backoff": {
      const error = state.error as unknown as Record<string, unknown>
      return error._tag === "Disconnected"
        ? `Backoff Disconnected ${String(error.code)}`
        : `Backoff ${String(error._tag)} ${String(error.reason)}`
    }
    default:
      return state._tag
  }
}

describe.skipIf(!hasOpenssl || !hasNginx)("round 9: nginx terminating TLS in front of a TestServer", () => {
  it.scopedLive(
    "rotation by reload: same CA, the Client reconnects and opens; another CA, TlsFailed retried (not spinning), detail without key material; back to the first CA, open again",
    () =>
      Effect.gen(function*() {
        const upstream = yield* TestServer.make({})
        const tlsPort = yield* closedPort
        const plainPort = yield* closedPort
        const proxy = yield* nginx(() => terminating(tlsPort, plainPort, upstream.port, certs.server), [
          tlsPort,
          plainPort
        ])
        const client = yield* Client.make({
          url: `wss://127.0.0.1:${tlsPort}/`,
          connection: { tls: { ca: certs.ca.cert } },
          retry: shortRetry
        })
        const states: Array<string> = []
        yield* Effect.forkScoped(Stream.runForEach(client.state.changes, (state) =>
          Effect.sync(() => {
            states.push(describeState(state))
          })))
        yield* client.awaitOpen
        yield* client.send("before")

        // a new certificate from the same CA: the old worker closes its connections within 1 s
        // (worker_shutdown_timeout), the Client reconnects to the new worker and verifies its certificate
        yield* proxy.reload(terminating(tlsPort, plainPort, upstream.port, certs.rotated))
        yield* awaitState(client, (s) => s._tag === "Open" && s.attempt >= 2, "20 seconds")
        expect(yield* upstream.accepted).toBe(2)

        // a certificate from another CA: every attempt fails verification, and is retried
        yield* proxy.reload(terminating(tlsPort, plainPort, upstream.port, certs.fromOtherCa))
        const failed = yield* awaitState(
          client,
          (s) => s._tag === "Backoff" && s.error._tag === "ConnectError",
          "10 seconds"
        )
        const error = expectConnectError((failed as Extract<Client.ClientState, { _tag: "Backoff" }>).error)
        expect(error.reason).toBe("TlsFailed")
        expect(error.detail).toBe(
          `unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE); ${UNTRUSTED_HINT}`
        )
        expectNoSecrets(error, certs.fromOtherCa, certs.server, certs.rotated)
        const first = (failed as { attempt: number }).attempt
        yield* Effect.sleep("400 millis")
        const later = (yield* client.state.get) as { attempt?: number }
        expect(later.attempt! - first).toBeGreaterThan(0)
        expect(later.attempt! - first).toBeLessThan(50)
        expect(yield* upstream.accepted).toBe(2)

        // the operator fixes the rotation: the retries find the good certificate
        yield* proxy.reload(terminating(tlsPort, plainPort, upstream.port, certs.recovered))
        yield* awaitState(client, isTag("Open"), "20 seconds")
        expect(yield* upstream.accepted).toBe(3)
        expect(states.slice(0, 5)).toEqual([
          "Connecting #1",
          "Open #1",
          "Backoff Disconnected 1006",
          "Connecting #2",
          "Open #2"
        ])
        expect(
          states.filter((s) => s.startsWith("Backoff ConnectError")).every((s) =>
            s === "Backoff ConnectError TlsFailed"
          )
        )
          .toBe(true)
        expect(yield* client.close()).toEqual([])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive(
    "the wrong scheme: ws:// at nginx's TLS port is HandshakeRejected 400, not retried; wss:// at its plain port is TlsFailed, one line, naming a plain server",
    () =>
      Effect.gen(function*() {
        const upstream = yield* TestServer.make({})
        const tlsPort = yield* closedPort
        const plainPort = yield* closedPort
        yield* nginx(() => terminating(tlsPort, plainPort, upstream.port, certs.server), [tlsPort, plainPort])

        const client = yield* Client.make({ url: `ws://127.0.0.1:${tlsPort}/`, retry: shortRetry })
        const closed = yield* awaitState(client, isTag("Closed"))
        expect(closed).toMatchObject({
          _tag: "Closed",
          error: Option.some({ _tag: "ConnectError", reason: "HandshakeRejected", status: 400 })
        })

        const error = expectConnectError(
          yield* connectError(`wss://127.0.0.1:${plainPort}/`, { tls: { ca: certs.ca.cert } })
        )
        expect(error.reason).toBe("TlsFailed")
        // OpenSSL's text, shortened to its reason: no address, no build path, no newline
        expect(error.detail).toBe(
          "write EPROTO wrong version number; the server does not speak TLS on that port (a ws:// server?)"
        )
        expect(yield* upstream.accepted).toBe(0)
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive(
    "SNI: tls.servername picks nginx's certificate and is what is verified; nginx routes by Host, so a name-routed block also needs headers.host; an http2 listen serves HTTP/1.1 to ws (no ALPN)",
    () =>
      Effect.gen(function*() {
        const upstreamA = yield* TestServer.make({ handler: (message, reply) => reply(`A:${String(message)}`) })
        const upstreamB = yield* TestServer.make({ handler: (message, reply) => reply(`B:${String(message)}`) })
        const port = yield* closedPort
        const block = (name: string, pair: Issued, upstream: number, extra: string) => `
  server {
    listen 127.0.0.1:${port} ssl http2${extra};
    server_name ${name};
    ssl_certificate ${pair.certFile};
    ssl_certificate_key ${pair.keyFile};
${proxyTo(upstream)}
  }`
        yield* nginx(
          () =>
            block("a.test", certs.a, upstreamA.port, " default_server") + block("b.test", certs.b, upstreamB.port, ""),
          [port]
        )
        const url = `wss://127.0.0.1:${port}/`
        const echo = (options: Connection.Options) =>
          Effect.scoped(Effect.flatMap(Connection.connect(url, options), (connection) => echoOnce(connection, "x")))

        // no SNI (an IP sends none): the default block's certificate, which does not name 127.0.0.1
        const noName = expectConnectError(yield* connectError(url, { tls: { ca: certs.ca.cert } }))
        expect(noName.reason).toBe("TlsFailed")
        expect(noName.detail).toContain(
          "(ERR_TLS_CERT_ALTNAME_INVALID); the certificate does not name the host dialled"
        )

        expect(yield* echo({ tls: { ca: certs.ca.cert, servername: "a.test" } })).toEqual(["A:x"])
        // b.test's certificate, verified against b.test; but the Host header is 127.0.0.1:<port>
        expect(yield* echo({ tls: { ca: certs.ca.cert, servername: "b.test" } })).toEqual(["A:x"])
        expect(yield* echo({ tls: { ca: certs.ca.cert, servername: "b.test" }, headers: { host: "b.test" } }))
          .toEqual(["B:x"])
        const redacted = Redacted.make<TlsOptions>({ ca: certs.ca.cert, servername: "b.test" })
        expect(yield* echo({ tls: redacted, headers: { Host: "b.test" } }))
          .toEqual(["B:x"])

        const unknown = expectConnectError(
          yield* connectError(url, { tls: { ca: certs.ca.cert, servername: "c.test" } })
        )
        expect(unknown.reason).toBe("TlsFailed")
        expect(unknown.detail).toContain("Host: c.test. is not in the cert's altnames: DNS:a.test")
        expect(yield* upstreamA.accepted).toBe(2)
        expect(yield* upstreamB.accepted).toBe(2)
      }).pipe(provideNode),
    30_000
  )
})

describe.skipIf(!hasOpenssl || !hasNginx)("round 9: nginx that requires a client certificate", () => {
  it.scopedLive(
    "ssl_verify_client on: the right certificate opens; none, or one from another CA, is HandshakeRejected 400 (nginx answers after TLS), not retried",
    () =>
      Effect.gen(function*() {
        const upstream = yield* TestServer.make({})
        const port = yield* closedPort
        yield* nginx(() => `
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${certs.server.certFile};
    ssl_certificate_key ${certs.server.keyFile};
    ssl_client_certificate ${certs.ca.certFile};
    ssl_verify_client on;
${proxyTo(upstream.port)}
  }`, [port])
        const url = `wss://127.0.0.1:${port}/`
        const connection = yield* Connection.connect(url, {
          tls: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key }
        })
        expect(yield* echoOnce(connection, "mutual")).toEqual(["mutual"])
        for (
          const tls of [{ ca: certs.ca.cert }, {
            ca: certs.ca.cert,
            cert: certs.rogueClient.cert,
            key: certs.rogueClient.key
          }]
        ) {
          const client = yield* Client.make({ url, connection: { tls }, retry: shortRetry })
          const closed = yield* awaitState(client, isTag("Closed"))
          expect(closed).toMatchObject({
            _tag: "Closed",
            error: Option.some({ _tag: "ConnectError", reason: "HandshakeRejected", status: 400 })
          })
        }
        expect(yield* upstream.accepted).toBe(1)
      }).pipe(provideNode),
    30_000
  )
})

/**
 * Echoes; a message "close:<code>" is answered by a close with that code and reason "bye". With a
 * CA file as third argument, a client certificate from that CA is required; prints `PEER <CN>`.
 */
const PYTHON_SERVER = `import asyncio, ssl, sys, websockets
port = int(sys.stdin.readline())
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
if len(sys.argv) > 3:
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(sys.argv[3])
async def handler(ws):
    peer = ws.transport.get_extra_info("peercert")
    sys.stdout.write("PEER %s\\n" % (dict(x[0] for x in peer["subject"])["commonName"] if peer else "-"))
    async for m in ws:
        if m.startswith("close:"):
            await ws.close(int(m[6:]), "bye")
        else:
            await ws.send(m)
async def main():
    async with websockets.serve(handler, "127.0.0.1", port, ssl=ctx) as server:
        sys.stdout.write("PORT %d\\n" % server.sockets[0].getsockname()[1])
        await asyncio.Future()
asyncio.run(main())
`

const pythonTls = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const script = Path.join(dir, "r9server.py")
    if (!Fs.existsSync(script)) Fs.writeFileSync(script, PYTHON_SERVER)
    const peers: Array<string> = []
    const server = yield* spawnPython(script, (line) => {
      if (line.startsWith("PEER ")) peers.push(line.slice(5))
    }, args)
    const port = yield* listen(server, 0)
    return { port, peers }
  })

describe.skipIf(!hasOpenssl || !hasWebsockets)("round 9: Python websockets 10.4 over ssl", () => {
  it.scopedLive(
    "echo over wss://, and the server's close code 4001 'bye' as Disconnected",
    () =>
      Effect.gen(function*() {
        const server = yield* pythonTls([certs.server.certFile, certs.server.keyFile])
        const connection = yield* Connection.connect(`wss://127.0.0.1:${server.port}/`, { tls: { ca: certs.ca.cert } })
        expect(yield* echoOnce(connection, "over python ssl")).toEqual(["over python ssl"])
        yield* connection.send("close:4001")
        expect(yield* connection.closed).toMatchObject({
          _tag: "Disconnected",
          code: 4001,
          reason: "bye",
          wasClean: true,
          initiator: "server"
        })
        expect(server.peers).toEqual(["-"])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive(
    "wss:// at a plain Python websockets server: TlsFailed 'wrong version number', naming a plain server",
    () =>
      Effect.gen(function*() {
        const port = new URL(yield* pythonEcho).port
        const error = expectConnectError(
          yield* connectError(`wss://127.0.0.1:${port}/`, { tls: { ca: certs.ca.cert } })
        )
        expect(error.reason).toBe("TlsFailed")
        expect(error.detail).toBe(
          "write EPROTO wrong version number; the server does not speak TLS on that port (a ws:// server?)"
        )
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive(
    "a server that requires a client certificate: the right one opens; none, or one from another CA, is ConnectionReset whose detail says the TLS handshake completed and names the client certificate; ws:// at the TLS port keeps the plain hint",
    () =>
      Effect.gen(function*() {
        const server = yield* pythonTls([certs.server.certFile, certs.server.keyFile, certs.ca.certFile])
        const url = `wss://127.0.0.1:${server.port}/`
        const connection = yield* Connection.connect(url, {
          tls: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key }
        })
        expect(yield* echoOnce(connection, "mutual")).toEqual(["mutual"])
        expect(server.peers).toEqual(["client"])

        // Python's ssl closes without a TLS alert: ws reports "socket hang up"
        const none = expectConnectError(yield* connectError(url, { tls: { ca: certs.ca.cert } }))
        expect(none.reason).toBe("ConnectionReset")
        expect(none.detail).toBe(`socket hang up (ECONNRESET); ${AFTER_TLS}`)

        const rogue = expectConnectError(
          yield* connectError(url, {
            tls: { ca: certs.ca.cert, cert: certs.rogueClient.cert, key: certs.rogueClient.key }
          })
        )
        expect(rogue.reason).toBe("ConnectionReset")
        expect(rogue.detail).toBe(`socket hang up (ECONNRESET); ${AFTER_TLS}`)
        expectNoSecrets(rogue, certs.rogueClient)

        // ws:// at the TLS port: no TLS handshake at all, the plain ConnectionReset
        const plain = expectConnectError(yield* connectError(`ws://127.0.0.1:${server.port}/`))
        expect(plain.reason).toBe("ConnectionReset")
        expect(plain.detail).toBe(
          "socket hang up (ECONNRESET); the connection dropped during the handshake; retrying usually helps"
        )
        expect(server.peers).toEqual(["client"])
      }).pipe(provideNode),
    30_000
  )
})
