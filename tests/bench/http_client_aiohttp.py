# aiohttp's client doing what bench-http-client get does: N GETs of URL by
# CONC tasks sharing one ClientSession whose TCPConnector holds CONC
# connections, each body read whole. Prints
#   requests=N ok=K seconds=S cpu=C
# (the work only: interpreter and session start are outside both clocks).
# Run with Debian's /usr/bin/python3 (python3-aiohttp); "uvloop" as a fourth
# argument runs it on uvloop.
import asyncio
import sys
import time

import aiohttp


async def main(url, n, conc):
    left = n
    ok = 0
    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker():
            nonlocal left, ok
            while left > 0:
                left -= 1
                async with s.get(url) as r:
                    await r.read()
                    if r.status == 200:
                        ok += 1

        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    print("requests=%d ok=%d seconds=%.6f cpu=%.6f" % (n, ok, secs, cpu))


if __name__ == "__main__":
    if len(sys.argv) > 4 and sys.argv[4] == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
