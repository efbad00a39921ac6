#!/usr/bin/python3
# The network benchmarks, weft and its peers side by side in one run:
#
#   tests/bench/bench_net.py BUILD_DIR     (tests/bench/run calls it too)
#
# tcp-echo       1 KiB messages, 100 connections, one message in flight on
#                each, round trips per second: weft (bench-echo-weft) vs a
#                libuv echo server (echo-libuv) vs asyncio streams on uvloop
#                (echo_uvloop.py). Goal: >= 1.0x libuv, >= 3x uvloop.
# tls-handshake  full TLS 1.3 handshakes per second (TLS_AES_128_GCM_SHA256,
#                X25519, one RSA-2048 certificate made for the run, no
#                resumption) against weft and against nginx (Debian's,
#                started here in a temporary directory on 127.0.0.1, one
#                worker, the same certificate and cipher). Goal: >= 1.0x.
#
# Every server runs pinned to core 0 and the load generator (echo-load,
# tls-load: plain C on epoll, the same for every server) to the last core,
# with taskset. The sides are interleaved within each repetition and the
# median is reported. Besides the rate, the server's own CPU time per round
# trip / handshake is measured (utime + stime from /proc): when the load
# generator's core is the bottleneck, that is the fairer comparison.
#
# Summary lines end in the ratio, weft / peer (above 1: weft is faster):
#   tcp-echo weft=61000/s libuv=59000/s ratio=1.03
#
# Environment: WEFT_BENCH_REPEAT (default 3), WEFT_BENCH_SECONDS (measured
# seconds per run, default 5), WEFT_BENCH_NET (comma-separated: echo,tls;
# default both), WEFT_BENCH_CONNS (default 100).

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"  # Debian's: python3-uvloop is built for it
HOST = "127.0.0.1"
WARMUP = 1.0


def die(msg):
    sys.exit("bench_net: " + msg)


def cores():
    n = os.cpu_count() or 1
    return "0", str(n - 1)


def cpu_ticks(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(argv, core, port_line=True, port=None):
    """Starts a server pinned to `core`; returns (process, port)."""
    p = subprocess.Popen(["taskset", "-c", core] + argv, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if not port_line:
        # nginx prints nothing: wait until the port answers.
        for _ in range(200):
            try:
                socket.create_connection((HOST, port), timeout=0.1).close()
                return p, port
            except OSError:
                if p.poll() is not None:
                    die("%s exited: %s" % (argv[0], p.stderr.read()))
                time.sleep(0.02)
        stop(p)
        die("%s does not answer on port %d" % (argv[0], port))
    line = p.stdout.readline()
    if not line.startswith("port="):
        stop(p)
        die("%s: no port line (%r): %s" % (argv[0], line, p.stderr.read()))
    return p, int(line.split("=")[1])


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def measure(server, load_argv, core, key, seconds):
    """Runs the load generator against a started server. Returns a dict: the
    rate, and the server's CPU seconds per operation over the measured
    window."""
    load = subprocess.Popen(["taskset", "-c", core] + load_argv,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(WARMUP)
    c0, t0 = cpu_ticks(server.pid), time.monotonic()
    out, err = load.communicate(timeout=seconds + 60)
    c1, t1 = cpu_ticks(server.pid), time.monotonic()
    if load.returncode != 0:
        die("%s failed: %s %s" % (load_argv[0], out, err))
    kv = dict(f.split("=") for f in out.strip().splitlines()[-1].split())
    rate = float(kv[key])
    ops = rate * (t1 - t0)
    return {"rate": rate, "cpu_per_op": (c1 - c0) / ops if ops else 0.0,
            "server_cpu": (c1 - c0) / (t1 - t0), "errors": int(kv["errors"])}


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
  server {{
    listen {host}:{port} ssl;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
    ssl_ecdh_curve X25519;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def fmt_rate(r):
    return "%.0f/s" % r


def fmt_us(s):
    return "%.1fus" % (s * 1e6)


def main():
    if len(sys.argv) != 2:
        die("usage: tests/bench/bench_net.py BUILD_DIR")
    bdir = os.path.join(sys.argv[1], "tests", "bench")
    exe = {n: os.path.join(bdir, n) for n in
           ("bench-echo-weft", "echo-load", "echo-libuv", "tls-load")}
    for n, path in exe.items():
        if not os.access(path, os.X_OK):
            die("%s missing: configure with -DWEFT_BUILD_BENCH=ON (and libuv1-dev) and build" % path)
    if shutil.which("taskset") is None:
        die("taskset missing (util-linux)")
    repeat = int(os.environ.get("WEFT_BENCH_REPEAT", "3"))
    secs = float(os.environ.get("WEFT_BENCH_SECONDS", "5"))
    conns = int(os.environ.get("WEFT_BENCH_CONNS", "100"))
    which = os.environ.get("WEFT_BENCH_NET", "echo,tls").split(",")
    srv_core, load_core = cores()

    results = {}
    tmp = tempfile.mkdtemp(prefix="weft-bench-net-")
    try:
        if "tls" in which:
            if shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"):
                die("nginx missing: run scripts/deps.sh bench")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "1", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", os.path.join(tmp, "key.pem"),
                            "-out", os.path.join(tmp, "cert.pem")],
                           check=True, capture_output=True)
        if "echo" in which and subprocess.run(
                [PY, "-c", "import uvloop"], capture_output=True).returncode:
            die("%s cannot import uvloop: run scripts/deps.sh bench" % PY)

        echo_sides = {
            "weft": [exe["bench-echo-weft"], HOST, "0"],
            "libuv": [exe["echo-libuv"], HOST, "0"],
            "uvloop": [PY, os.path.join(HERE, "echo_uvloop.py"), HOST, "0"],
        }
        for r in range(repeat):
            if "echo" in which:
                for side, argv in echo_sides.items():
                    p, port = start_server(argv, srv_core)
                    try:
                        res = measure(p, [exe["echo-load"], HOST, str(port), str(conns),
                                          "1024", str(secs), str(WARMUP)],
                                      load_core, "rt_per_s", secs)
                    finally:
                        stop(p)
                    results.setdefault(("tcp-echo", side), []).append(res)
            if "tls" in which:
                cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
                for side in ("weft", "nginx"):
                    if side == "weft":
                        p, port = start_server([exe["bench-echo-weft"], HOST, "0", cert, key],
                                               srv_core)
                    else:
                        port = free_port()
                        conf = os.path.join(tmp, "nginx.conf")
                        with open(conf, "w") as f:
                            f.write(NGINX_CONF.format(dir=tmp, host=HOST, port=port))
                        p, port = start_server(["nginx", "-c", conf, "-p", tmp], srv_core,
                                               port_line=False, port=port)
                    try:
                        res = measure(p, [exe["tls-load"], HOST, str(port), "32", str(secs),
                                          str(WARMUP)], load_core, "hs_per_s", secs)
                    finally:
                        stop(p)
                    results.setdefault(("tls-handshake", side), []).append(res)
            print("run %d/%d done" % (r + 1, repeat), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(name, side, k):
        return statistics.median(x[k] for x in results[(name, side)])

    print("machine: %d cores; servers on core %s, load on core %s; %d runs of %g s each, medians"
          % (os.cpu_count(), srv_core, load_core, repeat, secs))
    print("%-14s %-7s %12s %18s %14s %11s %7s" % ("benchmark", "side", "rate", "(min-max)",
                                                  "server CPU/op", "server CPU", "errors"))
    for (name, side), runs in results.items():
        rates = [x["rate"] for x in runs]
        print("%-14s %-7s %12s %18s %14s %10.0f%% %7d" % (
            name, side, fmt_rate(statistics.median(rates)),
            "(%.0f-%.0f)" % (min(rates), max(rates)),
            fmt_us(med(name, side, "cpu_per_op")), 100 * med(name, side, "server_cpu"),
            sum(x["errors"] for x in runs)))
    print()
    if "echo" in which:
        w = med("tcp-echo", "weft", "rate")
        for peer, suffix in (("libuv", ""), ("uvloop", "-uvloop")):
            p = med("tcp-echo", peer, "rate")
            print("tcp-echo%s weft=%s %s=%s ratio=%.2f" % (suffix, fmt_rate(w), peer, fmt_rate(p), w / p))
        wc = med("tcp-echo", "weft", "cpu_per_op")
        for peer in ("libuv", "uvloop"):
            pc = med("tcp-echo", peer, "cpu_per_op")
            print("tcp-echo-cpu-%s weft=%s %s=%s ratio=%.2f" % (peer, fmt_us(wc), peer, fmt_us(pc), pc / wc))
    if "tls" in which:
        w, n = med("tls-handshake", "weft", "rate"), med("tls-handshake", "nginx", "rate")
        print("tls-handshake weft=%s nginx=%s ratio=%.2f" % (fmt_rate(w), fmt_rate(n), w / n))
        wc, nc = med("tls-handshake", "weft", "cpu_per_op"), med("tls-handshake", "nginx", "cpu_per_op")
        print("tls-handshake-cpu weft=%s nginx=%s ratio=%.2f" % (fmt_us(wc), fmt_us(nc), nc / wc))


if __name__ == "__main__":
    main()
