#!/usr/bin/env bash
# serve-bench.sh: cask serve against qemu-nbd (qcow2) on the same data, in the same run, interleaved.
#
# Data is what a user's data is. A deduplicating store keeps fio's default buffers (the same bytes
# written again and again) as one cached chunk, so every fio job that writes here uses unique data
# (--refill_buffers --randrepeat=0): the "unique" rows. The "mix" rows write a realistic mix
# (--dedupe_percentage=30 --buffer_compress_percentage=50, the rest unique). Reads only ever read
# data written that way, through the same target, in the same run.
#
# Each run, for each kind of data, on a fresh image of SIZE (default 1G) on each target (qemu-nbd
# first, then cask, so that cask's background checkpoint never runs beside qemu-nbd's measurement),
# with one more client connected to each all along (one 4K read a second), as a running VM is: so
# the image stays open between fio jobs (cask checkpoints and closes an image its last client leaves):
#   write     fio seq write 1M QD8 of SIZE: on cask, with --journal-limit SIZE/4 (default 256M),
#             a sustained write of four times the journal limit, so it runs at checkpoint speed once
#             the journal is full; MiB/s and p99 completion latency
#   during    fio seq read 1M QD8 (DURING_SECONDS, default 5 s) started together with
#             `cask snapshot`, i.e. while the checkpoint of what was just written runs (qemu-nbd:
#             the same read right after its write); the checkpoint's seconds are printed
#   seq1      seq read 1M QD8 of SIZE, the first after the checkpoint
#   seq2      the same again
#   rand      rand read 4K QD32 for FIO_SECONDS (default 15 s) over SIZE; MiB/s and p99
#   cold seq / cold rand: both servers restarted (cask serve with its warm-up), the page cache
#             dropped (echo 3 > /proc/sys/vm/drop_caches, needs root; otherwise the rows say "warm")
#   randwrite rand write 4K QD32 for FIO_SECONDS over the written data
# then the Debian fixture VM's boot (TCG, init=/sbin/bootcheck): median of BENCH_BOOTS (default 5)
# boots from cask serve vs qemu-nbd serving a raw copy.
# Prints every measurement with the load average, then medians of BENCH_RUNS (default 3) and the
# ratio cask / qemu-nbd (qcow2) (boot: cask / qemu-nbd raw). Output: bench/results/serve-bench-TIME.txt
#
# env: BENCH_RUNS=3 BENCH_SIZE=1G BENCH_JOURNAL_LIMIT=(SIZE/4) FIO_SECONDS=15 DURING_SECONDS=5
#      BENCH_DATA="unique mix" BENCH_SKIP_FIO=1 (boot only) BENCH_SKIP_BOOT=1 BENCH_BOOTS=5
#      BENCH_SKIP_COLD=1 BENCH_QUICK=1 (smoke: 1 run, 256M, 5 s jobs, unique data only, no boot)
#      BENCH_PORT=10901 (uses 4 ports from there) BENCH_WORK=/tmp/cask-serve-bench
#      CASK=./cask of another checkout (compare a build) CASK_JAVA_OPTS (for cask serve)
#      CASK_FIXTURES=~/.cache/cask-fixtures
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cask=${CASK:-$here/cask}
runs=${BENCH_RUNS:-3}; size=${BENCH_SIZE:-1G}; secs=${FIO_SECONDS:-15}; during=${DURING_SECONDS:-5}
datas=${BENCH_DATA:-unique mix}; boots=${BENCH_BOOTS:-5}
if [ -n "${BENCH_QUICK:-}" ]; then
  runs=${BENCH_RUNS:-1}; size=${BENCH_SIZE:-256M}; secs=${FIO_SECONDS:-5}; during=${DURING_SECONDS:-3}
  datas=${BENCH_DATA:-unique}; BENCH_SKIP_BOOT=${BENCH_SKIP_BOOT:-1}
fi
size_bytes=$(python3 -c "import sys; s=sys.argv[1]; m={'K':1<<10,'M':1<<20,'G':1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))" "$size")
limit=${BENCH_JOURNAL_LIMIT:-$((size_bytes / 4 / 1048576))M}
port=${BENCH_PORT:-10901}; cport=$port; qport=$((port + 1)); bport=$((port + 2)); rport=$((port + 3))
work=${BENCH_WORK:-/tmp/cask-serve-bench}
fx=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
mkdir -p "$here/bench/results"
out="$here/bench/results/serve-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
for t in fio qemu-nbd qemu-img qemu-system-x86_64 python3; do
  command -v "$t" >/dev/null || { echo "serve-bench: $t is missing (run scripts/install-deps.sh)"; exit 1; }
done
rm -rf "$work"; mkdir -p "$work/store"
cpid=; qpid=; holders=()
cleanup() {
  for p in "${holders[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in $cpid $qpid; do kill "$p" 2>/dev/null || true; done
  for p in $cpid $qpid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
cold_ok=1; [ -w /proc/sys/vm/drop_caches ] || cold_ok=
echo "== cask serve benchmark $(date -Is), $(nproc) cores, load $(load) =="
"$here/bench/page-cache-note.sh"
echo "cask $(git -C "$(dirname "$cask")" log --oneline -1 2>/dev/null | cut -c1-70); $(qemu-nbd --version | head -1); $(fio --version)"
echo "image $size, cask --journal-limit $limit, $runs runs, data: $datas; fio rand jobs ${secs} s, read during checkpoint ${during} s"
[ -n "$cold_ok" ] || echo "NOTE: /proc/sys/vm/drop_caches is not writable (not root): the 'cold' rows only restart the servers"
"$cask" --help >/dev/null

start_cask() { # a fresh cask serve on $cport (its warm-up included: it is part of a restart)
  CASK_JAVA_OPTS="${CASK_JAVA_OPTS:-}" "$cask" --store "$work/store" serve --listen "127.0.0.1:$cport" \
    --checkpoint-interval 0 --journal-limit "$limit" >> "$work/serve.log" 2>&1 &
  cpid=$!
  local n0; n0=$(grep -c "serving" "$work/serve.log" || true)
  for _ in $(seq 300); do [ "$(grep -c serving "$work/serve.log" || true)" -gt "$n0" ] && return 0; sleep 0.1; done
  echo "cask serve did not start:"; tail -20 "$work/serve.log"; exit 1
}
stop_cask() { kill -TERM "$cpid"; wait "$cpid" 2>/dev/null || true; cpid=; }
start_qemu() { # FILE
  qemu-nbd -f qcow2 -x vm -b 127.0.0.1 -p "$qport" --persistent --shared=8 "$1" & qpid=$!
  for _ in $(seq 100); do nbdinfo --size "nbd://127.0.0.1:$qport/vm" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "qemu-nbd did not start"; exit 1
}
stop_qemu() { kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=; }
# A client that stays connected (one 4K read a second), as a running VM does: without it every fio
# job's disconnect would close the image, and cask checkpoints an image when its last client goes.
hold() {
  fio --name=hold --ioengine=nbd --uri="$1" --rw=randread --bs=4k --size="$size" --rate_iops=1 --runtime=1000000 \
      --time_based >/dev/null 2>&1 & holders+=($!)
  sleep 0.5
}
unhold() { for p in "${holders[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; holders=(); }
drop_caches() { sync; [ -n "$cold_ok" ] && echo 3 > /proc/sys/vm/drop_caches || true; }

# fio URI RW BS DEPTH DATA [extra fio options...] -> "MiB/s p99_ms"
fio_job() {
  local uri=$1 rw=$2 bs=$3 depth=$4 data=$5; shift 5
  local opts=()
  case "$rw" in
    *write*) opts=(--refill_buffers --randrepeat=0)
             [ "$data" = mix ] && opts+=(--dedupe_percentage=30 --buffer_compress_percentage=50) ;;
    *) opts=(--randrepeat=0) ;;
  esac
  fio --name=b --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" --iodepth="$depth" --size="$size" \
      "${opts[@]}" "$@" --output-format=json 2>"$work/fio.err" > "$work/fio.json" \
    || { echo "fio $rw failed:" >&2; cat "$work/fio.err" >&2; exit 1; }
  python3 - "$work/fio.json" <<'PY'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index('{'):])['jobs'][0]
side = j['write'] if j['write']['io_bytes'] > j['read']['io_bytes'] else j['read']
p99 = side['clat_ns']['percentile'].get('99.000000', 0) / 1e6
print("%.1f %.2f" % ((j['read']['bw_bytes'] + j['write']['bw_bytes']) / 1048576, p99))
PY
}
rows="$work/rows"; : > "$rows"
record() { # DATA ROW TARGET "MiB/s p99" [note]
  set -- "$1" "$2" "$3" $4 "${5:-}"
  echo "$1 $2 $3 $4 $5" >> "$rows"
  printf "  %-7s %-10s %-6s %9s MiB/s  p99 %8s ms  load %s%s\n" "$1" "$2" "$3" "$4" "$5" "$(load)" "${6:+  ($6)}"
}
secs_since() { python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),1))" "$1"; }

if [ -z "${BENCH_SKIP_FIO:-}" ]; then
  : > "$work/serve.log"
  start_cask
  for r in $(seq "$runs"); do
    for data in $datas; do
      echo "run $r, $data data:"
      img="$data$r"
      "$cask" --store "$work/store" create "$img" "$size" >/dev/null
      qemu-img create -q -f qcow2 "$work/$img.qcow2" "$size"
      start_qemu "$work/$img.qcow2"
      C="nbd://127.0.0.1:$cport/$img"; Q="nbd://127.0.0.1:$qport/vm"
      hold "$C"; hold "$Q"
      record "$data" write qcow2 "$(fio_job "$Q" write 1M 8 "$data")"
      record "$data" write cask "$(fio_job "$C" write 1M 8 "$data")"
      # the read runs while `cask snapshot` checkpoints what the write left in the journal
      t0=$(date +%s.%N)
      ( "$cask" --store "$work/store" snapshot "$img" >/dev/null; secs_since "$t0" > "$work/snap.secs" ) & snap=$!
      v=$(fio_job "$C" read 1M 8 "$data" --runtime="$during" --time_based)
      t_read=$(secs_since "$t0")
      wait "$snap"
      t_snap=$(cat "$work/snap.secs")
      note="checkpoint took $t_snap s"
      python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" "$t_snap" "$t_read" \
        || note="$note: it ended before the read did ($t_read s)"
      record "$data" during cask "$v" "$note"
      record "$data" during qcow2 "$(fio_job "$Q" read 1M 8 "$data" --runtime="$during" --time_based)" "right after the write"
      for row in seq1 seq2; do
        record "$data" "$row" qcow2 "$(fio_job "$Q" read 1M 8 "$data")"
        record "$data" "$row" cask "$(fio_job "$C" read 1M 8 "$data")"
      done
      record "$data" rand qcow2 "$(fio_job "$Q" randread 4k 32 "$data" --runtime="$secs" --time_based)"
      record "$data" rand cask "$(fio_job "$C" randread 4k 32 "$data" --runtime="$secs" --time_based)"
      if [ -z "${BENCH_SKIP_COLD:-}" ]; then
        unhold; stop_qemu; stop_cask; drop_caches; start_cask; start_qemu "$work/$img.qcow2"; hold "$C"; hold "$Q"
        cold=cold; [ -n "$cold_ok" ] || cold=restart
        record "$data" "$cold-seq" qcow2 "$(fio_job "$Q" read 1M 8 "$data")"
        record "$data" "$cold-seq" cask "$(fio_job "$C" read 1M 8 "$data")"
        unhold; stop_qemu; stop_cask; drop_caches; start_cask; start_qemu "$work/$img.qcow2"; hold "$C"; hold "$Q"
        record "$data" "$cold-rand" qcow2 "$(fio_job "$Q" randread 4k 32 "$data" --runtime="$secs" --time_based)"
        record "$data" "$cold-rand" cask "$(fio_job "$C" randread 4k 32 "$data" --runtime="$secs" --time_based)"
      fi
      record "$data" randwrite qcow2 "$(fio_job "$Q" randwrite 4k 32 "$data" --runtime="$secs" --time_based)"
      record "$data" randwrite cask "$(fio_job "$C" randwrite 4k 32 "$data" --runtime="$secs" --time_based)"
      unhold; stop_qemu
      rm -f "$work/$img.qcow2"
      t0=$(date +%s.%N); "$cask" --store "$work/store" snapshot "$img" >/dev/null
      echo "  (cask checkpoint after randwrite: $(secs_since "$t0") s)"
    done
  done
  stop_cask
fi

boot() { # URI -> seconds until the VM powered off after BOOT-OK
  local s e
  s=$(date +%s.%N)
  timeout 600 qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -nographic -no-reboot -kernel "$fx/vmlinuz" \
    -initrd "$fx/initrd.img" -append "root=/dev/vda1 console=ttyS0 init=/sbin/bootcheck panic=-1" \
    -drive "file=$1,format=raw,if=virtio" < /dev/null > "$work/boot.log" 2>&1
  e=$(date +%s.%N)
  grep -q BOOT-OK "$work/boot.log" || { echo "boot from $1 failed" >&2; tail -20 "$work/boot.log" >&2; return 1; }
  python3 -c "print(round($e-$s,2))"
}
if [ -z "${BENCH_SKIP_BOOT:-}" ] && [ "$boots" -gt 0 ]; then
  if [ ! -f "$fx/bookworm-minbase.raw" ]; then
    script="$here/../shared/fixtures/build-images.sh"; [ -f "$script" ] || script="$here/scripts/build-images.sh"
    bash "$script" "$fx"
  fi
  fimg="$fx/bookworm-minbase.raw"
  # cask serve is a long-running daemon that serves every image of a store: one server serves the
  # boots, each from its own copy of the image (dedup makes the import cheap); qemu-nbd serves one
  # file per process, so it starts for each boot
  for b in $(seq "$boots"); do "$cask" --store "$work/store" import "$fimg" "boot/$b" >/dev/null; done
  cport=$bport; : > "$work/serve.log"; start_cask
  echo "boots (seconds, TCG):"
  for b in $(seq "$boots"); do
    v=$(boot "nbd://127.0.0.1:$bport/boot/$b")
    echo "boot - cask $v" >> "$rows"; echo "  boot $b cask $v s  load $(load)"
    for _ in $(seq 600); do compgen -G "$work/store/journals/boot+$b.journal-*" >/dev/null || break; sleep 0.1; done
    cp --sparse=always "$fimg" "$work/vm.raw"
    qemu-nbd -f raw -x vm -b 127.0.0.1 -p "$rport" "$work/vm.raw" & qp=$!; sleep 1
    v=$(boot "nbd://127.0.0.1:$rport/vm"); wait "$qp" 2>/dev/null || true
    echo "boot - raw $v" >> "$rows"; echo "  boot $b qemu-nbd raw $v s  load $(load)"
  done
  stop_cask
fi

echo
echo "RESULTS: medians of $runs runs (boot: of $boots); MiB/s, p99 completion latency in ms; ratio: median of the runs' cask / qemu-nbd qcow2"
echo "(boot: seconds, ratio = cask / qemu-nbd raw, lower is better); load at the end: $(load)"
python3 - "$rows" <<'PY'
import sys, statistics
rows = {}
for l in open(sys.argv[1]):
    f = l.split()
    rows.setdefault((f[0], f[1]), {}).setdefault(f[2], []).append([float(x) for x in f[3:5]])
names = {'write': 'seq write 1M QD8 (4 x journal limit)', 'during': 'seq read 1M QD8 during checkpoint',
         'seq1': 'seq read 1M QD8, 1st after checkpoint', 'seq2': 'seq read 1M QD8, 2nd',
         'rand': 'rand read 4K QD32', 'cold-seq': 'seq read 1M QD8, cold', 'cold-rand': 'rand read 4K QD32, cold',
         'restart-seq': 'seq read 1M QD8, restarted (warm cache)', 'restart-rand': 'rand read 4K QD32, restarted (warm cache)',
         'randwrite': 'rand write 4K QD32'}
print("%-6s %-42s %9s %9s %7s %9s %9s" % ("data", "measurement", "cask", "qcow2", "ratio", "cask p99", "qcow2 p99"))
for (data, row), t in rows.items():
    med = lambda k, i: statistics.median(v[i] for v in t[k]) if k in t else float('nan')
    if data == 'boot':
        c, q = med('cask', 0), med('raw', 0)
        r = statistics.median(a[0] / b[0] for a, b in zip(t['cask'], t['raw']))
        print("%-6s %-42s %9.2f %9.2f %7.3f   (qemu-nbd raw)" % ('-', 'boot seconds (TCG)', c, q, r))
        continue
    c, q = med('cask', 0), med('qcow2', 0)
    # the ratio of each run's pair (measured back to back), then their median: steadier than a ratio of medians on a noisy machine
    r = statistics.median(a[0] / b[0] for a, b in zip(t.get('cask', []), t.get('qcow2', []))) if 'cask' in t and 'qcow2' in t else float('nan')
    print("%-6s %-42s %9.1f %9.1f %7.3f %9.2f %9.2f" % (data, names.get(row, row), c, q, r, med('cask', 1), med('qcow2', 1)))
PY
echo "output kept in $out"
