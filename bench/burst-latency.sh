#!/usr/bin/env bash
# burst-latency.sh: how background work's burst length, at one share of the time, changes a served
# disk's p99 latency on this host. The question behind Pacer's quantum (the work a paced gc does
# between two rests): the same quarter of a core, as many short bursts or as a few long ones?
#
# A store with the four fixture images and CLONES clones of them, served by one `cask serve`, and
# the lifecycle bench's latency load on the clones (per clone: 4K random reads over 2G at
# READ_IOPS and 4K random writes of unique, half compressible data over 4M at WRITE_IOPS, QD1).
# For each variant, SECONDS of that load while a nice-10 process (the gc's nice value) spins ON ms
# and sleeps OFF ms in turn; "none": nothing else runs, "spin": it never sleeps. Variants are
# interleaved, REPS rounds. Prints every measurement, then per variant the medians of the p99s and
# their ratios to "none". Output: terminal and bench/results/burst-latency-TIME.txt.
#
# env: REPS=3 SECONDS_EACH=20 CLONES=4 READ_IOPS=100 WRITE_IOPS=50 PORT=10962
#      VARIANTS="none 1/3 20/60 200/600 spin" (ON/OFF in ms)
#      BENCH_WORK=/var/tmp/cask-burst-latency CASK_FIXTURES=~/.cache/cask-fixtures
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
REPS=${REPS:-3}; SECONDS_EACH=${SECONDS_EACH:-20}; CLONES=${CLONES:-4}; PORT=${PORT:-10962}
READ_IOPS=${READ_IOPS:-100}; WRITE_IOPS=${WRITE_IOPS:-50}
VARIANTS=${VARIANTS:-"none 1/3 20/60 200/600 spin"}
WORK=${BENCH_WORK:-/var/tmp/cask-burst-latency}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
IMAGES=(bookworm-minbase bookworm-server trixie-minbase bookworm-minbase-63)
CASK="$root/cask"
die() { echo "burst-latency: $*" >&2; exit 1; }
command -v fio >/dev/null || die "needs fio (apt-get install fio)"
for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || die "no fixture $FIX/$i.raw (scripts/build-images.sh $FIX builds them)"; done
rm -rf "$WORK"; mkdir -p "$WORK" "$root/bench/results"
out="$root/bench/results/burst-latency-$(date -u +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
SERVE_PID=; SPIN_PID=
cleanup() {
  [ -z "$SPIN_PID" ] || kill "$SPIN_PID" 2>/dev/null || true
  if [ -n "$SERVE_PID" ]; then kill -TERM "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "burst-latency: cask $(git -C "$root" log --oneline -1 | cut -c1-60); $(fio --version); $(nproc) cores"
"$here/page-cache-note.sh"
echo "reps $REPS x ${SECONDS_EACH} s; clones $CLONES, per clone $READ_IOPS read + $WRITE_IOPS write IOPS, QD1; variants: $VARIANTS"
S="$WORK/store"
"$CASK" init "$S" >/dev/null
args=(); for i in "${IMAGES[@]}"; do args+=("$FIX/$i.raw" "base/$i"); done
"$CASK" --store "$S" import "${args[@]}" >/dev/null
for c in $(seq "$CLONES"); do "$CASK" --store "$S" clone "base/${IMAGES[$(((c - 1) % 4))]}" "$(printf 'vm/%02d' "$c")" >/dev/null; done
"$CASK" --store "$S" serve --listen "127.0.0.1:$PORT" --checkpoint-interval 0 --prune-interval 0 --gc-interval 0 >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 300); do grep -q 'cask: serving' "$WORK/serve.log" && break; sleep 0.1; done
grep -q 'cask: serving' "$WORK/serve.log" || { cat "$WORK/serve.log"; die "cask serve did not start"; }

load() { # LOG_PREFIX SECONDS: the latency load, every I/O's latency logged
  local a=(--ioengine=nbd --time_based --runtime="$2" --bs=4k --iodepth=1 --write_lat_log="$1" --log_avg_msec=0 --output=/dev/null)
  local c n
  for c in $(seq "$CLONES"); do
    n=$(printf 'vm/%02d' "$c")
    a+=(--name="r$c" --uri="nbd://127.0.0.1:$PORT/$n" --rw=randread --offset=0 --size=2G --rate_iops="$READ_IOPS")
    a+=(--name="w$c" --uri="nbd://127.0.0.1:$PORT/$n" --rw=randwrite --offset=1G --size=4M --rate_iops="$WRITE_IOPS"
        --refill_buffers --randrepeat=0 --buffer_compress_percentage=50)
  done
  rm -f "$1"_*.log
  fio "${a[@]}" >/dev/null 2>>"$WORK/fio.log" || die "fio failed (see $WORK/fio.log)"
}
p99() { # LOG_PREFIX -> "read_p99_ms write_p99_ms" (the first second left out: connections)
  python3 - "$1" <<'EOF'
import glob, math, sys
rows = []
for f in glob.glob(sys.argv[1] + "_clat.*.log"):
    for line in open(f):
        x = line.split(",")
        if len(x) >= 3 and int(x[0]) >= 1000: rows.append((int(x[1]) / 1e6, int(x[2])))
def p(xs):
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.99 * len(xs)) - 1)] if xs else 0.0
print(f"{p([l for l, d in rows if d == 0]):.3f} {p([l for l, d in rows if d == 1]):.3f}")
EOF
}
load "$WORK/warm" 5 # the server's JIT and the clones' first reads
DATA="$WORK/data.tsv"; : >"$DATA"
for rep in $(seq "$REPS"); do
  for v in $VARIANTS; do
    SPIN_PID=
    case "$v" in
      none) ;;
      spin) nice -n 10 python3 -c 'while True: pass' & SPIN_PID=$! ;;
      */*) nice -n 10 python3 - "${v%/*}" "${v#*/}" <<'EOF' &
import sys, time
on, off = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < on: pass
    time.sleep(off)
EOF
        SPIN_PID=$! ;;
      *) die "variant $v: none, spin or ON/OFF in ms" ;;
    esac
    load "$WORK/lat" "$SECONDS_EACH"
    [ -z "$SPIN_PID" ] || { kill "$SPIN_PID"; wait "$SPIN_PID" 2>/dev/null || true; }
    SPIN_PID=
    read -r r w < <(p99 "$WORK/lat")
    printf '%s\t%s\t%s\t%s\n' "$rep" "$v" "$r" "$w" >>"$DATA"
    printf 'rep %s  %-8s p99 read %7.3f ms  write %7.3f ms  load %s\n' "$rep" "$v" "$r" "$w" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
echo
python3 - "$DATA" "$VARIANTS" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
med = {}
for v in sys.argv[2].split():
    r = [float(x[2]) for x in rows if x[1] == v]; w = [float(x[3]) for x in rows if x[1] == v]
    med[v] = (statistics.median(r), statistics.median(w))
base = med.get("none")
print("variant   median p99 read   write      ratio to none: read  write")
for v, (r, w) in med.items():
    ratio = f"{r / base[0]:.2f}  {w / base[1]:.2f}" if base and base[0] > 0 and base[1] > 0 else "-"
    print(f"{v:<9} {r:10.3f} ms {w:9.3f} ms       {ratio}")
EOF
echo "burst-latency: output in $out"
