/**
 * Review of round 24 (src/NodeTransport.ts's proxy watch): a failure before the agent hands the
 * request a socket is said to be the proxy's only when the agent names a proxy (its `proxy`, as
 * https-proxy-agent keeps it). An agent that dials the server itself may fail before handing over a
 * socket too (its `createConnection` calls back with an error, or waits for TLS): that failure is the
 * server's, left as it is, with the server's hint (tls.ca), not the proxy's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Schedule } from "effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Https from "node:https"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Duplex } from "node:stream"
import * as Tls from "node:tls"
import { Client, NodeTransport } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { awaitState, isTag, until } from "./support/clientKit.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { hasOpenssl, makeMaterial } from "./support/tlsMaterial.js"

const quiet = Logger.remove(Logger.defaultLogger)
const through = (agent: Http.Agent) => Effect.provide(Layer.merge(NodeTransport.layerWith({ agent }), quiet))

/** The error of the first failed attempt. */
const firstFailure = (url: string) =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url, retry: Schedule.spaced("50 millis"), heartbeat: false })
    const backoff = yield* awaitState(client, isTag("Backoff"))
    yield* client.close()
    return backoff
  })

type Callback = ((error: Error | null, stream: Duplex) => void) | undefined

/** Hands over its socket once TLS is up (as an agent-base `connect` that awaits it): a TLS failure comes first. */
class AwaitsTls extends Https.Agent {
  override createConnection(options: Http.RequestOptions, callback?: Callback): undefined {
    const socket = Tls.connect({ host: options.host ?? "127.0.0.1", port: Number(options.port), servername: "" })
    socket.once("secureConnect", () => callback?.(null, socket))
    socket.once("error", (error) => {
      socket.destroy()
      callback?.(error, socket)
    })
    return undefined
  }
}

/** Looks the host up itself, and calls back with the lookup's failure (no socket). */
class OwnLookup extends Http.Agent {
  override createConnection(_options: Http.ClientRequestArgs, callback?: Callback): undefined {
    const error = Object.assign(new Error("getaddrinfo ENOTFOUND db.internal"), {
      code: "ENOTFOUND",
      hostname: "db.internal"
    })
    setTimeout(() => callback?.(error, undefined as unknown as Duplex), 1)
    return undefined
  }
}

describe("review 24: a failure before the socket is the proxy's only through an agent that names one", () => {
  it.live.skipIf(!hasOpenssl)(
    "an agent that dials the server and waits for TLS: TlsFailed with the server's hint (tls.ca), no proxy named",
    () =>
      withNoHandlesLeft(Effect.gen(function*() {
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "lifeline-review24-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
        const material = makeMaterial(dir)
        const server = yield* TestServer.make({ tls: { cert: material.serverCert, key: material.serverKey } })
        const expected = {
          attempt: 1,
          error: {
            _tag: "ConnectError",
            reason: "TlsFailed",
            detail: "unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE); the issuer is not " +
              "trusted: give its CA in tls.ca (a server must also send its intermediate certificates)"
          }
        }
        expect(yield* firstFailure(server.url).pipe(through(new AwaitsTls()))).toMatchObject(expected)
        // a plain https.Agent (keepAlive, options) hands its socket over at once: the same failure
        const plain = new Https.Agent({ keepAlive: true, timeout: 5_000 })
        expect(yield* firstFailure(server.url).pipe(through(plain))).toMatchObject(expected)
      }))
  )

  it.live("an agent whose createConnection calls back with its own lookup's failure: DnsLookupFailed, no proxy named", () =>
    withNoHandlesLeft(Effect.gen(function*() {
      const server = yield* TestServer.make()
      const failed = yield* firstFailure(server.url).pipe(through(new OwnLookup()))
      expect(failed).toMatchObject({
        attempt: 1,
        error: {
          _tag: "ConnectError",
          reason: "DnsLookupFailed",
          detail: "getaddrinfo ENOTFOUND db.internal; check the host name"
        }
      })
      expect(yield* server.requests).toBe(0)
    })))

  it.live("an agent whose `proxy` getter throws: nothing thrown, no proxy named, the link opens", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make({ record: true })
        class Throwing extends Http.Agent {
          get proxy(): never {
            throw new Error("proxy getter")
          }
        }
        const agent = new Throwing()
        const client = yield* Client.make({ url: server.url, retry: Schedule.spaced("50 millis"), heartbeat: false })
          .pipe(
            through(agent)
          )
        yield* awaitState(client, isTag("Open"))
        yield* client.send("through an odd agent")
        yield* until("the server received it", () => Effect.map(server.received, (received) => received.length === 1))
        expect(yield* server.received).toEqual(["through an odd agent"])
        expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
        yield* client.close()
        agent.destroy()
      }).pipe(Effect.scoped)
    ))
})
