/**
 * What `Client.make` and `LiteClient.make` share: the options decoded once, with the Transport's
 * checks of the options only it reads (Node: `headers`, `tls`), and the codec, whose wrapper goes
 * around the raw client that `build` makes. Never a throw: options that cannot work leave the
 * client Closed with `ConnectError InvalidOptions`.
 */
import type { Scope } from "effect"
import * as Effect from "effect/Effect"
import type { Client, CodecOptions, Options } from "../Client.js"
import type { Codec } from "../Codec.js"
import { Transport } from "../Transport.js"
import { INVALID_OPTIONS_HINT } from "./classifyHandshakeError.js"
import type { RawClient } from "./codecErrors.js"
import { CodecEdge, invalidCodec as invalidCodecShape } from "./codecErrors.js"
import type { ClientSettings } from "./options.js"
import { clientSettings, optionChecksOf, UNREADABLE } from "./options.js"

export const makeWith = (
  options: Options | CodecOptions<unknown, unknown>,
  build: (settings: ClientSettings) => Effect.Effect<RawClient, never, Scope.Scope | Transport>,
  /** What else is wrong with the options, for this client (the small one refuses some). */
  refuse?: (options: Options) => string | undefined
): Effect.Effect<Client<unknown, never, unknown>, never, Scope.Scope | Transport> => {
  // Not an object (untyped code): the options check names it, as for any bad option; never a throw here.
  let codec: Codec<unknown, unknown> | undefined
  let decodeErrors: unknown
  // What is wrong with the codec or `decodeErrors`, given from untyped code.
  let bad: string | undefined
  try {
    if (typeof options === "object" && options !== null && "codec" in options) codec = options.codec
    // `codec` and `decodeErrors` are no options for the options checks, which ignore them: the
    // options go to the checks as given (not a copy: a settings object's url getter is read).
    if (codec !== undefined) {
      const given = (options as CodecOptions<unknown, unknown>).decodeErrors
      decodeErrors = given === undefined ? "event" : given
      bad = invalidCodec(codec, decodeErrors)
    }
  } catch {
    // A getter or Proxy trap that throws. Never a throw from here.
    bad = `codec: ${UNREADABLE}; ${INVALID_OPTIONS_HINT}`
  }
  const given = codec
  return Effect.flatMap(
    Transport,
    (transport): Effect.Effect<Client<unknown, never, unknown>, never, Scope.Scope | Transport> => {
      const settings = clientSettings(options, optionChecksOf(transport))
      // The options checks speak first: they name the options that cannot be read or are wrong.
      // A codec that cannot work leaves the raw client, Closed: no frame is read, every send refused.
      bad ??= refuse?.(options)
      if (bad !== undefined) return build(settings.invalid !== undefined ? settings : { ...settings, invalid: bad })
      if (given === undefined) return build(settings)
      return Effect.map(
        build(settings),
        (live) => given[CodecEdge].client(live, given, decodeErrors as "event" | "fail")
      )
    }
  )
}

/** What is wrong with a codec given from untyped code: the Client then starts Closed with `InvalidOptions`. */
const invalidCodec = (codec: Codec<unknown, unknown>, decodeErrors: unknown): string | undefined => {
  const bad = invalidCodecShape(codec)
  if (bad !== undefined) return bad
  if (decodeErrors !== "event" && decodeErrors !== "fail") {
    // Only a string is shown: JSON.stringify throws on a BigInt or a cycle (untyped code).
    return `decodeErrors: expected "event" or "fail", got ${
      typeof decodeErrors === "string"
        ? JSON.stringify(decodeErrors)
        : decodeErrors === null
        ? "null"
        : typeof decodeErrors
    }`
  }
  return undefined
}
