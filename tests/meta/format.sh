#!/bin/sh
# meta-format: every C source and header of the tree follows .clang-format.
# Prints the files that do not, and how to fix them (make format).
set -eu
cd "$(dirname "$0")/../.."
command -v clang-format >/dev/null || {
  echo "meta-format: clang-format is not installed (scripts/deps.sh test)"
  exit 77
}
bad=""
for f in $(find runtime offload net apps tests -name '*.[ch]' | sort); do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
  echo "meta-format: not formatted:$bad"
  echo "meta-format: run 'make format' (clang-format -i) and commit"
  exit 1
fi
echo "meta-format: all sources follow .clang-format"
