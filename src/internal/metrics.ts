/** The Client's metrics, as Effect `Metric`s, updated per batch rather than per message. */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

export const connects = /* @__PURE__ */ Metric.counter("lifeline_connects", {
  description: "connections opened",
  incremental: true
})
export const connectFailures = /* @__PURE__ */ Metric.counter("lifeline_connect_failures", {
  description: "connection attempts that failed, tagged by reason",
  incremental: true
})
// The tags of each endpoint, and of each (endpoint, reason) failure, made once rather than once
// per attempt. Endpoints are redacted labels; a Client has a few.
const endpointTags = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const failureTags = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/** `[endpoint]` as metric labels (the redacted URL the attempt dialled). */
export const endpointLabels = (endpoint: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  let tags = endpointTags.get(endpoint)
  if (tags === undefined) {
    tags = [MetricLabel.make("endpoint", endpoint)]
    endpointTags.set(endpoint, tags)
  }
  return tags
}

/** Counts one failed attempt under its reason and its endpoint. */
export const connectFailed = (reason: string, endpoint: string): void => {
  const key = `${endpoint}\n${reason}`
  let tags = failureTags.get(key)
  if (tags === undefined) {
    tags = [MetricLabel.make("reason", reason), MetricLabel.make("endpoint", endpoint)]
    failureTags.set(key, tags)
  }
  connectFailures.unsafeUpdate(1, tags)
}

export const reconnects = /* @__PURE__ */ Metric.counter("lifeline_reconnects", {
  description: "connections opened after the first",
  incremental: true
})
export const messagesOut = /* @__PURE__ */ Metric.counter("lifeline_messages_out", {
  description: "frames written",
  incremental: true
})
export const bytesOut = /* @__PURE__ */ Metric.counter("lifeline_bytes_out", {
  description: "payload bytes written (strings counted in UTF-16 units)",
  incremental: true
})
export const messagesFailed = /* @__PURE__ */ Metric.counter("lifeline_messages_failed", {
  description:
    "messages accepted by send or enqueue that were not written (each also reported to its sender or as MessageFailed)",
  incremental: true
})
export const messagesIn = /* @__PURE__ */ Metric.counter("lifeline_messages_in", {
  description: "frames received",
  incremental: true
})
export const bytesIn = /* @__PURE__ */ Metric.counter("lifeline_bytes_in", {
  description: "payload bytes received (strings counted in UTF-16 units)",
  incremental: true
})
export const outboxDepth = /* @__PURE__ */ Metric.gauge("lifeline_outbox_depth", {
  description: "messages waiting in the outbox"
})
export const connectLatency = /* @__PURE__ */ Metric.histogram(
  "lifeline_connect_latency_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 16 }),
  "time from the start of an attempt to OPEN, in milliseconds"
)
export const circuitTransitions = /* @__PURE__ */ Metric.counter("lifeline_circuit_transitions", {
  description: "circuit breaker transitions, tagged by the state entered",
  incremental: true
})
export const circuitsOpen = /* @__PURE__ */ Metric.gauge("lifeline_circuits_open", {
  description: "circuit breakers not Closed (Open, HalfOpen or Isolated)"
})
