// A Node HTTP server that makes a Client per request (connect, send, read one reply, close), under
// a bounded load from the same process, in a fresh process started with --expose-gc:
//   node --expose-gc --import tsx test/support/httpPerRequestChild.ts <requests> <concurrency>
// Every request gets an HTTP answer: 200 with the echo, or 502 with the typed error's tag and
// reason. The echo server is restarted once halfway, so some requests meet a server that is down.
// Two rounds of `requests`, the echo server killed and restarted halfway through each. Prints one
// JSON line: the answers by status and body, the heap after GC and the active handles after the
// first round and after the second, and the handles once the servers closed. Loopback only.
import { Effect, Layer, Logger, Option, Stream } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"
import { Client, NodeTransport } from "../../src/index.js"
import { TestServer } from "../../src/testing/index.js"

const [requestsText, concurrencyText] = process.argv.slice(2)
const requests = Number(requestsText)
const concurrency = Number(concurrencyText)
const gc = (globalThis as { gc?: () => void }).gc
if (!Number.isInteger(requests) || !Number.isInteger(concurrency) || gc === undefined) {
  process.stderr.write("usage: node --expose-gc --import tsx httpPerRequestChild.ts <requests> <concurrency>\n")
  process.exit(2)
}

const settle = async (): Promise<number> => {
  await new Promise((resolve) => setTimeout(resolve, 100))
  let previous = Number.POSITIVE_INFINITY
  for (let round = 0; round < 6; round++) {
    gc!()
    await new Promise((resolve) => setImmediate(resolve))
    const heap = process.memoryUsage().heapUsed
    if (heap >= previous * 0.998) break
    previous = heap
  }
  return process.memoryUsage().heapUsed
}

const handles = (): Record<string, number> => {
  const counts: Record<string, number> = {}
  // Not the pipes of this process's own stdout and stderr.
  for (const name of process.getActiveResourcesInfo()) if (name !== "PipeWrap") counts[name] = (counts[name] ?? 0) + 1
  return counts
}

const quiet = Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))

/** One request's work: a Client of its own, one echo, closed with the request. */
const handle = (url: string, body: string) =>
  Effect.scoped(Effect.gen(function*() {
    // No retry: a request does not wait out a backoff, it fails typed.
    const client = yield* Client.make({ url, shouldRetry: () => false, heartbeat: false })
    yield* client.awaitOpen
    yield* client.send(body)
    const reply = yield* Stream.runHead(client.messages)
    if (Option.isSome(reply)) return reply.value
    // `messages` ended with no reply: the Client was Closed (by an error here: no retry); its state says why.
    const state = yield* client.state.get
    return yield* Effect.fail(state._tag === "Closed" && Option.isSome(state.error) ? state.error.value : state)
  })).pipe(Effect.provide(quiet))

const program = Effect.gen(function*() {
  const echo = yield* TestServer.make({ record: false })
  const http = Http.createServer((request, response) => {
    const id = request.url ?? "/"
    Effect.runPromise(Effect.either(handle(echo.url, id))).then((result) => {
      if (result._tag === "Right") {
        response.writeHead(200).end(String(result.right))
      } else {
        const error = result.left as { readonly _tag: string; readonly reason?: unknown }
        const detail = error._tag === "Disconnected" ? (error as { readonly code?: number }).code : error.reason
        response.writeHead(502).end(`${error._tag}${detail === undefined ? "" : ` ${String(detail)}`}`)
      }
    })
  })
  yield* Effect.acquireRelease(
    Effect.async<void>((resume) => void http.listen(0, "127.0.0.1", () => resume(Effect.void))),
    () => Effect.async<void>((resume) => void http.close(() => resume(Effect.void)))
  )
  const port = (http.address() as Net.AddressInfo).port
  const agent = new Http.Agent({ keepAlive: true, maxSockets: concurrency })

  const get = (path: string) =>
    Effect.async<{ readonly status: number; readonly body: string }>((resume) => {
      const request = Http.get({ host: "127.0.0.1", port, path, agent }, (response) => {
        let body = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => body += chunk)
        response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, body })))
      })
      request.on("error", (error) => resume(Effect.succeed({ status: -1, body: error.message })))
    })

  const answers: Record<string, number> = {}
  let wrongEcho = 0
  const round = (prefix: string) =>
    Effect.forEach(Array.from({ length: requests }, (_, i) => i), (i) =>
      Effect.gen(function*() {
        // Halfway: the echo server goes down for a moment, then comes back on the same port.
        if (i === Math.floor(requests / 2)) {
          yield* Effect.fork(Effect.andThen(echo.kill, Effect.delay(echo.restart, "30 millis")))
        }
        const path = `/${prefix}${i}`
        const { body, status } = yield* get(path)
        const key = status === 200 ? "200" : `${status} ${body}`
        answers[key] = (answers[key] ?? 0) + 1
        if (status === 200 && body !== path) wrongEcho++
      }), { concurrency, discard: true })

  // The first round pays what is paid once (modules, JIT, metric keys, the first Runtime); the
  // second's heap after GC is compared with the first's.
  yield* round("a")
  const heapBefore = yield* Effect.promise(settle)
  const handlesBefore = handles()
  yield* round("b")
  agent.destroy()
  const heapAfter = yield* Effect.promise(settle)
  const handlesAfter = handles()
  return { answers, wrongEcho, heapBefore, heapAfter, handlesBefore, handlesAfter }
})

Effect.runPromise(Effect.scoped(program)).then((result) => {
  // After the servers closed: what the process still holds (the process must then exit by itself).
  setImmediate(() => process.stdout.write(`${JSON.stringify({ ...result, handlesEnd: handles() })}\n`))
})
