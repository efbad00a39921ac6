#!/usr/bin/python3
# The HTTP server benchmarks, weft and its peers side by side in one run:
#
#   tests/bench/bench_http.py BUILD_DIR      (tests/bench/run calls it too)
#
# Every server answers GET / with the same 13-byte body ("Hello, World!"),
# runs one worker pinned to core 0 (taskset -c 0), and is started here in a
# temporary directory on 127.0.0.1 and stopped after. The load generator
# runs pinned to the last core. After a warm-up, the runs go in rotation
# (A B C A B C ...), WEFT_BENCH_REPEAT times; the median and the range are
# reported, as requests/s and as requests per server CPU-second (utime +
# stime from /proc/PID/stat before and after the measured window): one wrk
# core cannot saturate a fast server, so where the client is the limit the
# second is the fair comparison.
#
#   h1-c64, h1-c256   wrk -t1 -c64 / -c256, keep-alive: weft, nginx, h2o,
#                     aiohttp on uvloop, libevent's evhttp, and the floor
#                     (http_floor.c: recv, count the requests, one send of a
#                     fixed answer; no parsing, no checks). The floor is no
#                     peer but a ceiling: the kernel's share of a request,
#                     which every server pays alike, so its rate per
#                     CPU-second over a peer's is the most any server could
#                     show over that peer in the same run.
#   h1-pipeline16     wrk -t1 -c64 with 16 pipelined requests per connection
#                     (http_pipeline.lua): weft, nginx, h2o
#   h2c-m10, h2c-m100 h2load -c64 -m10 / -m100 over h2c: weft, h2o, nghttpd
#   h2-tls            h2load -c64 -m10 over TLS 1.3 (X25519, the same
#                     certificate): weft, nginx, h2o
#   tls-handshake     full TLS 1.3 handshakes per second (tls-load, 32 at a
#                     time, no resumption): weft, nginx, h2o
#   idle-10k, idle-18k  user RSS per idle keep-alive connection after one
#                     request each (RSS growth / connections): weft, nginx,
#                     h2o
#
# Summary lines end in the ratio (above 1: weft is better):
#   h1-c64-cpu weft=160000/cpu-s nginx=130000/cpu-s ratio=1.23
#   h1-c64-cpu-paired weft/nginx by rotation 1.18 1.21 1.25 ratio=1.21
# The first compares the medians; the second is the median of the ratios
# taken within each rotation.
#
# Environment: WEFT_BENCH_REPEAT (default 3), WEFT_BENCH_SECONDS (default 5),
# WEFT_BENCH_HTTP (comma-separated subset of: h1,pipeline,h2c,tls,idle).

import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"  # Debian's: python3-aiohttp and uvloop are built for it
HOST = "127.0.0.1"
BODY = b"Hello, World!"
NOFILE = 20000


def die(msg):
    sys.exit("bench_http: " + msg)


def cores():
    n = os.cpu_count() or 1
    return "0", str(n - 1)


def cpu_secs(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(NOFILE + 1000, hard) if hard != resource.RLIM_INFINITY else NOFILE + 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(p, port, name):
    for _ in range(500):
        try:
            socket.create_connection((HOST, port), timeout=0.1).close()
            return
        except OSError:
            if p.poll() is not None:
                die("%s exited: %s" % (name, p.stderr.read() if p.stderr else ""))
            time.sleep(0.02)
    die("%s does not answer on port %d" % (name, port))


class Server:
    def __init__(self, name, argv, port, core, env=None, port_line=None):
        self.name = name
        self.port = port
        self.p = subprocess.Popen(["taskset", "-c", core] + argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env,
                                  preexec_fn=raise_nofile)
        if port_line is not None:
            line = self.p.stdout.readline()
            m = re.search(port_line, line)
            if not m:
                self.stop()
                die("%s: no port line (%r): %s" % (name, line, self.p.stderr.read()))
            self.port = int(m.group(1))
        wait_port(self.p, self.port, name)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


NGINX = """daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {nofile}; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  default_type text/plain;
  server {{
    listen {host}:{port};
    location / {{ return 200 "Hello, World!"; }}
  }}
  server {{
    listen {host}:{tport} ssl http2;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    ssl_protocols TLSv1.3;
    ssl_ecdh_curve X25519;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{ return 200 "Hello, World!"; }}
  }}
}}
"""

H2O = """num-threads: 1
max-connections: {nofile}
pid-file: {dir}/h2o.pid
error-log: {dir}/h2o-error.log
http2-idle-timeout: 600
http1-request-timeout: 600
listen:
  host: {host}
  port: {port}
listen:
  host: {host}
  port: {tport}
  ssl:
    certificate-file: {dir}/cert.pem
    key-file: {dir}/key.pem
    minimum-version: TLSv1.3
    cipher-preference: server
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      "/":
        file.file: {dir}/hello.txt
"""


class Peers:
    """Starts every server once; they idle on core 0 while others run."""

    def __init__(self, build, tmp, core, wanted):
        self.tmp = tmp
        # h2o started as root runs as nobody: its pid file and the file it
        # serves must be reachable for that user.
        os.chmod(tmp, 0o777)
        self.srv = {}
        self.tport = {}
        hello = os.path.join(build, "apps", "weft-hello")
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        with open(os.path.join(tmp, "hello.txt"), "wb") as f:
            f.write(BODY)
        if "weft" in wanted:
            self.srv["weft"] = Server("weft", [hello, "--port", "0"], 0, core,
                                      port_line=r":(\d+)$")
            self.srv["weft-tls"] = Server("weft", [hello, "--port", "0", "--tls-cert", cert,
                                                   "--tls-key", key], 0, core,
                                          port_line=r":(\d+)$")
            self.tport["weft"] = self.srv["weft-tls"].port
        if "nginx" in wanted:
            port, tport = free_port(), free_port()
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX.format(dir=tmp, host=HOST, port=port, tport=tport,
                                     nofile=NOFILE + 100))
            self.srv["nginx"] = Server("nginx", ["nginx", "-c", conf, "-p", tmp], port, core)
            wait_port(self.srv["nginx"].p, tport, "nginx")
            self.tport["nginx"] = tport
        if "h2o" in wanted:
            port, tport = free_port(), free_port()
            conf = os.path.join(tmp, "h2o.conf")
            with open(conf, "w") as f:
                f.write(H2O.format(dir=tmp, host=HOST, port=port, tport=tport,
                                   nofile=NOFILE + 100))
            self.srv["h2o"] = Server("h2o", ["h2o", "-c", conf], port, core)
            wait_port(self.srv["h2o"].p, tport, "h2o")
            self.tport["h2o"] = tport
        if "aiohttp" in wanted:
            self.srv["aiohttp"] = Server("aiohttp", [PY, os.path.join(HERE, "http_aiohttp.py")],
                                         0, core, port_line=r"port=(\d+)")
        if "evhttp" in wanted:
            self.srv["evhttp"] = Server("evhttp", [os.path.join(build, "tests", "bench",
                                                                "http-evhttp")],
                                        0, core, port_line=r"port=(\d+)")
        if "floor" in wanted:
            self.srv["floor"] = Server("floor", [os.path.join(build, "tests", "bench",
                                                              "http-floor")],
                                       0, core, port_line=r"port=(\d+)")
        if "nghttpd" in wanted:
            port = free_port()
            self.srv["nghttpd"] = Server("nghttpd", ["nghttpd", "--no-tls", "-n", "1", "-d",
                                                     tmp, "-a", HOST, str(port)], port, core)

    def stop(self):
        for s in self.srv.values():
            s.stop()


def run_load(argv, core, pid, seconds):
    """Runs a load generator; returns (requests/s, requests per server
    CPU-second, server CPU share)."""
    c0, t0 = cpu_secs(pid), time.monotonic()
    p = subprocess.run(["taskset", "-c", core] + argv, capture_output=True, text=True,
                       timeout=seconds + 120)
    c1, t1 = cpu_secs(pid), time.monotonic()
    out = p.stdout + p.stderr
    if p.returncode != 0:
        die("%s failed: %s" % (argv[0], out[-2000:]))
    if argv[0] == "wrk":
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        if not m or not total:
            die("wrk output: %s" % out)
        if "Non-2xx" in out or "Socket errors" in out and "read 0, write 0, timeout 0" not in out:
            print("  (%s: %s)" % (argv[-1], out.strip().splitlines()[-3:]), file=sys.stderr)
        rate = float(m.group(1))
        n = int(total.group(1))
    elif argv[0] == "h2load":
        m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
        ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
        if not m or not ok:
            die("h2load output: %s" % out)
        rate = float(m.group(3))
        n = int(ok.group(1))
        if "0 failed, 0 errored" not in out:
            print("  (h2load errors: %s)" % re.search(r"requests:.*", out).group(0),
                  file=sys.stderr)
    else:  # tls-load
        kv = dict(f.split("=") for f in out.strip().splitlines()[-1].split())
        rate = float(kv["hs_per_s"])
        n = int(kv["handshakes"])
    cpu = c1 - c0
    return rate, (n / cpu if cpu > 0 else 0.0), cpu / (t1 - t0)


def pid_of(peers, side, bench):
    """The process serving `side` in `bench` (weft's TLS server is a
    process of its own; the peers serve both ports from one)."""
    if side == "weft" and bench in ("h2-tls", "tls-handshake"):
        return peers.srv["weft-tls"].p.pid
    return peers.srv[side].p.pid


def idle_rss(server, n):
    """Opens n keep-alive connections, one request each, and holds them.
    Returns user RSS growth per connection in bytes."""
    raise_nofile()
    time.sleep(0.3)
    before = rss_kib(server.p.pid)
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    socks = []
    for i in range(n):
        s = socket.socket()
        s.connect((HOST, server.port))
        s.sendall(req)
        socks.append(s)
        if len(socks) % 500 == 0:
            drain(socks[-500:])
    drain(socks[len(socks) - len(socks) % 500:])
    time.sleep(1.0)
    after = rss_kib(server.p.pid)
    for s in socks:
        s.close()
    time.sleep(0.5)
    return (after - before) * 1024.0 / n


def drain(socks):
    for s in socks:
        got = b""
        s.settimeout(10)
        while BODY not in got:
            b = s.recv(4096)
            if not b:
                die("a connection closed before its answer")
            got += b


def fmt(v, unit):
    if v >= 100:
        return "%.0f%s" % (v, unit)
    return "%.1f%s" % (v, unit)


def main():
    if len(sys.argv) != 2:
        die("usage: tests/bench/bench_http.py BUILD_DIR")
    build = sys.argv[1]
    for prog in ("taskset", "wrk", "h2load", "nginx", "h2o", "nghttpd", "openssl"):
        if shutil.which(prog) is None and not os.path.exists("/usr/sbin/" + prog):
            die("%s missing: run scripts/deps.sh bench" % prog)
    if not os.access(os.path.join(build, "apps", "weft-hello"), os.X_OK):
        die("%s/apps/weft-hello missing: build first" % build)
    repeat = int(os.environ.get("WEFT_BENCH_REPEAT", "3"))
    secs = float(os.environ.get("WEFT_BENCH_SECONDS", "5"))
    only = os.environ.get("WEFT_BENCH_HTTP", "h1,pipeline,h2c,tls,idle").split(",")
    srv_core, load_core = cores()
    raise_nofile()
    lua = os.path.join(HERE, "http_pipeline.lua")
    tls_load = os.path.join(build, "tests", "bench", "tls-load")
    url = lambda s, path="/": "http://%s:%d%s" % (HOST, s.port, path)

    # name -> (servers, argv(server, peers) for the load)
    benches = []
    if "h1" in only:
        for c in (64, 256):
            benches.append(("h1-c%d" % c, ["weft", "nginx", "h2o", "aiohttp", "evhttp",
                                            "floor"],
                            lambda s, P, c=c: ["wrk", "-t1", "-c%d" % c, "-d%ds" % secs,
                                               url(s)]))
    if "pipeline" in only:
        benches.append(("h1-pipeline16", ["weft", "nginx", "h2o"],
                        lambda s, P: ["wrk", "-t1", "-c64", "-d%ds" % secs, "-s", lua,
                                      url(s)]))
    if "h2c" in only:
        for m in (10, 100):
            benches.append(("h2c-m%d" % m, ["weft", "h2o", "nghttpd"],
                            lambda s, P, m=m: ["h2load", "-c64", "-m%d" % m, "-D%d" % secs,
                                               "--warm-up-time=1", url(s, "/hello.txt"
                                                                   if s.name == "nghttpd"
                                                                   else "/")]))
    if "tls" in only:
        benches.append(("h2-tls", ["weft", "nginx", "h2o"],
                        lambda s, P: ["h2load", "-c64", "-m10", "-D%d" % secs,
                                      "--warm-up-time=1",
                                      "https://%s:%d/" % (HOST, P.tport[s.name])]))
        if os.access(tls_load, os.X_OK):
            benches.append(("tls-handshake", ["weft", "nginx", "h2o"],
                            lambda s, P: [tls_load, HOST, str(P.tport[s.name]), "32",
                                          str(secs), "1"]))
    wanted = set(n for _, sides, _ in benches for n in sides)
    if "idle" in only:
        wanted |= {"weft", "nginx", "h2o"}
    results = {}
    with tempfile.TemporaryDirectory(prefix="weft-bench-http-") as tmp:
        peers = Peers(build, tmp, srv_core, wanted)
        try:
            # Warm-up: every server answers a burst first.
            for name, sides, argv in benches:
                for side in sides:
                    s = peers.srv[side]
                    pid = pid_of(peers, side, name)
                    a = argv(s, peers)
                    if a[0] == "wrk":
                        a = [x if not x.startswith("-d") else "-d1s" for x in a]
                    elif a[0] == "h2load":
                        a = [x if not x.startswith("-D") else "-D1" for x in a]
                    else:
                        a = a[:4] + ["1", "0.2"]
                    run_load(a, load_core, pid, 1)
            for r in range(repeat):
                for name, sides, argv in benches:
                    for side in sides:
                        s = peers.srv[side]
                        results.setdefault((name, side), []).append(
                            run_load(argv(s, peers), load_core, pid_of(peers, side, name),
                                     secs))
                print("rotation %d/%d done" % (r + 1, repeat), file=sys.stderr, flush=True)
        finally:
            peers.stop()
        # Memory: fresh servers, one at a time.
        if "idle" in only:
            for n in (10000, 18000):
                for side in ("weft", "nginx", "h2o"):
                    p2 = Peers(build, tmp, srv_core, {side})
                    try:
                        results[("idle-%dk" % (n // 1000), side)] = [
                            (idle_rss(p2.srv[side], n), 0, 0)]
                    finally:
                        p2.stop()

    print("machine: %d cores; servers on core %s, load on core %s; %d rotations of %gs, "
          "medians (min-max)" % (os.cpu_count(), srv_core, load_core, repeat, secs))
    print("%-15s %-8s %22s %26s %9s" % ("benchmark", "server", "req/s", "req/cpu-s",
                                        "srv cpu"))
    names = []
    for (name, side), runs in results.items():
        if name not in names:
            names.append(name)
        if name.startswith("idle"):
            continue
        rates = [x[0] for x in runs]
        per = [x[1] for x in runs]
        print("%-15s %-8s %10.0f (%5.0f-%5.0f) %12.0f (%5.0f-%5.0f) %8.0f%%" % (
            name, side, statistics.median(rates), min(rates), max(rates),
            statistics.median(per), min(per), max(per),
            100 * statistics.median(x[2] for x in runs)))
    for name in names:
        if name.startswith("idle"):
            for side in ("weft", "nginx", "h2o"):
                if (name, side) in results:
                    print("%-15s %-8s %10.0f B per idle connection" % (
                        name, side, results[(name, side)][0][0]))
    print()
    for name in names:
        sides = [s for (n, s) in results if n == name]
        if name.startswith("idle"):
            w = results[(name, "weft")][0][0]
            for side in sides:
                if side != "weft":
                    p = results[(name, side)][0][0]
                    print("%s weft=%.0fB %s=%.0fB ratio=%.2f" % (name, w, side, p,
                                                                p / w if w > 0 else 0))
            continue
        w = statistics.median(x[0] for x in results[(name, "weft")])
        wc = statistics.median(x[1] for x in results[(name, "weft")])
        for side in sides:
            if side == "weft":
                continue
            p = statistics.median(x[0] for x in results[(name, side)])
            pc = statistics.median(x[1] for x in results[(name, side)])
            print("%s weft=%.0f/s %s=%.0f/s ratio=%.2f" % (name, w, side, p, w / p))
            print("%s-cpu weft=%.0f/cpu-s %s=%.0f/cpu-s ratio=%.2f" % (name, wc, side, pc,
                                                                      wc / pc))
            # The same ratio taken within each rotation (the two runs were
            # seconds apart), then the median: steadier on a shared host,
            # whose load drifts over a run.
            pairs = sorted(a[1] / b[1] for a, b in zip(results[(name, "weft")],
                                                       results[(name, side)]) if b[1] > 0)
            if len(pairs) > 1:
                print("%s-cpu-paired weft/%s by rotation %s ratio=%.2f" % (
                    name, side, " ".join("%.2f" % x for x in pairs),
                    statistics.median(pairs)))
        if (name, "floor") in results:
            fc = statistics.median(x[1] for x in results[(name, "floor")])
            for side in sides:
                if side not in ("weft", "floor"):
                    pc = statistics.median(x[1] for x in results[(name, side)])
                    print("%s-cpu ceiling: floor=%.0f/cpu-s %s=%.0f/cpu-s ratio=%.2f" % (
                        name, fc, side, pc, fc / pc))


if __name__ == "__main__":
    main()
