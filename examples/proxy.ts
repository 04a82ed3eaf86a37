/**
 * Behind an HTTP proxy: every outbound connection goes through the proxy that `HTTPS_PROXY` names
 * (HTTP CONNECT, with its user and password if it has them), except to the hosts `NO_PROXY` lists.
 * The agent is https-proxy-agent's, the one ws users pass; `NodeTransport.layerWith` gives it to
 * every connection, chosen per URL by the function. Run `npx tsx examples/proxy.ts`: a TestServer
 * and a small CONNECT proxy on 127.0.0.1, the Client through the proxy.
 */
import { Console, Effect, Stream } from "effect"
import { Client, NodeTransport } from "effect-lifeline"
import type { ClientError, SendError } from "effect-lifeline"
import { TestServer } from "effect-lifeline/testing"
import { HttpsProxyAgent } from "https-proxy-agent"
import * as Http from "node:http"
import * as Net from "node:net"

/** The variables a proxied app reads (as curl and most tools do). */
export interface ProxyEnv {
  readonly HTTPS_PROXY?: string | undefined
  readonly NO_PROXY?: string | undefined
}

/** The Node transport for `env`: through the proxy when `HTTPS_PROXY` is set, direct to the `NO_PROXY` hosts. */
export const transportFor = (env: ProxyEnv) => {
  const proxy = env.HTTPS_PROXY
  if (proxy === undefined || proxy === "") return NodeTransport.layer
  const agent = new HttpsProxyAgent(proxy)
  return NodeTransport.layerWith({ agent: (url) => NodeTransport.bypassesProxy(env.NO_PROXY, url) ? undefined : agent })
}

/** The app: one Client, one message out, its answer back. */
export const main = (url: string, env: ProxyEnv): Effect.Effect<string, ClientError | SendError> =>
  Effect.gen(function*() {
    const client = yield* Client.make({ url })
    yield* client.awaitOpen
    yield* client.send("hello through the proxy")
    const [answer] = yield* client.messages.pipe(Stream.take(1), Stream.runCollect)
    return String(answer)
  }).pipe(Effect.scoped, Effect.provide(transportFor(env)))

if (import.meta.url === `file://${process.argv[1]}`) {
  /** A CONNECT proxy on 127.0.0.1 that logs each tunnel: the part a corporate network provides. */
  const connectProxy = Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer((_, response) => response.writeHead(405).end())
      server.on("connect", (request: Http.IncomingMessage, client: Net.Socket) => {
        const [host = "", port = ""] = (request.url ?? "").split(":")
        console.log(`proxy: CONNECT ${host}:${port}`)
        const upstream = Net.connect(Number(port), host, () => {
          client.write("HTTP/1.1 200 Connection Established\r\n\r\n")
          upstream.pipe(client).pipe(upstream)
        })
        upstream.on("error", () => client.destroy())
        client.on("error", () => upstream.destroy())
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  )
  const standalone = Effect.gen(function*() {
    const server = yield* TestServer.make({ handler: (message, reply) => reply(`server says: ${String(message)}`) })
    const proxy = yield* connectProxy
    const address = proxy.address() as Net.AddressInfo
    yield* Console.log(yield* main(server.url, { HTTPS_PROXY: `http://127.0.0.1:${address.port}` }))
  })
  Effect.runPromise(Effect.scoped(standalone)).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
}
