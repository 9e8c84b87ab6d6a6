#!/usr/bin/env bash
# gc-latency.sh STORE: a served disk's p99 latency with and without a `cask gc`, for several JVM
# option sets of the server, interleaved in one run (the lifecycle issue's "NBD p99 during GC at
# most 1.5 x without", isolated from the rest of lifecycle-bench.sh).
#
# STORE is a template, never changed: a store with images vm/01... (lifecycle-bench.sh with
# BENCH_KEEP=1 leaves one in its work dir). Each round and each variant gets a fresh copy, on which
# `cask prune --keep-last KEEP` leaves garbage for the gc to free and compact. Then, with
# `cask serve` running under the variant's JVM options:
#   1. fio latency load (per clone: 4K random reads over 2G at READ_IOPS and 4K random writes of
#      unique, half compressible data over a 4M region at WRITE_IOPS, QD1) for BASE_SECONDS: p99
#      of reads and of writes without gc;
#   2. the same load, and 1 s in `cask gc --json` (which runs in the server, its default); the load
#      stops when gc exits: p99 during gc, and the gc's seconds.
# Prints every measurement with the load average, then per variant the medians and the ratios
# during / without. Output: terminal and bench/results/gc-latency-TIME.txt.
#
# env: ROUNDS=3 CLONES=4 READ_IOPS=100 WRITE_IOPS=50 BASE_SECONDS=5 KEEP=2
#      VARIANTS="g1=-XX:+UseG1GC;zgc=-XX:+UseZGC" (NAME=JVM options, ';' between variants;
#      NAME@LAUNCHER=JVM options serves with another checkout's ./cask, e.g. an older commit built in
#      a git worktree: the template must be a store that cask reads)
#      BENCH_WORK=/var/tmp/cask-gc-latency PORT=10961 GC_ARGS= (e.g. --in-process: the gc in a
#      process of its own, as before cask serve ran it, and with a server too old to run it)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
TEMPLATE=${1:?usage: gc-latency.sh STORE (a store with images vm/01, vm/02, ...)}
ROUNDS=${ROUNDS:-3}; CLONES=${CLONES:-4}; READ_IOPS=${READ_IOPS:-100}; WRITE_IOPS=${WRITE_IOPS:-50}
BASE_SECONDS=${BASE_SECONDS:-5}; KEEP=${KEEP:-2}; PORT=${PORT:-10961}; GC_ARGS=${GC_ARGS:-}
VARIANTS=${VARIANTS:-"g1=-XX:+UseG1GC;zgc=-XX:+UseZGC"}
WORK=${BENCH_WORK:-/var/tmp/cask-gc-latency}
CASK="$root/cask"
die() { echo "gc-latency: $*" >&2; exit 1; }
[ -f "$TEMPLATE/catalog.db" ] || die "$TEMPLATE: not a local cask store"
command -v fio >/dev/null || die "needs fio (apt-get install fio)"
mkdir -p "$WORK" "$root/bench/results"
out="$root/bench/results/gc-latency-$(date -u +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
SERVE_PID=
cleanup() { # (no bare `wait`: it would wait for the tee above, which waits for this script)
  if [ -n "$SERVE_PID" ]; then kill -TERM "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK/store"
}
trap cleanup EXIT

echo "gc-latency: cask $(git -C "$root" log --oneline -1 | cut -c1-60); $(fio --version); template $TEMPLATE"
"$here/page-cache-note.sh"
echo "rounds $ROUNDS, clones $CLONES, per clone $READ_IOPS read + $WRITE_IOPS write IOPS, baseline ${BASE_SECONDS} s, prune --keep-last $KEEP"
lat() { # OUT SECONDS -> fio command line in L
  L=(--output-format=json --output="$1" --ioengine=nbd --time_based --runtime="$2" --group_reporting --bs=4k --iodepth=1)
  local c n
  for c in $(seq "$CLONES"); do
    n=$(printf 'vm/%02d' "$c")
    L+=(--name="r$c" --uri="nbd://127.0.0.1:$PORT/$n" --rw=randread --offset=0 --size=2G --rate_iops="$READ_IOPS")
    L+=(--name="w$c" --uri="nbd://127.0.0.1:$PORT/$n" --rw=randwrite --offset=0 --size=4M --rate_iops="$WRITE_IOPS"
        --refill_buffers --randrepeat=0 --buffer_compress_percentage=50)
  done
}
p99() { # FIO_JSON -> "read_p99_ms write_p99_ms"
  python3 - "$1" <<'EOF'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index("{"):])["jobs"][0]
p = lambda d: d["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1e6
print(f'{p(j["read"]):.3f} {p(j["write"]):.3f}')
EOF
}
DATA="$WORK/data.tsv"; : >"$DATA"
IFS=';' read -r -a vars <<<"$VARIANTS"
for round in $(seq "$ROUNDS"); do
  for v in "${vars[@]}"; do
    name=${v%%=*}; opts=${v#*=}; serve_cask=$CASK
    if [[ $name == *@* ]]; then serve_cask=${name#*@}; name=${name%%@*}; fi
    rm -rf "$WORK/store"; cp -a "$TEMPLATE" "$WORK/store"
    rm -f "$WORK/store"/serve.*.sock
    "$CASK" --store "$WORK/store" prune --keep-last "$KEEP" --json >/dev/null 2>>"$WORK/log" || die "prune failed (see $WORK/log)"
    CASK_JAVA_OPTS="$opts" "$serve_cask" --store "$WORK/store" serve --listen "127.0.0.1:$PORT" --checkpoint-interval 0 \
      --prune-interval 0 --gc-interval 0 >"$WORK/serve.log" 2>&1 &
    SERVE_PID=$!
    for _ in $(seq 300); do grep -q 'cask: serving' "$WORK/serve.log" && break; sleep 0.1; done
    grep -q 'cask: serving' "$WORK/serve.log" || { cat "$WORK/serve.log"; die "cask serve ($name) did not start"; }
    lat "$WORK/warm.json" 3; fio "${L[@]}" 2>>"$WORK/log" || die "fio failed"   # clients connected, caches warm
    lat "$WORK/base.json" "$BASE_SECONDS"; fio "${L[@]}" 2>>"$WORK/log" || die "fio failed"
    read -r rb wb < <(p99 "$WORK/base.json")
    lat "$WORK/gc.json" 3600; fio "${L[@]}" 2>>"$WORK/log" & fp=$!
    sleep 1
    t0=$(date +%s.%N)
    "$CASK" --store "$WORK/store" gc --json $GC_ARGS >"$WORK/gcout.json" 2>>"$WORK/log" || { kill -INT "$fp"; die "cask gc failed (see $WORK/log)"; }
    t1=$(date +%s.%N)
    kill -INT "$fp"; wait "$fp" || true
    read -r rg wg < <(p99 "$WORK/gc.json")
    gs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$WORK/gcout.json")
    gw=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
    kill -TERM "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=
    la=$(cut -d' ' -f1 /proc/loadavg)
    printf 'round %d %-6s p99 read %7.3f -> %7.3f ms  write %7.3f -> %7.3f ms  gc %6.3f s (wall %6.3f)  load %s\n' \
      "$round" "$name" "$rb" "$rg" "$wb" "$wg" "$gs" "$gw" "$la"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rb" "$rg" "$wb" "$wg" "$gs" "$gw" >>"$DATA"
  done
done
python3 - "$DATA" <<'EOF'
import sys, statistics as st, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    n, *v = line.split("\t"); rows[n].append([float(x) for x in v])
print("\nMEDIANS            read p99 ms        write p99 ms       gc s    gc wall s")
print("variant           without  during    without  during")
for n, rs in rows.items():
    m = [st.median(c) for c in zip(*rs)]
    print(f"{n:<14} {m[0]:9.3f} {m[1]:7.3f}  {m[2]:9.3f} {m[3]:7.3f}  {m[4]:7.3f}  {m[5]:7.3f}"
          f"   during/without: read {m[1] / m[0]:.2f} x, write {m[3] / m[2]:.2f} x (target <= 1.5)")
EOF
echo "gc-latency: output in $out"
