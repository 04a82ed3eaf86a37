/**
 * A `Scope` for one session: what `Scope.make()` is (finalizers run once, in reverse order, with
 * the Exit it is closed with; a finalizer added after the close runs at once), in one small
 * object. `Scope.make()` keeps its finalizers in a `Map` with a key object per finalizer: about
 * 400 bytes per open session, which an idle Client (a benchmark target) would keep for its life.
 * A session has one finalizer, its connection's release; so this keeps one, and an array only
 * when there are more; and that one is the connection itself (`release`), not a closure. A
 * Client's session is one: `Session` extends `SessionScope(HeartbeatCore)`, so the scope, the
 * heartbeat and the session are one object. A mixin, so that a heartbeat on its own (`Heartbeat`,
 * the small Client's) carries no scope.
 */
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import type * as Exit from "effect/Exit"
import { pipeArguments } from "effect/Pipeable"
import * as Scope from "effect/Scope"
import type { OpenedConnection } from "../connection.js"
import { releaseOpened } from "../connection.js"

// A finalizer, or a connection to release (`release`): kept as it is, with no closure around it.
export type Finalizer = Scope.Scope.Finalizer | OpenedConnection

const run = (finalizer: Finalizer, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  typeof finalizer === "function" ? finalizer(exit) : releaseOpened(finalizer, exit)

/** What `SessionScope` adds to its base: a Scope that also takes a finalizer now (`add`). */
export interface SessionScoped extends Scope.CloseableScope {
  addFinalizer(finalizer: Finalizer): Effect.Effect<void>
  add(finalizer: Finalizer): void
}

type AbstractClass<A = object> = abstract new(...args: Array<any>) => A

/** `Base`, made a Scope for one session. */
export const SessionScope = <Base extends AbstractClass>(Base: Base): Base & AbstractClass<SessionScoped> => {
  abstract class Scoped extends Base implements Scope.CloseableScope {
    declare readonly [Scope.ScopeTypeId]: Scope.ScopeTypeId
    declare readonly [Scope.CloseableScopeTypeId]: Scope.CloseableScopeTypeId
    declare readonly strategy: ExecutionStrategy.ExecutionStrategy

    // Not private: a class a function returns cannot have private members in its declaration.
    finalizers: Finalizer | Array<Finalizer> | undefined = undefined
    closedWith: Exit.Exit<unknown, unknown> | undefined = undefined

    /**
     * A finalizer, or a connection to release when the scope closes: the connection itself, where a
     * closure per session, with its context, was about 100 bytes of an idle Client.
     */
    addFinalizer(finalizer: Finalizer): Effect.Effect<void> {
      return Effect.suspend(() => {
        const exit = this.closedWith
        if (exit !== undefined) return run(finalizer, exit)
        this.add(finalizer)
        return Effect.void
      })
    }

    /** Adds a finalizer to a scope not closed yet, now (for code that runs on callbacks). */
    add(finalizer: Finalizer): void {
      const finalizers = this.finalizers
      this.finalizers = finalizers === undefined
        ? finalizer
        : Array.isArray(finalizers)
        ? [...finalizers, finalizer]
        : [finalizers, finalizer]
    }

    /** Runs the finalizers once, newest first, each to its end whatever the others did. */
    close(exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
      return Effect.uninterruptible(Effect.suspend(() => {
        if (this.closedWith !== undefined) return Effect.void
        this.closedWith = exit
        const finalizers = this.finalizers
        this.finalizers = undefined
        if (finalizers === undefined) return Effect.void
        if (!Array.isArray(finalizers)) return Effect.asVoid(Effect.exit(run(finalizers, exit)))
        return Effect.forEach([...finalizers].reverse(), (finalizer) => Effect.exit(run(finalizer, exit)), {
          discard: true
        })
      }))
    }

    fork(strategy: ExecutionStrategy.ExecutionStrategy): Effect.Effect<Scope.CloseableScope> {
      return Effect.flatMap(
        Scope.make(strategy),
        (child) => Effect.as(this.addFinalizer((exit) => Scope.close(child, exit)), child)
      )
    }

    pipe() {
      // eslint-disable-next-line prefer-rest-params
      return pipeArguments(this, arguments)
    }
  }
  // On the prototype: one object per session carries only its two fields.
  Object.assign(Scoped.prototype, {
    [Scope.ScopeTypeId]: Scope.ScopeTypeId,
    [Scope.CloseableScopeTypeId]: Scope.CloseableScopeTypeId,
    strategy: ExecutionStrategy.sequential
  })
  return Scoped
}
