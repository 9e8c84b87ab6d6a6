#!/usr/bin/env bash
# start-bench.sh: what a cask command costs when it has little to do, i.e. JVM start-up and the
# start path (picocli, SQLite, the store), against qemu-img doing the same small jobs in the same run.
#
#   bench/start-bench.sh [BASE_CASK]      (env: BENCH_RUNS=7, BENCH_WORK=/tmp/cask-start-bench)
#
# Each run times, interleaved: `cask --version`, `cask ls` (store with one image), `cask import` and
# `cask export` of a 64 MiB disk holding 16 MiB of data, `qemu-img convert` of the same disk to qcow2
# and back to raw; and the same cask commands with the launcher's AOT cache off (CASK_AOT=0) and, when
# BASE_CASK is given (another checkout's ./cask, e.g. main), with that launcher. Medians of wall
# time and of CPU time (user + sys), and ratios to the first cask column. Output also goes to
# bench/results/start-bench-<date>.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
RUNS=${BENCH_RUNS:-7}
WORK=${BENCH_WORK:-/tmp/cask-start-bench}
BASE=${1:-}
mkdir -p "$here/results"
result="$here/results/start-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1
if [ -e "$WORK" ] && [ ! -f "$WORK/.cask-start-bench" ]; then echo "start-bench: $WORK exists and is not ours; set BENCH_WORK" >&2; exit 1; fi
rm -rf "$WORK"; mkdir -p "$WORK"; touch "$WORK/.cask-start-bench"
trap 'rm -rf "$WORK"' EXIT
command -v qemu-img >/dev/null || { echo "start-bench: qemu-img missing (apt-get install qemu-utils)" >&2; exit 1; }

# the disk: 64 MiB, 8 MiB of random data at 4 MiB, 8 MiB of text at 32 MiB, holes elsewhere
disk="$WORK/small.raw"
truncate -s 64M "$disk"
head -c 8M /dev/urandom | dd of="$disk" conv=notrunc bs=1M seek=4 status=none
head -c 8M /dev/zero | tr '\0' c | dd of="$disk" conv=notrunc bs=1M seek=32 status=none

variants=("cask")
declare -A launcher=([cask]="$root/cask") env=([cask]="")
variants+=("cask-no-aot"); launcher[cask-no-aot]="$root/cask"; env[cask-no-aot]="CASK_AOT=0"
if [ -n "$BASE" ]; then variants+=("base"); launcher[base]="$BASE"; env[base]=""; fi
for v in "${variants[@]}"; do   # builds and caches first, untimed
  env ${env[$v]} "${launcher[$v]}" --version >/dev/null
  mkdir -p "$WORK/warm-$v"; env ${env[$v]} "${launcher[$v]}" --store "$WORK/warm-$v" import "$disk" w >/dev/null
  env ${env[$v]} "${launcher[$v]}" --store "$WORK/warm-$v" export w "$WORK/warm-$v/w.raw" >/dev/null
  env ${env[$v]} "${launcher[$v]}" --store "$WORK/warm-$v" ls >/dev/null
done

data="$WORK/times.tsv"; : >"$data"
timed() { # NAME COMMAND... : one timed run, appends NAME wall cpu
  local name=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { echo "start-bench: failed: $*"; cat "$WORK/err"; exit 1; }
  awk -v n="$name" '{printf "%s\t%s\t%.3f\n", n, $1, $2 + $3}' "$WORK/t" >>"$data"
}
echo "== cask start-up benchmark, $(date -Is), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
echo "cask: $root @ $(git -C "$root" rev-parse --short HEAD)${BASE:+; base: $BASE}"
for rep in $(seq "$RUNS"); do
  for v in "${variants[@]}"; do
    c=(env ${env[$v]} "${launcher[$v]}")
    st="$WORK/store-$v"; rm -rf "$st" "$WORK/out.raw"; mkdir -p "$st"; sync
    timed "$v version" "${c[@]}" --version
    timed "$v import" "${c[@]}" --store "$st" import "$disk" a
    timed "$v ls" "${c[@]}" --store "$st" ls
    timed "$v export" "${c[@]}" --store "$st" export a "$WORK/out.raw"
    cmp "$disk" "$WORK/out.raw"
  done
  rm -f "$WORK/q.qcow2" "$WORK/q.raw"; sync
  timed "qemu-img import" qemu-img convert -f raw -O qcow2 "$disk" "$WORK/q.qcow2"
  timed "qemu-img export" qemu-img convert -f qcow2 -O raw "$WORK/q.qcow2" "$WORK/q.raw"
done
python3 - "$data" "${variants[@]}" <<'PY'
import statistics, sys
from collections import defaultdict
wall, cpu = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    k, w, c = line.rstrip("\n").split("\t")
    wall[k].append(float(w)); cpu[k].append(float(c))
variants = sys.argv[2:]
m = lambda d, k: statistics.median(d[k])
print(f"medians of {len(wall[variants[0] + ' version'])} runs, seconds (wall / cpu = user + sys)")
print(f"{'command':10}" + "".join(f"{v:>22}" for v in variants + ['qemu-img']))
for cmd in ("version", "ls", "import", "export"):
    row = f"{cmd:10}"
    for v in variants + ["qemu-img"]:
        k = f"{v} {cmd}"
        row += f"{m(wall, k):>12.3f} / {m(cpu, k):<7.3f}" if k in wall else f"{'':>22}"
    print(row)
print("ratios of wall time to the first column:")
for cmd in ("version", "ls", "import", "export"):
    base = m(wall, f"{variants[0]} {cmd}")
    print(f"  {cmd:8}" + "".join(f"  {v}={m(wall, f'{v} {cmd}') / base:.2f}" for v in variants[1:] + ['qemu-img'] if f"{v} {cmd}" in wall))
PY
echo "start-bench: output in $result"
