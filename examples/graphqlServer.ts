/**
 * The server side of `graphql.ts`: graphql-ws's own server (`useServer`) on a `ws`
 * `WebSocketServer` on 127.0.0.1, with a small schema: a query (`hello`), a finite subscription
 * (`count(to)`) and an endless one (`ticks`) fed by the caller (`publish`). It records every
 * connection's `connection_init` and every `subscribe` it is sent, per connection, so a test can
 * say what reached it. Not lifeline: this is what your GraphQL server would be.
 */
import { Effect, Schedule } from "effect"
import type { Scope } from "effect"
import { buildSchema } from "graphql"
import { useServer } from "graphql-ws/use/ws"
import { WebSocketServer } from "ws"

const schema = buildSchema(`
  type Query { hello: String }
  type Subscription { count(to: Int!): Int, ticks: Int }
`)

export interface GraphQLServer {
  readonly url: string
  readonly port: number
  /** Every connection, in order: the `subscribe` ids each was sent and the codes it closed with. */
  readonly connections: ReadonlyArray<{ readonly subscribed: Array<string>; closed: number | undefined }>
  /** Sends `value` to every running `ticks` subscription. */
  readonly publish: (value: number) => void
  /** Running `ticks` subscriptions. */
  readonly listeners: () => number
  /** Ends every link at once (no close frame), as a crash does, and stops listening. */
  readonly kill: Effect.Effect<void>
}

export interface ServeOptions {
  /** 0: any free port. */
  readonly port?: number
  /** What `onConnect` answers: false refuses the connection (graphql-ws closes it with 4403 Forbidden). */
  readonly accept?: (params: Record<string, unknown> | undefined) => boolean
}

/** A graphql-ws server, stopped with the scope. */
export const serve = (options: ServeOptions = {}): Effect.Effect<GraphQLServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    // A port just freed may take a moment to bind again: a few tries.
    const wss = yield* Effect.async<WebSocketServer, Error>((resume) => {
      const server: WebSocketServer = new WebSocketServer(
        { host: "127.0.0.1", port: options.port ?? 0 },
        () => resume(Effect.succeed(server))
      )
      server.once("error", (error) => resume(Effect.fail(error)))
    }).pipe(Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(50)))), Effect.orDie)
    const tickers = new Set<(value: number) => void>()
    const connections: Array<{ subscribed: Array<string>; closed: number | undefined }> = []
    const records = new WeakMap<object, { subscribed: Array<string>; closed: number | undefined }>()
    const record = (extra: object) => {
      let found = records.get(extra)
      if (found === undefined) {
        found = { subscribed: [], closed: undefined }
        records.set(extra, found)
        connections.push(found)
      }
      return found
    }
    const ticks = () => {
      // An async iterator over the values published while it runs.
      const waiting: Array<number> = []
      let wake: (() => void) | undefined
      const push = (value: number) => {
        waiting.push(value)
        wake?.()
      }
      tickers.add(push)
      return {
        [Symbol.asyncIterator]() {
          return this
        },
        async next(): Promise<IteratorResult<{ ticks: number }>> {
          while (waiting.length === 0) await new Promise<void>((resolve) => wake = resolve)
          return { done: false, value: { ticks: waiting.shift()! } }
        },
        async return(): Promise<IteratorResult<{ ticks: number }>> {
          tickers.delete(push)
          return { done: true, value: undefined }
        }
      }
    }
    const cleanup = useServer({
      schema,
      roots: {
        query: { hello: () => "world" },
        subscription: {
          async *count({ to }: { to: number }) {
            for (let n = 1; n <= to; n++) yield { count: n }
          },
          ticks
        }
      },
      onConnect: (ctx) => {
        record(ctx.extra)
        return options.accept?.(ctx.connectionParams) ?? true
      },
      onSubscribe: (ctx, id) => {
        record(ctx.extra).subscribed.push(id)
      },
      onClose: (ctx, code) => {
        record(ctx.extra).closed = code
      }
    }, wss)
    let killed = false
    const kill = Effect.async<void>((resume) => {
      if (killed) return resume(Effect.void)
      killed = true
      for (const client of wss.clients) client.terminate()
      Promise.resolve(cleanup.dispose()).then(() => resume(Effect.void), () => resume(Effect.void))
    })
    yield* Effect.addFinalizer(() => kill)
    const port = (wss.address() as { port: number }).port
    return {
      url: `ws://127.0.0.1:${port}/graphql`,
      port,
      connections,
      publish: (value) => tickers.forEach((push) => push(value)),
      listeners: () => tickers.size,
      kill
    }
  })
