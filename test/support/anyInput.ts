/**
 * Random inputs for lifeline's public API as untyped JavaScript can call it (round 22): values of
 * any type, the hostile objects a caller can hand over by mistake or on purpose (getters and Proxy
 * traps that throw, objects whose conversion to a primitive throws, frozen and revoked objects),
 * option objects of every documented key with such values, and URLs that carry a password marker.
 *
 * Every URL that could be dialled is pointed at 127.0.0.1 (`toLoopback`): the only address a test
 * may reach. Seeded and reproducible: `fuzzParameters` reads LIFELINE_FUZZ_SEED and
 * LIFELINE_FUZZ_RUNS to run more by hand.
 */
import { FastCheck as fc } from "effect"

// fast-check asks every value it generates whether it has its clone method (`in`), and prints a
// counterexample with its `toStringMethod`: the hostile objects answer those, and throw on the rest.
const isFastChecks = (key: PropertyKey): boolean =>
  key === fc.cloneMethod || key === fc.toStringMethod || key === fc.asyncToStringMethod
const hasForFastCheck = (key: PropertyKey): boolean => key === fc.toStringMethod
const named = (name: string) => ({ [fc.toStringMethod]: () => name })
const getForFastCheck = (name: string, key: PropertyKey): unknown => key === fc.toStringMethod ? () => name : undefined

/** fast-check's parameters: the fixed seed unless LIFELINE_FUZZ_SEED is set, `runs` unless LIFELINE_FUZZ_RUNS is. */
export const fuzzParameters = (runs: number, seed = 22): { readonly seed: number; readonly numRuns: number } => {
  const seedText = process.env.LIFELINE_FUZZ_SEED
  const runsText = process.env.LIFELINE_FUZZ_RUNS
  return {
    seed: seedText === undefined || seedText === "" ? seed : Number(seedText),
    numRuns: runsText === undefined || runsText === "" ? runs : Number(runsText)
  }
}

/** Thrown by every hostile object: its text must never show up as lifeline's own. */
export const HOSTILE = "hostile-input-threw"
const boom = (): never => {
  throw new Error(HOSTILE)
}

/** An object whose every Proxy trap throws (reading, `in`, keys, descriptors, prototype). */
export const throwingProxy = (): object =>
  new Proxy({}, {
    get: (_, key) => isFastChecks(key) ? getForFastCheck("throwingProxy", key) : boom(),
    has: (_, key) => isFastChecks(key) ? hasForFastCheck(key) : boom(),
    ownKeys: boom,
    getOwnPropertyDescriptor: boom,
    getPrototypeOf: boom,
    set: boom,
    defineProperty: boom,
    deleteProperty: boom,
    isExtensible: boom,
    preventExtensions: boom,
    setPrototypeOf: boom
  })

/**
 * A Proxy as a revoked one behaves: every operation on it throws a TypeError. (A really revoked
 * Proxy cannot be a fast-check value: its `in` throws too; `Array.isArray` of one is tried apart.)
 */
export const revokedProxy = (): object => {
  const revoked = (operation: string) => () => {
    throw new TypeError(`Cannot perform '${operation}' on a proxy that has been revoked`)
  }
  return new Proxy({}, {
    get: (_, key) => isFastChecks(key) ? getForFastCheck("revokedProxy", key) : revoked("get")(),
    has: (_, key) => isFastChecks(key) ? hasForFastCheck(key) : revoked("has")(),
    ownKeys: revoked("ownKeys"),
    getOwnPropertyDescriptor: revoked("getOwnPropertyDescriptor"),
    getPrototypeOf: revoked("getPrototypeOf"),
    set: revoked("set"),
    defineProperty: revoked("defineProperty")
  })
}

/** A Proxy revoked for real (not for fast-check: see above). */
export const reallyRevoked = (): object => {
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  return proxy
}

/** An object whose conversions to a primitive (and `Symbol.toStringTag`) throw. */
export const unprintable = (): object => ({
  ...named("unprintable"),
  [Symbol.toPrimitive]: boom,
  toString: boom,
  valueOf: boom,
  toJSON: boom,
  get [Symbol.toStringTag]() {
    return boom()
  }
})

/** An object with `keys` as enumerable getters that throw. */
export const throwingGetters = (keys: ReadonlyArray<string>): object => {
  const target: Record<string, unknown> = { ...named(`throwingGetters(${keys.join(",")})`) }
  for (const key of keys) Object.defineProperty(target, key, { enumerable: true, get: boom })
  return target
}

/** An ArrayBuffer detached by a transfer (length 0 afterwards), and a view made over it before. */
export const detached = (): { readonly buffer: ArrayBuffer; readonly view: Uint8Array } => {
  const buffer = new ArrayBuffer(8)
  const view = new Uint8Array(buffer)
  structuredClone(buffer, { transfer: [buffer] })
  return { buffer, view }
}

/** Numbers that break naive checks. */
export const oddNumber = fc.constantFrom(
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
  0,
  -1,
  0.5,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER + 2,
  2 ** 31,
  2 ** 53,
  Number.MIN_VALUE
)

/** Durations as text, most of which do not parse or are not above zero. */
export const oddDuration = fc.oneof(
  fc.constantFrom(
    "5 seconds",
    "-5 seconds",
    "0 millis",
    "5 fortnights",
    "Infinity millis",
    "NaN seconds",
    "",
    " ",
    "1e400 millis",
    "seconds",
    "1 second 2",
    "10"
  ),
  fc.tuple(fc.integer(), fc.constantFrom("nanos", "micros", "millis", "seconds", "minutes", "hours", "days", "weeks"))
    .map(([n, unit]) => `${n} ${unit}`),
  fc.tuple(fc.constantFrom("Nanos", "Micros", "Millis"), fc.bigInt()).map(([unit, value]) => [unit, value]),
  fc.string()
)

/** A hostile object, made fresh for each use (a revoked Proxy cannot be shrunk or shared). */
export const hostileObject = fc.constantFrom(
  "throwingProxy",
  "revokedProxy",
  "unprintable",
  "throwingGetters",
  "frozen",
  "nullPrototype",
  "symbol",
  "bigint",
  "function",
  "class",
  "date",
  "regexp",
  "map",
  "promise"
).map((kind): unknown => {
  switch (kind) {
    case "throwingProxy":
      return throwingProxy()
    case "revokedProxy":
      return revokedProxy()
    case "unprintable":
      return unprintable()
    case "throwingGetters":
      return throwingGetters(["a", "capacity", "interval", "ca"])
    case "frozen":
      return Object.freeze({ a: 1 })
    case "nullPrototype":
      return Object.create(null) as object
    case "symbol":
      return Symbol("odd")
    case "bigint":
      return 10n ** 30n
    case "function":
      return () => 42
    case "class":
      return class Odd {}
    case "date":
      return new Date(Number.NaN)
    case "regexp":
      return /x/g
    case "map":
      return new Map([["a", 1]])
    default:
      return Promise.resolve(1)
  }
})

/** Any value: fast-check's `anything`, the odd numbers and durations, and the hostile objects. */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.anything({ maxDepth: 2 }), weight: 3 },
  { arbitrary: oddNumber, weight: 2 },
  { arbitrary: oddDuration, weight: 2 },
  { arbitrary: hostileObject, weight: 2 },
  { arbitrary: fc.constantFrom(undefined, null, true, false, "", [], {}), weight: 1 },
  { arbitrary: fc.string({ unit: "binary" }), weight: 1 }
)

/**
 * An options object: a random subset of `keys`, each with `value` (any value by default), plus
 * unknown keys; sometimes frozen, sometimes with one key a getter that throws.
 */
export const optionsOf = (
  keys: ReadonlyArray<string>,
  value: (key: string) => fc.Arbitrary<unknown> = () => anyValue
): fc.Arbitrary<Record<string, unknown>> =>
  fc.tuple(
    fc.subarray([...keys]).chain((chosen) =>
      fc.tuple(...chosen.map((key) => value(key).map((v) => [key, v] as const)))
    ),
    fc.dictionary(fc.string({ maxLength: 6 }), fc.anything({ maxDepth: 1 }), { maxKeys: 2 }),
    fc.constantFrom("plain", "plain", "plain", "frozen", "getter")
  ).map(([pairs, extra, shape]) => {
    const object: Record<string, unknown> = { ...extra }
    for (const [key, v] of pairs) object[key] = v
    if (shape === "frozen") return Object.freeze(object)
    if (shape === "getter" && pairs.length > 0) {
      Object.defineProperty(object, pairs[0]![0], { enumerable: true, get: boom })
      Object.defineProperty(object, fc.toStringMethod, {
        value: () =>
          `{ get ${pairs[0]![0]}() { throw }, ${
            pairs.slice(1).map(([key, v]) => `${key}: ${fc.stringify(v)}`).join(", ")
          } }`
      })
    }
    return object
  })

// ---------------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------------

/** A password marker: letters and digits, long enough never to occur by chance in a message. */
export const marker = fc.stringMatching(/^[A-Za-z0-9]{4,12}$/).map((random) => `pw${random}Zq7`)

const scheme = fc.constantFrom("ws", "wss", "http", "https", "WS", "Wss", "ftp", "javascript", "file", "ws+unix", "")
const separator = fc.constantFrom("://", ":/", ":", ":///", ":\\\\", "://\t")
const host = fc.constantFrom(
  "127.0.0.1",
  "example.com",
  "[::1]",
  "[::1",
  "[fe80::1%25eth0]",
  "[2001:db8::1]",
  "256.1.1.1",
  "0x7f.1",
  "",
  "exa mple.com",
  "xn--",
  "%00"
)
const port = fc.oneof(
  fc.constantFrom("", ":0", ":65535", ":99999", ":-1", ":abc", ":"),
  fc.nat(70000).map((n) => `:${n}`)
)
const path = fc.oneof(fc.constantFrom("", "/", "/a/b", "/@x", "/%zz", "/#frag", "?token=t0k&x", "#x"), fc.webPath())

/** A URL with `user:<marker>@` in it, sometimes raw, sometimes odd, most of them not valid. */
export const urlWithPassword = fc.tuple(
  scheme,
  separator,
  fc.constantFrom("", "user", "us er", "u@"),
  marker,
  fc.constantFrom("@", "@@", "/@", "#@"),
  host,
  port,
  path
).map(([s, sep, user, secret, at, h, p, rest]) => ({
  secret,
  url: `${s}${sep}${user}:${secret}${at}${h}${p}${rest}`
}))

/** Any URL text: fast-check's web URLs (given a password), arbitrary strings, and the odd ones above. */
export const anyUrl = fc.oneof(
  urlWithPassword,
  fc.tuple(fc.webUrl({ withQueryParameters: true, withFragments: true }), marker).map(([url, secret]) => ({
    secret,
    url: url.replace("://", `://user:${secret}@`)
  })),
  fc.tuple(fc.string({ unit: "binary", maxLength: 20 }), marker, fc.string({ unit: "binary", maxLength: 20 })).map((
    [before, secret, after]
  ) => ({ secret, url: `${before}:${secret}@${after}` }))
)

const DIALLED = new Set(["ws:", "wss:", "http:", "https:"])

/**
 * `text` as lifeline would dial it, with its host made 127.0.0.1 and its port `closedPort`; text
 * that does not parse, or whose scheme lifeline refuses, as it is (it fails before any socket).
 */
export const toLoopback = (text: string, closedPort: number): string => {
  let url: URL
  try {
    url = new URL(text.trim())
  } catch {
    return text
  }
  if (!DIALLED.has(url.protocol)) return text
  url.hostname = "127.0.0.1"
  url.port = String(closedPort)
  // A host that cannot be replaced (an opaque one): never dialled as it is.
  return url.hostname === "127.0.0.1" ? url.href : `ws://127.0.0.1:${closedPort}/`
}
