/**
 * A codec at the public edge: a Connection or a Client whose `messages` decodes and whose `send`,
 * `write`, `enqueue` and `sink` encode, wrapped around the raw one. Nothing below the edge knows
 * of codecs: the outbox, the inbound bounds, `close`'s payloads and `MessageFailed` events deal in
 * encoded frames; the heartbeat's `isPong` sees raw frames, before decoding.
 */
import type { Option, Subscribable } from "effect"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Sink from "effect/Sink"
import type * as Stream from "effect/Stream"
import type { Client } from "../Client.js"
import type { Codec } from "../Codec.js"
import type { Connection } from "../Connection.js"
import type { CircuitOpenError, DecodeError, Disconnected, SendError } from "../Errors.js"
import type { ClientError } from "../Reconnect.js"
import type { Message } from "../Transport.js"
import type { ClientEvent, ClientState } from "./clientState.js"
import type { Edge, InboundPulls, RawClient } from "./codecErrors.js"
import { decodeFailed, encodeFailed, neverThrows } from "./codecErrors.js"
import { streamOfSteps } from "./primitives/inboundBuffer.js"
import type { ReadyState } from "./protocol.js"

type Encode<Out> = (value: Out) => Either.Either<Message, SendError>
type Decode<In> = (frame: Message) => Either.Either<In, DecodeError>

/**
 * `codec.encode` as a function that never throws, chosen once per wrapper: `Codec.make`'s is
 * itself (it catches already); a codec made by hand that throws refuses the value too.
 */
const encoderOf = <Out>(codec: Codec<unknown, Out>): Encode<Out> =>
  neverThrows.has(codec.encode) ? codec.encode : (value) => {
    try {
      return codec.encode(value)
    } catch (thrown) {
      return Either.left(encodeFailed(value, thrown))
    }
  }

/** `codec.decode` as a function that never throws (as `encoderOf`). */
const decoderOf = <In>(codec: Codec<In, never>): Decode<In> =>
  neverThrows.has(codec.decode) ? codec.decode : (frame) => {
    try {
      return codec.decode(frame)
    } catch (thrown) {
      return Either.left(decodeFailed(frame, thrown))
    }
  }

/** Encodes `value` when the Effect runs, then hands the frame to `next`; a refused value fails with `SendError EncodeFailed`. */
const encodeThen = <Out, E>(
  encode: Encode<Out>,
  value: Out,
  next: (frame: Message) => Effect.Effect<void, E>
): Effect.Effect<void, E | SendError> =>
  Effect.suspend((): Effect.Effect<void, E | SendError> => {
    const result = encode(value)
    return Either.isRight(result) ? next(result.right) : Effect.fail(result.left)
  })

/**
 * `inner` (a sink of frames) behind the codec. Each chunk is encoded whole; at a value that does
 * not encode, the values before it go to `inner` and the sink then fails with `SendError
 * EncodeFailed` for that value, so nothing before it is lost and nothing after it is written.
 */
const encodingSink = <Out, E>(
  encode: Encode<Out>,
  inner: Sink.Sink<void, Message, never, E>
): Sink.Sink<void, Out, never, E | SendError> => {
  const encoder: Channel.Channel<Chunk.Chunk<Message>, Chunk.Chunk<Out>, SendError, never, unknown, unknown> = Channel
    .readWithCause({
      onInput: (chunk: Chunk.Chunk<Out>) => {
        const values = Chunk.toReadonlyArray(chunk)
        const frames: Array<Message> = new Array(values.length)
        for (let index = 0; index < values.length; index++) {
          const result = encode(values[index]!)
          if (Either.isLeft(result)) {
            frames.length = index
            const failed = Channel.fail(result.left)
            return index === 0 ? failed : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(frames)), failed)
          }
          frames[index] = result.right
        }
        return Channel.zipRight(Channel.write(Chunk.unsafeFromArray(frames)), encoder)
      },
      onFailure: (cause) => Channel.failCause(cause),
      onDone: (done) => Channel.succeed(done)
    })
  // pipeToOrFail: the failure reaches `inner` after the frames before it, and fails the sink.
  return Sink.fromChannel(Channel.pipeToOrFail(encoder, Sink.toChannel(inner)))
}

/**
 * Inbound frames a codec refused, whether skipped (`decodeErrors: "event"`) or failing `messages`.
 * Here, not in `metrics.ts`, so that an app without a codec does not bundle it.
 */
export const decodeFailures = Metric.counter("lifeline_decode_failures", {
  description: "inbound frames a codec could not decode (each also a DecodeFailed event or a failed messages)",
  incremental: true
})

/**
 * Reads frames through the codec. A frame that does not decode goes to `onFailure` and is skipped
 * (a Client's `decodeErrors: "event"`); without `onFailure` the stream emits the frames decoded
 * before it, then fails with its `DecodeError`, and keeps the frames after it: the next run of
 * `messages` starts with them, so re-reading after a failure loses nothing but the bad frame.
 */
class Decoder<In> {
  /** The failure a stream is to fail with next, and the frames that came after it. */
  private failure: DecodeError | undefined = undefined
  private rest: Chunk.Chunk<Message> | undefined = undefined

  constructor(
    private readonly decode: Decode<In>,
    private readonly onFailure: ((error: DecodeError) => void) | undefined
  ) {}

  private decodeChunk(chunk: Chunk.Chunk<Message>): Chunk.Chunk<In> {
    const frames = Chunk.toReadonlyArray(chunk)
    const values: Array<In> = []
    for (let index = 0; index < frames.length; index++) {
      const result = this.decode(frames[index]!)
      if (Either.isRight(result)) {
        values.push(result.right)
        continue
      }
      decodeFailures.unsafeUpdate(1, [])
      if (this.onFailure !== undefined) {
        this.onFailure(result.left)
        continue
      }
      this.failure = result.left
      if (index + 1 < frames.length) this.rest = Chunk.unsafeFromArray(frames.slice(index + 1))
      break
    }
    return Chunk.unsafeFromArray(values)
  }

  /**
   * The decoded stream over `pull` (the raw inbound: a chunk of frames, or `None` at the end) and
   * `pullOne` (the oldest frame alone: what each run pulls first, `streamOfSteps`).
   */
  stream(
    pull: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>,
    pullOne: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>
  ): Stream.Stream<In, DecodeError> {
    return streamOfSteps(this.step(pull, false), this.step(pullOne, true))
  }

  /** The next decoded values: the failure due first, then the frames kept after it, then `pull`'s. */
  private step(
    pull: Effect.Effect<Chunk.Chunk<Message>, Option.Option<never>>,
    one: boolean
  ): Effect.Effect<Chunk.Chunk<In> | undefined, DecodeError> {
    const next = Effect.orElseSucceed(Effect.map(pull, (chunk) => this.decodeChunk(chunk)), () => undefined)
    return Effect.suspend((): Effect.Effect<Chunk.Chunk<In> | undefined, DecodeError> => {
      const failure = this.failure
      if (failure !== undefined) {
        this.failure = undefined
        return Effect.fail(failure)
      }
      const rest = this.rest
      if (rest === undefined) return next
      // One at a time, the others kept: as they would be in the buffer.
      const taken = one ? Chunk.take(rest, 1) : rest
      this.rest = one && rest.length > 1 ? Chunk.drop(rest, 1) : undefined
      return Effect.succeed(this.decodeChunk(taken))
    })
  }
}

const NodeInspectSymbol = Symbol.for("nodejs.util.inspect.custom")

const renderingOf = (raw: unknown): unknown =>
  typeof raw === "object" && raw !== null && "toJSON" in raw && typeof raw.toJSON === "function" ? raw.toJSON() : raw

/** A Connection behind a codec. `close` and everything else are the raw connection's. */
class CodecConnection<In, Out> implements Connection<In, Out, DecodeError> {
  private readonly decoder: Decoder<In>
  private boundSend: ((value: Out) => Effect.Effect<void, SendError>) | undefined = undefined
  private boundWrite: ((value: Out) => Effect.Effect<void, SendError>) | undefined = undefined
  private readonly encode: Encode<Out>

  constructor(
    private readonly raw: Connection,
    private readonly inbound: InboundPulls,
    codec: Codec<In, Out>
  ) {
    this.decoder = new Decoder(decoderOf(codec), undefined)
    this.encode = encoderOf(codec)
  }

  toJSON(): unknown {
    return renderingOf(this.raw)
  }

  [NodeInspectSymbol](): unknown {
    return this.toJSON()
  }

  get url(): string {
    return this.raw.url
  }

  get protocol(): string {
    return this.raw.protocol
  }

  get extensions(): string {
    return this.raw.extensions
  }

  get readyState(): Effect.Effect<ReadyState> {
    return this.raw.readyState
  }

  get bufferedAmount(): Effect.Effect<number> {
    return this.raw.bufferedAmount
  }

  get closed(): Effect.Effect<Disconnected> {
    return this.raw.closed
  }

  get close(): (code?: number, reason?: string) => Effect.Effect<Disconnected> {
    return this.raw.close
  }

  get ping(): Effect.Effect<boolean> {
    return this.raw.ping
  }

  get activity(): Effect.Effect<number> {
    return this.raw.activity
  }

  get messages(): Stream.Stream<In, DecodeError> {
    return this.decoder.stream(this.inbound.pull, this.inbound.pullOne)
  }

  get send(): (value: Out) => Effect.Effect<void, SendError> {
    const send = this.raw.send
    return this.boundSend ??= (value) => encodeThen(this.encode, value, send)
  }

  get write(): (value: Out) => Effect.Effect<void, SendError> {
    const write = this.raw.write
    return this.boundWrite ??= (value) => encodeThen(this.encode, value, write)
  }

  get sink(): Sink.Sink<void, Out, never, SendError> {
    return encodingSink(this.encode, this.raw.sink)
  }
}

/** A Client behind a codec; `E` is `messages`' error: `DecodeError` under `decodeErrors: "fail"`. */
class CodecClient<In, Out, E> implements Client<In, Out, E> {
  private readonly decoder: Decoder<In>
  private boundSend: ((value: Out) => Effect.Effect<void, SendError | CircuitOpenError>) | undefined = undefined
  private boundEnqueue: ((value: Out) => Effect.Effect<void, SendError | CircuitOpenError>) | undefined = undefined
  private readonly encode: Encode<Out>

  constructor(
    private readonly live: RawClient,
    codec: Codec<In, Out>,
    decodeErrors: "event" | "fail"
  ) {
    this.decoder = new Decoder(
      decoderOf(codec),
      decodeErrors === "event" ? (error) => live.publishDecodeFailure(error) : undefined
    )
    this.encode = encoderOf(codec)
  }

  toJSON(): unknown {
    return this.live.toJSON()
  }

  [NodeInspectSymbol](): unknown {
    return this.toJSON()
  }

  get state(): Subscribable.Subscribable<ClientState> {
    return this.live.state
  }

  get events(): Stream.Stream<ClientEvent> {
    return this.live.events
  }

  get messages(): Stream.Stream<In, E> {
    // E is DecodeError exactly when the decoder has no onFailure (`decodeErrors: "fail"`).
    return this.decoder.stream(this.live.inboundChunks, this.live.inboundOne) as Stream.Stream<In, E>
  }

  get send(): (value: Out) => Effect.Effect<void, SendError | CircuitOpenError> {
    const send = this.live.send
    return this.boundSend ??= (value) => encodeThen(this.encode, value, send)
  }

  get enqueue(): (value: Out) => Effect.Effect<void, SendError | CircuitOpenError> {
    const enqueue = this.live.enqueue
    return this.boundEnqueue ??= (value) => encodeThen(this.encode, value, enqueue)
  }

  get sink(): Sink.Sink<void, Out, never, SendError | CircuitOpenError> {
    return encodingSink(this.encode, this.live.sink)
  }

  get awaitOpen(): Effect.Effect<void, ClientError> {
    return this.live.awaitOpen
  }

  get reconnect(): Effect.Effect<void> {
    return this.live.reconnect
  }

  get close(): (code?: number, reason?: string) => Effect.Effect<ReadonlyArray<Message>> {
    return this.live.close
  }

  get outboxSize(): Effect.Effect<number> {
    return this.live.outboxSize
  }

  get failed(): Effect.Effect<number> {
    return this.live.failed
  }
}

/** The wrappers every codec carries (`Codec.make` puts them under `CodecEdge`). */
export const edge: Edge = {
  client: (live, codec, decodeErrors) => new CodecClient(live, codec, decodeErrors),
  connection: (raw, inbound, codec) => new CodecConnection(raw, inbound, codec)
}
