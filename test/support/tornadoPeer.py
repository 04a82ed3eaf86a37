"""Tornado (Debian's python3-tornado 6.2) as a real peer for round 17's trials.

Reads its port from stdin (0: any), prints `PORT <n>` once listening. Each path is one manner of
Tornado's `WebSocketHandler`; what the server sees is printed as one line (`GOT <path> ...`,
`CLOSED <path> <code>`...). SIGTERM shuts down gracefully: every open handler closes with 1001.
"""
import asyncio, signal, sys
import tornado.web, tornado.websocket
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

port = int(sys.stdin.readline())
handlers = set()


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")


class Echo(tornado.websocket.WebSocketHandler):
    name = "echo"

    def open(self):
        handlers.add(self)
        say("OPEN", self.name, self.selected_subprotocol, self.ws_connection._compressor is not None)

    def on_message(self, message):
        say("GOT", self.name, message[:40], len(message))
        self.write_message(message)

    def on_close(self):
        handlers.discard(self)
        say("CLOSED", self.name, self.close_code)


class Pinging(Echo):
    """As `websocket_ping_interval=0.1, websocket_ping_timeout=1` would set for every handler;
    after ten pings' time the server counts the pongs and closes with 4002."""
    name = "ping"
    ping_interval = 0.1
    ping_timeout = 1
    pongs = 0

    def open(self):
        super().open()
        asyncio.get_running_loop().call_later(1.05, lambda: self.close(4002, "ten pings"))

    def on_pong(self, data):
        self.pongs += 1

    def on_close(self):
        handlers.discard(self)
        say("PONGS", self.pongs, self.close_code)


class Raises(Echo):
    name = "raises"

    def on_message(self, message):
        raise RuntimeError("on_message failed")


class RaisesAsync(Echo):
    name = "raisesasync"

    async def on_message(self, message):
        say("GOT", self.name, message)
        if message == "raise":
            raise RuntimeError("on_message failed")
        self.write_message(message)


class MaxSize(Echo):
    """As `websocket_max_message_size=1024` would set for every handler."""
    name = "maxsize"
    max_message_size = 1024


class Origin(Echo):
    name = "origin"

    def check_origin(self, origin):
        say("ORIGIN", origin)
        return origin == "https://app.example"


class Proto(Echo):
    name = "proto"

    def select_subprotocol(self, subprotocols):
        say("OFFERED", ",".join(subprotocols))
        for wanted in ("chat.v2", "chat.v1"):
            if wanted in subprotocols:
                return wanted
        return None


class Deflate(Echo):
    name = "deflate"

    def get_compression_options(self):
        return {}


class Close4000(Echo):
    name = "close4000"

    def open(self):
        super().open()
        self.close(4000, "tornado says bye")


class LongReason(Echo):
    """self.close(4000, 200 bytes): Tornado sends it as is, a control frame over 125 bytes."""
    name = "longreason"

    def open(self):
        super().open()
        self.close(4000, "r" * 200)


class NoCode(Echo):
    """self.close(): a close frame without a code."""
    name = "nocode"

    def open(self):
        super().open()
        self.close()


class Slow(Echo):
    """Reads slowly: Tornado reads the next message only once this coroutine returns."""
    name = "slow"
    count = 0
    good = True

    async def on_message(self, message):
        index, _, body = message.partition(":")
        self.good = self.good and index == str(self.count) and body == "\u00e9" * 8192
        self.count += 1
        if self.count % 4 == 0:
            await asyncio.sleep(0.01)

    def on_close(self):
        handlers.discard(self)
        say("SLOW", self.count, self.good, self.close_code)


async def main():
    app = tornado.web.Application([
        (r"/echo", Echo),
        (r"/maxsize", MaxSize),
        (r"/origin", Origin),
        (r"/proto", Proto),
        (r"/deflate", Deflate),
        (r"/close4000", Close4000),
        (r"/slow", Slow),
        (r"/longreason", LongReason),
        (r"/nocode", NoCode),
        (r"/ping", Pinging),
        (r"/raises", Raises),
        (r"/raisesasync", RaisesAsync),
    ])
    sockets = bind_sockets(port, "127.0.0.1", reuse_port=False)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    say("PORT", sockets[0].getsockname()[1])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.stop()
    for handler in list(handlers):
        handler.close(1001, "server shutting down")
    await asyncio.sleep(0.2)
    say("STOPPED")

asyncio.run(main())
