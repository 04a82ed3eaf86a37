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
/**
 * How many endpoints get an `endpoint` tag of their own, for the life of the process; the attempts
 * of any later endpoint are counted under `endpoint: "other"`. Each tag set is a metric key that
 * Effect's registry keeps for ever (with its hook), and this module's tables as well: a process that
 * dials ever new endpoints (a path or a port per room, per tenant) would grow both without end.
 * Query values are redacted in a label, so `?session=N` endpoints share one.
 */
export const MAX_ENDPOINT_TAGS = 256
/** The tag value of every endpoint past the first `MAX_ENDPOINT_TAGS`. */
export const OTHER_ENDPOINT = "other"

// The tags of each endpoint, and of each (endpoint tag, reason) failure, made once rather than
// once per attempt. Endpoints are redacted labels: at most MAX_ENDPOINT_TAGS of them, and "other".
const endpointTags = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const failureTags = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/** `[endpoint]` as metric labels (the redacted URL the attempt dialled, or "other" past the bound). */
export const endpointLabels = (endpoint: string): ReadonlyArray<MetricLabel.MetricLabel> => {
  if (endpointTags.size >= MAX_ENDPOINT_TAGS && !endpointTags.has(endpoint)) endpoint = OTHER_ENDPOINT
  let tags = endpointTags.get(endpoint)
  if (tags === undefined) endpointTags.set(endpoint, tags = [MetricLabel.make("endpoint", endpoint)])
  return tags
}

/** Counts one failed attempt under its reason and its endpoint. */
export const connectFailed = (reason: string, endpoint: string): void => {
  const tag = endpointLabels(endpoint)[0]!
  const key = `${tag.value}\n${reason}`
  let tags = failureTags.get(key)
  if (tags === undefined) failureTags.set(key, tags = [MetricLabel.make("reason", reason), tag])
  connectFailures.unsafeUpdate(1, tags)
}

export const reconnects = /* @__PURE__ */ Metric.counter("lifeline_reconnects", {
  description: "connections opened after the first",
  incremental: true
})
export const messagesOut = /* @__PURE__ */ Metric.counter("lifeline_messages_out", {
  description: "frames handed to the transport",
  incremental: true
})
export const bytesOut = /* @__PURE__ */ Metric.counter("lifeline_bytes_out", {
  description: "payload bytes handed to the transport (strings counted in UTF-16 units)",
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

/** For tests: the sizes of the tag tables (endpoints, and (endpoint, reason) pairs). */
export const tagTableSizes = (): { readonly endpoints: number; readonly failures: number } => ({
  endpoints: endpointTags.size,
  failures: failureTags.size
})
