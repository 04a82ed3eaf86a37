/**
 * Small waits on a Client's state, and recorders of its states and messages, bounded so that a
 * broken client fails the test instead of hanging it.
 */
import { Duration, Effect, Option, Stream } from "effect"
import type { Client } from "../../src/index.js"

type State = Client.ClientState

/**
 * The first state (current or later) that satisfies `predicate`; dies after `within` of real time.
 * The default 20 s is a hang guard, not a timing claim: loaded fresh-clone CI runs (2 cores, the
 * whole suite) ran out the earlier 5 s in peer trials that pass in well under a second alone.
 */
export const awaitState = (
  client: Client.Client,
  predicate: (state: State) => boolean,
  within: Duration.DurationInput = "20 seconds"
): Effect.Effect<State> =>
  client.state.changes.pipe(
    Stream.filter(predicate),
    Stream.runHead,
    Effect.flatMap(Option.match({
      onNone: () => Effect.dieMessage("state stream ended"),
      onSome: Effect.succeed
    })),
    Effect.timeout(within),
    // Says where the Client stood: a CI log then shows which wait ran out, and on what.
    Effect.catchTag("TimeoutException", () =>
      Effect.flatMap(client.state.get, (now) =>
        Effect.dieMessage(
          `timed out waiting for a state (${Duration.format(Duration.decode(within))}); the Client is ${
            describeState(now)
          }`
        )))
  )

export const isTag = <T extends State["_tag"]>(tag: T) => (state: State): state is Extract<State, { _tag: T }> =>
  state._tag === tag

/** Waits (bounded, real time) until the server has received `count` messages in all. */
export const awaitReceived = (server: { readonly received: Effect.Effect<ReadonlyArray<unknown>> }, count: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 500; turn++) {
      if ((yield* server.received).length >= count) return
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage(`the server never received ${count} messages`)
  })

/**
 * A Client to a killed server: Backoff; `reconnect` (Connecting, then Backoff again); the server
 * restarted and `reconnect`: Open. What a user sees through an outage, both ways.
 */
export const throughAnOutage = (
  client: Client.Client,
  server: { readonly restart: Effect.Effect<unknown, unknown> }
): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* awaitState(client, isTag("Backoff"))
    yield* client.reconnect
    yield* awaitState(client, isTag("Connecting"))
    yield* awaitState(client, isTag("Backoff"))
    yield* Effect.orDie(server.restart)
    yield* client.reconnect
    yield* awaitState(client, isTag("Open"))
  })

/** The first Backoff from now on: subscribed before `trigger` runs, so a quick retry cannot hide it. */
export const firstBackoffAfter = <E>(client: Client.Client, trigger: Effect.Effect<void, E>) =>
  Effect.gen(function*() {
    const backoff = yield* Effect.fork(awaitState(client, isTag("Backoff")))
    yield* trigger
    return yield* backoff
  })

/** Sends `text` and takes the next message (subscribed before the send). */
export const echoOf = (client: Client.Client, text: string) =>
  Effect.gen(function*() {
    const echo = yield* Effect.fork(Stream.runHead(client.messages))
    yield* client.send(text)
    return yield* echo
  })

/**
 * A short, exact description of a state, for a record of transitions: the attempt, a Backoff's
 * error with its code or reason, a Closed one's tag (and with `closedDetail`, its reason and status).
 */
export const describeState = (state: State, closedDetail = true): string => {
  switch (state._tag) {
    case "Connecting":
    case "Open":
      return `${state._tag} #${state.attempt}`
    case "Backoff": {
      const error = state.error as unknown as Record<string, unknown>
      switch (error._tag) {
        case "Disconnected":
          return `Backoff #${state.attempt} Disconnected ${String(error.code)} ${String(error.initiator)} wasClean=${
            String(error.wasClean)
          }`
        case "TimeoutError":
          return `Backoff #${state.attempt} TimeoutError ${String(error.operation)}`
        default:
          return `Backoff #${state.attempt} ${String(error._tag)} ${String(error.reason)} ${String(error.status)}`
      }
    }
    case "Closed":
      return Option.match(state.error, {
        onNone: () => "Closed",
        onSome: (error) => {
          if (!closedDetail) return `Closed ${error._tag}`
          const fields = error as unknown as Record<string, unknown>
          return `Closed ${error._tag} ${String(fields.reason)} ${String(fields.status)}`
        }
      })
    default:
      return state._tag
  }
}

/** Every state the Client goes through from now on, described by `describe`, and the states themselves. */
export const recordStates = (client: Client.Client, describe: (state: State) => string = describeState) =>
  Effect.gen(function*() {
    const states: Array<string> = []
    const seen: Array<State> = []
    yield* Effect.forkScoped(Stream.runForEach(client.state.changes, (state) =>
      Effect.sync(() => {
        seen.push(state)
        states.push(describe(state))
      })))
    return { states, seen }
  })

/** Every message the Client receives, in order. */
export const recordMessages = (client: Client.Client) =>
  Effect.gen(function*() {
    const messages: Array<string | Uint8Array> = []
    yield* Effect.forkScoped(Stream.runForEach(client.messages, (message) =>
      Effect.sync(() => {
        messages.push(message as string | Uint8Array)
      })))
    return messages
  })

/** Polls `done` every 10 ms, at most `turns` times; dies with `what` if it never holds. */
export const until = (what: string, done: () => boolean | Effect.Effect<boolean>, turns = 1_000) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < turns; turn++) {
      const result = done()
      if (typeof result === "boolean" ? result : yield* result) return
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.dieMessage(`never: ${what}`)
  })
