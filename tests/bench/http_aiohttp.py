# aiohttp on uvloop answering "Hello, World!" (13 bytes): a peer of the
# HTTP benchmark (tests/bench/bench_http.py). Run with Debian's
# /usr/bin/python3 (python3-aiohttp, python3-uvloop). Prints "port=N".
import asyncio
import socket
import sys

import uvloop
from aiohttp import web


async def hello(request):
    return web.Response(text="Hello, World!")


async def main():
    app = web.Application()
    app.add_routes([web.get("/", hello)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    print("port=%d" % sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


uvloop.install()
try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
