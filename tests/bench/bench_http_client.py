#!/usr/bin/python3
# The HTTP client benchmarks, weft and its peers side by side in one run:
#
#   tests/bench/bench_http_client.py BUILD_DIR   (tests/bench/run calls it)
#
# Against the same nginx (Debian's, started here in a temporary directory
# on 127.0.0.1, one worker, answering GET / with "Hello, World!"), pinned
# to core 0; every client is pinned to the last core:
#
# http-client-h1   N (100 000) GETs over HTTP/1.1, a pool of 100 keep-alive
#                  connections: weft (bench-http-client) vs aiohttp's client
#                  (http_client_aiohttp.py, Debian's python3-aiohttp on the
#                  default asyncio loop) vs h2load --h1 -c 100 (the ceiling:
#                  a load generator, not a client library). Goals: >= 5x
#                  aiohttp, >= 0.8x h2load.
# http-client-h2   the same N over HTTP/2 (h2c, prior knowledge), one
#                  connection carrying 100 concurrent streams: weft vs
#                  h2load -c 1 -m 100. Goal: >= 0.8x h2load.
# http-client-wait the guide's claim: 100 concurrent GETs to a server that
#                  waits 50 ms before answering (weft's server, on core 0)
#                  finish in about 50 ms plus overhead, not 5 s: weft and
#                  aiohttp, a pool of 100 (the connects are in the time).
#
# Besides requests per second, each client's own CPU time per request is
# reported (user + system; for weft and aiohttp over the requests only, for
# h2load over its whole run).
#
# Summary lines end in the ratio, weft over the peer (above 1: weft is
# faster), e.g.
#   http-client-h1 weft=41000/s aiohttp=4100/s ratio=10.00
#
# Environment: WEFT_BENCH_REPEAT (default 3), WEFT_BENCH_HTTP_N (default
# 100000), WEFT_BENCH_HTTP_AIOHTTP_N (requests for aiohttp, default N: set
# it lower to save time; its rate is per second either way).

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"  # Debian's: python3-aiohttp is built for it
HOST = "127.0.0.1"


def die(msg):
    sys.exit("bench_http_client: " + msg)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(p, port, what):
    for _ in range(250):
        try:
            socket.create_connection((HOST, port), timeout=0.1).close()
            return
        except OSError:
            if p.poll() is not None:
                die("%s exited: %s" % (what, p.stderr.read()))
            time.sleep(0.02)
    die("%s does not answer on port %d" % (what, port))


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  http2_max_concurrent_streams 128;
  default_type text/plain;
  server {{
    listen {host}:{h1} backlog=4096;
    listen {host}:{h2} http2 backlog=4096;
    location / {{ return 200 "Hello, World!"; }}
  }}
}}
"""


def run(core, argv, timeout=600):
    """Runs argv pinned to `core`; returns (stdout, rusage cpu seconds)."""
    p = subprocess.Popen(["taskset", "-c", core] + argv, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    out = p.stdout.read()
    err = p.stderr.read()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        die("%s failed (%d): %s %s" % (argv[0], p.returncode, out, err))
    return out, ru.ru_utime + ru.ru_stime


def kv(out):
    line = [l for l in out.strip().splitlines() if "=" in l][-1]
    return {k: float(v) for k, v in (f.split("=") for f in line.split())}


def client(core, argv):
    """weft or aiohttp: their own key=value line."""
    out, _ = run(core, argv)
    d = kv(out)
    if d["ok"] != d["requests"]:
        die("%s: %d of %d requests failed" % (argv[0], d["requests"] - d["ok"], d["requests"]))
    return {"rate": d["requests"] / d["seconds"], "cpu": d["cpu"] / d["requests"],
            "seconds": d["seconds"]}


def h2load(core, argv, n):
    out, cpu = run(core, ["h2load"] + argv)
    m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", out)
    s = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if m is None or s is None:
        die("h2load: cannot read its output: %s" % out)
    if int(s.group(2)) != n:
        die("h2load: %s of %d succeeded" % (s.group(2), n))
    return {"rate": float(m.group(3)), "cpu": cpu / n}


def fmt_rate(r):
    return "%.0f/s" % r


def fmt_us(s):
    return "%.1fus" % (s * 1e6)


def main():
    if len(sys.argv) != 2:
        die("usage: tests/bench/bench_http_client.py BUILD_DIR")
    weft = os.path.join(sys.argv[1], "tests", "bench", "bench-http-client")
    if not os.access(weft, os.X_OK):
        die("%s missing: configure with -DWEFT_BUILD_BENCH=ON and build" % weft)
    for tool in ("taskset", "h2load"):
        if shutil.which(tool) is None:
            die("%s missing: run scripts/deps.sh bench" % tool)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        die("nginx missing: run scripts/deps.sh bench")
    if subprocess.run([PY, "-c", "import aiohttp"], capture_output=True).returncode:
        die("%s cannot import aiohttp: run scripts/deps.sh bench" % PY)
    n = int(os.environ.get("WEFT_BENCH_HTTP_N", "100000"))
    an = int(os.environ.get("WEFT_BENCH_HTTP_AIOHTTP_N", str(n)))
    repeat = int(os.environ.get("WEFT_BENCH_REPEAT", "3"))
    ncpu = os.cpu_count() or 1
    srv_core, cli_core = "0", str(ncpu - 1)
    aio = os.path.join(HERE, "http_client_aiohttp.py")

    res = {}  # (bench, side) -> [dict]
    with tempfile.TemporaryDirectory(prefix="weft-bench-hc-") as tmp:
        h1, h2 = free_port(), free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=tmp, host=HOST, h1=h1, h2=h2))
        ngx = subprocess.Popen(["taskset", "-c", srv_core, nginx, "-c", conf, "-p", tmp],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_port(ngx, h1, "nginx")
        wait_port(ngx, h2, "nginx")
        wsrv = subprocess.Popen(["taskset", "-c", srv_core, weft, "serve-wait", "50"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = wsrv.stdout.readline()
        if not line.startswith("port="):
            die("bench-http-client serve-wait: %r" % line)
        wport = int(line.split("=")[1])
        u1 = "http://%s:%d/" % (HOST, h1)
        u2 = "http://%s:%d/" % (HOST, h2)
        uw = "http://%s:%d/" % (HOST, wport)
        try:
            for r in range(repeat):
                def add(k, v):
                    res.setdefault(k, []).append(v)
                add(("h1", "weft"), client(cli_core, [weft, "get", u1, str(n), "100"]))
                add(("h1", "aiohttp"), client(cli_core, [PY, aio, u1, str(an), "100"]))
                add(("h1", "h2load"), h2load(cli_core, ["--h1", "-n", str(n), "-c", "100",
                                                        "-t", "1", u1], n))
                add(("h2", "weft"), client(cli_core, [weft, "get", u2, str(n), "100", "h2c"]))
                add(("h2", "h2load"), h2load(cli_core, ["-n", str(n), "-c", "1", "-m", "100",
                                                        "-t", "1", u2], n))
                add(("wait", "weft"), client(cli_core, [weft, "get", uw, "100", "100"]))
                add(("wait", "aiohttp"), client(cli_core, [PY, aio, uw, "100", "100"]))
                print("run %d/%d done" % (r + 1, repeat), file=sys.stderr, flush=True)
        finally:
            stop(wsrv)
            stop(ngx)

    def med(b, side, k):
        return statistics.median(x[k] for x in res[(b, side)])

    def spread(b, side, k, f):
        v = [x[k] for x in res[(b, side)]]
        return "(%s-%s)" % (f(min(v)), f(max(v)))

    print("machine: %d cores; nginx and the waiting server on core %s, clients on core %s;"
          " %d runs each, medians" % (ncpu, srv_core, cli_core, repeat))
    print("%-18s %-8s %12s %22s %14s" % ("benchmark", "side", "requests/s", "(min-max)", "CPU/request"))
    for b, sides in (("h1", ("weft", "aiohttp", "h2load")), ("h2", ("weft", "h2load"))):
        for side in sides:
            print("%-18s %-8s %12s %22s %14s" % (
                "http-client-" + b, side, fmt_rate(med(b, side, "rate")),
                spread(b, side, "rate", fmt_rate), fmt_us(med(b, side, "cpu"))))
    for side in ("weft", "aiohttp"):
        print("%-18s %-8s %12s %22s %14s" % (
            "http-client-wait", side, "%.1fms" % (med("wait", side, "seconds") * 1e3),
            spread("wait", side, "seconds", lambda s: "%.1f" % (s * 1e3)),
            fmt_us(med("wait", side, "cpu"))))
    print()
    w = med("h1", "weft", "rate")
    for peer in ("aiohttp", "h2load"):
        p = med("h1", peer, "rate")
        print("http-client-h1%s weft=%s %s=%s ratio=%.2f" % (
            "" if peer == "aiohttp" else "-h2load", fmt_rate(w), peer, fmt_rate(p), w / p))
    wc, ac = med("h1", "weft", "cpu"), med("h1", "aiohttp", "cpu")
    print("http-client-h1-cpu weft=%s aiohttp=%s ratio=%.2f" % (fmt_us(wc), fmt_us(ac), ac / wc))
    w2, p2 = med("h2", "weft", "rate"), med("h2", "h2load", "rate")
    print("http-client-h2 weft=%s h2load=%s ratio=%.2f" % (fmt_rate(w2), fmt_rate(p2), w2 / p2))
    # Other work on the machine only ever slows a run down: the best run of
    # each side is the least disturbed one, the steadier comparison when
    # the medians swing.
    def best(b, side):
        return max(x["rate"] for x in res[(b, side)])

    for name, b, peer in (("h1", "h1", "aiohttp"), ("h1-h2load", "h1", "h2load"),
                          ("h2", "h2", "h2load")):
        w, p = best(b, "weft"), best(b, peer)
        print("http-client-%s-best weft=%s %s=%s ratio=%.2f" % (name, fmt_rate(w), peer, fmt_rate(p), w / p))
    ww, aw = med("wait", "weft", "seconds"), med("wait", "aiohttp", "seconds")
    print("http-client-wait50 weft=%.1fms aiohttp=%.1fms ideal=50.0ms ratio=%.2f" % (
        ww * 1e3, aw * 1e3, aw / ww))


if __name__ == "__main__":
    main()
