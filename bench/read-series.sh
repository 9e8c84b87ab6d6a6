#!/usr/bin/env bash
# A server's life, in reads: ONE cask serve on one store takes 1 GiB of unique data (fio,
# --refill_buffers --randrepeat=0, 1M writes at QD8) into each of N new images, one after the other;
# after each image's checkpoint (`cask snapshot`) the image is read twice sequentially (1M QD8) and
# at random (4K QD32, FIO_SECONDS), and a qemu-nbd serving a qcow2 of the same data is read the same
# way right before (one qemu-nbd per image, so its reads see one image's data, as cask's do).
# serve-bench.sh reads six images in one server too, but its rows mix fresh and old images; this
# prints each image in turn, with the server's CPU per job and its busiest threads (request threads,
# JIT compilers, the collector), so what a server that has stored more than its caches hold sees
# (the location cache holds 2 million chunks in a 2 GiB heap; 5 GiB of 4 KiB blocks are 1.3 million)
# is not averaged away. With a second launcher (a base build) the series runs for both, the order
# alternated per run.
#
#   bench/read-series.sh [BASE_CASK]   BENCH_IMAGES=5 BENCH_RUNS=1 FIO_SECONDS=8 BENCH_JOURNAL_LIMIT=256M
#   BENCH_PORT=10941 BENCH_WORK=/var/tmp/cask-read-series CASK_JAVA_OPTS (for cask serve)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
images=${BENCH_IMAGES:-5}; runs=${BENCH_RUNS:-1}; secs=${FIO_SECONDS:-8}; limit=${BENCH_JOURNAL_LIMIT:-256M}
port=${BENCH_PORT:-10941}; work=${BENCH_WORK:-/var/tmp/cask-read-series}
declare -A launcher=([cask]="$here/cask"); targets=(cask)
if [ -n "${1:-}" ]; then launcher[base]=$1; targets=(base cask); fi
for t in fio qemu-nbd qemu-img nbdinfo python3; do command -v "$t" >/dev/null || { echo "read-series: $t is missing (run scripts/install-deps.sh)"; exit 1; }; done
mkdir -p "$here/bench/results"
out="$here/bench/results/read-series-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
if [ -e "$work" ] && [ ! -f "$work/.cask-read-series" ]; then echo "read-series: $work exists and is not ours; set BENCH_WORK"; exit 1; fi
spid=; qpid=; holder=
cleanup() {
  for p in $holder $qpid $spid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work" "$work.rows"
}
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "== read series $(date -Is), $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB RAM, load $(load) =="
echo "cask $(git -C "$here" log --oneline -1 | cut -c1-70)${1:+; base: $1}; $(qemu-nbd --version | head -1); $(fio --version)"
echo "$images images of 1 GiB unique data into one server, --journal-limit $limit, $runs runs, random reads ${secs} s"
echo "CASK_JAVA_OPTS=${CASK_JAVA_OPTS:-}"
"$here/bench/page-cache-note.sh"
for t in "${targets[@]}"; do "${launcher[$t]}" --version >/dev/null; done   # builds: untimed

# fio URI RW BS DEPTH [extra...] -> MiB/s
fio_job() {
  local uri=$1 rw=$2 bs=$3 depth=$4; shift 4
  local opts=(--randrepeat=0); [[ $rw == *write* ]] && opts+=(--refill_buffers)
  fio --name=b --ioengine=nbd --uri="$uri" --rw="$rw" --bs="$bs" --iodepth="$depth" --size=1G "${opts[@]}" "$@" \
      --output-format=json 2>"$work/fio.err" > "$work/fio.json" || { echo "fio $rw failed:" >&2; cat "$work/fio.err" >&2; exit 1; }
  python3 -c "import json,sys; t=open(sys.argv[1]).read(); j=json.loads(t[t.index('{'):])['jobs'][0]; print('%.0f' % ((j['read']['bw_bytes']+j['write']['bw_bytes'])/1048576))" "$work/fio.json"
}
# per-thread CPU ticks of process $1: "save FILE" then "diff FILE" -> the busiest thread groups
threads() {
  python3 - "$@" <<'PY'
import os, sys, json
pid, mode, snap = sys.argv[1:4]
cur = {}
for t in os.listdir(f'/proc/{pid}/task'):
    try:
        name = open(f'/proc/{pid}/task/{t}/comm').read().strip()
        f = open(f'/proc/{pid}/task/{t}/stat').read().rsplit(')', 1)[1].split()
        cur[t] = (name, int(f[11]) + int(f[12]))
    except OSError:
        pass
if mode == 'save':
    json.dump(cur, open(snap, 'w'))
else:
    old = json.load(open(snap)); agg = {}
    for t, (name, c) in cur.items():
        key = name.rstrip('0123456789#- ').replace('ForkJoinPool', 'requests')
        agg[key] = agg.get(key, 0) + c - (old[t][1] if t in old else 0)
    print(' '.join(f'{k.replace(" ", "_")}={v}' for k, v in sorted(agg.items(), key=lambda x: -x[1]) if v > 2))
PY
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rows="$work.rows"; : > "$rows"
for r in $(seq "$runs"); do
  order=("${targets[@]}"); [ $((r % 2)) = 0 ] && [ "${#order[@]}" = 2 ] && order=(cask base)
  for t in "${order[@]}"; do
    rm -rf "$work"; sync; mkdir -p "$work/store"; touch "$work/.cask-read-series"
    c=${launcher[$t]}
    CASK_JAVA_OPTS="${CASK_JAVA_OPTS:-}" "$c" --store "$work/store" serve --listen "127.0.0.1:$port" --checkpoint-interval 0 \
      --journal-limit "$limit" > "$work/serve.log" 2>&1 &
    spid=$!
    for _ in $(seq 300); do grep -q serving "$work/serve.log" && break; sleep 0.1; done
    grep -q serving "$work/serve.log" || { echo "cask serve did not start:"; tail -20 "$work/serve.log"; exit 1; }
    jpid=$(pgrep -P "$spid" java || echo "$spid")
    echo "run $r, $t:"
    for i in $(seq "$images"); do
      "$c" --store "$work/store" create "vm$i" 1G >/dev/null
      qemu-img create -q -f qcow2 "$work/vm$i.qcow2" 1G
      qemu-nbd -f qcow2 -x vm -b 127.0.0.1 -p $((port + 1)) --persistent --shared=8 "$work/vm$i.qcow2" & qpid=$!
      for _ in $(seq 100); do nbdinfo --size "nbd://127.0.0.1:$((port + 1))/vm" >/dev/null 2>&1 && break; sleep 0.1; done
      C="nbd://127.0.0.1:$port/vm$i"; Q="nbd://127.0.0.1:$((port + 1))/vm"
      # one client stays connected (a running VM): the image stays open between the jobs
      fio --name=hold --ioengine=nbd --uri="$C" --rw=randread --bs=4k --size=1G --rate_iops=1 --runtime=1000000 \
          --time_based >/dev/null 2>&1 & holder=$!
      sleep 0.5
      fio_job "$Q" write 1M 8 >/dev/null
      fio_job "$C" write 1M 8 >/dev/null
      "$c" --store "$work/store" snapshot "vm$i" >/dev/null
      line="  image $i"
      for job in "seq1 read 1M 8" "seq2 read 1M 8" "rand randread 4k 32 --runtime=$secs --time_based"; do
        set -- $job; name=$1; shift
        q=$(fio_job "$Q" "$@")
        threads "$jpid" save "$work/threads"; a=$(ticks "$jpid")
        v=$(fio_job "$C" "$@")
        b=$(ticks "$jpid")
        echo "$t $i $name $v $q $((b - a))" >> "$rows"
        line="$line  $name $v/$q MiB/s cpu $((b - a)) [$(threads "$jpid" diff "$work/threads")]"
      done
      echo "$line  load $(load)"
      kill "$holder"; wait "$holder" 2>/dev/null || true; holder=
      kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=
      rm -f "$work/vm$i.qcow2"
    done
    kill -TERM "$spid"; wait "$spid" 2>/dev/null || true; spid=
  done
done
echo
echo "RESULTS: per image, medians over runs; MiB/s cask / qemu-nbd (ratio), server CPU ticks (1/100 s) per job"
python3 - "$rows" <<'PY'
import sys, statistics
rows = {}
for l in open(sys.argv[1]):
    t, i, name, v, q, cpu = l.split()
    rows.setdefault((t, int(i), name), []).append((float(v), float(q), int(cpu)))
for (t, i, name), vs in sorted(rows.items()):
    v = statistics.median(x[0] for x in vs); q = statistics.median(x[1] for x in vs)
    r = statistics.median(x[0] / x[1] for x in vs); c = statistics.median(x[2] for x in vs)
    print("%-5s image %d %-5s %8.0f %8.0f  %5.3f x   cpu %4.0f" % (t, i, name, v, q, r, c))
PY
echo "output kept in $out"
