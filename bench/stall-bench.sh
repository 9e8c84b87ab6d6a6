#!/usr/bin/env bash
# stall-bench.sh (issue 10): NBD latency p50/p99 of one normal client doing random reads and writes
# of SIZE bytes (default 256 KiB: over the 64 KiB that needs the shared large-buffer budget; unique
# random data, half reads, half writes) at RATE ops/s, alone and while STALLERS (default 300) other
# connections each announce a 32 MiB WRITE and send one byte, against one cask serve (-Xmx1g,
# --request-timeout 1h so no staller is timed out during the run). RUNS rounds, each measuring
# both conditions back to back; prints every round and the medians, and the ratio of the p99s
# (target: at most 2).
#   bench/stall-bench.sh   (env: STALLERS=300 RUNS=5 SECONDS_RUN=20 RATE=50 SIZE=262144 BENCH_WORK
#                           CASK=path to another checkout's ./cask, e.g. main, to compare)
# Uses bench/ManyClients.java (stall mode).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$here/bench/results"
exec > >(tee "$here/bench/results/stall-bench-$(date +%Y-%m-%dT%H%M%S).txt") 2>&1
stallers=${STALLERS:-300}; runs=${RUNS:-5}; secs=${SECONDS_RUN:-20}; rate=${RATE:-50}; size=${SIZE:-262144}
cask=${CASK:-$here/cask}
work=${BENCH_WORK:-/tmp/cask-stall-bench}
rm -rf "$work"; mkdir -p "$work"
store="$work/store"; mkdir -p "$store"   # an explicit store must exist
. "$here/scripts/jdk.sh"
echo "stall-bench: $(cd "$(dirname "$cask")" && git log --oneline -1 2>/dev/null), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
head -c 256M /dev/urandom > "$work/seed.raw"
"$cask" --store "$store" import "$work/seed.raw" base >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
timeout_opt=--request-timeout; "$cask" serve --help 2>/dev/null | grep -q -- --request-timeout || timeout_opt=""
CASK_JAVA_OPTS="-Xmx1g" "$cask" --store "$store" serve --no-warmup --listen 127.0.0.1:$port --checkpoint-interval 0 \
  ${timeout_opt:+$timeout_opt 1h} > "$work/serve.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "serving" "$work/serve.log" && break; sleep 0.2; done
echo "normal client: random ${size}-byte reads and writes at $rate ops/s for $secs s; $stallers stallers announce 32 MiB and send 1 byte"
: > "$work/rows"
for i in $(seq "$runs"); do
  for n in 0 "$stallers"; do
    line=$(java -Xmx512m "$here/bench/ManyClients.java" stall "$port" base "$n" "$secs" "$rate" "$size")
    echo "run $i: $line (load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$line" >> "$work/rows"
  done
done
python3 - "$work/rows" <<'PY'
import sys, statistics
rows = {}
for l in open(sys.argv[1]):
    f = l.split(); n = int(f[1])
    rows.setdefault(n, []).append((float(f[5]), float(f[7]), "STUCK" in l))
print("%-28s %10s %10s" % ("median of runs", "p50 ms", "p99 ms"))
for n in sorted(rows):
    p50 = statistics.median(r[0] for r in rows[n]); p99 = statistics.median(r[1] for r in rows[n])
    stuck = sum(r[2] for r in rows[n])
    print("%-28s %10.2f %10.2f%s" % ("alone" if n == 0 else "with %d stalled writers" % n, p50, p99, "  (%d runs stuck)" % stuck if stuck else ""))
ks = sorted(rows)
if len(ks) == 2:
    a = statistics.median(r[1] for r in rows[ks[0]]); b = statistics.median(r[1] for r in rows[ks[1]])
    print("p99 ratio (stalled / alone): %.2f (target <= 2)" % (b / a))
PY
kill -TERM $spid; wait $spid || true
grep -c "OutOfMemoryError" "$work/serve.log" && echo "server ran out of heap" || true
