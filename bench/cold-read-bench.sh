#!/usr/bin/env bash
# cold-read-bench.sh: serve-bench's "cold rand" row alone, with what it costs each server.
#
# A fresh image of SIZE (default 1G) is written with unique data (fio seq write 1M QD8,
# --refill_buffers --randrepeat=0) through cask serve and through qemu-nbd (qcow2), then cask
# checkpoints it (its client leaves). Each run then, for each target in turn: the server stopped,
# the page cache dropped (echo 3 > /proc/sys/vm/drop_caches, needs root; else the rows say so),
# the server started again (cask serve with its warm-up), and fio rand read 4K QD32 for
# FIO_SECONDS (default 10) over the image. Per run and target it prints MiB/s and p99, and
# beside them where the time went: the disk's reads per fio I/O and KiB per disk read, the
# disk's average queue depth over the job (how busy the server kept the disk), and the server's
# user and system CPU per fio I/O. Then the medians of BENCH_RUNS (default 5) and the ratios.
#
# A second cask variant can run interleaved with the first on the same store: CASK_B_JAVA_OPTS
# (for instance a -D property of a change under test) adds a target "cask-b".
#
# env: BENCH_RUNS=5 BENCH_SIZE=1G FIO_SECONDS=10 BENCH_PORT=10911 BENCH_WORK=/var/tmp/cask-cold-bench
#      CASK=./cask of another checkout  CASK_JAVA_OPTS  CASK_B_JAVA_OPTS
# Output: bench/results/cold-read-bench-TIME.txt
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cask=${CASK:-$here/cask}
runs=${BENCH_RUNS:-5}; size=${BENCH_SIZE:-1G}; secs=${FIO_SECONDS:-10}
port=${BENCH_PORT:-10911}; cport=$port; qport=$((port + 1))
work=${BENCH_WORK:-/var/tmp/cask-cold-bench}
mkdir -p "$here/bench/results"
out="$here/bench/results/cold-read-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
for t in fio qemu-nbd qemu-img nbdinfo python3; do
  command -v "$t" >/dev/null || { echo "cold-read-bench: $t is missing (run scripts/install-deps.sh)"; exit 1; }
done
disk=$(lsblk -no PKNAME "$(df --output=source "$(dirname "$work")" | tail -1)" 2>/dev/null || true)
[ -n "$disk" ] || disk=$(basename "$(df --output=source "$(dirname "$work")" | tail -1)")
rm -rf "$work"; mkdir -p "$work"
pid=
cleanup() { [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true; rm -rf "$work"; }
trap cleanup EXIT
cold_ok=1; [ -w /proc/sys/vm/drop_caches ] || cold_ok=
echo "== cold random 4K reads $(date -Is), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), disk $disk =="
"$here/bench/page-cache-note.sh"
echo "cask $(git -C "$here" log --oneline -1 | cut -c1-70); $(qemu-nbd --version | head -1); $(fio --version)"
echo "image $size of unique data, $runs runs, fio rand read 4K QD32 ${secs} s${CASK_B_JAVA_OPTS:+; cask-b: CASK_JAVA_OPTS=$CASK_B_JAVA_OPTS}"
[ -n "$cold_ok" ] || echo "NOTE: /proc/sys/vm/drop_caches is not writable (not root): the servers are only restarted (warm page cache)"

start() { # TARGET: starts it, sets pid and uri
  case "$1" in
    qcow2) qemu-nbd -f qcow2 -x vm -b 127.0.0.1 -p "$qport" --persistent --shared=8 "$work/q.qcow2" & pid=$!
           uri="nbd://127.0.0.1:$qport/vm"
           for _ in $(seq 100); do nbdinfo --size "$uri" >/dev/null 2>&1 && return 0; sleep 0.1; done
           echo "qemu-nbd did not start"; exit 1 ;;
    cask*) local opts=${CASK_JAVA_OPTS:-}; [ "$1" = cask-b ] && opts=$CASK_B_JAVA_OPTS
           : > "$work/serve.log"
           CASK_JAVA_OPTS="$opts" "$cask" --store "$work/store" serve --listen "127.0.0.1:$cport" --checkpoint-interval 0 \
             --journal-limit 256M >> "$work/serve.log" 2>&1 & pid=$!
           uri="nbd://127.0.0.1:$cport/u"
           for _ in $(seq 300); do grep -q serving "$work/serve.log" && return 0; sleep 0.1; done
           echo "cask serve did not start:"; tail -20 "$work/serve.log"; exit 1 ;;
  esac
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
diskstat() { awk -v d="$disk" '$3 == d {print $4, $6, $14}' /proc/diskstats; } # reads, sectors read, weighted ms in queue
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; } # user, system ticks

"$cask" init "$work/store" >/dev/null
qemu-img create -q -f qcow2 "$work/q.qcow2" "$size"
for t in qcow2 cask; do
  start "$t"
  [ "$t" = cask ] && "$cask" --store "$work/store" create u "$size" >/dev/null
  fio --name=w --ioengine=nbd --uri="$uri" --rw=write --bs=1M --iodepth=8 --size="$size" --refill_buffers --randrepeat=0 \
    >/dev/null 2>"$work/fio.err" || { cat "$work/fio.err"; exit 1; }
  stop # cask: the last client left, the image was checkpointed; serve's stop waits for it
done
echo "store $(du -sh "$work/store" | cut -f1), qcow2 $(du -sh "$work/q.qcow2" | cut -f1)"

targets="qcow2 cask"; [ -n "${CASK_B_JAVA_OPTS:-}" ] && targets="$targets cask-b"
rows="$work/rows"; : > "$rows"
for r in $(seq "$runs"); do
  for t in $targets; do
    sync; [ -n "$cold_ok" ] && echo 3 > /proc/sys/vm/drop_caches
    start "$t"
    d0=$(diskstat); c0=$(cpu "$pid"); t0=$(date +%s.%N)
    fio --name=r --ioengine=nbd --uri="$uri" --rw=randread --bs=4k --iodepth=32 --size="$size" --randrepeat=0 \
      --runtime="$secs" --time_based --output-format=json > "$work/fio.json" 2>"$work/fio.err" || { cat "$work/fio.err"; exit 1; }
    d1=$(diskstat); c1=$(cpu "$pid"); t1=$(date +%s.%N)
    stop
    python3 - "$work/fio.json" "$t" "$r" "$d0" "$d1" "$c0" "$c1" "$t0" "$t1" "$(getconf CLK_TCK)" >> "$rows" <<'PY'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index('{'):])['jobs'][0]['read']
d0, d1 = [list(map(int, a.split())) for a in sys.argv[4:6]]
c0, c1 = [list(map(int, a.split())) for a in sys.argv[6:8]]
wall = float(sys.argv[9]) - float(sys.argv[8]); hz = int(sys.argv[10]); n = max(j['total_ios'], 1)
reads = d1[0] - d0[0]
print(sys.argv[2], sys.argv[3], "%.1f" % (j['bw_bytes'] / 1048576), "%.2f" % (j['clat_ns']['percentile']['99.000000'] / 1e6),
      "%.2f" % (reads / n), "%.1f" % ((d1[1] - d0[1]) / 2 / max(reads, 1)), "%.1f" % ((d1[2] - d0[2]) / 1000 / wall),
      "%.0f" % ((c1[0] - c0[0]) / hz / n * 1e6), "%.0f" % ((c1[1] - c0[1]) / hz / n * 1e6))
PY
    tail -1 "$rows" | awk '{printf "  run %s %-7s %7s MiB/s  p99 %6s ms  disk reads/io %5s  KiB/read %5s  disk queue %4s  cpu us/io user %4s sys %4s\n", $2, $1, $3, $4, $5, $6, $7, $8, $9}'
  done
done
python3 - "$rows" "$targets" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = {}
print("medians of %d runs:" % len({r[1] for r in rows}))
for t in sys.argv[2].split():
    rs = [r for r in rows if r[0] == t]
    m = [statistics.median(float(r[k]) for r in rs) for k in range(2, 9)]
    med[t] = m
    print("  %-7s %7.1f MiB/s  p99 %6.2f ms  disk reads/io %5.2f  KiB/read %5.1f  disk queue %4.1f  cpu us/io user %4.0f sys %4.0f" % tuple([t] + m))
for t in sys.argv[2].split():
    if t != 'qcow2':
        print("  %s / qemu-nbd (qcow2), cold rand read 4K QD32: %.3f x" % (t, med[t][0] / med['qcow2'][0]))
if 'cask-b' in med:
    print("  cask-b / cask: %.3f x" % (med['cask-b'][0] / med['cask'][0]))
PY
