/**
 * Not a page: a script that imports lifeline's Node entry (and so `ws`), which `bundlePage` must
 * refuse. chromium.test.ts checks that it does.
 */
import { NodeTransport } from "../../src/index.js"

Object.assign(globalThis, { transport: NodeTransport.make, pageReady: true })
