#!/usr/bin/env bash
# convert-bench.sh: the import and export part of store-bench.sh alone (no borg, restic, casync):
# four `cask import` of the fixture images against four `qemu-img convert -O qcow2`, then four
# `cask export` to raw against four `qemu-img convert -O raw` of the qcow2 copies, interleaved in
# every run, medians and ratios, exactly as store-bench.sh times them (sequential, JVM start
# included, `sync` before each timed step, warm page cache).
#
#   bench/convert-bench.sh [BASE_CASK]   (env: BENCH_RUNS=3, BENCH_WORK=/tmp/cask-convert-bench,
#                                         CASK_FIXTURES=~/.cache/cask-fixtures)
#
# BASE_CASK: another checkout's ./cask (e.g. main before a change), timed the same way in the same
# runs, so a change is measured against its base and against qemu-img at once. The cask under test
# is this checkout's launcher, used as it is (build it first: ./cask --version). Output also goes to
# bench/results/convert-bench-<date>.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${BENCH_RUNS:-3}
WORK=${BENCH_WORK:-/tmp/cask-convert-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
BASE=${1:-}
IMAGES=(bookworm-minbase bookworm-server trixie-minbase bookworm-minbase-63)
for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || { echo "convert-bench: $FIX/$i.raw missing (build with /work/shared/fixtures/build-images.sh)" >&2; exit 1; }; done
command -v qemu-img >/dev/null || { echo "convert-bench: qemu-img missing (apt-get install qemu-utils)" >&2; exit 1; }
mkdir -p "$here/results"
result="$here/results/convert-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1
if [ -e "$WORK" ] && [ ! -f "$WORK/.cask-convert-bench" ]; then echo "convert-bench: $WORK exists and is not ours; set BENCH_WORK" >&2; exit 1; fi
rm -rf "$WORK"; mkdir -p "$WORK"; touch "$WORK/.cask-convert-bench"
trap 'rm -rf "$WORK"' EXIT

variants=(cask); declare -A launcher=([cask]="$root/cask")
if [ -n "$BASE" ]; then variants+=(base); launcher[base]="$BASE"; fi
LOGICAL=0; for i in "${IMAGES[@]}"; do LOGICAL=$((LOGICAL + $(stat -c %s "$FIX/$i.raw"))); done

echo "== cask import/export vs qemu-img, $(date -Is), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
echo "cask: $root @ $(git -C "$root" rev-parse --short HEAD)$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ] && echo ' (+ uncommitted changes)')${BASE:+; base: $BASE}"
echo "data: ${IMAGES[*]} ($((LOGICAL >> 20)) MiB logical); $(qemu-img --version | head -1)"
for f in "${IMAGES[@]}"; do cat "$FIX/$f.raw" >/dev/null; done
for v in "${variants[@]}"; do   # builds, start-up caches: untimed
  mkdir -p "$WORK/warm-$v"; "${launcher[$v]}" --store "$WORK/warm-$v" import "$FIX/${IMAGES[0]}.raw" w >/dev/null
  "${launcher[$v]}" --store "$WORK/warm-$v" export w "$WORK/warm-$v/w.raw" >/dev/null
  rm -rf "$WORK/warm-$v"
done

data="$WORK/times.tsv"; : >"$data"
TIMEFORMAT='%R %U %S'
timed() { # NAME FUNCTION: sync, then time the function: wall and CPU (user + sys of everything it ran)
  local t; sync
  t=$( { time "$2" >/dev/null; } 2>&1 | tail -n 1 )
  [[ $t =~ ^[0-9.]+\ [0-9.]+\ [0-9.]+$ ]] || { echo "convert-bench: $1 failed: $t"; exit 1; }
  awk -v n="$1" '{printf "%s\t%.3f\t%.3f\n", n, $1, $2 + $3}' <<<"$t" >>"$data"
  tail -n 1 "$data" | awk -F'\t' '{printf "  %-16s %8.2f s wall %8.2f s cpu\n", $1, $2, $3}'
}
run() { "$@" >>"$WORK/log" 2>&1 || { echo "convert-bench: failed: $*"; tail -20 "$WORK/log"; exit 1; }; }
for rep in $(seq "$RUNS"); do
  echo "-- run $rep/$RUNS --"
  for v in "${variants[@]}"; do
    C=${launcher[$v]}; S="$WORK/store-$v"; E="$WORK/export-$v"; rm -rf "$S" "$E"; mkdir -p "$S" "$E"
    imp() { local i; for i in "${IMAGES[@]}"; do run "$C" --store "$S" import "$FIX/$i.raw" "$i"; done; }
    exp() { local i; for i in "${IMAGES[@]}"; do run "$C" --store "$S" export "$i" "$E/$i.raw"; done; }
    timed "$v import" imp
    timed "$v export" exp
    if [ "$rep" = 1 ]; then for i in "${IMAGES[@]}"; do cmp "$FIX/$i.raw" "$E/$i.raw" || { echo "convert-bench: $v export of $i differs"; exit 1; }; done; fi
    rm -rf "$S" "$E"
  done
  Q="$WORK/qcow2"; R="$WORK/qraw"; rm -rf "$Q" "$R"; mkdir -p "$Q" "$R"
  qimp() { local i; for i in "${IMAGES[@]}"; do run qemu-img convert -f raw -O qcow2 "$FIX/$i.raw" "$Q/$i.qcow2"; done; }
  qexp() { local i; for i in "${IMAGES[@]}"; do run qemu-img convert -f qcow2 -O raw "$Q/$i.qcow2" "$R/$i.raw"; done; }
  timed "qemu-img import" qimp
  timed "qemu-img export" qexp
  rm -rf "$Q" "$R"
done
echo "(run 1: every cask export was byte-identical to its source image)"
python3 - "$data" "$LOGICAL" "${variants[@]}" <<'PY'
import statistics, sys
from collections import defaultdict
wall, cpu = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    k, w, c = line.rstrip("\n").split("\t"); wall[k].append(float(w)); cpu[k].append(float(c))
logical = int(sys.argv[2]); variants = sys.argv[3:]
m = lambda d, k: statistics.median(d[k])
print(f"\nmedians of {len(wall['qemu-img import'])} runs (4 images, sequential; seconds of wall time, and of CPU = user + sys)")
print(f"{'':12}{'import':>9}{'cpu':>8}{'export':>9}{'cpu':>8}{'export MiB/s':>14}{'import/qemu':>13}{'export thr/qemu':>17}")
for v in variants + ["qemu-img"]:
    i, e = m(wall, f"{v} import"), m(wall, f"{v} export")
    print(f"{v:12}{i:9.2f}{m(cpu, f'{v} import'):8.2f}{e:9.2f}{m(cpu, f'{v} export'):8.2f}{logical / e / 2**20:14.0f}"
          f"{i / m(wall, 'qemu-img import'):13.2f}{m(wall, 'qemu-img export') / e:17.3f}")
PY
echo "convert-bench: output in $result"
