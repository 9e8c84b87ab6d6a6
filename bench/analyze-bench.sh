#!/usr/bin/env bash
# analyze-bench.sh: `cask analyze` against sha256sum reading the same files, in the same run
# (DESIGN.md "Benchmarks"; issue 4).
#
#   bench/analyze-bench.sh               (env: BENCH_RUNS=3 BENCH_WORK=/tmp/cask-analyze-bench
#                                         CASK_FIXTURES=~/.cache/cask-fixtures BENCH_BLOCK_SIZES=4K,16K
#                                         BENCH_KEEP=1 keeps the work dir, BENCH_STRICT=1 exits 3 when the
#                                         target is missed)
#
# Data: the four 2 GiB sparse fixture images (bookworm-minbase, bookworm-server, trixie-minbase,
# bookworm-minbase-63), built by /work/shared/fixtures/build-images.sh when missing.
#
# Measurement (repeated BENCH_RUNS times, medians reported; which command goes first alternates):
#   cask    `cask analyze --block-sizes 4K,16K --json IMG...` on the four files: every strategy
#           (fixed, aligned, cdc) at 4 KiB and 16 KiB, JVM start included, output to a file.
#   peer    `sha256sum IMG...` on the same four files (it reads every byte, holes included, as a
#           plain reader of the files does; cask skips holes, which is part of what is measured).
#   Target: cask time <= 2.0 x sha256sum time.
# Memory: the peak RSS of each cask run (GNU time) is reported for information.
#
# Page cache cannot be dropped here; the images are read once up front (and both commands run once
# untimed) so every timed run sees a warm cache. The cask under test is a copy of the launcher,
# scripts/jdk.sh and the jar taken once at the start (see store-bench.sh), so concurrent edits and
# builds in the tree cannot change it mid-run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
REPO_CASK="$root/cask"
RUNS=${BENCH_RUNS:-3}
WORK=${BENCH_WORK:-/tmp/cask-analyze-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
SIZES=${BENCH_BLOCK_SIZES:-4K,16K}
BUILD_IMAGES=/work/shared/fixtures/build-images.sh
IMAGES=(bookworm-minbase bookworm-server trixie-minbase bookworm-minbase-63)
TARGET=2.0

die() { echo "analyze-bench: error: $*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[ -x "$REPO_CASK" ] || die "cask launcher not found at $REPO_CASK"
command -v sha256sum >/dev/null || die "sha256sum is missing (coreutils)"
command -v python3 >/dev/null || die "python3 is missing"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"

# ---- output: everything goes to the terminal and to bench/results/analyze-bench-<date>.txt --------
mkdir -p "$here/results"
result="$here/results/analyze-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1
tee_pid=$!

# ---- work dir (refuse to take over, and later delete, a directory that is not ours) ---------------
if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -f "$WORK/.cask-analyze-bench" ]; then
  die "work dir $WORK exists, is not empty and was not made by this script; set BENCH_WORK"
fi
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "analyze-bench: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  [ "$rc" -eq 0 ] || echo "analyze-bench: FAILED (exit $rc)"
  echo "analyze-bench: full output in $result"
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
rm -rf "$WORK"; mkdir -p "$WORK" "$WORK/store"; touch "$WORK/.cask-analyze-bench"
DATA="$WORK/data.tsv"; : >"$DATA"
now() { date +%s.%N; }
sub() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$1" "$2"; }
mib() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1048576:.1f}")' "$1"; }
record() { printf '%s\t%s\n' "$1" "$2" >>"$DATA"; }

# ---- fixtures ---------------------------------------------------------------------------------------
missing=()
for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || missing+=("$i.raw"); done
if [ "${#missing[@]}" -gt 0 ]; then
  [ -x "$BUILD_IMAGES" ] || die "fixture images missing in $FIX (${missing[*]}) and the builder $BUILD_IMAGES is not present"
  echo "analyze-bench: building fixture images into $FIX with $BUILD_IMAGES (takes a while) ..."
  "$BUILD_IMAGES" "$FIX" || die "$BUILD_IMAGES failed"
  for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || die "$BUILD_IMAGES did not produce $FIX/$i.raw"; done
fi
SRC=(); for i in "${IMAGES[@]}"; do SRC+=("$FIX/$i.raw"); done
LOGICAL=$(stat -c %s "${SRC[@]}" | awk '{s += $1} END {printf "%.0f\n", s}')
ALLOC=$(stat -c %b "${SRC[@]}" | awk '{s += $1 * 512} END {printf "%.0f\n", s}')

# ---- cask under test: a snapshot of the launcher and the jar ---------------------------------------
SNAP="$WORK/cask-snapshot"
ok=0
for attempt in 1 2 3 4 5; do
  if ! "$REPO_CASK" --help >/dev/null 2>"$WORK/build.log"; then
    echo "analyze-bench: building cask failed (attempt $attempt; others may be mid-edit), retrying in 30 s"
    tail -n 15 "$WORK/build.log" | sed 's/^/  | /'; sleep 30; continue
  fi
  rm -rf "$SNAP"; mkdir -p "$SNAP/scripts" "$SNAP/cask-cli/target"
  cp "$REPO_CASK" "$SNAP/cask"; cp "$root/scripts/jdk.sh" "$SNAP/scripts/jdk.sh"
  cp "$root/cask-cli/target/cask.jar" "$SNAP/cask-cli/target/cask.jar"
  if python3 -c 'import sys, zipfile; sys.exit(0 if zipfile.ZipFile(sys.argv[1]).testzip() is None else 1)' \
       "$SNAP/cask-cli/target/cask.jar" 2>/dev/null \
     && "$SNAP/cask" --version >"$WORK/snap.out" 2>&1 && ! grep -q 'cask: building' "$WORK/snap.out" \
     && "$SNAP/cask" analyze --help >/dev/null 2>&1; then
    ok=1; break
  fi
  echo "analyze-bench: the jar copy is not usable (concurrent rebuild?), retrying in 10 s"; sleep 10
done
[ "$ok" = 1 ] || die "could not take a usable copy of cask-cli/target/cask.jar with an analyze command"
CASK="$SNAP/cask"

run_cask() { # OUT_JSON -> times one analyze into $T, peak RSS into $RSS
  local t0 t1
  sync
  t0=$(now)
  /usr/bin/time -f '%M' -o "$WORK/time.out" "$CASK" --store "$WORK/store" analyze --json --block-sizes "$SIZES" "${SRC[@]}" \
    >"$1" 2>"$WORK/cask.err" || { cat "$WORK/cask.err"; die "cask analyze failed"; }
  t1=$(now)
  T=$(sub "$t0" "$t1"); RSS=$(tail -n 1 "$WORK/time.out")
}
run_sha() {
  local t0 t1
  sync
  t0=$(now)
  sha256sum "${SRC[@]}" >"$WORK/sha.out" || die "sha256sum failed"
  t1=$(now)
  T=$(sub "$t0" "$t1")
}

# ---- header -----------------------------------------------------------------------------------------
echo "== cask analyze benchmark, $(date -Is) =="
echo "host: $(uname -n), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cask: $root @ $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)'), $("$CASK" --version 2>&1 | head -1)"
echo "java: $(. "$root/scripts/jdk.sh" && "$JAVA_HOME/bin/java" -version 2>&1 | head -1)"
echo "peer: $(sha256sum --version | head -1)"
echo "data: ${#IMAGES[@]} images in $FIX: ${IMAGES[*]}"
echo "      logical $(mib "$LOGICAL") MiB, allocated on disk $(mib "$ALLOC") MiB"
echo "cask: analyze --json --block-sizes $SIZES (strategies fixed, aligned, cdc)"
echo "runs: $RUNS; work dir $WORK"
echo

echo "warming the page cache (reading every image once) and both commands (one untimed run each) ..."
for f in "${SRC[@]}"; do cat "$f" >/dev/null; done
run_cask "$WORK/warm.json"; echo "  warm-up cask analyze: $T s"
run_sha; echo "  warm-up sha256sum:    $T s"

for rep in $(seq 1 "$RUNS"); do
  echo "-- run $rep/$RUNS --"
  if [ $((rep % 2)) = 1 ]; then
    run_cask "$WORK/report.json"; record cask_s "$T"; record cask_rss_kib "$RSS"; echo "  cask analyze: $T s (peak RSS $((RSS / 1024)) MiB)"
    run_sha; record sha_s "$T"; echo "  sha256sum:    $T s"
  else
    run_sha; record sha_s "$T"; echo "  sha256sum:    $T s"
    run_cask "$WORK/report.json"; record cask_s "$T"; record cask_rss_kib "$RSS"; echo "  cask analyze: $T s (peak RSS $((RSS / 1024)) MiB)"
  fi
  echo "  load avg: $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo

# ---- the table --------------------------------------------------------------------------------------
set +e
python3 - "$DATA" "$LOGICAL" "$RUNS" "$TARGET" "$WORK/report.json" <<'PY'
import json, statistics, sys
from collections import defaultdict
vals = defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.rstrip("\n").split("\t")
    vals[k].append(float(v))
logical, runs, target = int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
med = lambda k: statistics.median(vals[k])
MiB = 1048576
print("per-run values (s, KiB):")
for k in sorted(vals):
    print(f"  {k:14} " + "  ".join(f"{v:g}" for v in vals[k]))
print()
c, s = med("cask_s"), med("sha_s")
ratio = c / s
met = ratio <= target
rows = [("cask analyze (4 images) vs sha256sum of the same files", f"{c:.2f} s", f"{s:.2f} s", f"{ratio:.3f}",
         f"<= {target:.1f}", "MET" if met else "MISSED"),
        ("   (logical MiB/s)", f"{logical / c / MiB:.0f} MiB/s", f"{logical / s / MiB:.0f} MiB/s", "", "", ""),
        ("   cask peak RSS", f"{med('cask_rss_kib') / 1024:.0f} MiB", "", "", "", "")]
head = ("measurement", "cask", "sha256sum", "ratio", "target", "result")
w = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]
fmt = lambda r: " | ".join(str(x).ljust(w[i]) if i == 0 else str(x).rjust(w[i]) for i, x in enumerate(r))
print(f"RESULTS (medians of {runs} runs; ratio = cask time / sha256sum time)")
print(fmt(head)); print("-+-".join("-" * x for x in w))
for r in rows: print(fmt(r))
print()
rep = json.load(open(sys.argv[5]))
print(f"what cask analyze reported (last run, {rep['seconds']:.1f} s inside the JVM):")
print(f"  {'strategy':14} {'non-zero MiB':>12} {'unique MiB':>11} {'zstd MiB':>9} {'dedup':>6} {'unique chunks':>13} {'table MiB':>9}")
for st in rep["strategies"]:
    col = st["collection"]
    print(f"  {st['name']:14} {col['nonzero_bytes'] / MiB:12.1f} {col['unique_bytes'] / MiB:11.1f} "
          f"{col['compressed_bytes'] / MiB:9.1f} {col['dedup_ratio']:6.2f} {col['unique_chunks']:13d} {st['table_bytes'] / MiB:9.1f}")
print("target " + ("met" if met else "MISSED"))
sys.exit(0 if met else 3)
PY
table_rc=$?
set -e
[ "$table_rc" -eq 0 ] || [ "$table_rc" -eq 3 ] || die "computing the table failed"
echo
echo "notes: wall-clock times of whole commands (JVM start included for cask), page cache warm for both."
echo "       sha256sum reads all $(mib "$LOGICAL") MiB of the files (holes read as zeros); cask analyze reads"
echo "       the allocated data only ($(mib "$ALLOC") MiB allocated) and counts holes as zero chunks."
if [ "$table_rc" -eq 3 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then exit 3; fi
exit 0
