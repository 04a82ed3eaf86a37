/**
 * The benchmark's turn order (a Williams design): every run is a permutation, each contender takes
 * each place equally often, and runs right after each of the others equally often. A rotation
 * would always put the same contender before another.
 */
import { describe, expect, it } from "@effect/vitest"
import { turnOrder } from "../bench/util.js"

/** How often each ordered pair is adjacent, and each contender takes each place, over `runs`. */
const tally = (count: number, runs: number) => {
  const pairs = new Map<string, number>()
  const places = new Map<string, number>()
  for (let run = 0; run < runs; run++) {
    const order = turnOrder(run, count)
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, index) => index))
    order.forEach((contender, place) =>
      places.set(`${contender}@${place}`, (places.get(`${contender}@${place}`) ?? 0) + 1)
    )
    for (let place = 1; place < count; place++) {
      const pair = `${order[place - 1]}>${order[place]}`
      pairs.set(pair, (pairs.get(pair) ?? 0) + 1)
    }
  }
  return { pairs: [...pairs.values()], pairCount: pairs.size, places: [...places.values()], placeCount: places.size }
}

/** Over `runs`, every ordered pair is adjacent `times` times and every contender takes every place `times` times. */
const expectBalanced = (count: number, runs: number, times: number) => {
  const { pairCount, pairs, placeCount, places } = tally(count, runs)
  expect(pairCount).toBe(count * (count - 1))
  expect(pairs.every((seen) => seen === times)).toBe(true)
  expect(placeCount).toBe(count * count)
  expect(places.every((seen) => seen === times)).toBe(true)
}

describe("bench turn order", () => {
  it("5 contenders (odd) over 10 runs: each ordered pair adjacent twice, each place taken twice", () => {
    expectBalanced(5, 10, 2)
  })

  it("4 contenders (even) over 4 runs: each ordered pair adjacent once, each place taken once", () => {
    expectBalanced(4, 4, 1)
  })

  it("one or two contenders", () => {
    expect(turnOrder(3, 1)).toEqual([0])
    expect([turnOrder(0, 2), turnOrder(1, 2)]).toEqual([[0, 1], [1, 0]])
  })
})
