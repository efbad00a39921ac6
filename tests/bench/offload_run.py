#!/usr/bin/python3
# The offload benchmarks, weft and its peers side by side in one run:
#
#   tests/bench/offload_run.py BUILD_DIR     (tests/bench/run calls it too)
#
# Thread pool: bench-offload-thread, weft's pool against libuv's
# uv_queue_work (Debian's libuv1-dev), 4 threads each. Process pool:
# bench-offload-proc against Python's ProcessPoolExecutor (Debian's
# /usr/bin/python3, tests/bench/offload_proc.py), 2 workers each. Nothing is
# pinned: a pool needs both cores (the loop on one, a worker on the other).
# Each side runs REPEAT times, interleaved; medians are reported.
#
# Prints a table, then one summary line per comparison, ratio = peer / weft
# for times and weft / peer for rates (above 1: weft is better), e.g.
#
#   thread-seq-p50 weft=0.25us libuv=30.1us ratio=120.40
#
# Environment: WEFT_BENCH_REPEAT (default 3).
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def run_kv(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("offload_run: %s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr.strip()))
    line = p.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in (f.split("=") for f in line.split())}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tests/bench/offload_run.py BUILD_DIR")
    bdir = os.path.join(sys.argv[1], "tests", "bench")
    thread_bin = os.path.join(bdir, "bench-offload-thread")
    proc_bin = os.path.join(bdir, "bench-offload-proc")
    for b in (thread_bin, proc_bin):
        if not os.access(b, os.X_OK):
            sys.exit("offload_run: %s missing: configure with -DWEFT_BUILD_BENCH=ON (libuv1-dev installed) and build" % b)
    repeat = int(os.environ.get("WEFT_BENCH_REPEAT", "3"))
    py = os.path.join(HERE, "offload_proc.py")

    runs = {
        ("thread-seq", "weft"): [thread_bin, "weft", "seq", "200000"],
        ("thread-seq", "libuv"): [thread_bin, "libuv", "seq", "20000"],
        ("thread-inflight", "weft"): [thread_bin, "weft", "inflight", "2000000"],
        ("thread-inflight", "libuv"): [thread_bin, "libuv", "inflight", "2000000"],
        ("proc-seq", "weft"): [proc_bin, "seq", "50000"],
        ("proc-seq", "python"): [PY, py, "seq", "5000"],
        ("proc-inflight", "weft"): [proc_bin, "inflight", "200000"],
        ("proc-inflight", "python"): [PY, py, "inflight", "30000"],
        ("proc-mib", "weft"): [proc_bin, "mib", "2000"],
        ("proc-mib", "python"): [PY, py, "mib", "500"],
        ("proc-cpu", "weft"): [proc_bin, "cpu", "4000000"],
        ("proc-cpu", "python"): [PY, py, "cpu", "400000"],
    }
    res = {}
    # Other programs on the machine skew every number here (spinning and
    # parallel speedup need idle cores): say how busy it was.
    print("load average before: %s" % open("/proc/loadavg").read().split()[0])
    for r in range(repeat):
        for key, argv in runs.items():
            res.setdefault(key, []).append(run_kv(argv))
        print("offload run %d/%d done" % (r + 1, repeat), file=sys.stderr, flush=True)

    def med(key, field):
        return statistics.median(x[field] for x in res[key])

    print("load average after: %s" % open("/proc/loadavg").read().split()[0])
    print("%-18s %-7s %s" % ("benchmark", "side", "medians of %d runs" % repeat))
    for key in runs:
        fields = sorted(res[key][0])
        print("%-18s %-7s %s" % (key[0], key[1], " ".join("%s=%g" % (f, med(key, f)) for f in fields)))
    print()

    def line(name, w, p, peer, unit, lower_better):
        ratio = p / w if lower_better else w / p
        print("%s weft=%s%s %s=%s%s ratio=%.2f" % (name, fmt(w), unit, peer, fmt(p), unit, ratio))

    def fmt(v):
        return "%.3g" % v if v < 1000 else "%.0f" % v

    def t(k, f):
        return med(("thread-" + k, "weft"), f), med(("thread-" + k, "libuv"), f)

    line("thread-seq-p50", *t("seq", "p50_us"), "libuv", "us", True)
    line("thread-seq-p99", *t("seq", "p99_us"), "libuv", "us", True)
    line("thread-inflight64", *t("inflight", "jobs_per_s"), "libuv", "/s", False)
    line("thread-inflight64-cpu", *t("inflight", "cpu_us_per_job"), "libuv", "us/job", True)
    w_idle = max(med(("thread-seq", "weft"), "idle_cpu_ms"), med(("thread-inflight", "weft"), "idle_cpu_ms"))
    print("thread-idle-cpu weft=%.2fms-in-500ms" % w_idle)

    def p(k, f):
        return med(("proc-" + k, "weft"), f), med(("proc-" + k, "python"), f)

    line("proc-seq-call", *p("seq", "us_per_call"), "python", "us", True)
    line("proc-seq-p50", *p("seq", "p50_us"), "python", "us", True)
    line("proc-inflight64", *p("inflight", "calls_per_s"), "python", "/s", False)
    line("proc-1mib-4inflight", *p("mib", "calls_per_s"), "python", "/s", False)
    wl, wp = med(("proc-cpu", "weft"), "loop_s"), med(("proc-cpu", "weft"), "pool_s")
    print("proc-cpu-speedup weft-pool=%.3fs weft-loop=%.3fs ratio=%.2f" % (wp, wl, wl / wp))
    print("proc-cpu-speedup-python pool=%.3fs loop=%.3fs ratio=%.2f"
          % (med(("proc-cpu", "python"), "pool_s"), med(("proc-cpu", "python"), "loop_s"),
             med(("proc-cpu", "python"), "speedup")))


if __name__ == "__main__":
    main()
