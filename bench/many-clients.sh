#!/usr/bin/env bash
# many-clients.sh: 1,000 exports (clones of one image) open at once on one cask serve with a
# 1 GiB heap (-Xmx1g), each connection doing light random 4 KiB I/O (60 % reads, 40 % writes, a
# flush after every fourth write); prints latency percentiles and the server's peak RSS.
#   bench/many-clients.sh   (env: CLIENTS=1000 SECONDS=60 RATE=2 ops/s per client, BENCH_WORK,
#                            SERVE_JAVA_OPTS: more JVM options for the server)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$here/bench/results"
exec > >(tee "$here/bench/results/many-clients-$(date +%Y-%m-%dT%H%M%S).txt") 2>&1
clients=${CLIENTS:-1000}; secs=${SECONDS_RUN:-60}; rate=${RATE:-2}
work=${BENCH_WORK:-/tmp/cask-many}
rm -rf "$work"; mkdir -p "$work"
store="$work/store"; mkdir -p "$store"
. "$here/scripts/jdk.sh"
# give the base some data so reads hit chunks
head -c 64M /dev/urandom > "$work/seed.raw"
"$here/cask" --store "$store" import "$work/seed.raw" base >/dev/null
echo "creating $clients clones ..."
t0=$(date +%s.%N)
batch=()  # (plain `wait` would also wait for the tee above)
for i in $(seq 0 $((clients - 1))); do
  "$here/cask" --store "$store" clone base "vm/$i" >/dev/null & batch+=($!)
  if (( ${#batch[@]} == 8 )); then wait "${batch[@]}"; batch=(); fi
done
[ ${#batch[@]} -eq 0 ] || wait "${batch[@]}"
echo "clones made in $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s"
CASK_JAVA_OPTS="-Xmx1g ${SERVE_JAVA_OPTS:-}" "$here/cask" --store "$store" serve --listen 127.0.0.1:10877 --checkpoint-interval 30s > "$work/serve.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "serving" "$work/serve.log" && break; sleep 0.2; done
jpid=$(pgrep -f "serve --listen 127.0.0.1:10877" | tail -1)
( peak=0; while kill -0 "$jpid" 2>/dev/null; do r=$(awk '/VmRSS/{print $2}' /proc/$jpid/status 2>/dev/null || echo 0); (( r > peak )) && peak=$r && echo "$peak" > "$work/rss"; sleep 0.5; done ) &
java -Xmx512m "$here/bench/ManyClients.java" 10877 vm/ "$clients" "$secs" "$rate" | tee "$work/result"
kill -TERM "$spid"; wait "$spid" || true
echo "server peak RSS: $(( $(cat "$work/rss") / 1024 )) MiB (heap limit -Xmx1g)"
grep -c "OutOfMemoryError" "$work/serve.log" && { echo "server ran out of heap"; exit 1; } || true
"$here/cask" --store "$store" log vm/0 | tail -3
