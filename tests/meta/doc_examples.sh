#!/bin/sh
# meta-doc-examples: the whole programs shown in README.md and docs/guide/
# (each ```c block with its #includes and a main, no "..." left out) compile warning-free against this build's
# libweft.so, as a reader would build them; README's first example also runs
# and prints what the README says it prints.
#
#   doc_examples.sh CC LIBDIR [FLAG...]   (FLAGs: the build's sanitizer flags)
set -eu
cc=$1
libdir=$2
shift 2
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Writes the K-th whole program of FILE to $tmp/FILE-K.c (README.md-1.c).
awk -v dir="$tmp" '
  FNR == 1 { k = 0; name = FILENAME; sub(/.*\//, "", name) }
  /^```c$/ { inblock = 1; text = ""; next }
  /^```$/ && inblock {
    inblock = 0
    whole = text ~ /#include/ && text ~ /int main\(/ && text !~ /\n *\.\.\.\n/
    if (whole) { k++; f = dir "/" name "-" k ".c"; printf "%s", text > f; close(f) }
    next
  }
  inblock { text = text $0 "\n" }
' "$src/README.md" "$src"/docs/guide/*.md

n=0
bad=""
for c in "$tmp"/*.c; do
  [ -e "$c" ] || break
  n=$((n + 1))
  exe=${c%.c}
  if ! "$cc" -std=c11 -Wall -Wextra -Werror "$@" -I"$src/runtime" \
    -I"$src/offload" -I"$src/net" "$c" -L"$libdir" -lweft \
    -Wl,-rpath,"$libdir" -o "$exe" 2>"$exe.log"; then
    bad="$bad $(basename "$c")"
    sed "s|^|  |" "$exe.log"
  fi
done
[ "$n" -gt 0 ] || { echo "meta-doc-examples: no example found"; exit 1; }
if [ -n "$bad" ]; then
  echo "meta-doc-examples: do not build:$bad"
  exit 1
fi

# README's example: two 1-second sleeps under gather print both words.
got=$("$tmp/README.md-1")
want=$(printf 'hello\nworld')
if [ "$got" != "$want" ]; then
  echo "meta-doc-examples: README's example printed '$got', not '$want'"
  exit 1
fi
echo "meta-doc-examples: $n examples build; README's runs as it says"
