/**
 * A server's refusal with a reason phrase of its own (round 27: Autobahn says "WebSocket version
 * 13 not supported", "origin ... not allowed", or what `ConnectionDeny` was given): the Node
 * transport puts it in the `HandshakeRejected` detail, quoted, as one line of at most 64
 * characters; the usual phrase of the status ("Forbidden") adds nothing and is left out.
 */
import { expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { Connection } from "../src/index.js"
import { provideNode } from "./support/node.js"
import { onRequestHead, tcpServer } from "./support/tcpServer.js"

/** A peer that answers every upgrade with `statusLine` (and `headers`), then ends the socket. */
const refusing = (statusLine: string, headers = "") =>
  tcpServer((socket) =>
    onRequestHead(socket, () => {
      socket.end(Buffer.from(`${statusLine}\r\n${headers}Content-Length: 0\r\nConnection: close\r\n\r\n`, "latin1"))
    })
  )

const refusedWith = (statusLine: string, headers = "") =>
  Effect.gen(function*() {
    const server = yield* refusing(statusLine, headers)
    return yield* Effect.flip(Effect.scoped(Connection.connect(server.url)))
  }).pipe(Effect.scoped, provideNode)

const refused = "the server refused the upgrade"

it.live.each(
  [
    ["the status's own name", "HTTP/1.1 403 Forbidden", `the server answered HTTP 403 instead of 101; ${refused}`],
    ["the name in capitals", "HTTP/1.1 403 FORBIDDEN", `the server answered HTTP 403 instead of 101; ${refused}`],
    ["no phrase", "HTTP/1.1 403 ", `the server answered HTTP 403 instead of 101; ${refused}`],
    [
      "a phrase of its own",
      "HTTP/1.1 403 not you",
      `the server answered HTTP 403 "not you" instead of 101; ${refused}`
    ],
    [
      "a tab in it (allowed in a reason phrase) and latin1 text",
      "HTTP/1.1 400 bad\tversion \xe9t\xe9",
      `the server answered HTTP 400 "bad?version été" instead of 101; ${refused}`
    ],
    [
      "200 characters: the first 64",
      `HTTP/1.1 400 ${"x".repeat(200)}`,
      `the server answered HTTP 400 "${"x".repeat(64)}…" instead of 101; ${refused}`
    ],
    [
      "a 503 with a phrase: the phrase, then the 503's hint",
      "HTTP/1.1 503 draining for deploy",
      "the server answered HTTP 503 \"draining for deploy\" instead of 101; a proxy answers so when no server " +
      "behind it is up or has room (HAProxy: all down, or its queue timed out), a server when overloaded; retrying " +
      "helps once one is back"
    ]
  ] as const
)("a refusal, %s: HandshakeRejected with that detail", ([, statusLine, detail]) =>
  Effect.gen(function*() {
    const error = yield* refusedWith(statusLine)
    const status = Number(statusLine.split(" ")[1])
    expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status, detail })
  }))

it.live("a 429 with a phrase and Retry-After: both kept, and the retryAfter", () =>
  Effect.gen(function*() {
    const error = yield* refusedWith("HTTP/1.1 429 slow down", "Retry-After: 7\r\n")
    expect(error).toMatchObject({
      _tag: "ConnectError",
      reason: "HandshakeRejected",
      status: 429,
      detail: `the server answered HTTP 429 "slow down" instead of 101; ${refused}`
    })
    const retryAfter = error._tag === "ConnectError" ? error.retryAfter : undefined
    expect(retryAfter && Duration.toMillis(retryAfter)).toBe(7000)
  }))
