/**
 * The errors of a codec's refusals, apart from `Codec.ts` (which imports `effect/Schema` for
 * `Codec.json`), so that a Client or Connection made without a codec does not bundle Schema.
 */
import { DecodeError, SendError } from "../Errors.js"
import type { Message } from "../Transport.js"

/** A value `encode` refused: `payload` is the value, `cause` why. */
export const encodeFailed = (value: unknown, cause: unknown): SendError =>
  new SendError({ reason: "EncodeFailed", payload: value, cause }, true)

/** A frame `decode` refused: `frame` is the frame as received, `cause` why. */
export const decodeFailed = (frame: Message, cause: unknown): DecodeError => new DecodeError({ frame, cause }, true)
