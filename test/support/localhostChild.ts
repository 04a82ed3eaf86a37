// `ws://localhost:PORT` against servers on 127.0.0.1 only, on ::1 only, on both, and on neither:
//   node [--no-network-family-autoselection] --import tsx test/support/localhostChild.ts
// Each case under two resolvers: this host's own, and one that answers `localhost` as ::1 then
// 127.0.0.1 (what getaddrinfo gives on a host whose /etc/hosts lists both, ::1 first), standing in
// for Node's `dns.lookup` (which net.connect calls). One Client per case, `shouldRetry: () => false`
// (Closed with the first error). Prints one JSON line: per case, the outcome, the Client's
// endpoint or error, and which address the server saw.
import { Effect, Option } from "effect"
import { createRequire } from "node:module"
import * as Net from "node:net"
import { WebSocketServer } from "ws"
import { Client } from "../../src/index.js"
import { describeError, emit, quiet, strays } from "./opsChild.js"

type Lookup = (host: string, options: unknown, callback: unknown) => void
const dns = createRequire(import.meta.url)("node:dns") as { lookup: Lookup }
const systemLookup = dns.lookup
let dualStack = false
dns.lookup = (host, options, callback) => {
  if (!dualStack || host !== "localhost") return systemLookup(host, options, callback)
  const given = typeof options === "function" ? {} : (options as { family?: number; all?: boolean })
  const done = (typeof options === "function" ? options : callback) as (...args: Array<unknown>) => void
  const answers = [{ address: "::1", family: 6 }, { address: "127.0.0.1", family: 4 }].filter(
    (answer) => given.family === undefined || given.family === 0 || answer.family === given.family
  )
  process.nextTick(() => given.all === true ? done(null, answers) : done(null, answers[0]!.address, answers[0]!.family))
}

const listen = (host: string, port: number) =>
  new Promise<WebSocketServer>((resolve, reject) => {
    const server: WebSocketServer = new WebSocketServer({ host, port }, () => resolve(server))
    server.on("error", reject)
  })

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = Net.createServer()
    probe.listen(0, "127.0.0.1", () => {
      const port = (probe.address() as Net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })

const main = async () => {
  const cases: Array<unknown> = []
  for (const resolver of ["system", "dual"] as const) {
    dualStack = resolver === "dual"
    for (const hosts of [["127.0.0.1"], ["::1"], ["127.0.0.1", "::1"], []]) {
      const port = await freePort()
      const servers = await Promise.all(hosts.map((host) => listen(host, port)))
      const seen: Array<string> = []
      for (const server of servers) {
        server.on("connection", (_ws, request) => seen.push(request.socket.localAddress ?? "?"))
      }
      const outcome = await Effect.runPromise(
        Effect.gen(function*() {
          const client = yield* Client.make({ url: `ws://localhost:${port}/feed`, shouldRetry: () => false })
          yield* client.awaitOpen.pipe(Effect.timeout("5 seconds"), Effect.either)
          const state = yield* client.state.get
          if (state._tag === "Open") return { state: "Open", endpoint: state.endpoint.replace(String(port), "PORT") }
          if (state._tag !== "Closed") return { state: state._tag }
          return Option.match(state.error, {
            onNone: () => ({ state: "Closed" }),
            onSome: (error) => ({
              state: "Closed",
              error: describeError(error),
              message: error.message.replaceAll(String(port), "PORT")
            })
          })
        }).pipe(Effect.scoped, Effect.provide(quiet))
      )
      cases.push({ resolver, servers: hosts.join("+") || "none", ...outcome, seen })
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    }
  }
  emit({ autoSelectFamily: Net.getDefaultAutoSelectFamily(), cases, strays })
}
main()
