/**
 * The Node transport's write completions once its socket is destroyed, in the orders a real socket
 * shows only now and then: ws fails the frames it still held (compressing, and queued behind) as
 * soon as its compressor calls back, which may be before Node calls back the writes of the frames
 * ws had handed to the TCP socket. Each completion must stand for the right frame: the held ones
 * are the newest, reported `notWritten` (a Client sends them again), and only after the ones
 * before them, in order. A real destroyed socket shows the common order (`test/notWritten.test.ts`);
 * this drives `WriteCallbacks` directly, with a socket that is only its two fields.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as Net from "node:net"
import { WriteCallbacks } from "../src/internal/nodeWriteCallbacks.js"

const COMPRESSING = "The socket was closed while data was being compressed"
const AT_CLOSE = "The socket was closed while ws still held the frame, to compress it"

/** WriteCallbacks over a destroyed socket with `count` frames waiting; what each frame was told, in call order. */
const waiting = (count: number) => {
  const writes = new WriteCallbacks({ tcp: { destroyed: true } as Net.Socket, bufferedAmount: () => 1 })
  const told: Array<string> = []
  for (let frame = 1; frame <= count; frame++) {
    writes.callbacks.push((error) => {
      const notWritten = (error as { notWritten?: unknown } | undefined)?.notWritten === true
      told.push(
        `${frame} ${
          error === undefined
            ? "written"
            : notWritten
            ? `notWritten (${(error.cause as Error).message})`
            : error.message
        }`
      )
    })
  }
  return {
    told,
    complete: (error?: Error) => writes.completion(error),
    closed: (held: number) => writes.heldAtClose(held)
  }
}

describe("WriteCallbacks: the frames ws held, on a destroyed socket", () => {
  it("ws fails two held frames before Node calls back the one it had handed on: nothing is told until that one, then all three in order", () => {
    const { complete, told } = waiting(3)
    complete(new Error(COMPRESSING))
    complete(new Error(COMPRESSING))
    expect(told).toEqual([])
    complete(new Error("write ECONNRESET"))
    expect(told).toEqual([
      "1 write ECONNRESET",
      `2 notWritten (${COMPRESSING})`,
      `3 notWritten (${COMPRESSING})`
    ])
  })

  it("Node's completion first (with no error, as Node reports a destroyed stream's writes), then ws's: each as it comes", () => {
    const { complete, told } = waiting(2)
    complete()
    expect(told).toEqual(["1 the connection ended before the frame was written"])
    complete(new Error("The socket was closed while the blob was being read"))
    expect(told).toEqual([
      "1 the connection ended before the frame was written",
      "2 notWritten (The socket was closed while the blob was being read)"
    ])
  })

  it("every frame held: told at once, in order; a completion past the frames waiting is ignored", () => {
    const { complete, told } = waiting(2)
    complete(new Error(COMPRESSING))
    complete(new Error(COMPRESSING))
    complete(new Error(COMPRESSING))
    complete()
    expect(told).toEqual([`1 notWritten (${COMPRESSING})`, `2 notWritten (${COMPRESSING})`])
  })

  it("held frames between two of Node's completions: the held ones wait for both", () => {
    const { complete, told } = waiting(4)
    complete(new Error("write EPIPE"))
    complete(new Error(COMPRESSING))
    expect(told).toEqual(["1 write EPIPE"])
    complete(new Error(COMPRESSING))
    expect(told).toEqual(["1 write EPIPE"])
    complete(new Error("write EPIPE"))
    expect(told).toEqual([
      "1 write EPIPE",
      "2 write EPIPE",
      `3 notWritten (${COMPRESSING})`,
      `4 notWritten (${COMPRESSING})`
    ])
  })
})

describe("WriteCallbacks: the frames ws still holds when its socket closes (its compression waits in the zlib queue)", () => {
  it("the newest ones are told notWritten at the close, after Node's completion still owed for the one before them; ws's own errors later find nothing", () => {
    const { closed, complete, told } = waiting(3)
    closed(2)
    expect(told).toEqual([])
    complete(new Error("write ECONNRESET"))
    expect(told).toEqual(["1 write ECONNRESET", `2 notWritten (${AT_CLOSE})`, `3 notWritten (${AT_CLOSE})`])
    complete(new Error(COMPRESSING))
    complete(new Error(COMPRESSING))
    expect(told).toHaveLength(3)
  })

  it("ws's own errors for them after the close are ignored, while Node still owes completions of frames before them", () => {
    const { closed, complete, told } = waiting(4)
    closed(2)
    complete(new Error(COMPRESSING))
    complete(new Error(COMPRESSING))
    expect(told).toEqual([])
    complete(new Error("write EPIPE"))
    expect(told).toEqual(["1 write EPIPE"])
    complete(new Error("write EPIPE"))
    expect(told).toEqual(["1 write EPIPE", "2 write EPIPE", `3 notWritten (${AT_CLOSE})`, `4 notWritten (${AT_CLOSE})`])
  })

  it("ws counted one more than are waiting (the frame it compresses was sent without a callback): only those waiting", () => {
    const { closed, told } = waiting(2)
    closed(3)
    expect(told).toEqual([`1 notWritten (${AT_CLOSE})`, `2 notWritten (${AT_CLOSE})`])
  })

  it("ws already failed what it held (its compressor called back before the close): the close counts nothing again", () => {
    const { closed, complete, told } = waiting(3)
    complete(new Error(COMPRESSING))
    complete(new Error(COMPRESSING))
    // ws's sender still reads as compressing, its queue as it was: the close must not count them.
    closed(2)
    expect(told).toEqual([])
    complete(new Error("write EPIPE"))
    expect(told).toEqual(["1 write EPIPE", `2 notWritten (${COMPRESSING})`, `3 notWritten (${COMPRESSING})`])
  })
})
