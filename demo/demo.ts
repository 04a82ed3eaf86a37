// The lifeline demo: `npm run demo`. A small orchestrator: each section is its own module and runs
// in one scope with the Node transport. Exits 0 when every section behaved as expected, 1 (after
// printing the cause) otherwise. Nothing is left running, so the process exits by itself.
import { Cause, Clock, Console, Effect } from "effect"
import { NodeTransport } from "effect-lifeline"
import { chaos } from "./chaos.js"
import { connectionTour } from "./connectionTour.js"

// The whole demo (about 10 seconds) must finish well within 30 seconds; past this it fails instead
// of hanging.
const DEMO_TIMEOUT = "20 seconds"

const sections = Effect.gen(function*() {
  yield* connectionTour
  yield* chaos
})

const main = Effect.gen(function*() {
  yield* Console.log("lifeline demo")
  const started = yield* Clock.currentTimeMillis
  yield* sections.pipe(
    Effect.scoped,
    Effect.timeoutFail({ duration: DEMO_TIMEOUT, onTimeout: () => new Error(`the demo took longer than ${DEMO_TIMEOUT}`) })
  )
  const finished = yield* Clock.currentTimeMillis
  yield* Console.log(`demo finished in ${finished - started} ms`)
}).pipe(
  Effect.provide(NodeTransport.layer),
  Effect.catchAllCause((cause) =>
    Console.error(`demo failed:\n${Cause.pretty(cause)}`).pipe(
      Effect.zipRight(Effect.sync(() => {
        process.exitCode = 1
      }))
    )
  )
)

Effect.runPromise(main).catch((error: unknown) => {
  console.error("demo failed:", error)
  process.exitCode = 1
})
