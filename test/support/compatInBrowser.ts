/**
 * The compat scenarios of test/compat/scenarios.ts run in a browser page (test/browser/compat.ts):
 * the ServerControl they call, over a TestServer, and what each must see in a browser (as the
 * Node run over the browser transport). Shared by chromium.test.ts and browserScenarios.ts (Firefox, WebKit).
 */
import { Effect } from "effect"
import { expect } from "vitest"
import type { TestServer } from "../../src/testing/index.js"
import type { ControlMethod, Frame } from "../browser/compat.js"

/** The compat scenarios' ServerControl over a TestServer, frames as the page bridge carries them. */
export const serverControl = (echo: TestServer.TestServer) => {
  const run = <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect)
  const fromFrame = (frame: Frame): string | Uint8Array => "text" in frame ? frame.text : new Uint8Array(frame.bytes)
  return {
    kill: () => run(echo.kill),
    restart: () => run(echo.restart),
    closeWith: (code: number, reason: string) => run(echo.closeAll(code, reason)),
    reject: (status: number, count?: number) => run(echo.rejectNext(status, {}, count)),
    hang: () => run(echo.hangHandshake),
    behave: () => run(echo.behave),
    send: (frame: Frame) => run(echo.broadcast(fromFrame(frame))),
    sendThenClose: (frames: ReadonlyArray<string>, code: number, reason: string) =>
      run(Effect.zipRight(Effect.forEach(frames, echo.broadcast, { discard: true }), echo.closeAll(code, reason))),
    sent: async () =>
      (await run(echo.received)).map((frame): Frame =>
        typeof frame === "string" ? { text: frame } : { bytes: [...frame] }
      ),
    requests: () => run(echo.requests),
    accepted: () => run(echo.accepted),
    offeredProtocols: () =>
      run(Effect.map(echo.lastRequestHeaders, (headers) => {
        const value = headers["sec-websocket-protocol"]
        return typeof value === "string" ? value : ""
      }))
  } satisfies Record<ControlMethod, (...args: Array<never>) => Promise<unknown>>
}

/** What each scenario must see in a browser: as the Node run over the browser transport. */
export const compatExpected: ReadonlyArray<
  { readonly name: string; readonly server?: TestServer.Options; readonly seen: unknown }
> = [
  {
    name: "lifecycle",
    seen: {
      events: ["open", "message:hello", "close:4000:bye:clean", "open", "close:1000:done:clean"],
      handlers: ["open", "message:hello", "close:4000:bye:clean", "open", "close:1000:done:clean"],
      readyStates: [0, 1, 3, 1, 3],
      urlAsGiven: true,
      sendWhileOpen: true,
      constants: [0, 1, 2, 3, 0, 1, 2, 3]
    }
  },
  {
    name: "queueWhileDown",
    seen: {
      returned: [false, false, false],
      readyStateDown: 3,
      received: ["a", "bb", [1, 2, 3], "after-open"],
      bufferedWhileDown: 6
    }
  },
  {
    name: "messagesBeforeClose",
    seen: {
      events: [
        "open",
        ...Array.from({ length: 50 }, (_, index) => `message:m${index}`),
        "close:4005:after the burst:clean"
      ]
    }
  },
  {
    name: "startClosed",
    seen: {
      readyState: 3,
      requestsBefore: 0,
      events: ["open", "message:early", "message:late", "close:1000::clean"],
      received: ["early", "late"],
      retryCount: 0
    }
  },
  {
    name: "closeStops",
    seen: { events: ["open", "close:4001:leaving:clean"], readyState: 3, accepted: 1, shouldReconnect: false }
  },
  {
    name: "reconnectMethod",
    seen: {
      events: ["open", "message:ping", "close:4002:again:clean", "open", "close:1000::clean"],
      accepted: 2,
      retryCount: 0,
      readyStatesInClose: [0, 3]
    }
  },
  {
    name: "maxRetries",
    seen: {
      events: [
        "error:ConnectError:ClosedBeforeOpen",
        "close:1006::unclean",
        "error:ConnectError:ClosedBeforeOpen",
        "close:1006::unclean",
        "error:ConnectError:ClosedBeforeOpen",
        "close:1006:ClosedBeforeOpen; not retrying:unclean"
      ],
      retryCount: 2,
      readyState: 3,
      requestsAfter: 0
    }
  },
  {
    name: "connectionTimeout",
    seen: { events: ["error:TimeoutError:open", "close:1006:TimeoutError (open); not retrying:unclean"] }
  },
  {
    name: "providers",
    server: { protocols: ["p1", "p2"] },
    seen: {
      urlCalls: 2,
      protocolCalls: 2,
      protocols: ["p1", "p2"],
      offered: ["p1", "p2"],
      url: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+\/\?attempt=2$/)
    }
  },
  {
    name: "binaryType",
    seen: {
      initial: "blob",
      kinds: ["ArrayBuffer", "Blob"],
      bytes: [[7, 8, 9], [7, 8, 9]],
      order: ["before", [1, 2], "after"]
    }
  },
  {
    name: "blobThenClose",
    seen: { returned: [true, true, true], bufferedAfterClose: 2, received: ["a", [1], "c"], drained: 0 }
  },
  { name: "blobInOpenThenClose", seen: { received: [[1, 2, 3, 4, 5], "bye"], drained: 0 } },
  {
    name: "overflow",
    seen: {
      returned: [false, false, false],
      errors: [{ tag: "SendError", reason: "OutboxFull", payload: "c" }],
      received: ["a", "b"]
    }
  },
  {
    name: "unauthorized",
    seen: {
      events: [
        "error:ConnectError:ClosedBeforeOpen",
        "close:1006::unclean",
        "error:ConnectError:ClosedBeforeOpen",
        "close:1006::unclean",
        "error:ConnectError:ClosedBeforeOpen",
        "close:1006:ClosedBeforeOpen; not retrying:unclean"
      ],
      requests: 3,
      readyState: 3
    }
  },
  {
    name: "fatalClose",
    seen: { events: ["open", "close:1008:policy:clean"], accepted: 1, acceptedWithOverride: 3 }
  },
  { name: "throwingListener", seen: { events: ["open", "message:one", "message:two", "close:1000::clean"] } },
  { name: "drainAfterClose", seen: { drained: ["x", "y"], afterDrain: 0 } },
  {
    name: "abortWhileConnecting",
    seen: { events: ["close:4003:retry now:clean", "close:4004:give up:clean"], readyState: 3 }
  },
  {
    name: "invalidUrl",
    seen: {
      events: ["error:ConnectError:InvalidUrl", "close:1006:InvalidUrl; not retrying:unclean"],
      readyState: 3
    }
  }
]
