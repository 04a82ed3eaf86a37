"""Autobahn|Python (Debian's python3-autobahn 22.7, asyncio flavour) as a real peer for round 27.

Reads its port from stdin (0: any), prints `PORT <n>` once listening. argv[1], if given, is a JSON
object: the keyword arguments of `factory.setProtocolOptions(...)`, plus `"compress": true` to
accept a permessage-deflate offer (`perMessageCompressionAccept`). Each path is one manner of
Autobahn's (see `onConnect` and `onOpen`); what the server sees is printed as one line:
`CONNECT <path> <protocols>`, `OPEN <path> <protocol> <extensions>`, `GOT <path> <sha256> <length>
<head>` (text: length in characters, head the first 16), `GOTB <path> <sha256> <length>`,
`PING <path>`, `PONG <path>`, `CLOSED <path> <wasClean> <code> <reason>`.

A text message that is a command does it instead of echoing (commands start with "!"):
`!sleep <s>` blocks the event loop for s seconds (a busy server: it reads, pings and answers
nothing meanwhile); `!close <code> <reason>`: sendClose; `!drop`: dropConnection(abort=True);
`!closenocode`: sendClose() (a close frame without a code); `!burstclose <n>`: n text messages
`b0`..`b<n-1>`, then sendClose(4000, "after the burst"); `!big <n> <char>`: one text message of n
times char; `!bigb <n>`: n bytes (i % 251); `!badutf8`: a text frame that is not UTF-8.
"""
import asyncio, hashlib, json, sys, time

import txaio
txaio.use_asyncio()

from autobahn.asyncio.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.types import ConnectionDeny

port = int(sys.stdin.readline())
options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
compress = options.pop("compress", False)


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")


def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


class Peer(WebSocketServerProtocol):
    path = "?"

    async def onConnect(self, request):
        self.path = request.path
        say("CONNECT", self.path, ",".join(request.protocols) or "-")
        if self.path == "/deny403":
            raise ConnectionDeny(403, "not you")
        if self.path == "/deny503":
            raise ConnectionDeny(503, "busy")
        if self.path == "/slowopen":
            # An onConnect that takes 3 s: past openHandshakeTimeout, Autobahn drops the TCP.
            await asyncio.sleep(3)
        if self.path == "/proto":
            for protocol in ("chat.v2", "chat.v1"):
                if protocol in request.protocols:
                    return protocol
        return None

    def onOpen(self):
        extensions = ",".join(str(e.__class__.__name__) for e in self.websocket_extensions_in_use) or "-"
        say("OPEN", self.path, self.websocket_protocol_in_use or "-", extensions)
        if self.path == "/close4000":
            self.sendClose(4000, "autobahn says bye")
        elif self.path == "/drop":
            self.dropConnection(abort=True)

    def onMessage(self, payload, isBinary):
        if isBinary:
            say("GOTB", self.path, digest(payload), len(payload))
            self.sendMessage(payload, isBinary=True)
            return
        text = payload.decode("utf8")
        say("GOT", self.path, digest(payload), len(text), text[:16])
        words = text.split(" ")
        if words[0] == "!sleep":
            time.sleep(float(words[1]))
            say("WOKE", self.path)
        elif words[0] == "!close":
            self.sendClose(int(words[1]), " ".join(words[2:]))
        elif words[0] == "!drop":
            self.dropConnection(abort=True)
        elif words[0] == "!big":
            self.sendMessage((words[2] * int(words[1])).encode("utf8"), isBinary=False)
        elif words[0] == "!bigb":
            self.sendMessage(bytes(i % 251 for i in range(int(words[1]))), isBinary=True)
        elif words[0] == "!burstclose":
            for i in range(int(words[1])):
                self.sendMessage(("b%d" % i).encode("utf8"), isBinary=False)
            self.sendClose(4000, "after the burst")
        elif words[0] == "!closenocode":
            self.sendClose()
        elif words[0] == "!badutf8":
            self.sendMessage(b"bad \xff\xfe", isBinary=False)
        else:
            self.sendMessage(payload, isBinary=False)

    def onPing(self, payload):
        say("PING", self.path)
        super().onPing(payload)

    def onPong(self, payload):
        say("PONG", self.path)

    def onClose(self, wasClean, code, reason):
        say("CLOSED", self.path, wasClean, code, reason or "-")


def accept(offers):
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
factory = WebSocketServerFactory(loop=loop)
factory.protocol = Peer
if compress:
    options["perMessageCompressionAccept"] = accept
factory.setProtocolOptions(**options)
server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", port, reuse_address=True))
say("PORT", server.sockets[0].getsockname()[1])
loop.run_forever()
