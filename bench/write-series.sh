#!/usr/bin/env bash
# A server's life, in writes: ONE cask serve on one store takes 1 GiB of unique data (fio,
# --refill_buffers --randrepeat=0, 1M writes at QD8) into each of N new images, one after the other,
# and prints each image's rate, the bytes the disk wrote meanwhile (/proc/diskstats) and the
# index's size and WAL. write-bench.sh starts a fresh server per measurement; this is what a server
# that has run a while sees (a growing heap, a growing index). With a second launcher (a base
# build) the series runs for both, BENCH_RUNS times each, the order alternated.
#
#   bench/write-series.sh [BASE_CASK]      BENCH_IMAGES=6 BENCH_RUNS=2 BENCH_JOURNAL_LIMIT=256M
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
images=${BENCH_IMAGES:-6}; runs=${BENCH_RUNS:-2}; limit=${BENCH_JOURNAL_LIMIT:-256M}
port=${BENCH_PORT:-10932}; work=${BENCH_WORK:-/var/tmp/cask-write-series}
declare -A launcher=([cask]="$here/cask"); targets=(cask)
if [ -n "${1:-}" ]; then launcher[base]=$1; targets=(base cask); fi
for t in fio nbdinfo python3; do command -v "$t" >/dev/null || { echo "write-series: $t is missing (run scripts/install-deps.sh)"; exit 1; }; done
disk=$(df --output=source "$(dirname "$work")" | tail -1); disk=${disk#/dev/}; disk=${disk%%[0-9]*}
[ -n "$(awk -v d="$disk" '$3 == d' /proc/diskstats)" ] || disk=$(awk '$3 !~ /^(loop|ram|zram)/ {print $3; exit}' /proc/diskstats)
mkdir -p "$here/bench/results"
out="$here/bench/results/write-series-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
if [ -e "$work" ] && [ ! -f "$work/.cask-write-series" ]; then echo "write-series: $work exists and is not ours; set BENCH_WORK"; exit 1; fi
spid=
cleanup() { [ -z "$spid" ] || { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }; rm -rf "$work" "$work.rows"; }
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
written() { awk -v d="$disk" '$3 == d {printf "%.0f\n", $10 * 512 / 1048576}' /proc/diskstats; }
mib() { [ -f "$1" ] && echo $(( $(stat -c %s "$1") >> 20 )) || echo 0; }
echo "== write series $(date -Is), $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB RAM, load $(load) =="
echo "cask $(git -C "$here" log --oneline -1 | cut -c1-70)${1:+; base: $1}; $(fio --version); disk $disk"
echo "$images images of 1 GiB unique data into one server, --journal-limit $limit, $runs runs"
echo "CASK_JAVA_OPTS=${CASK_JAVA_OPTS:-}"
for t in "${targets[@]}"; do "${launcher[$t]}" --version >/dev/null; done   # builds: untimed
rows="$work.rows"; : > "$rows"
for r in $(seq "$runs"); do
  order=("${targets[@]}"); [ $((r % 2)) = 0 ] && [ "${#order[@]}" = 2 ] && order=(cask base)
  for t in "${order[@]}"; do
    rm -rf "$work"; sync; mkdir -p "$work/store"; touch "$work/.cask-write-series"
    c=${launcher[$t]}
    for i in $(seq "$images"); do "$c" --store "$work/store" create "vm$i" 1G >/dev/null; done
    "$c" --store "$work/store" serve --listen "127.0.0.1:$port" --checkpoint-interval 0 --gc-interval 0 \
      --journal-limit "$limit" > "$work/serve.log" 2>&1 & spid=$!
    for _ in $(seq 300); do nbdinfo --size "nbd://127.0.0.1:$port/vm1" >/dev/null 2>&1 && break; sleep 0.1; done
    echo "  run $r $t"
    for i in $(seq "$images"); do
      w0=$(written)
      v=$(fio --name=w --ioengine=nbd --uri="nbd://127.0.0.1:$port/vm$i" --rw=write --bs=1M --iodepth=8 --size=1G \
            --refill_buffers --randrepeat=0 --output-format=json 2>/dev/null | python3 -c "
import json, sys
t = sys.stdin.read(); j = json.loads(t[t.index('{'):])['jobs'][0]['write']
print('%.1f' % (j['bw_bytes'] / 1048576))")
      w1=$(written)
      echo "$t $i $v" >> "$rows"
      printf "    image %d  %7s MiB/s  disk wrote %5d MiB  index %4d MiB, WAL %4d MiB  load %s\n" "$i" "$v" $((w1 - w0)) \
        "$(mib "$work/store/index.db")" "$(mib "$work/store/index.db-wal")" "$(load)"
    done
    kill -TERM "$spid"; wait "$spid" 2>/dev/null || true; spid=
  done
done
python3 - "$rows" "$images" <<'PY'
import statistics, sys
from collections import defaultdict
m = defaultdict(list)
for line in open(sys.argv[1]):
    t, i, bw = line.split(); m[(t, int(i))].append(float(bw))
ts = sorted({t for t, _ in m}, key=lambda t: t != "base")
print("\nmedian MiB/s per image (1 GiB of unique data each, one server)")
print("  image " + "".join(f"{t:>10s}" for t in ts))
for i in range(1, int(sys.argv[2]) + 1):
    print(f"  {i:5d} " + "".join(f"{statistics.median(m[(t, i)]):10.1f}" for t in ts))
for t in ts:
    allv = [v for (tt, _), vs in m.items() if tt == t for v in vs]
    print(f"  {t}: median over all images {statistics.median(allv):.1f} MiB/s, slowest image {min(allv):.1f}")
PY
rm -f "$rows"
echo "output kept in $out"
