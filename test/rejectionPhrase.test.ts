/**
 * A server's refusal with a reason phrase of its own (round 27: Autobahn says "WebSocket version
 * 13 not supported", "origin ... not allowed", or what `ConnectionDeny` was given): the Node
 * transport puts it in the `HandshakeRejected` detail, quoted, as one line of at most 64
 * characters; a phrase that only names the status ("Forbidden", nginx's "Gateway Time-out") is
 * left out, and nothing the request sent that could be a secret is repeated.
 */
import { expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { Connection } from "../src/index.js"
import { provideNode } from "./support/node.js"
import { onRequestHead, tcpServer } from "./support/tcpServer.js"

/** The request line's target ("/chat?token=...") and each header's value, by lower-case name. */
const parse = (head: string) => {
  const [requestLine = "", ...lines] = head.split("\r\n")
  const headers = new Map<string, string>()
  for (const line of lines) {
    const colon = line.indexOf(":")
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { target: requestLine.split(" ")[1] ?? "", headers }
}

/**
 * A peer that answers every upgrade with the status line `answer` makes from the request (and
 * `headers`), as latin1 bytes, then ends the socket.
 */
const refusedWith = (
  answer: (request: ReturnType<typeof parse>) => string,
  options: {
    readonly headers?: string
    readonly path?: string
    readonly send?: Record<string, string>
    /** "user:password", dialled as userinfo (ws sends it as Authorization: Basic) */
    readonly user?: string
  } = {}
) =>
  Effect.gen(function*() {
    const server = yield* tcpServer((socket) =>
      onRequestHead(socket, (head) => {
        const statusLine = answer(parse(head))
        socket.end(
          Buffer.from(
            `${statusLine}\r\n${options.headers ?? ""}Content-Length: 0\r\nConnection: close\r\n\r\n`,
            "latin1"
          )
        )
      })
    )
    const dialled = options.user === undefined ? server.url : server.url.replace("ws://", `ws://${options.user}@`)
    const url = `${dialled}${options.path ?? "/"}`
    return yield* Effect.flip(Effect.scoped(Connection.connect(url, { headers: options.send ?? {} })))
  }).pipe(Effect.scoped, provideNode)

const refused = "the server refused the upgrade"
const utf8AsLatin1 = (text: string) => Buffer.from(text, "utf8").toString("latin1")

it.live.each(
  [
    ["the status's own name", "HTTP/1.1 403 Forbidden", `the server answered HTTP 403 instead of 101; ${refused}`],
    ["the name in capitals", "HTTP/1.1 403 FORBIDDEN", `the server answered HTTP 403 instead of 101; ${refused}`],
    [
      "nginx's older name for 504",
      "HTTP/1.1 504 Gateway Time-out",
      "the server answered HTTP 504 instead of 101; a proxy answers so when the server behind it did not answer in " +
      "time; retrying helps once it does"
    ],
    ["no phrase", "HTTP/1.1 403 ", `the server answered HTTP 403 instead of 101; ${refused}`],
    [
      "a phrase of its own",
      "HTTP/1.1 403 not you",
      `the server answered HTTP 403 "not you" instead of 101; ${refused}`
    ],
    [
      "a tab (allowed in a reason phrase) and latin1 text",
      "HTTP/1.1 400 bad\tversion \xe9t\xe9",
      `the server answered HTTP 400 "bad?version été" instead of 101; ${refused}`
    ],
    [
      "UTF-8 text (Autobahn encodes its phrase so; Node reads latin1)",
      `HTTP/1.1 400 ${utf8AsLatin1("déjà vu ✓")}`,
      `the server answered HTTP 400 "déjà vu ✓" instead of 101; ${refused}`
    ],
    [
      "C1 control characters (NEL, CSI)",
      "HTTP/1.1 400 a\x85b\x9bc",
      `the server answered HTTP 400 "a?b?c" instead of 101; ${refused}`
    ],
    [
      "double quotes",
      "HTTP/1.1 400 say \"hi\"",
      `the server answered HTTP 400 "say 'hi'" instead of 101; ${refused}`
    ],
    [
      "a URL (to its next space or quote, a comma with it)",
      "HTTP/1.1 400 bad target ws://u:pw@h/chat?token=s3cret, try again",
      `the server answered HTTP 400 "bad target (a URL) try again" instead of 101; ${refused}`
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
    const error = yield* refusedWith(() => statusLine)
    const status = Number(statusLine.split(" ")[1])
    expect(error).toMatchObject({ _tag: "ConnectError", reason: "HandshakeRejected", status, detail })
  }))

it.live("a refusal that repeats the request (its query, the Origin, a token in a header, the user and password): each is 'redacted'", () =>
  Effect.gen(function*() {
    const echoing = (request: ReturnType<typeof parse>) =>
      `HTTP/1.1 400 ${request.target} ${request.headers.get("origin")} ${request.headers.get("x-api-key")}`
    const error = yield* refusedWith(echoing, {
      path: "/chat?token=s3cret&room=kitchen",
      send: { Origin: "https://app.example", "X-Api-Key": "k-123456" }
    })
    expect(error).toMatchObject({
      _tag: "ConnectError",
      reason: "HandshakeRejected",
      status: 400,
      detail:
        `the server answered HTTP 400 "/chat?token=redacted&room=redacted redacted redacted" instead of 101; ${refused}`
    })
    const withUser = yield* refusedWith(
      (request) => `HTTP/1.1 401 bad credentials ${request.headers.get("authorization")}`,
      { user: "alice:hunter2" }
    )
    expect(withUser).toMatchObject({
      _tag: "ConnectError",
      reason: "HandshakeRejected",
      status: 401,
      detail: `the server answered HTTP 401 "bad credentials redacted" instead of 101; ${refused}`
    })
  }))

it.live("a 429 with a phrase and Retry-After: both kept, and the retryAfter", () =>
  Effect.gen(function*() {
    const error = yield* refusedWith(() => "HTTP/1.1 429 slow down", { headers: "Retry-After: 7\r\n" })
    expect(error).toMatchObject({
      _tag: "ConnectError",
      reason: "HandshakeRejected",
      status: 429,
      detail: `the server answered HTTP 429 "slow down" instead of 101; ${refused}`
    })
    const retryAfter = error._tag === "ConnectError" ? error.retryAfter : undefined
    expect(retryAfter && Duration.toMillis(retryAfter)).toBe(7000)
  }))
