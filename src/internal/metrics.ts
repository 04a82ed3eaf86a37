/** The Client's metrics, as Effect `Metric`s, updated per batch rather than per message. */
import { Metric, MetricBoundaries, MetricLabel } from "effect"

export const connects = Metric.counter("lifeline_connects", { description: "connections opened", incremental: true })
export const connectFailures = Metric.counter("lifeline_connect_failures", {
  description: "connection attempts that failed, tagged by reason",
  incremental: true
})
// The reason tag of each failure, made once per reason rather than once per failed attempt.
const failureTags = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/** Counts one failed attempt under its reason. */
export const connectFailed = (reason: string): void => {
  let tags = failureTags.get(reason)
  if (tags === undefined) {
    tags = [MetricLabel.make("reason", reason)]
    failureTags.set(reason, tags)
  }
  connectFailures.unsafeUpdate(1, tags)
}

export const reconnects = Metric.counter("lifeline_reconnects", { description: "connections opened after the first", incremental: true })
export const messagesOut = Metric.counter("lifeline_messages_out", { description: "frames written", incremental: true })
export const bytesOut = Metric.counter("lifeline_bytes_out", { description: "payload bytes written (strings counted in UTF-16 units)", incremental: true })
export const messagesFailed = Metric.counter("lifeline_messages_failed", {
  description: "messages accepted by send or enqueue that were not written (each also reported to its sender or as MessageFailed)",
  incremental: true
})
export const messagesIn = Metric.counter("lifeline_messages_in", { description: "frames received", incremental: true })
export const bytesIn = Metric.counter("lifeline_bytes_in", { description: "payload bytes received (strings counted in UTF-16 units)", incremental: true })
export const outboxDepth = Metric.gauge("lifeline_outbox_depth", { description: "messages waiting in the outbox" })
export const connectLatency = Metric.histogram(
  "lifeline_connect_latency_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 16 }),
  "time from the start of an attempt to OPEN, in milliseconds"
)
export const circuitTransitions = Metric.counter("lifeline_circuit_transitions", {
  description: "circuit breaker transitions, tagged by the state entered",
  incremental: true
})
export const circuitsOpen = Metric.gauge("lifeline_circuits_open", {
  description: "circuit breakers not Closed (Open, HalfOpen or Isolated)"
})
