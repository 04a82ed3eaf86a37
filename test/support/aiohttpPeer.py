"""aiohttp (Debian's python3-aiohttp 3.8.4) as a real peer for round 17's trials.

Reads its port from stdin (0: any), prints `PORT <n>` once listening. Each path is one manner of
aiohttp's; what the server sees is printed as one line (`GOT <path> <text>`, `CLOSED <path> <code>`...).
SIGTERM shuts down gracefully: `on_shutdown` closes every open WebSocket with 1001.
"""
import asyncio, signal, sys, weakref
from aiohttp import web, WSMsgType, WSCloseCode

port = int(sys.stdin.readline())
sockets = weakref.WeakSet()


def say(*words):
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")


async def serve(request, ws, name):
    """Echoes text frames, printing each; prints how the connection ended."""
    sockets.add(ws)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            say("GOT", name, msg.data[:40], len(msg.data))
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.PING:
            say("PING", name)
        elif msg.type == WSMsgType.CLOSE:
            say("CLOSEFRAME", name, msg.data)
            break
        elif msg.type == WSMsgType.ERROR:
            say("ERROR", name, type(ws.exception()).__name__)
    say("CLOSED", name, ws.close_code)
    return ws


async def echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    say("OPEN echo", ws.compress)
    return await serve(request, ws, "echo")


async def heartbeat(request):
    """heartbeat=0.4: aiohttp pings every 0.4 s and drops (1006) a client whose pong it has not
    read within 0.2 s (it reads pongs in receive(), so the handler keeps reading). After four
    heartbeats it prints `ALIVE heartbeat <closed>`; the next text frame makes the handler close with
    4002 (from its own task: a close from another task while the handler reads goes out as 1000,
    see on_shutdown)."""
    every = 0.4
    ws = web.WebSocketResponse(heartbeat=every)
    await ws.prepare(request)

    async def four_heartbeats():
        await asyncio.sleep(4.25 * every)
        say("ALIVE heartbeat", ws.closed)

    asyncio.get_running_loop().create_task(four_heartbeats())
    msg = await ws.receive()
    if msg.type == WSMsgType.TEXT:
        await ws.close(code=4002, message=b"four heartbeats")
    else:
        say("DROPPED heartbeat", msg.type, ws.close_code)
    return ws


async def pushonly(request):
    """heartbeat=0.1 on a handler that only sends and never calls receive(): aiohttp reads pongs
    only in receive(), so it drops the client 0.15 s in, whatever the client answers."""
    ws = web.WebSocketResponse(heartbeat=0.1)
    await ws.prepare(request)
    sent = 0
    while not ws.closed:
        await ws.send_str("tick %d" % sent)
        sent += 1
        await asyncio.sleep(0.02)
    say("DROPPED pushonly", ws.close_code, sent > 0)
    return ws


async def noautoping(request):
    ws = web.WebSocketResponse(autoping=False)
    await ws.prepare(request)
    return await serve(request, ws, "noautoping")


async def noautoclose(request):
    """autoclose=False: the client's close frame reaches the handler, which answers it (`?answer=1`) or never does."""
    ws = web.WebSocketResponse(autoclose=False)
    await ws.prepare(request)
    sockets.add(ws)
    while True:
        msg = await ws.receive()
        if msg.type == WSMsgType.CLOSE:
            say("CLOSEFRAME noautoclose", msg.data, msg.extra)
            if request.query.get("answer") == "1":
                await ws.close(code=4100, message=b"answered by hand")
            else:
                await asyncio.sleep(30)
            break
        if msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
            break
    say("CLOSED noautoclose", ws.close_code)
    return ws


async def maxsize(request):
    ws = web.WebSocketResponse(max_msg_size=1024)
    await ws.prepare(request)
    return await serve(request, ws, "maxsize")


async def raises(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.receive()
    raise RuntimeError("handler failed")


async def close4001(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.close(code=4001, message=b"go away, 4001")
    return ws


async def longreason(request):
    """ws.close with a 200-byte reason: aiohttp sends it as is, a control frame over 125 bytes."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.close(code=4001, message=b"r" * 200)
    return ws


async def busy(request):
    return web.Response(status=503, headers={"Retry-After": "7"}, text="busy")


async def proto(request):
    ws = web.WebSocketResponse(protocols=("chat.v2", "chat.v1"))
    await ws.prepare(request)
    say("OPEN proto", ws.ws_protocol)
    return await serve(request, ws, "proto")


async def nocompress(request):
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    say("OPEN nocompress", ws.compress)
    return await serve(request, ws, "nocompress")


async def fragments(request):
    """Sends "frag" + "ment" + "ed" as one text message in three frames (aiohttp's writer always sets FIN)."""
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    transport = request.transport
    transport.write(bytes([0x01, 4]) + b"frag")
    transport.write(bytes([0x00, 4]) + b"ment")
    transport.write(bytes([0x80, 2]) + b"ed")
    return await serve(request, ws, "fragments")


async def on_shutdown(app):
    for ws in set(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown")


async def main():
    app = web.Application()
    app.on_shutdown.append(on_shutdown)
    app.add_routes([web.get("/" + f.__name__, f) for f in
                    (echo, heartbeat, pushonly, noautoping, noautoclose, maxsize, raises, close4001, longreason, busy, proto,
                     nocompress, fragments)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    say("PORT", runner.addresses[0][1])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    say("STOPPED")

asyncio.run(main())
