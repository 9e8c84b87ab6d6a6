#!/usr/bin/env bash
# format-bench.sh: import of vmdk and vhdx images (made by qemu-img from the fixture images) with
# `cask import` (QEMU's drivers read them through qemu-nbd on a private Unix socket, cask reads
# NBD) against `qemu-img convert -O qcow2` of the same files, interleaved in every run; medians
# and ratios. Sequential, JVM start included, `sync` before each timed step, warm page cache.
#
#   bench/format-bench.sh   (env: BENCH_RUNS=3, BENCH_WORK=/tmp/cask-format-bench,
#                            CASK_FIXTURES=~/.cache/cask-fixtures)
#
# Run 1 checks that every cask import exports back byte-identical to its fixture. Output also goes
# to bench/results/format-bench-<date>.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${BENCH_RUNS:-3}
WORK=${BENCH_WORK:-/tmp/cask-format-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
IMAGES=(bookworm-minbase bookworm-server)
FORMATS=(vmdk vhdx)
for i in "${IMAGES[@]}"; do
  [ -f "$FIX/$i.raw" ] || /work/shared/fixtures/build-images.sh "$FIX" >&2
  [ -f "$FIX/$i.raw" ] || { echo "format-bench: $FIX/$i.raw missing (build with /work/shared/fixtures/build-images.sh)" >&2; exit 1; }
done
for t in qemu-img qemu-nbd; do command -v $t >/dev/null || { echo "format-bench: $t missing (apt-get install qemu-utils)" >&2; exit 1; }; done
mkdir -p "$here/results"
result="$here/results/format-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1
if [ -e "$WORK" ] && [ ! -f "$WORK/.cask-format-bench" ]; then echo "format-bench: $WORK exists and is not ours; set BENCH_WORK" >&2; exit 1; fi
rm -rf "$WORK"; mkdir -p "$WORK/src"; touch "$WORK/.cask-format-bench"
trap 'rm -rf "$WORK"' EXIT

echo "== cask import of vmdk/vhdx vs qemu-img convert -O qcow2, $(date -Is), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
echo "cask: $root @ $(git -C "$root" rev-parse --short HEAD)$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ] && echo ' (+ uncommitted changes)')"
echo "$(qemu-img --version | head -1)"
for f in "${FORMATS[@]}"; do for i in "${IMAGES[@]}"; do   # the sources: untimed
  qemu-img convert -f raw -O "$f" "$FIX/$i.raw" "$WORK/src/$i.$f"
  echo "source $i.$f: $(( $(stat -c %s "$WORK/src/$i.$f") >> 20 )) MiB file, $(( $(stat -c %s "$FIX/$i.raw") >> 20 )) MiB disk"
done; done
mkdir -p "$WORK/warm"; "$root/cask" --store "$WORK/warm" import "$WORK/src/${IMAGES[0]}.vmdk" w >/dev/null; rm -rf "$WORK/warm"   # build, start-up cache
for f in "${FORMATS[@]}"; do for i in "${IMAGES[@]}"; do cat "$WORK/src/$i.$f" >/dev/null; done; done

data="$WORK/times.tsv"; : >"$data"
TIMEFORMAT='%R %U %S'
timed() { # NAME FUNCTION
  local t; sync
  t=$( { time "$2" >/dev/null; } 2>&1 | tail -n 1 )
  [[ $t =~ ^[0-9.]+\ [0-9.]+\ [0-9.]+$ ]] || { echo "format-bench: $1 failed: $t"; exit 1; }
  awk -v n="$1" '{printf "%s\t%.3f\t%.3f\n", n, $1, $2 + $3}' <<<"$t" >>"$data"
  tail -n 1 "$data" | awk -F'\t' '{printf "  %-20s %8.2f s wall %8.2f s cpu\n", $1, $2, $3}'
}
run() { "$@" >>"$WORK/log" 2>&1 || { echo "format-bench: failed: $*"; tail -20 "$WORK/log"; exit 1; }; }
for rep in $(seq "$RUNS"); do
  echo "-- run $rep/$RUNS --"
  for f in "${FORMATS[@]}"; do
    S="$WORK/store"; Q="$WORK/qcow2"; rm -rf "$S" "$Q"; mkdir -p "$S" "$Q"
    imp() { local i; for i in "${IMAGES[@]}"; do run "$root/cask" --store "$S" import "$WORK/src/$i.$f" "$i"; done; }
    qimp() { local i; for i in "${IMAGES[@]}"; do run qemu-img convert -f "$f" -O qcow2 "$WORK/src/$i.$f" "$Q/$i.qcow2"; done; }
    timed "cask $f" imp
    timed "qemu-img $f" qimp
    if [ "$rep" = 1 ]; then for i in "${IMAGES[@]}"; do
      run "$root/cask" --store "$S" export "$i" "$WORK/check.raw"
      cmp "$FIX/$i.raw" "$WORK/check.raw" || { echo "format-bench: cask import of $i.$f differs from the fixture"; exit 1; }
      rm -f "$WORK/check.raw"
    done; fi
    rm -rf "$S" "$Q"
  done
done
echo "(run 1: every cask import exported back byte-identical to its fixture)"
python3 - "$data" "${FORMATS[@]}" <<'PY'
import statistics, sys
from collections import defaultdict
wall, cpu = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    k, w, c = line.rstrip("\n").split("\t"); wall[k].append(float(w)); cpu[k].append(float(c))
m = lambda d, k: statistics.median(d[k])
print(f"\nmedians of {len(wall['cask ' + sys.argv[2]])} runs (2 images per format, sequential; seconds)")
print(f"{'format':8}{'cask':>8}{'cpu':>8}{'qemu-img':>10}{'cpu':>8}{'cask/qemu-img':>15}")
for f in sys.argv[2:]:
    c, q = m(wall, f"cask {f}"), m(wall, f"qemu-img {f}")
    print(f"{f:8}{c:8.2f}{m(cpu, f'cask {f}'):8.2f}{q:10.2f}{m(cpu, f'qemu-img {f}'):8.2f}{c / q:15.2f}")
PY
echo "format-bench: output in $result"
