// Round 18: one trial inside a private network namespace (test/support/netns.ts runs it there):
//   ip netns exec NAME node --import tsx test/support/netnsChild.ts NAME <trial>
// The server (TestServer) and the Client or Connection share the namespace's 127.0.0.1; the
// faults are the kernel's, on that namespace's own `lo`: `lo down` (a partition), `tbf` (a slow
// link). Prints one JSON report line: outcomes by tag and reason, counts, and times measured (ms,
// reported, never asserted).
import { Duration, Effect, Fiber, Option, Scope, Stream } from "effect"
import { execFileSync } from "node:child_process"
import * as Net from "node:net"
import { Client, Connection } from "../../src/index.js"
import { TestServer } from "../../src/testing/index.js"
import type { Message } from "../../src/Transport.js"
import { describeError, emit, openDescriptors, quiet, strays, until, warnings } from "./opsChild.js"

const [name, trial] = process.argv.slice(2)

const ip = (...args: Array<string>): string =>
  execFileSync("ip", ["netns", "exec", name!, ...args], { encoding: "utf8", timeout: 10_000 })

// Never anywhere but in the namespace this trial was given: refuse to run outside it.
const here = execFileSync("ip", ["netns", "identify", String(process.pid)], { encoding: "utf8" }).trim()
if (!name?.startsWith("lifeline-") || here !== name) {
  emit({ error: `not inside namespace ${name} (here: "${here}")` })
  process.exit(2)
}

/** The namespace's own loopback: the only interface a fault touches. */
const cut = () => void ip("ip", "link", "set", "lo", "down")
const heal = () => void ip("ip", "link", "set", "lo", "up")
/**
 * A slow link: `lo`'s MTU down to Ethernet's 1500 (at 64 KiB, every segment is over any sane
 * `burst` and `tbf` drops it: nothing goes through at all), then `tbf` at `rate`.
 */
const shape = (rate: string, burst: string, latency: string) => {
  ip("ip", "link", "set", "lo", "mtu", "1500")
  ip("tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", burst, "latency", latency)
}
const unshape = () => {
  ip("tc", "qdisc", "del", "dev", "lo", "root")
  ip("ip", "link", "set", "lo", "mtu", "65536")
}

const sleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))
const since = (start: number) => Math.round(performance.now() - start)

/** Each frame's sequence label ("a3", "b17"): binary frames carry it in their first 8 bytes. */
const label = (message: Message): string =>
  typeof message === "string" ? message : new TextDecoder().decode(message.subarray(0, 8)).trim()
const frame = (id: string, size: number): Message => {
  if (size === 0) return id
  const bytes = new Uint8Array(size)
  bytes.set(new TextEncoder().encode(id.padEnd(8, " ")))
  return bytes
}

interface Seen {
  readonly at: number
  readonly state: string
  readonly error?: string
  readonly message?: string
  readonly delay?: number
}

/** A Client's transitions (time from `t0`, tag, error and message) and the labels of its failed messages. */
const watch = (client: Client.Client, t0: { at: number }) =>
  Effect.gen(function*() {
    const seen: Array<Seen> = []
    const failed: Array<string> = []
    yield* Effect.forkDaemon(Stream.runForEach(client.events, (event) =>
      Effect.sync(() => {
        if (event._tag === "MessageFailed") {
          failed.push(`${label(event.error.payload as Message)} ${event.error.reason}`)
          return
        }
        if (event._tag !== "Transition") return
        const to = event.to
        const entry: Seen = to._tag === "Backoff"
          ? {
            at: since(t0.at),
            state: "Backoff",
            error: describeError(to.error),
            message: to.error.message,
            delay: Duration.toMillis(to.delay)
          }
          : to._tag === "Closed" && Option.isSome(to.error)
          ? { at: since(t0.at), state: "Closed", error: describeError(to.error.value) }
          : { at: since(t0.at), state: to._tag }
        seen.push(entry)
      })))
    return { seen, failed }
  })

/** Every label the server received, over all its connections in order, and how many it accepted. */
const received = (server: TestServer.TestServer) =>
  Effect.gen(function*() {
    const labels = (yield* server.received).map(label)
    return { labels, connections: yield* server.accepted }
  })

/**
 * A Client, heartbeat 1 s / 1 s, openTimeout 1 s, the default retry. Open, some frames written;
 * then the link cut: idle ("idle"), or while a backlog is being written through a 8 Mbit/s link
 * ("backlog"). Frames queued during the cut; the link healed after the first failed attempt;
 * Open again, more frames. What the server received, what failed, every transition.
 */
const clientTrial = (mode: "idle" | "backlog") =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    const t0 = { at: performance.now() }
    const client = yield* Client.make({
      url: server.url,
      heartbeat: { interval: "1 second", timeout: "1 second" },
      connection: { openTimeout: "1 second", closeTimeout: "1 second" }
    })
    const { failed, seen } = yield* watch(client, t0)
    yield* client.awaitOpen
    for (let i = 1; i <= 5; i++) yield* client.send(frame(`a${i}`, 0))
    const sizes: Record<string, number> = { a: 0, b: 0, c: 0 }
    let backlogAtCut = 0
    let receivedAtCut = 0
    if (mode === "backlog") {
      // 40 frames of 64 KiB (2.5 MiB) through a 1 MB/s link: about 2.6 s of backlog.
      shape("8mbit", "64kb", "2s")
      sizes.b = 65_536
      for (let i = 1; i <= 40; i++) yield* client.enqueue(frame(`b${i}`, 65_536))
      const [peer] = yield* server.peers
      // cut once the link is well under way
      yield* until(() => peerCount(peer!) >= 10, "5 backlog frames received", 10_000, 5)
      receivedAtCut = peerCount(peer!)
      backlogAtCut = yield* client.outboxSize
    } else {
      yield* sleep(300)
    }
    t0.at = performance.now()
    cut()
    // queued during the cut
    for (let i = 1; i <= 5; i++) yield* client.enqueue(frame(`c${i}`, 0))
    yield* until(() => seen.some((s) => s.state === "Backoff"), "a Backoff after the cut", 15_000)
    const detected = seen.find((s) => s.state === "Backoff")!
    // the first attempt during the cut fails: then heal, and the default schedule's next attempt opens
    yield* until(() => seen.filter((s) => s.state === "Backoff").length >= 2, "a failed attempt", 15_000)
    if (mode === "backlog") unshape()
    heal()
    const healedAt = since(t0.at)
    // at once, not after the backoff: the next frames go out while the old socket's kernel may
    // still hold what it was given before the cut
    yield* client.reconnect
    yield* until(() => seen.filter((s) => s.state === "Open").length >= 2, "Open again", 20_000)
    for (let i = 1; i <= 5; i++) yield* client.send(frame(`d${i}`, 0))
    // long enough for the old socket's kernel to retransmit (RTO 0.2 s doubling: 3.0, 6.2 s after the cut)
    yield* sleep(Math.max(200, 8_000 - since(t0.at)))
    const leftover = yield* client.close()
    const got = yield* received(server)
    return {
      trial: `client ${mode}`,
      seen,
      detectedMs: detected.at,
      healedAt,
      receivedAtCut,
      backlogAtCut,
      received: got.labels,
      connections: got.connections,
      failed,
      failedCount: yield* client.failed,
      leftover: leftover.map(label),
      sizes,
      strays,
      warnings
    }
  })

const peerCount = (peer: TestServer.Peer) => Effect.runSync(peer.received).length

/**
 * A Connection (no heartbeat), closeTimeout 1 s, on a cut link: `write` of a frame and of a 4 MiB
 * backlog, `sink` of 8 MiB (given 2 s), `close` (how long, with what), the release of its scope,
 * descriptors before and after.
 */
const connectionTrial = Effect.gen(function*() {
  const server = yield* TestServer.make({ record: false })
  const scope = yield* Scope.make()
  const before = openDescriptors()
  const connection = yield* Connection.connect(server.url, { closeTimeout: "1 second" }).pipe(
    Scope.extend(scope)
  )
  yield* connection.send("before the cut")
  cut()
  const t = performance.now()
  const write = yield* connection.write("one").pipe(Effect.either)
  const writeMs = since(t)
  for (let i = 0; i < 4; i++) yield* connection.write(new Uint8Array(1 << 20))
  const buffered = yield* connection.bufferedAmount
  const send = yield* connection.send("after").pipe(Effect.timeout("1 second"), Effect.either)
  const sinkFiber = yield* Stream.range(1, 16).pipe(
    Stream.map(() => new Uint8Array(512 * 1024) as Message),
    Stream.run(connection.sink),
    Effect.either,
    Effect.fork
  )
  const sinkResult = yield* Fiber.join(sinkFiber).pipe(Effect.timeout("2 seconds"), Effect.either)
  const sinkStillWaiting = sinkResult._tag === "Left"
  const tc = performance.now()
  const closed = yield* connection.close(1000, "bye")
  const closeMs = since(tc)
  const sinkAfterClose = yield* Fiber.join(sinkFiber).pipe(Effect.timeout("2 seconds"), Effect.either)
  const readyState = yield* connection.readyState
  const tr = performance.now()
  yield* Scope.close(scope, Effect.void.pipe(Effect.exit, Effect.runSync))
  const releaseMs = since(tr)
  heal()
  const afterWrite = yield* connection.write("after close").pipe(Effect.either)
  // the descriptor of the terminated socket goes on the next turn
  yield* sleep(50)
  return {
    trial: "connection",
    writeMs,
    write: write._tag,
    buffered,
    send: send._tag === "Left"
      ? (send.left._tag === "TimeoutException" ? "still waiting" : describeError(send.left))
      : "written",
    sinkStillWaiting,
    sinkAfterClose: sinkAfterClose._tag === "Left"
      ? "still waiting"
      : sinkAfterClose.right._tag === "Left"
      ? describeError(sinkAfterClose.right.left)
      : "done",
    closed: { code: closed.code, initiator: closed.initiator, wasClean: closed.wasClean },
    closeMs,
    readyState,
    releaseMs,
    afterWrite: afterWrite._tag === "Left" ? describeError(afterWrite.left) : "written",
    descriptorsLeft: openDescriptors() - before,
    // the server's end (in this process too) never heard of the terminate: its RST was dropped
    serverSide: yield* server.connections,
    strays,
    warnings
  }
})

/**
 * `close` of an open Client (closeTimeout 1 s) on a cut link, with 3 frames sent into the kernel
 * and a 4 MiB one that cannot all go: what it returns, how long it takes, the state after, what
 * failed, descriptors after the release.
 */
const clientCloseTrial = Effect.gen(function*() {
  const server = yield* TestServer.make({ record: false })
  const before = openDescriptors()
  const scope = yield* Scope.make()
  const client = yield* Client.make({ url: server.url, connection: { closeTimeout: "1 second" } }).pipe(
    Scope.extend(scope)
  )
  const t0 = { at: performance.now() }
  const { failed, seen } = yield* watch(client, t0)
  yield* client.awaitOpen
  cut()
  for (let i = 1; i <= 3; i++) yield* client.send(frame(`e${i}`, 0))
  for (let i = 1; i <= 4; i++) yield* client.enqueue(frame(`f${i}`, 1 << 20))
  const pending = yield* client.outboxSize
  const tc = performance.now()
  const leftover = yield* client.close()
  const closeMs = since(tc)
  const tr = performance.now()
  yield* Scope.close(scope, Effect.runSync(Effect.exit(Effect.void)))
  const releaseMs = since(tr)
  yield* sleep(50)
  return {
    trial: "client-close",
    pending,
    leftover: leftover.map(label),
    closeMs,
    releaseMs,
    state: (yield* client.state.get)._tag,
    seen: seen.map((s) => s.state),
    failed,
    failedCount: yield* client.failed,
    descriptorsLeft: openDescriptors() - before,
    serverSide: yield* server.connections,
    strays,
    warnings
  }
})

/**
 * A Client through a `tbf` link (rate, latency 200 ms) with a backlog of `total` bytes in 16 KiB
 * frames, heartbeat `interval` and `timeout` as given: whether a heartbeat timeout comes while the
 * kernel drains, how many frames arrived, in order, on how many connections.
 */
const slowTrial = (rate: string, total: number, timeout: Duration.DurationInput, interval: Duration.DurationInput) =>
  Effect.gen(function*() {
    const server = yield* TestServer.make()
    const t0 = { at: performance.now() }
    const client = yield* Client.make({ url: server.url, heartbeat: { interval, timeout } })
    const { failed, seen } = yield* watch(client, t0)
    yield* client.awaitOpen
    shape(rate, "16kb", "200ms")
    t0.at = performance.now()
    const count = Math.ceil(total / 16_384)
    for (let i = 1; i <= count; i++) yield* client.enqueue(frame(`s${i}`, 16_384))
    const [peer] = yield* server.peers
    yield* until(() => peerCount(peer!) >= count || seen.length > 2, "the backlog through", 110_000, 50)
    const drainedMs = since(t0.at)
    unshape()
    yield* client.close()
    const got = yield* received(server)
    return {
      trial: `slow ${rate} ${total} ${timeout}`,
      count,
      drainedMs,
      seen,
      received: got.labels.length,
      inOrder: got.labels.every((l, i) => l === `s${i + 1}`),
      connections: got.connections,
      failed,
      strays,
      warnings
    }
  })

/**
 * Connecting during the cut: a raw TCP connect (what the kernel does: an error, or nothing), a
 * Connection (openTimeout 1 s), a Client (openTimeout 1 s, default retry) for two attempts, then
 * healed: the Client opens at its next attempt. Then the address itself removed (`ip addr flush
 * dev lo`): what a connect says when there is no route.
 */
const connectTrial = Effect.gen(function*() {
  const server = yield* TestServer.make()
  cut()
  const t0 = { at: performance.now() }
  const raw = yield* Effect.async<string>((resume) => {
    const socket = Net.connect(server.port, "127.0.0.1")
    const timer = setTimeout(() => {
      socket.destroy()
      resume(Effect.succeed("no answer within 1.5 s"))
    }, 1500)
    socket.on("connect", () => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed("connected"))
    })
    socket.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resume(Effect.succeed(String(error.code)))
    })
  })
  const tc = performance.now()
  const connection = yield* Connection.connect(server.url, { openTimeout: "1 second" }).pipe(
    Effect.scoped,
    Effect.either
  )
  const connectionMs = since(tc)
  t0.at = performance.now()
  const client = yield* Client.make({ url: server.url, connection: { openTimeout: "1 second" } })
  const { seen } = yield* watch(client, t0)
  yield* until(() => seen.filter((s) => s.state === "Backoff").length >= 2, "two failed attempts", 20_000)
  heal()
  const healedAt = since(t0.at)
  yield* until(() => seen.some((s) => s.state === "Open"), "Open after the heal", 20_000)
  yield* client.close()
  // No address on lo at all: the kernel has no route to 127.0.0.1.
  ip("ip", "addr", "flush", "dev", "lo")
  const unreachable = yield* Connection.connect(server.url, { openTimeout: "1 second" }).pipe(
    Effect.scoped,
    Effect.either
  )
  const clientU = yield* Client.make({ url: server.url, connection: { openTimeout: "1 second" } })
  const watched = yield* watch(clientU, t0)
  yield* until(() => watched.seen.some((s) => s.state === "Backoff"), "a failed attempt (no address)", 10_000)
  yield* clientU.close()
  return {
    trial: "connect",
    raw,
    connection: connection._tag === "Left" ? describeError(connection.left) : "open",
    connectionMs,
    seen,
    healedAt,
    unreachable: unreachable._tag === "Left"
      ? { error: describeError(unreachable.left), message: unreachable.left.message }
      : "open",
    unreachableClient: watched.seen.find((s) => s.state === "Backoff"),
    strays,
    warnings
  }
})

const trials: Record<
  string,
  Effect.Effect<unknown, unknown, Scope.Scope | import("../../src/index.js").Transport.Transport>
> = {
  "client-idle": clientTrial("idle"),
  "client-backlog": clientTrial("backlog"),
  connection: connectionTrial,
  "client-close": clientCloseTrial,
  slow: Effect.suspend(() => {
    const [rate, total, timeout, interval] = process.argv.slice(4)
    return slowTrial(
      rate ?? "256kbit",
      Number(total ?? 1_048_576),
      (timeout ?? "1 second") as Duration.DurationInput,
      (interval ?? "1 second") as Duration.DurationInput
    )
  }),
  connect: connectTrial
}

const program = trials[trial!]
if (program === undefined) {
  emit({ error: `no trial ${trial}` })
  process.exit(2)
}
Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(quiet))).then(
  (report) => emit(report),
  (error: unknown) => emit({ error: String(error) })
).finally(() => process.exit(0))
