/**
 * Round 21: two peers from Debian outside the languages tried so far, against the Client and
 * Connection over the Node transport (`test/support/cPeers.ts` starts them on 127.0.0.1):
 * - libwebsockets' test server (lws 4.1.6, the C library many devices embed): its subprotocols
 *   (`dumb-increment-protocol`, `lws-mirror-protocol`) and one it does not know, the counter read
 *   late, the mirror with two Clients and a message over its 4 KiB rx buffer, closes both ways,
 *   pings, the server killed and restarted;
 * - websocketd 0.4.1 (a program per connection, a line per message): `cat` as a line echo
 *   (newlines inside a message, binary frames in text mode and in `--binary`), a program that
 *   exits, a burst of lines to a Client that reads late, `--maxforks`, `--origin`, pings, closes.
 * What each does is in docs/trials.md ("round 21"). Loopback only; every wait bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Schedule, Stream } from "effect"
import { Client, Connection } from "../src/index.js"
import { awaitState, isTag, recordMessages, recordStates, until } from "./support/clientKit.js"
import { hasLws, hasWebsocketd, lwsPeer, websocketdPeer } from "./support/cPeers.js"
import { provideNode } from "./support/node.js"

/** A Client's end on a text frame that is not UTF-8: 1007 from this side, final by default. */
const closedByInvalidUtf8 = {
  error: {
    _tag: "Some",
    value: {
      _tag: "Disconnected",
      code: 1007,
      reason: "Invalid WebSocket frame: invalid UTF-8 sequence",
      initiator: "client"
    }
  }
}

/** Retries every 100 ms: the default schedule's first delays would make the file slow. */
const quickRetry = Schedule.spaced("100 millis")

const text = (message: string | Uint8Array) => typeof message === "string" ? message : new TextDecoder().decode(message)

describe("round 21: libwebsockets' test server (lws 4.1.6)", () => {
  it.scopedLive.skipIf(!hasLws)(
    "subprotocols: lws takes the first it knows of those offered ('lws-mirror-protocol' for ['nope', 'lws-mirror-protocol']); one it does not know: lws drops TCP without an answer, ConnectError ConnectionReset whose hint names the subprotocols, which the default policy retries (a bounded retry ends Closed with it)",
    () =>
      Effect.gen(function*() {
        const peer = yield* lwsPeer()
        const mirror = yield* Connection.connect(peer.url(), { protocols: ["nope", "lws-mirror-protocol"] })
        expect(mirror.protocol).toBe("lws-mirror-protocol")
        const dumb = yield* Connection.connect(peer.url(), { protocols: ["dumb-increment-protocol"] })
        expect(dumb.protocol).toBe("dumb-increment-protocol")
        const refused = yield* Effect.flip(Effect.scoped(Connection.connect(peer.url(), { protocols: ["nope"] })))
        expect(refused).toMatchObject({ _tag: "ConnectError", reason: "ConnectionReset" })
        if (refused._tag !== "ConnectError") return
        // The hint names the offered subprotocols (it said only "the connection dropped during the
        // handshake; retrying usually helps"); the reason stays ConnectionReset: a hang-up is not proof.
        expect(refused.detail).toBe(
          "socket hang up (ECONNRESET); the server closed the connection without answering the upgrade; a server " +
            "that supports none of the offered subprotocols may refuse so (libwebsockets does): check protocols; " +
            "else retrying usually helps"
        )
        const client = yield* Client.make({
          url: peer.url(),
          connection: { protocols: ["nope"] },
          retry: Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(2)))
        })
        const { states } = yield* recordStates(client)
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject({
          error: { _tag: "Some", value: { _tag: "ConnectError", reason: "ConnectionReset" } }
        })
        expect(states.filter((state) => state.startsWith("Backoff"))).toEqual([
          "Backoff #1 ConnectError ConnectionReset undefined",
          "Backoff #2 ConnectError ConnectionReset undefined"
        ])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasLws)(
    "dumb-increment read late (inboundCapacity 4, 600 ms unread): every number from 0, in order, none lost; 'closeme\\n': Disconnected 1001 'seeya' from the server, clean, Backoff and Open again, the counter from 0",
    () =>
      Effect.gen(function*() {
        const peer = yield* lwsPeer()
        const client = yield* Client.make({
          url: peer.url(),
          retry: quickRetry,
          connection: { protocols: ["dumb-increment-protocol"], inboundCapacity: 4 }
        })
        yield* client.awaitOpen
        yield* Effect.sleep("600 millis")
        const first = yield* Stream.runCollect(Stream.take(client.messages, 14))
        expect(Chunk.toReadonlyArray(first)).toEqual(Array.from({ length: 14 }, (_, i) => String(i)))
        const backoff = yield* Effect.fork(awaitState(client, isTag("Backoff")))
        const messages = yield* recordMessages(client)
        yield* client.send("closeme\n")
        expect(yield* backoff).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1001, reason: "seeya", wasClean: true, initiator: "server" }
        })
        expect(yield* awaitState(client, isTag("Open"))).toMatchObject({ attempt: 2 })
        yield* until("three numbers on the new connection", () => messages.lastIndexOf("2") > messages.lastIndexOf("0"))
        // The new connection counts from 0 again: what came after the close is 0, 1, 2, ...
        const after = messages.slice(messages.lastIndexOf("0"))
        expect(after.slice(0, 3)).toEqual(["0", "1", "2"])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasLws)(
    "the mirror with two Clients: each message to both, the sender's own included, in order; a text of 10,000 bytes (over lws' 4 KiB rx buffer) comes back as SEVERAL messages whose concatenation is the text",
    () =>
      Effect.gen(function*() {
        const peer = yield* lwsPeer()
        const options = { url: peer.url("/?mirror=two"), connection: { protocols: ["lws-mirror-protocol"] } }
        const a = yield* Client.make(options)
        const b = yield* Client.make(options)
        yield* a.awaitOpen
        yield* b.awaitOpen
        const atA = yield* recordMessages(a)
        const atB = yield* recordMessages(b)
        yield* a.send("from a 1")
        yield* b.send("from b")
        yield* until("both at a", () => atA.length === 2)
        yield* a.send("from a 2")
        yield* until("three at both", () => atA.length === 3 && atB.length === 3)
        expect(atA).toEqual(["from a 1", "from b", "from a 2"])
        expect(atB).toEqual(["from a 1", "from b", "from a 2"])
        const big = Array.from({ length: 10_000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("")
        yield* a.send(big)
        yield* until("the big text at b", () => atB.slice(3).join("").length >= big.length)
        const pieces = atB.slice(3)
        expect(pieces.join("")).toBe(big)
        expect(pieces.length).toBeGreaterThan(1)
        expect(pieces.every((piece) => piece.length <= 4096)).toBe(true)
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasLws)(
    "the mirror splits a long text inside a character: 'x' + 3,000 'é' comes back as a text frame cut mid-'é' (invalid UTF-8): the receiving Client fails the link with 1007, from the client, and is Closed (final by default)",
    () =>
      Effect.gen(function*() {
        const peer = yield* lwsPeer()
        const options = { url: peer.url("/?mirror=utf8"), connection: { protocols: ["lws-mirror-protocol"] } }
        const sender = yield* Connection.connect(options.url, options.connection)
        const client = yield* Client.make({ ...options, retry: quickRetry })
        yield* client.awaitOpen
        yield* sender.send("x" + "é".repeat(3000))
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject(closedByInvalidUtf8)
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasLws)(
    "closes from the Client: close(4001, reason) is answered with 4001 and the reason, clean; lws answers pings (activity counts the pong); a Client heartbeat of 100 ms keeps an idle mirror link Open",
    () =>
      Effect.gen(function*() {
        const peer = yield* lwsPeer()
        const connection = yield* Connection.connect(peer.url(), { protocols: ["lws-mirror-protocol"] })
        const before = yield* connection.activity
        expect(yield* connection.ping).toBe(true)
        yield* until("the pong", () => Effect.map(connection.activity, (now) => now > before))
        expect(yield* connection.close(4001, "bye from lifeline")).toMatchObject({
          _tag: "Disconnected",
          code: 4001,
          reason: "bye from lifeline",
          wasClean: true,
          initiator: "client"
        })
        const client = yield* Client.make({
          url: peer.url(),
          connection: { protocols: ["lws-mirror-protocol"] },
          // timeout 400 ms (was 100: a stall of this process over 100 ms, as on a loaded machine, would
          // time a live link out); the first probe's deadline (500 ms) is still within the 700 ms watched
          heartbeat: { interval: "100 millis", timeout: "400 millis" }
        })
        yield* client.awaitOpen
        yield* Effect.sleep("700 millis")
        expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasLws)(
    "the server SIGKILLed: Backoff by 1006 from the transport, ConnectionRefused while down; a send meanwhile waits in the outbox; restarted on its port: Open, and the mirror sends that message back",
    () =>
      Effect.gen(function*() {
        const peer = yield* lwsPeer()
        const client = yield* Client.make({
          url: peer.url(),
          retry: quickRetry,
          connection: { protocols: ["lws-mirror-protocol"] }
        })
        yield* client.awaitOpen
        const { states } = yield* recordStates(client)
        const messages = yield* recordMessages(client)
        yield* peer.kill
        yield* awaitState(client, (state) => state._tag === "Backoff" && state.attempt === 2)
        const sent = yield* Effect.fork(client.send("queued while down"))
        yield* peer.restart
        yield* sent
        yield* until("the mirror's answer", () => messages.length === 1)
        expect(messages).toEqual(["queued while down"])
        expect(states[1]).toBe("Backoff #1 Disconnected 1006 transport wasClean=false")
        expect(states[3]).toBe("Backoff #2 ConnectError ConnectionRefused undefined")
        expect(yield* client.state.get).toMatchObject({ _tag: "Open" })
        expect(yield* client.failed).toBe(0)
      }).pipe(provideNode),
    30_000
  )
})

describe("round 21: websocketd 0.4.1", () => {
  it.scopedLive.skipIf(!hasWebsocketd)(
    "cat as a line echo: each message a line, so a message with '\\n' inside comes back as two messages, a trailing '\\n' adds an empty one, a '\\r' before a newline goes; text with 'é€😀' exact",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["cat"])
        const client = yield* Client.make({ url: peer.url() })
        yield* client.awaitOpen
        const messages = yield* recordMessages(client)
        for (const message of ["hello", "a\nb", "trailing\n", "", "é€😀", "c\r\nd\r"]) yield* client.send(message)
        yield* until("nine lines", () => messages.length === 9)
        expect(messages).toEqual(["hello", "a", "b", "trailing", "", "", "é€😀", "c", "d"])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsocketd)(
    "a binary frame in text mode goes to the program as its bytes WITHOUT a newline (it joins the next line); bytes that are not UTF-8 come back in a text frame: 1007 from the client, Closed (final by default)",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["cat"])
        const client = yield* Client.make({ url: peer.url(), retry: quickRetry })
        yield* client.awaitOpen
        const messages = yield* recordMessages(client)
        yield* client.send(new TextEncoder().encode("bin"))
        yield* client.send("next")
        yield* until("one line", () => messages.length === 1)
        expect(messages.map(text)).toEqual(["binnext"])
        expect(typeof messages[0]).toBe("string")
        yield* client.send(new Uint8Array([0xff, 0x41, 0x0a]))
        expect(yield* awaitState(client, isTag("Closed"))).toMatchObject(closedByInvalidUtf8)
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsocketd)(
    "--binary: bytes echoed as binary messages, exact (no newline added either way); 100,000 bytes come back as several messages (websocketd sends what each read of the pipe returns)",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["cat"], ["--binary"])
        const connection = yield* Connection.connect(peer.url())
        const bytes = new Uint8Array([0, 1, 2, 0xff, 0x0a, 0x41])
        yield* connection.send(bytes)
        const [echo] = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(connection.messages, 1)))
        expect(echo).toBeInstanceOf(Uint8Array)
        expect([...(echo as Uint8Array)]).toEqual([...bytes])
        const big = new Uint8Array(100_000).map((_, i) => i % 251)
        const pieces: Array<Uint8Array> = []
        yield* Effect.forkScoped(
          Stream.runForEach(
            connection.messages,
            (message) => Effect.sync(() => void pieces.push(message as Uint8Array))
          )
        )
        yield* connection.send(big)
        yield* until("100,000 bytes back", () => pieces.reduce((sum, piece) => sum + piece.length, 0) >= big.length)
        expect(pieces.length).toBeGreaterThan(1)
        expect(Buffer.concat(pieces).equals(Buffer.from(big))).toBe(true)
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsocketd)(
    "the program exits on its own: websocketd drops TCP without a close frame: Backoff by 1006 from the transport, retried: the program runs again on the next connection",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["sh", "-c", "echo one; echo two"])
        const client = yield* Client.make({ url: peer.url(), retry: quickRetry })
        const { states } = yield* recordStates(client)
        const messages = yield* recordMessages(client)
        yield* awaitState(client, (state) => state._tag === "Open" && state.attempt === 2)
        yield* until("four lines", () => messages.length >= 4)
        expect(messages.slice(0, 4)).toEqual(["one", "two", "one", "two"])
        expect(states.slice(0, 4)).toEqual([
          "Connecting #1",
          "Open #1",
          "Backoff #1 Disconnected 1006 transport wasClean=false",
          "Connecting #2"
        ])
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsocketd)(
    "a burst of 20,000 lines (seq) to a Client that reads late (inboundCapacity 4): the program waits on its pipe; once read, all 20,000 in order, then 1006 when seq has exited",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["seq", "1", "20000"])
        const client = yield* Client.make({
          url: peer.url(),
          retry: quickRetry,
          connection: { inboundCapacity: 4 }
        })
        yield* client.awaitOpen
        yield* Effect.sleep("300 millis")
        expect(yield* client.state.get).toMatchObject({ _tag: "Open", attempt: 1 })
        const backoff = yield* Effect.fork(awaitState(client, isTag("Backoff")))
        const messages = yield* recordMessages(client)
        expect(yield* backoff).toMatchObject({
          attempt: 1,
          error: { _tag: "Disconnected", code: 1006, initiator: "transport" }
        })
        expect(messages.slice(0, 20_000)).toEqual(Array.from({ length: 20_000 }, (_, i) => String(i + 1)))
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsocketd)(
    "--maxforks=1: a second Client gets 429 (HandshakeRejected, status 429, no retryAfter), retried; once the first closes, it opens",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["cat"], ["--maxforks=1"])
        const first = yield* Client.make({ url: peer.url() })
        yield* first.awaitOpen
        const second = yield* Client.make({ url: peer.url(), retry: quickRetry })
        const backoff = yield* awaitState(second, isTag("Backoff"))
        expect(backoff).toMatchObject({
          error: { _tag: "ConnectError", reason: "HandshakeRejected", status: 429 }
        })
        expect(backoff._tag === "Backoff" && backoff.error._tag === "ConnectError" && backoff.error.retryAfter)
          .toBe(undefined)
        yield* first.close()
        yield* second.awaitOpen
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsocketd)(
    "--origin=app.example: no Origin (what the Node transport sends) is refused 403, Closed; headers: { origin: 'http://app.example' } opens",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["cat"], ["--origin=app.example"])
        const refused = yield* Client.make({ url: peer.url() })
        expect(yield* awaitState(refused, isTag("Closed"))).toMatchObject({
          error: { _tag: "Some", value: { _tag: "ConnectError", reason: "HandshakeRejected", status: 403 } }
        })
        const allowed = yield* Client.make({ url: peer.url(), headers: { origin: "http://app.example" } })
        yield* allowed.awaitOpen
      }).pipe(provideNode),
    30_000
  )

  it.scopedLive.skipIf(!hasWebsocketd)(
    "pings answered (activity counts the pong); close(4001, reason) answered with 4001 WITHOUT the reason, clean; protocols offered: 101 without one: ProtocolViolation",
    () =>
      Effect.gen(function*() {
        const peer = yield* websocketdPeer(["cat"])
        const connection = yield* Connection.connect(peer.url())
        const before = yield* connection.activity
        expect(yield* connection.ping).toBe(true)
        yield* until("the pong", () => Effect.map(connection.activity, (now) => now > before))
        expect(yield* connection.close(4001, "bye from lifeline")).toMatchObject({
          _tag: "Disconnected",
          code: 4001,
          reason: "",
          wasClean: true,
          initiator: "client"
        })
        const refused = yield* Effect.flip(Effect.scoped(Connection.connect(peer.url(), { protocols: ["v1"] })))
        expect(refused).toMatchObject({ _tag: "ConnectError", reason: "ProtocolViolation" })
      }).pipe(provideNode),
    30_000
  )
})
