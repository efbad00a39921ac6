#!/bin/sh
# Installs the Debian packages weft needs for one purpose, and only those
# that are missing. Usage: scripts/deps.sh build|test|bench|fuzz|all
#
#   build  what configuring and building the library and apps needs
#   test   build + what the test suites run against
#   bench  build + the peers the benchmarks compare with
#   fuzz   build + clang and its libFuzzer runtime (tests/fuzz/)
#
# Runs as root (CI) or through sudo. `apt-get update` runs at most once per
# boot of the machine, and only when something is missing.
set -eu

build_pkgs="gcc make cmake pkg-config libevent-dev libc-ares-dev"
test_pkgs="libcunit1-dev dpkg-dev rpm file"
bench_pkgs="python3 python3-uvloop hyperfine libuv1-dev"
# On x86-64 the tests also check the aarch64 context switch under qemu, and
# that the tree follows .clang-format.
test_pkgs="$test_pkgs clang-format"
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  test_pkgs="$test_pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
fi
# TLS: OpenSSL 3 to build against and the system CA store clients trust by
# default; the openssl tool makes the tests' certificates and runs their
# s_server / s_client peers.
build_pkgs="$build_pkgs libssl-dev ca-certificates"
test_pkgs="$test_pkgs openssl"
# Network benchmarks: nginx is the TLS handshake peer (started by the
# benchmark in a temporary directory); openssl makes the certificate both use.
bench_pkgs="$bench_pkgs nginx openssl"

# HTTP: llhttp's C sources (node-llhttp; compiled into libweft) and nghttp2;
# the tests drive the server with curl, nghttp and h2load; the benchmarks
# compare it with nginx, h2o, aiohttp (on uvloop) and libevent's evhttp
# (libevent-dev, already there), loaded by wrk and h2load.
build_pkgs="$build_pkgs node-llhttp libnghttp2-dev"
test_pkgs="$test_pkgs curl nghttp2-client"
# The HTTP client: zlib decodes gzip and deflate bodies; its suites run
# against nginx and h2o started on loopback (and skip one that is missing).
build_pkgs="$build_pkgs zlib1g-dev"
test_pkgs="$test_pkgs nginx h2o"
bench_pkgs="$bench_pkgs wrk h2o nghttp2-client nghttp2-server python3-aiohttp curl"
# The parsers' fuzz targets are libFuzzer programs: clang only.
fuzz_pkgs="clang libclang-rt-14-dev"

case "${1:-build}" in
build) want="$build_pkgs" ;;
test) want="$build_pkgs $test_pkgs" ;;
bench) want="$build_pkgs $bench_pkgs" ;;
fuzz) want="$build_pkgs $fuzz_pkgs" ;;
all) want="$build_pkgs $test_pkgs $bench_pkgs $fuzz_pkgs" ;;
*)
  echo "usage: $0 build|test|bench|fuzz|all" >&2
  exit 2
  ;;
esac

missing=""
for p in $want; do
  # dpkg-query says "install ok installed" only for a fully installed package.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "weft: installing missing packages:$missing"
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || {
    echo "weft: not root and no sudo: install$missing by hand" >&2
    exit 1
  }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive

# Servers installed for the tests and benchmarks (nginx, h2o) must not start
# as system services: every test starts its own on loopback. A policy-rc.d
# that answers 101 ("action forbidden") for the time of the install keeps
# invoke-rc.d and deb-systemd-invoke from starting them. One that exists
# already is the machine's own and is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT INT TERM
fi

stamp=/tmp/.weft-apt-updated
if [ ! -e "$stamp" ]; then
  $sudo apt-get update -q
  touch "$stamp" 2>/dev/null || true
fi
# shellcheck disable=SC2086
if ! $sudo apt-get install -y -q --no-install-recommends $missing; then
  # Package lists older than the mirror (404s): refresh once and retry.
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends $missing
fi
