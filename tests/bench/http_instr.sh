#!/bin/sh
# User-space instructions per request of weft-hello, by shared object, from
# callgrind (valgrind): steadier than any timing on a shared machine, so the
# measure for trimming the servers' own code (docs/benchmarks.md, HTTP
# server).
#
#   tests/bench/http_instr.sh BUILD h1|h2 [PORT]
#
#   h1  h2load --h1 -c64 -n100000: HTTP/1.1 keep-alive, one request at a time
#       a connection
#   h2  h2load -c64 -m10 -n100000: h2c
#
# The profile stays in /tmp/weft-instr-MODE-PORT.out for callgrind_annotate
# (--inclusive=yes, --auto=yes). Start-up costs are included (a few dozen
# instructions a request at this count).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 BUILD h1|h2 [PORT]" >&2; exit 2; }
build=$1 mode=$2 port=${3:-18082}
case $mode in
h1) load="h2load --h1 -c64 -n100000" ;;
h2) load="h2load -c64 -m10 -n100000" ;;
*) echo "$0: mode h1 or h2" >&2; exit 2 ;;
esac
for p in valgrind h2load callgrind_annotate ss; do
  command -v $p >/dev/null || { echo "$0: $p missing" >&2; exit 1; }
done
out=/tmp/weft-instr-$mode-$port.out
valgrind --tool=callgrind --callgrind-out-file="$out" \
  "$build/apps/weft-hello" --port "$port" >/dev/null 2>&1 &
pid=$!
i=0
until ss -ltn | grep -q ":$port "; do
  i=$((i + 1))
  [ $i -lt 100 ] || { kill $pid; echo "$0: weft-hello did not listen" >&2; exit 1; }
  sleep 0.1
done
$load "http://127.0.0.1:$port/" >/dev/null
kill -INT $pid
wait $pid || true
# A function's cost lines from an inlined header come without an object
# name ("net/http_msg.h:start"): they are the object's that holds the
# function they were inlined into, found by its name among the lines that
# have one.
callgrind_annotate --auto=no --threshold=100 "$out" 2>/dev/null |
  grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' |
  awk '{v = $1; gsub(",", "", v); l = $0; sub(/^[^)]*\) +/, "", l)
        o = ""
        if (match(l, / \[.*\]$/)) {
          o = substr(l, RSTART + 2, RLENGTH - 3); l = substr(l, 1, RSTART - 1)
        }
        f = l; sub(/^.*:/, "", f)
        if (o != "") obj[f] = o
        n++; val[n] = v; fn[n] = f; ob[n] = o}
       END {for (i = 1; i <= n; i++) {
              o = ob[i] != "" ? ob[i] : (fn[i] in obj ? obj[fn[i]] : "?")
              tot[o] += val[i]; all += val[i]}
            printf "%8.0f instructions/request in all\n", all / 100000
            for (o in tot) if (tot[o] > 100000) printf "%8.0f %s\n", tot[o] / 100000, o}' |
  sort -rn
