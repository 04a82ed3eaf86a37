/**
 * Page script for chromium.test.ts: lifeline Clients in the page, on the browser transport (the
 * global WebSocket), driven from Node through `window.lab` with `page.evaluate`. Everything that
 * crosses to Node is plain data: messages as `{ text }` or `{ bytes }`, states as `Summary`.
 */
import { Effect, Exit, Layer, Logger, Option, Schedule, Scope, Stream } from "effect"
import { BrowserTransport, Client } from "effect-lifeline/browser"
import type { ClientError, Transport } from "effect-lifeline/browser"
import * as LiteClient from "effect-lifeline/LiteClient"

export type Wire = { readonly text: string } | { readonly bytes: ReadonlyArray<number> }

export interface ErrorSummary {
  readonly _tag: string
  readonly reason?: string
  readonly operation?: string
  readonly code?: number
}

export interface Summary {
  readonly tag: string
  readonly error?: ErrorSummary
}

export interface Spec {
  readonly url: string
  /** The small Client (`effect-lifeline/LiteClient`) instead of the full one. */
  readonly lite?: boolean
  /** `Schedule.spaced` between attempts. */
  readonly retryMillis: number
  readonly minRetryDelayMillis?: number
  /** `connection.openTimeout`. */
  readonly openTimeoutMillis?: number
  /** `connection.protocols`: the subprotocols offered. */
  readonly protocols?: ReadonlyArray<string>
  /** `outbox.capacity` and `outbox.maxBytes`, for a large backlog. */
  readonly outbox?: { readonly capacity: number; readonly maxBytes: number }
  readonly heartbeat?: {
    readonly interval: number
    readonly timeout: number
    readonly message: string
    readonly pong: string
  }
}

interface Entry {
  readonly client: Client.Client
  readonly scope: Scope.CloseableScope
  readonly transitions: Array<Summary>
  readonly messages: Array<Wire>
}

const entries = new Map<string, Entry>()

const toWire = (message: string | Uint8Array): Wire =>
  typeof message === "string" ? { text: message } : { bytes: [...message] }
const fromWire = (wire: Wire): string | Uint8Array => "text" in wire ? wire.text : new Uint8Array(wire.bytes)

const summarizeError = (error: ClientError): ErrorSummary => ({
  _tag: error._tag,
  ...("reason" in error && typeof error.reason === "string" ? { reason: error.reason } : {}),
  ...("operation" in error ? { operation: error.operation } : {}),
  ...("code" in error && typeof error.code === "number" ? { code: error.code } : {})
})

const summarize = (state: Client.ClientState): Summary => {
  switch (state._tag) {
    case "Backoff":
      return { tag: state._tag, error: summarizeError(state.error) }
    case "Closed":
      return Option.match(state.error, {
        onNone: () => ({ tag: state._tag }),
        onSome: (error) => ({ tag: state._tag, error: summarizeError(error) })
      })
    default:
      return { tag: state._tag }
  }
}

// The Client logs a WARN when a link goes down: kept off the page's console.
const layer = Layer.merge(BrowserTransport.layer, Logger.remove(Logger.defaultLogger))

const run = <A, E>(effect: Effect.Effect<A, E, Transport.Transport>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, layer))

const entry = (id: string): Entry => {
  const found = entries.get(id)
  if (found === undefined) throw new Error(`no client ${id}`)
  return found
}

/** Resolves once `check` holds, polled every 5 ms; rejects after `within` ms with `what`. */
const until = (what: () => string, check: () => boolean, within: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const deadline = Date.now() + within
    const poll = () => {
      if (check()) return resolve()
      if (Date.now() > deadline) return reject(new Error(`timed out after ${within} ms: ${what()}`))
      setTimeout(poll, 5)
    }
    poll()
  })

/** The full Client, or the small one: the same options, the same interface. */
const makeClient = (spec: Spec): (options: LiteClient.LiteOptions) => ReturnType<typeof LiteClient.make> =>
  spec.lite ? LiteClient.make : Client.make

const lab = {
  /** Starts a client; it connects at once. */
  open: (id: string, spec: Spec): Promise<void> =>
    run(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const heartbeat = spec.heartbeat
      const client = yield* Scope.extend(
        makeClient(spec)({
          url: spec.url,
          retry: Schedule.spaced(spec.retryMillis),
          minRetryDelay: spec.minRetryDelayMillis ?? Math.min(spec.retryMillis, 100),
          ...(spec.openTimeoutMillis === undefined && spec.protocols === undefined ? {} : {
            connection: {
              ...(spec.openTimeoutMillis === undefined ? {} : { openTimeout: spec.openTimeoutMillis }),
              ...(spec.protocols === undefined ? {} : { protocols: spec.protocols })
            }
          }),
          ...(spec.outbox === undefined ? {} : { outbox: spec.outbox }),
          heartbeat: heartbeat === undefined ? false : {
            interval: heartbeat.interval,
            timeout: heartbeat.timeout,
            message: heartbeat.message,
            isPong: (message) => message === heartbeat.pong
          }
        }),
        scope
      )
      const created: Entry = { client, scope, transitions: [], messages: [] }
      entries.set(id, created)
      yield* Effect.forkIn(
        Stream.runForEach(
          client.state.changes,
          (state) => Effect.sync(() => created.transitions.push(summarize(state)))
        ),
        scope
      )
      yield* Effect.forkIn(
        Stream.runForEach(client.messages, (message) => Effect.sync(() => created.messages.push(toWire(message)))),
        scope
      )
    })),
  /** Every state the client was in, in order, the first included. */
  transitions: (id: string): ReadonlyArray<Summary> => entry(id).transitions,
  messages: (id: string): ReadonlyArray<Wire> => entry(id).messages,
  /** The current state. */
  current: (id: string): Summary | undefined => entry(id).transitions.at(-1),
  /** Waits until the current state is `tag`. */
  awaitCurrent: (id: string, tag: string, within = 10_000): Promise<void> => {
    const { transitions } = entry(id)
    return until(() => `now ${tag} in ${JSON.stringify(transitions)}`, () => transitions.at(-1)?.tag === tag, within)
  },
  /** Counts the states with this tag so far. */
  count: (id: string, tag: string): number => entry(id).transitions.filter((state) => state.tag === tag).length,
  /** Waits until the client has been in `tag` `nth` times in all. */
  awaitCount: (id: string, tag: string, nth: number, within = 10_000): Promise<void> => {
    const { transitions } = entry(id)
    return until(
      () => `${tag} x${nth} in ${JSON.stringify(transitions)}`,
      () => transitions.filter((state) => state.tag === tag).length >= nth,
      within
    )
  },
  /** Waits until `count` messages arrived. */
  awaitMessages: (id: string, count: number, within = 10_000): Promise<void> => {
    const { messages } = entry(id)
    return until(() => `${count} messages in ${JSON.stringify(messages)}`, () => messages.length >= count, within)
  },
  /** Sends and waits until written. */
  send: (id: string, wire: Wire): Promise<void> => run(entry(id).client.send(fromWire(wire))),
  /** Queues (completes once buffered): while disconnected, they wait in the outbox. */
  enqueue: (id: string, wires: ReadonlyArray<Wire>): Promise<void> =>
    run(Effect.forEach(wires, (wire) => entry(id).client.enqueue(fromWire(wire)), { discard: true })),
  outboxSize: (id: string): Promise<number> => run(entry(id).client.outboxSize),
  /** Queues `count` binary frames of `bytes` each, made in the page: frame i holds i in its first four bytes. */
  enqueueBacklog: (id: string, count: number, bytes: number): Promise<void> =>
    run(Effect.forEach(Array.from({ length: count }, (_, index) => index), (index) => {
      const frame = new Uint8Array(bytes).fill(0x61)
      new DataView(frame.buffer).setUint32(0, index)
      return entry(id).client.enqueue(frame)
    }, { discard: true })),
  failed: (id: string): Promise<number> => run(entry(id).client.failed),
  close: async (id: string): Promise<void> => {
    const found = entry(id)
    entries.delete(id)
    await run(Scope.close(found.scope, Exit.void))
  },
  /** Blocks the page's main thread for `millis`: no timer, no socket event runs meanwhile. */
  stall: (millis: number): number => {
    const start = performance.now()
    let spins = 0
    while (performance.now() - start < millis) spins++
    return spins
  }
}

export type Lab = typeof lab

Object.assign(globalThis, { lab, pageReady: true })
