/**
 * Idle memory per Connection (a benchmark target: heap per idle connection within 1.15x raw ws's)
 * held by counts that cannot flake: the objects and fields one open connection keeps, read from
 * the internals. Each guard fails if a per-connection object or field that was folded away comes
 * back. The figures themselves are in bench/README.md (`bench/abMemory.ts`).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Scope, Stream } from "effect"
import WebSocket from "ws"
import { Connection } from "../src/index.js"
import { TestServer } from "../src/testing/index.js"
import { withNoHandlesLeft } from "./support/handles.js"
import { provideNode } from "./support/node.js"

interface Internals {
  readonly listener: { readonly inbound: unknown }
  readonly socket: { readonly ws: object }
}

const internals = (connection: Connection.Connection): Internals => connection as unknown as Internals

describe("Connection: idle memory (objects and fields per connection)", () => {
  it.live("the listener is its own inbound buffer and the buffer's source: one object, not three", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        const { listener } = internals(connection)
        expect(listener.inbound).toBe(listener)
        // And it still buffers, and pauses its socket at its bound: see inboundBuffer.test.ts and
        // Connection.test.ts; here, one message through it.
        const pull = yield* Stream.toPull(connection.messages)
        yield* connection.send("hello")
        expect(Chunk.toReadonlyArray(yield* pull)).toEqual(["hello"])
      }).pipe(Effect.scoped)
    ).pipe(provideNode))

  it.live("the listener has 16 fields and the Node socket 6: the buffer's five states and close-requested are one number", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        const { listener, socket } = internals(connection)
        // Each field is 8 bytes of an idle connection (Node 20: no pointer compression).
        expect(Object.keys(listener).length).toBe(16)
        expect(Object.keys(socket).length).toBe(6)
        // No field per yes/no state: they are bits of one number.
        const booleans = (value: object) => Object.values(value).filter((field) => typeof field === "boolean")
        expect(booleans(listener)).toEqual([])
        expect(booleans(socket)).toEqual([])
      }).pipe(Effect.scoped)
    ).pipe(provideNode))

  it.live("the ws object holds its socket state in a field it was built with, and listens to one event", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const connection = yield* Connection.connect(server.url)
        const ws = internals(connection).socket.ws as { eventNames: () => Array<string | symbol> }
        expect(ws.eventNames()).toEqual(["error"])
        // The state field is declared by a subclass of ws's WebSocket (part of the object from its
        // construction), not added to a plain WebSocket afterwards (a separate property array).
        expect(ws).toBeInstanceOf(WebSocket)
        expect(ws.constructor).not.toBe(WebSocket)
      }).pipe(Effect.scoped)
    ).pipe(provideNode))

  it.live("the scope's finalizer is a function bound to the listener, not a closure with its own context", () =>
    withNoHandlesLeft(
      Effect.gen(function*() {
        const server = yield* TestServer.make()
        const scope = yield* Scope.make()
        yield* Connection.connect(server.url).pipe(Scope.extend(scope))
        // Internals: Effect's ScopeImpl keeps its finalizers in a Map while open.
        const finalizers =
          (scope as unknown as { state: { finalizers: Map<object, (exit: unknown) => unknown> } }).state
            .finalizers
        expect([...finalizers.values()].map((finalizer) => finalizer.name)).toEqual(["bound releaseOnExit"])
        yield* Scope.close(scope, { _tag: "Success", value: undefined } as never)
      }).pipe(Effect.scoped)
    ).pipe(provideNode))
})
