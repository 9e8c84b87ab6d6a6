#!/usr/bin/env bash
# recompress-bench.sh: what `cask gc --recompress` does to the four fixture images, in one run:
#   space  the store after one batch import, and after `gc --recompress`, against casync's store +
#          .caibx indexes of the same images (the speed issue's item 5: at most 0.72 x casync once
#          compaction has run); the four exports are compared with the sources after it.
#   reads  random 4K reads (QD32) and sequential 1M reads (QD8) of each READ_IMAGES image's largest
#          data extent (qemu-img map: bookworm-server 285 MiB at 34 MiB, trixie-minbase's likewise;
#          every read meets data) served by `cask serve` from the imported store and from the
#          recompressed one, and by qemu-nbd from a qcow2 of the same image (`qemu-img convert -O
#          qcow2`): "such data must still meet item 2". trixie-minbase is the image whose chunks the
#          recompression moves next to bookworm's look-alikes. Each server fresh, the page cache warm
#          (the stores and the qcow2 were just read), fio's first RAMP seconds left out, the three
#          interleaved in every run; medians.
#
#   bench/recompress-bench.sh   (env: BENCH_RUNS=3 FIO_SECONDS=15 RAMP=5 BENCH_WORK=/var/tmp/cask-recompress-bench
#                                CASK_FIXTURES=~/.cache/cask-fixtures BENCH_PORT=10931
#                                READ_IMAGES="bookworm-server trixie-minbase"; CASK_JAVA_OPTS reaches every cask)
# Output also goes to bench/results/recompress-bench-<date>.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cask=${CASK:-$here/cask}
runs=${BENCH_RUNS:-3}; secs=${FIO_SECONDS:-15}; ramp=${RAMP:-5}
port=${BENCH_PORT:-10931}
work=${BENCH_WORK:-/var/tmp/cask-recompress-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
IMAGES=(bookworm-minbase bookworm-server trixie-minbase bookworm-minbase-63)
READ_IMAGES=(${READ_IMAGES:-bookworm-server trixie-minbase})
for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || { echo "recompress-bench: $FIX/$i.raw missing (build with scripts/build-images.sh)"; exit 1; }; done
need() { # TOOL PACKAGE: installs the Debian package when the tool is missing
  command -v "$1" >/dev/null && return 0
  [ "$(id -u)" -eq 0 ] || { echo "recompress-bench: $1 is missing (apt-get install $2)"; exit 1; }
  echo "recompress-bench: installing $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } \
    || { echo "recompress-bench: apt-get install $2 failed"; exit 1; }
}
need casync casync; need fio fio; need qemu-nbd qemu-utils; need nbdinfo libnbd-bin
mkdir -p "$here/bench/results"
out="$here/bench/results/recompress-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
if [ -e "$work" ] && [ ! -f "$work/.cask-recompress-bench" ]; then echo "recompress-bench: $work exists and is not ours; set BENCH_WORK"; exit 1; fi
rm -rf "$work"; mkdir -p "$work"; touch "$work/.cask-recompress-bench"
pid=
cleanup() { [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true; rm -rf "$work"; }
trap cleanup EXIT
"$cask" --version >/dev/null # builds when the sources changed: not timed

echo "== cask gc --recompress: space and reads, $(date -Is), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
"$here/bench/page-cache-note.sh"
[ -n "${CASK_JAVA_OPTS:-}" ] && echo "CASK_JAVA_OPTS=$CASK_JAVA_OPTS (every cask process, the servers included)"
echo "cask $(git -C "$here" log --oneline -1 | cut -c1-70)$( [ -n "$(git -C "$here" status --porcelain --untracked-files=no)" ] && echo ' (+ uncommitted changes)'); $(qemu-nbd --version | head -1); $(fio --version); $(casync --version 2>&1 | head -1)"
for i in "${IMAGES[@]}"; do cat "$FIX/$i.raw" >/dev/null; done

# ---- space ------------------------------------------------------------------------------------------
args=(); for i in "${IMAGES[@]}"; do args+=("$FIX/$i.raw" "$i"); done
mkdir -p "$work/imported"
"$cask" --store "$work/imported" import "${args[@]}" >/dev/null
stored() { "$cask" --store "$1" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])'; }
before=$(stored "$work/imported")
cp -a "$work/imported" "$work/recompressed"
t0=$(date +%s.%N)
"$cask" --store "$work/recompressed" gc --recompress --json > "$work/gc.json"
t1=$(date +%s.%N)
after=$(stored "$work/recompressed")
for i in "${IMAGES[@]}"; do
  "$cask" --store "$work/recompressed" export "$i" "$work/out.raw" >/dev/null
  cmp "$FIX/$i.raw" "$work/out.raw" || { echo "recompress-bench: $i after gc --recompress differs from its source"; exit 1; }
done
rm -f "$work/out.raw"
"$cask" --store "$work/recompressed" check --deep >/dev/null || { echo "recompress-bench: check --deep failed after gc --recompress"; exit 1; }
mkdir -p "$work/casync"
for i in "${IMAGES[@]}"; do casync make --store="$work/casync/store" "$work/casync/$i.caibx" "$FIX/$i.raw" >/dev/null; done
casync_bytes=$(du -sb "$work/casync" | cut -f1)
rm -rf "$work/casync"
python3 - "$before" "$after" "$casync_bytes" "$(echo "$t1 - $t0" | bc)" "$work/gc.json" <<'PY'
import json, sys
before, after, casync, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
gc = json.load(open(sys.argv[5]))
M = 1048576
print("space (stats stored_bytes; casync: du -sb of its store and the four .caibx):")
print(f"  imported:               {before / M:8.1f} MiB   {before / casync:.3f} x casync ({casync / M:.1f} MiB)")
print(f"  after gc --recompress:  {after / M:8.1f} MiB   {after / casync:.3f} x casync   target <= 0.72: {'met' if after / casync <= 0.72 else 'NOT met'}")
print(f"  gc --recompress: {secs:.1f} s wall (JVM start, mark and sweep included), {gc['packs_recompressed']} packs, "
      f"{gc['chunks_recompressed']} chunks, {gc['recompress_bytes_before'] / M:.1f} -> {gc['recompress_bytes_after'] / M:.1f} MiB of packs")
print("  the four exports after it: byte-identical to the sources; check --deep: clean")
PY

# ---- reads ------------------------------------------------------------------------------------------
extent() { # IMAGE: "OFFSET SIZE" in bytes of its largest data extent
  qemu-img map -f raw --output=json "$FIX/$1.raw" | python3 -c '
import json, sys
e = max((x for x in json.load(sys.stdin) if x["data"]), key=lambda x: x["length"])
print(e["start"], e["length"])'
}
start() { # TARGET IMAGE: starts it, sets pid and uri
  case "$1" in
    qcow2) qemu-nbd -f qcow2 -x vm -b 127.0.0.1 -p "$((port + 1))" --persistent --shared=8 "$work/$2.qcow2" & pid=$!
           uri="nbd://127.0.0.1:$((port + 1))/vm"
           for _ in $(seq 100); do nbdinfo --size "$uri" >/dev/null 2>&1 && return 0; sleep 0.1; done
           echo "qemu-nbd did not start"; exit 1 ;;
    *)     : > "$work/serve.log"
           "$cask" --store "$work/$1" serve --listen "127.0.0.1:$port" --checkpoint-interval 0 --gc-interval 0 >> "$work/serve.log" 2>&1 & pid=$!
           uri="nbd://127.0.0.1:$port/$2"
           for _ in $(seq 300); do grep -q serving "$work/serve.log" && return 0; sleep 0.1; done
           echo "cask serve did not start:"; tail -20 "$work/serve.log"; exit 1 ;;
  esac
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
rows="$work/rows"; : > "$rows"
for img in "${READ_IMAGES[@]}"; do
  qemu-img convert -f raw -O qcow2 "$FIX/$img.raw" "$work/$img.qcow2"
  read -r off len <<<"$(extent "$img")"
  echo "reads of $img's data ($((len >> 20)) MiB at $((off >> 20)) MiB), fio ${secs} s after ${ramp} s of ramp, $runs runs:"
  for r in $(seq "$runs"); do
    for t in qcow2 imported recompressed; do
      for job in "randread 4k 32" "read 1M 8"; do
        set -- $job
        start "$t" "$img"
        fio --name=r --ioengine=nbd --uri="$uri" --rw="$1" --bs="$2" --iodepth="$3" --offset="$off" --size="$len" --randrepeat=0 \
          --ramp_time="$ramp" --runtime="$secs" --time_based --output-format=json > "$work/fio.json" 2>"$work/fio.err" || { cat "$work/fio.err"; exit 1; }
        stop
        python3 - "$work/fio.json" "$img" "$t" "$1" "$r" >> "$rows" <<'PY'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index('{'):])['jobs'][0]['read']
print(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], "%.1f" % (j['bw_bytes'] / 1048576), "%.2f" % (j['clat_ns']['percentile']['99.000000'] / 1e6))
PY
        tail -1 "$rows" | awk '{printf "  run %s %-13s %-9s %8s MiB/s  p99 %6s ms\n", $4, $2, $3, $5, $6}'
      done
    done
  done
  rm -f "$work/$img.qcow2"
done
python3 - "$rows" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
print(f"medians of {len({r[3] for r in rows})} runs:")
for img in dict.fromkeys(r[0] for r in rows):
    med = {}
    for job in ("randread", "read"):
        for t in ("qcow2", "imported", "recompressed"):
            rs = [r for r in rows if r[0] == img and r[1] == t and r[2] == job]
            med[t, job] = statistics.median(float(r[4]) for r in rs)
            print(f"  {img:16} {job:9} {t:13} {med[t, job]:8.1f} MiB/s  p99 {statistics.median(float(r[5]) for r in rs):6.2f} ms")
    for job in ("randread", "read"):
        q = med["qcow2", job]
        print(f"  {img:16} {job:9} cask / qemu-nbd (qcow2): imported {med['imported', job] / q:.3f} x, recompressed {med['recompressed', job] / q:.3f} x"
              f" (target >= 1.0: {'met' if med['recompressed', job] >= q else 'NOT met'})")
PY
