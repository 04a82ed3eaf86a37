// The lifeline demo: `npm run demo` (also `npx effect-lifeline demo`). The sections live in
// src/internal/demo/ so that the published CLI can run them from dist/: a connection tour of
// typed failures, then a Client under chaos. Exits 0 when every section behaved as expected.
import { runDemo } from "../src/internal/demo/demo.js"

void runDemo()
