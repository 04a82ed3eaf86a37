/**
 * The Node transport for tests, without Effect's default logger: the Client logs by itself (one
 * WARN when a link goes down), and the suite stays quiet. Tests about logging install their own.
 */
import { Effect, Layer, Logger } from "effect"
import { NodeTransport } from "../../src/index.js"

export const quietNode = Layer.merge(NodeTransport.layer, Logger.remove(Logger.defaultLogger))

export const provideNode = Effect.provide(quietNode)
