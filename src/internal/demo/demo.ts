// The lifeline demo (`npm run demo`, `npx effect-lifeline demo`). A small orchestrator: each
// section is its own module and runs in one scope with the Node transport. Succeeds with exit code
// 0 when every section behaved as expected, 1 (after printing the cause) otherwise. Nothing is left
// running, so the process exits by itself.
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as NodeTransport from "../../NodeTransport.js"
import { chaos } from "./chaos.js"
import { connectionTour } from "./connectionTour.js"

// The whole demo (about 10 seconds) must finish well within 30 seconds; past this it fails instead
// of hanging.
const DEMO_TIMEOUT = "20 seconds"

const sections = Effect.gen(function*() {
  yield* connectionTour
  yield* chaos
})

/** Runs the demo, printing as it goes; succeeds with the process exit code (0 or 1). */
export const demo: Effect.Effect<number> = Effect.gen(function*() {
  yield* Console.log("lifeline demo")
  const started = yield* Clock.currentTimeMillis
  yield* sections.pipe(
    Effect.scoped,
    Effect.timeoutFail({
      duration: DEMO_TIMEOUT,
      onTimeout: () => new Error(`the demo took longer than ${DEMO_TIMEOUT}`)
    })
  )
  const finished = yield* Clock.currentTimeMillis
  yield* Console.log(`demo finished in ${finished - started} ms`)
  return 0
}).pipe(
  Effect.provide(NodeTransport.layer),
  Effect.catchAllCause((cause) => Effect.as(Console.error(`demo failed:\n${Cause.pretty(cause)}`), 1))
)

/** Runs the demo and sets `process.exitCode`. */
export const runDemo = (): Promise<void> =>
  Effect.runPromise(demo).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      // eslint-disable-next-line no-console -- the demo's last word, outside any Effect runtime
      console.error("demo failed:", error)
      process.exitCode = 1
    }
  )
