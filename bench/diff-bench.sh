#!/usr/bin/env bash
# cask diff of two versions of a 2 GiB image that differ in 1 MiB: how many pointer chunks it reads
# (it must read only the changed tree paths, never data), next to cmp of the two exports (which
# reads every byte). Data: 256 MiB of unique random bytes (urandom) in 1 MiB pieces every 8 MiB
# of a sparse 2 GiB raw file; version 2 rewrites one piece. Prints the counts and the timings
# (median of 3 runs each; the machine is noisy: read the counts, not the times).
# Usage: bench/diff-bench.sh [WORKDIR]   (default: a temporary directory, removed afterwards)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
cask() { "$here/cask" --store "$work/store" "$@"; }
mkdir -p "$work"
rm -rf "$work/store"; "$here/cask" init "$work/store" >/dev/null
truncate -s 2G "$work/a.raw"
for i in $(seq 0 255); do
  dd if=/dev/urandom of="$work/a.raw" bs=1M count=1 seek=$((i * 8)) conv=notrunc status=none
done
cp --sparse=always "$work/a.raw" "$work/b.raw"
dd if=/dev/urandom of="$work/b.raw" bs=1M count=1 seek=$((100 * 8)) conv=notrunc status=none
cask import --whole-disk "$work/a.raw" bench/vm >/dev/null
cask import --as-version --whole-disk "$work/b.raw" bench/vm -m "backup 2"
median() { sort -n | sed -n 2p; }
t_diff=$(for r in 1 2 3; do s=$(date +%s.%N); cask diff bench/vm@1 bench/vm@2 --stats >"$work/diff.out" 2>"$work/diff.err"; e=$(date +%s.%N); echo "$e - $s" | bc; done | median)
echo "cask diff:  $(grep -v '^Offset' "$work/diff.out" | tr -s ' ' | tr '\n' ';')"
echo "            $(cat "$work/diff.err")"
cask export bench/vm@1 "$work/x1.raw"; cask export bench/vm@2 "$work/x2.raw"
t_cmp=$(for r in 1 2 3; do s=$(date +%s.%N); cmp -l "$work/x1.raw" "$work/x2.raw" >/dev/null || true; e=$(date +%s.%N); echo "$e - $s" | bc; done | median)
printf 'median of 3: cask diff %.2f s (includes JVM start), cmp of the exports %.2f s, ratio %.2f\n' "$t_diff" "$t_cmp" "$(echo "$t_diff / $t_cmp" | bc -l)"
