/**
 * The Node transport's write completions (`NodeTransport.ts`): which frame each of ws's shared
 * completions stands for, and what it reports, once the socket is destroyed (Node calls back out
 * of order; ws fails what it still held before Node's completions of what it had handed on). A
 * module of its own so that a test can drive the bookkeeping in orders a real socket shows only
 * now and then (`test/writeCallbacks.test.ts`).
 */
import type * as Net from "node:net"

/**
 * What the completions read of their socket: its TCP socket once open, and the bytes it holds
 * unwritten (Transport's `bufferedAmount`: 0 only once every frame so far was written).
 */
export interface WritingSocket {
  readonly tcp: Net.Socket | undefined
  readonly bufferedAmount: () => number
}

const writeLost = new Error("the connection ended before the frame was written")

/**
 * ws's errors for the frames it still held when its socket closed: the one it was compressing and
 * those queued behind it (or behind a Blob being read). None of their bytes was handed to the TCP
 * socket (ws checks `destroyed` before it writes), so they may be sent again: the Client does.
 */
const HELD_BY_WS = [
  "The socket was closed while data was being compressed",
  "The socket was closed while the blob was being read"
]

/** What a frame ws still held is reported with: Transport's `notWritten` (the Client sends it again). */
const notWritten = (cause: Error): Error =>
  Object.assign(new Error("the connection ended before the frame reached the network", { cause }), {
    notWritten: true
  })

const closedWhileHeld = new Error("The socket was closed while ws still held the frame, to compress it")

/** ws 8.x's sender (`_sender`) while it holds a frame: it compresses one, or reads a Blob (its `_state` is not DEFAULT). */
const holdingSender = (ws: object): object | undefined => {
  const sender: unknown = Reflect.get(ws, "_sender")
  if (typeof sender !== "object" || sender === null) return undefined
  const state: unknown = Reflect.get(sender, "_state")
  return typeof state === "number" && state !== 0 ? sender : undefined
}

/**
 * ws's sender holds a frame, with perhaps more queued behind. Its `bufferedAmount` counts what it
 * holds by length, so a held empty frame (ws compresses every message, an empty one too, unless
 * no_context_takeover sets a threshold) counts nothing: 0 then does not mean written.
 */
export const wsHolds = (ws: object): boolean => holdingSender(ws) !== undefined

/**
 * How many frames ws's sender still holds for `completion`: the one it compresses and those
 * queued behind it with that callback. 0 where ws's internals are not as read here.
 */
export const heldByWs = (ws: object, completion: unknown): number => {
  const sender = holdingSender(ws)
  const queue: unknown = sender === undefined ? undefined : Reflect.get(sender, "_queue")
  if (!Array.isArray(queue)) return 0
  let held = 1
  for (const params of queue) {
    if (Array.isArray(params) && params[params.length - 1] === completion) held++
  }
  return held
}

/** libuv's counters of a socket's TCP handle: what was handed to it, and what it still holds. */
interface TcpCounters {
  readonly bytesWritten: number
  readonly writeQueueSize: number
}

/**
 * The TCP handle's counters: Node's internal `_handle`, under TLS the TCP handle below the TLS one
 * (`_handle._parent`, so the bytes are TLS records'); undefined where they are not there.
 * `belowTls`: only the one below a TLS handle (whether a write is taken must not read the TLS one's).
 */
export const tcpCounters = (tcp: Net.Socket, belowTls = false): TcpCounters | undefined => {
  const handle: unknown = Reflect.get(tcp, "_handle")
  if (typeof handle !== "object" || handle === null) return undefined
  const parent: unknown = Reflect.get(handle, "_parent")
  const below = typeof parent === "object" && parent !== null
  if (belowTls && !below) return undefined
  const stream = below ? parent : handle
  const handed: unknown = Reflect.get(stream, "bytesWritten")
  const held: unknown = Reflect.get(stream, "writeQueueSize")
  return typeof handed === "number" && typeof held === "number" ? stream as TcpCounters : undefined
}

/**
 * The senders' callbacks of one socket, oldest first: ws calls one shared completion per frame,
 * in order. Node calls a write's callback with no error when its socket was destroyed before the
 * write finished (a reset, `terminate`): such a frame was not written, and its sender hears so.
 * But a write the kernel took at once is called back on the next tick, and a socket destroyed in
 * between (`terminate` right after `send`) looked the same: the frame, delivered, was reported
 * lost. So a frame the kernel had taken when its write returned counts as written whatever
 * follows: nothing left buffered (`bufferedAmount` 0: Transport's contract, what the Client's
 * send reads to skip its canceler), or under TLS, whose stream keeps a write until TLS calls it
 * done a turn later, its records handed to the TCP handle and all of them taken by the kernel.
 */
export class WriteCallbacks {
  readonly callbacks: Array<((error?: Error) => void) | undefined> = []
  private head = 0
  /**
   * The newest callbacks whose frames ws failed as held (`HELD_BY_WS`), not yet called: ws fails
   * them at once, while Node may still owe the completions of frames handed to the TCP socket
   * before them, so they run, in order, after those.
   */
  private held = 0
  private heldError: Error | undefined = undefined
  /**
   * Who reported the held frames: ws (it fails all it held at once, so the close has nothing left
   * to count), or the close (`heldAtClose`: ws's own errors for them, later, are then ignored).
   */
  private heldReportedBy: "ws" | "close" | undefined = undefined
  /** The callbacks before this index are of frames the kernel took. */
  private taken = 0
  readonly completion = (error?: Error | null): void => this.completed(error)
  /** The socket is TLS: its stream keeps a write until TLS calls it done, a turn after the kernel took it. */
  private readonly tls: boolean

  constructor(private readonly socket: WritingSocket) {
    this.tls = socket.tcp !== undefined && Reflect.get(socket.tcp, "encrypted") === true
  }

  /** Read before a write: under TLS, the bytes handed to the TCP handle below so far. */
  handedBefore(): number | undefined {
    const tcp = this.socket.tcp
    return this.tls && tcp !== undefined ? tcpCounters(tcp, true)?.bytesWritten : undefined
  }

  /**
   * Called after a write: with nothing left buffered, every frame so far was taken by the kernel.
   * Under TLS (`handed`: libuv's count before the write), so were they if that write handed records
   * to the TCP handle, libuv holds none, and only that write is in the stream (none behind it, in
   * the stream or in ws).
   */
  takenIfFlushed(handed: number | undefined): void {
    // A destroyed socket writes nothing more; its buffer emptied by failing what it held.
    const tcp = this.socket.tcp
    if (tcp === undefined || tcp.destroyed) return
    const buffered = this.socket.bufferedAmount()
    if (buffered === 0) {
      this.taken = this.callbacks.length
      return
    }
    if (handed === undefined) return
    const below = tcpCounters(tcp, true)
    if (below === undefined || below.writeQueueSize !== 0 || below.bytesWritten === handed) return
    const state: unknown = Reflect.get(tcp, "_writableState")
    const inFlight: unknown = typeof state === "object" && state !== null ? Reflect.get(state, "writelen") : undefined
    if (buffered === tcp.writableLength && inFlight === buffered) this.taken = this.callbacks.length
  }

  private completed(error: Error | null | undefined): void {
    const callbacks = this.callbacks
    // ws fails what it held oldest first, after every frame it handed on: its completions stand
    // for the newest frames waiting, whatever Node still owes before them.
    if (error !== undefined && error !== null && HELD_BY_WS.includes(error.message)) {
      if (this.heldReportedBy === "close") return
      this.heldReportedBy = "ws"
      if (this.head + this.held >= callbacks.length) return
      this.heldError ??= notWritten(error)
      this.held++
      return this.runHeld()
    }
    if (this.head + this.held >= callbacks.length) return
    this.next(error)
    this.runHeld()
  }

  /**
   * The socket closed (ws's 'close') with `count` frames still in ws's sender: the one it is
   * compressing and those queued behind it (`heldByWs`). ws fails them only once its compression
   * job runs, and that job may wait behind other sockets' in ws's process-wide zlib queue (ten at
   * a time), long after the close: they are reported `notWritten` now, as ws would report them,
   * after Node's completions still owed for the frames before them. At most the frames waiting:
   * the one being compressed may be a frame sent without a callback (a Connection's `write`),
   * and then one too many is counted, which takes nothing from the frames Node handed on because
   * Node owes none by ws's close (it calls back the TCP socket's writes before its 'close', which
   * comes before ws's). None if ws already failed them.
   */
  heldAtClose(count: number): void {
    if (this.heldReportedBy !== undefined) return
    const held = Math.min(count, this.callbacks.length - this.head - this.held)
    if (held <= 0) return
    this.heldReportedBy = "close"
    this.heldError ??= notWritten(closedWhileHeld)
    this.held += held
    this.runHeld()
  }

  /** Once only held frames are waiting: tells them, oldest first, that they were not written. */
  private runHeld(): void {
    const error = this.heldError
    if (error === undefined || this.head + this.held < this.callbacks.length) return
    let count = this.held
    this.held = 0
    this.heldError = undefined
    while (count-- > 0) this.next(error)
  }

  /** Tells the oldest frame waiting. */
  private next(error: Error | null | undefined): void {
    const callbacks = this.callbacks
    const callback = callbacks[this.head]!
    const taken = this.head < this.taken
    callbacks[this.head++] = undefined
    if (this.head === callbacks.length) {
      callbacks.length = 0
      this.head = 0
      this.taken = 0
    } else if (this.head > 1024 && this.head * 2 > callbacks.length) {
      callbacks.splice(0, this.head)
      this.taken = Math.max(0, this.taken - this.head)
      this.head = 0
    }
    // Once the socket is destroyed Node calls back out of order (a write the kernel took, a tick
    // later; those still buffered, failed as soon as an earlier write's callback ran): each
    // completion then stands for the oldest frame waiting, and what that frame had is decided by
    // its place, written if the kernel took it, else not, whatever the completion says.
    if (this.socket.tcp?.destroyed === true) {
      return taken ? callback() : callback(error !== undefined && error !== null ? error : writeLost)
    }
    if (error !== undefined && error !== null) return callback(error)
    callback()
  }
}
