"""The Python peer of bench_tasks.c: the same work with asyncio tasks.

    bench_tasks.py [--uvloop] alive|waves|spawn N

Prints the same key=value line as bench-tasks. Run it with Debian's
/usr/bin/python3: that is the interpreter python3-uvloop is built for.
Python's defaults (garbage collector on) are kept: that is what a user gets.
"""

import asyncio
import sys
import time

WAVE = 1000


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


async def yield_once():
    await asyncio.sleep(0)


async def ret_zero():
    return 0


async def bench(mode, n):
    live = n
    base = status_kib("VmRSS")
    t0 = time.perf_counter_ns()
    if mode == "alive":
        await asyncio.gather(*[yield_once() for _ in range(n)])
    elif mode == "waves":
        live = min(n, WAVE)
        done = 0
        while done < n:
            k = min(live, n - done)
            await asyncio.gather(*[yield_once() for _ in range(k)])
            done += k
    else:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(ret_zero()) for _ in range(n)]
        for t in tasks:
            await t
    t1 = time.perf_counter_ns()
    peak = status_kib("VmHWM")
    print(
        "ns_per_task=%.1f peak_kib=%d base_kib=%d live=%d bytes_per_live=%.0f"
        % ((t1 - t0) / n, peak, base, live, (peak - base) * 1024.0 / live)
    )


def main():
    args = sys.argv[1:]
    use_uvloop = bool(args) and args[0] == "--uvloop"
    if use_uvloop:
        args = args[1:]
    if len(args) != 2 or args[0] not in ("alive", "waves", "spawn"):
        sys.exit("usage: bench_tasks.py [--uvloop] alive|waves|spawn N")
    mode, n = args[0], int(args[1])
    if use_uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(bench(mode, n))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
