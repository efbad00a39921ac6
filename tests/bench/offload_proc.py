#!/usr/bin/python3
# The peer of bench-offload-proc: Python's ProcessPoolExecutor doing the same
# calls, 2 workers.
#
#   offload_proc.py seq N        N calls one at a time, 8-byte payload
#   offload_proc.py inflight N   N calls, 64 in flight, 8-byte payload
#   offload_proc.py mib N        N calls, 4 in flight, 1 MiB each way
#   offload_proc.py cpu N        the primes below N on one core, then in 16
#                                pieces on the pool
#
# Prints one key=value line, as the weft side does.
import collections
import concurrent.futures as cf
import statistics
import sys
import time

WORKERS = 2


def echo(b):
    return b


def count_primes(lo, hi):
    c = 0
    for x in range(max(lo, 2), hi):
        p = x == 2 or x % 2
        d = 3
        while p and d * d <= x:
            p = x % d != 0
            d += 2
        c += 1 if p else 0
    return c


def run(ex, n, inflight, payload):
    fs = collections.deque()
    for _ in range(n):
        if len(fs) >= inflight:
            fs.popleft().result()
        fs.append(ex.submit(echo, payload))
    for f in fs:
        f.result()


def main():
    mode, n = sys.argv[1], int(sys.argv[2])
    with cf.ProcessPoolExecutor(max_workers=WORKERS) as ex:
        payload = bytes(1 << 20) if mode == "mib" else bytes(8)
        run(ex, 200, 4, payload)  # warm up: workers started
        if mode == "seq":
            lat = []
            t0 = time.perf_counter()
            for _ in range(n):
                a = time.perf_counter()
                ex.submit(echo, payload).result()
                lat.append((time.perf_counter() - a) * 1e6)
            secs = time.perf_counter() - t0
            print("calls_per_s=%.0f us_per_call=%.2f p50_us=%.2f" % (n / secs, secs * 1e6 / n, statistics.median(lat)))
        elif mode in ("inflight", "mib"):
            t0 = time.perf_counter()
            run(ex, n, 4 if mode == "mib" else 64, payload)
            secs = time.perf_counter() - t0
            print("calls_per_s=%.0f us_per_call=%.2f" % (n / secs, secs * 1e6 / n))
        else:
            t0 = time.perf_counter()
            want = count_primes(0, n)
            loop_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            parts = [ex.submit(count_primes, n // 16 * i, n if i == 15 else n // 16 * (i + 1)) for i in range(16)]
            got = sum(f.result() for f in parts)
            pool_s = time.perf_counter() - t0
            assert got == want
            print("loop_s=%.3f pool_s=%.3f speedup=%.2f" % (loop_s, pool_s, loop_s / pool_s))


if __name__ == "__main__":
    main()
