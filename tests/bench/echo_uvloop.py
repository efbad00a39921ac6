# echo-uvloop — the asyncio+uvloop peer of the TCP echo benchmark
# (bench_net.py): asyncio streams (start_server, StreamReader/StreamWriter)
# on uvloop's loop, the way the asyncio docs write an echo server.
#
#   /usr/bin/python3 echo_uvloop.py HOST PORT     (port 0: a free one)
#
# Prints "port=N" once listening, then serves until killed.
import asyncio
import sys

import uvloop


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[2]), backlog=4096)
    print("port=%d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


uvloop.install()
asyncio.run(main())
