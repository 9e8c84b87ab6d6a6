#!/usr/bin/env bash
# write-bench.sh: the sustained write alone (serve-bench's "write" row), cask serve against
# qemu-nbd (qcow2) and, if given, another build of cask, interleaved, a fresh server and image
# per measurement (serve-bench runs one server through all its runs, whose store then grows and
# whose restarts for the cold rows sit between them).
#
#   bench/write-bench.sh [BASE_CASK]   (env: BENCH_RUNS=3 BENCH_SIZE=1G BENCH_JOURNAL_LIMIT=256M
#                                       BENCH_DATA="unique mix" BENCH_PORT=10931
#                                       BENCH_WORK=/var/tmp/cask-write-bench CASK_JAVA_OPTS (cask serve))
#
# Each measurement: `cask serve --journal-limit LIMIT --checkpoint-interval 0` (or qemu-nbd on a new
# qcow2), an image of SIZE, one client that stays connected (a 4K read a second, as a VM: the image
# stays open, so cask checkpoints only because its journal is full), then fio seq write 1M QD8 of
# SIZE with unique data (--refill_buffers --randrepeat=0) or the realistic mix (also
# --dedupe_percentage=30 --buffer_compress_percentage=50). With SIZE 16 x LIMIT the write runs
# at checkpoint speed nearly all along; with 4 x LIMIT (serve-bench's) the journal takes a good part
# of it. Prints MiB/s and p99 per run, then medians and cask / qemu-nbd. Output also in
# bench/results/write-bench-TIME.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${BENCH_RUNS:-3}; size=${BENCH_SIZE:-1G}; limit=${BENCH_JOURNAL_LIMIT:-256M}; datas=${BENCH_DATA:-unique mix}
port=${BENCH_PORT:-10931}; work=${BENCH_WORK:-/var/tmp/cask-write-bench}
declare -A launcher=([cask]="$here/cask"); targets=(qemu cask)
if [ -n "${1:-}" ]; then launcher[base]=$1; targets+=(base); fi
for t in fio qemu-nbd qemu-img nbdinfo python3; do command -v "$t" >/dev/null || { echo "write-bench: $t is missing (run scripts/install-deps.sh)"; exit 1; }; done
mkdir -p "$here/bench/results"
out="$here/bench/results/write-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
if [ -e "$work" ] && [ ! -f "$work/.cask-write-bench" ]; then echo "write-bench: $work exists and is not ours; set BENCH_WORK"; exit 1; fi
spid=; hpid=
cleanup() { for p in $hpid $spid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work" "$work.rows"; }
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "== sustained write $(date -Is), $(nproc) cores, load $(load) =="
echo "cask $(git -C "$here" log --oneline -1 | cut -c1-70)${1:+; base: $1}; $(qemu-nbd --version | head -1); $(fio --version)"
echo "image $size, --journal-limit $limit, $runs runs, data: $datas"
for t in "${targets[@]}"; do [ "$t" = qemu ] || "${launcher[$t]}" --version >/dev/null; done   # builds: untimed

start() { # TARGET: a fresh server with image "vm" on $port
  rm -rf "$work"; sync   # the last measurement's dirty pages are not written back during this one
  mkdir -p "$work/store"; touch "$work/.cask-write-bench"
  if [ "$1" = qemu ]; then
    qemu-img create -q -f qcow2 "$work/vm.qcow2" "$size"
    qemu-nbd -f qcow2 -x vm -b 127.0.0.1 -p "$port" --persistent --shared=8 "$work/vm.qcow2" & spid=$!
  else
    "${launcher[$1]}" --store "$work/store" create vm "$size" >/dev/null
    "${launcher[$1]}" --store "$work/store" serve --listen "127.0.0.1:$port" --checkpoint-interval 0 \
      --journal-limit "$limit" > "$work/serve.log" 2>&1 & spid=$!
  fi
  for _ in $(seq 300); do nbdinfo --size "nbd://127.0.0.1:$port/vm" >/dev/null 2>&1 && break; sleep 0.1; done
  fio --name=hold --ioengine=nbd --uri="nbd://127.0.0.1:$port/vm" --rw=randread --bs=4k --size="$size" --rate_iops=1 \
      --runtime=1000000 --time_based >/dev/null 2>&1 & hpid=$!
  sleep 0.5
}
stop() { kill "$hpid"; wait "$hpid" 2>/dev/null || true; kill -TERM "$spid"; wait "$spid" 2>/dev/null || true; hpid=; spid=; }
rows="$work.rows"; : > "$rows"
for r in $(seq "$runs"); do
  for data in $datas; do
    opts=(--refill_buffers --randrepeat=0); [ "$data" = mix ] && opts+=(--dedupe_percentage=30 --buffer_compress_percentage=50)
    order=("${targets[@]}"); [ $((r % 2)) = 0 ] && [ "${#order[@]}" = 3 ] && order=(qemu base cask)   # neither build always goes second
    for t in "${order[@]}"; do
      start "$t"
      v=$(fio --name=w --ioengine=nbd --uri="nbd://127.0.0.1:$port/vm" --rw=write --bs=1M --iodepth=8 --size="$size" \
            "${opts[@]}" --output-format=json 2>/dev/null | python3 -c "
import json, sys
t = sys.stdin.read(); j = json.loads(t[t.index('{'):])['jobs'][0]['write']
print('%.1f %.2f' % (j['bw_bytes'] / 1048576, j['clat_ns']['percentile']['99.000000'] / 1e6))")
      stop
      echo "$data $t $v" >> "$rows"
      printf "  run %d %-7s %-5s %8s MiB/s  p99 %8s ms  load %s\n" "$r" "$data" "$t" ${v% *} ${v#* } "$(load)"
    done
  done
done
python3 - "$rows" <<'PY'
import statistics, sys
from collections import defaultdict
m = defaultdict(list)
for line in open(sys.argv[1]):
    data, t, bw, p99 = line.split(); m[(data, t)].append((float(bw), float(p99)))
print("\nmedians (MiB/s, p99 ms); ratio = cask / qemu-nbd qcow2, target (issue 13 item 3) >= 0.8")
for data in dict.fromkeys(k[0] for k in m):
    q = statistics.median(b for b, _ in m[(data, "qemu")])
    for t in ("qemu", "cask", "base"):
        if (data, t) not in m: continue
        bw = statistics.median(b for b, _ in m[(data, t)]); p = statistics.median(p for _, p in m[(data, t)])
        print(f"  {data:7s} {t:5s} {bw:8.1f} MiB/s  p99 {p:8.2f} ms" + ("" if t == "qemu" else f"  ratio {bw / q:.3f}"))
PY
rm -f "$rows"
echo "output kept in $out"
