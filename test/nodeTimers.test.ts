/**
 * The Node transport's shared timer slots (`primitives/nodeTimers.ts`): the timers due in one
 * 10 ms slot share a setTimeout. They may belong to unrelated Clients, so one that throws must not
 * take the others with it.
 */
import { afterEach, describe, expect, it, vi } from "vitest"
import { slotTimers } from "../src/internal/primitives/nodeTimers.js"

afterEach(() => {
  vi.useRealTimers()
})

describe("timer slots", () => {
  it("a target that throws: the rest of its slot still fires, and the error is thrown again on its own", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance", "queueMicrotask"] })
    const fired: Array<string> = []
    slotTimers.after(5, { fire: () => fired.push("first") })
    slotTimers.after(5, {
      fire: () => {
        throw new Error("a socket method threw")
      }
    })
    slotTimers.after(5, { fire: () => fired.push("third") })
    expect(() => vi.advanceTimersByTime(20)).toThrow("a socket method threw")
    expect(fired).toEqual(["first", "third"])
  })
})
