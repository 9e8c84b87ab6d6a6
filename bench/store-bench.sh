#!/usr/bin/env bash
# store-bench.sh: cask against its peers on the same data, in the same run (DESIGN.md "Benchmarks").
#
#   bench/store-bench.sh                 (env: BENCH_RUNS=3 BENCH_PEER_RUNS=$BENCH_RUNS
#                                         BENCH_WORK=/tmp/cask-bench CASK_FIXTURES=~/.cache/cask-fixtures
#                                         BENCH_KEEP=1 keeps the work dir, BENCH_STRICT=1 exits 3 when a
#                                         target is missed, BENCH_LIVE_LAUNCHER=1 times ./cask itself)
#
# Data: the four 2 GiB sparse fixture images (bookworm-minbase, bookworm-server, trixie-minbase,
# bookworm-minbase-63), built by /work/shared/fixtures/build-images.sh when missing.
#
# Measurements (each repeated BENCH_RUNS times, medians reported, cask and peer interleaved per run):
#   1. space   cask store after importing the four images into one fresh store (du -sb of the store
#              dir, of its packs dir, and `stats` stored_bytes) vs du -sb of the repo/store of
#              borg (default chunker), borg (buzhash,10,16,12,4095), restic, casync (store + .caibx).
#              Target (the issue's first): stats stored_bytes <= 0.8 x min(peers); the two du figures are
#              information. Then, after the exports, `cask gc --recompress` on that store (timed): the
#              speed issue's raised target, stats stored_bytes <= 0.72 x min(peers) once compaction ran.
#   2. import  one `cask import SRC NAME SRC NAME ...` of the four images (JVM start included) vs four
#              `qemu-img convert -O qcow2`. Target (the speed issue's): time ratio <= 2.0. Also timed, for information:
#              four `cask import` commands, one per image (four JVM starts).
#   3. export  one `cask export NAME out.raw NAME out.raw ...` vs four `qemu-img convert -O raw` of the
#              qcow2 copies from (2); throughput = logical bytes / time. Target: cask/qemu-img
#              throughput >= 1.0. Also timed, for information: one `cask export` per image.
#   4. clone   `cask clone` of a 2T empty image vs of a 4M one, five of each per run. Target: time ratio <= ~1.0 (met when
#              <= 1.10: both are one JVM start plus a catalog write, so the rest is noise).
# borg/restic/casync times are reported for information only.
#
# Page cache cannot be dropped here; the images are read once up front so every run sees a warm cache.
# Each timed command is preceded by `sync` (untimed) so earlier dirty pages are not billed to it.
#
# The cask under test: the script builds the jar once through the repo's ./cask launcher, then copies
# the launcher, scripts/jdk.sh and the jar into the work dir and times that copy. The command line
# and JVM flags are exactly the launcher's, but concurrent edits and `mvn package` runs by others in
# the tree cannot rebuild or replace the jar in the middle of a timed run, and every run measures the
# same build. BENCH_LIVE_LAUNCHER=1 times the repo's ./cask directly instead (a run during which the
# launcher rebuilt the jar is detected and repeated).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
REPO_CASK="$root/cask"
RUNS=${BENCH_RUNS:-3}
PEER_RUNS=${BENCH_PEER_RUNS:-$RUNS}
WORK=${BENCH_WORK:-/tmp/cask-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
BUILD_IMAGES=/work/shared/fixtures/build-images.sh
IMAGES=(bookworm-minbase bookworm-server trixie-minbase bookworm-minbase-63)

die() { echo "store-bench: error: $*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[[ $PEER_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PEER_RUNS must be a positive integer, got '$PEER_RUNS'"
[ -x "$REPO_CASK" ] || die "cask launcher not found at $REPO_CASK"

# ---- output: everything goes to the terminal and to bench/results/store-bench-<date>.txt ----------
mkdir -p "$here/results"
result="$here/results/store-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1
tee_pid=$!

# ---- work dir (refuse to take over, and later delete, a directory that is not ours) ---------------
if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -f "$WORK/.cask-bench" ]; then
  die "work dir $WORK exists, is not empty and was not made by this script; set BENCH_WORK"
fi
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "store-bench: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  [ "$rc" -eq 0 ] || echo "store-bench: FAILED (exit $rc)"
  echo "store-bench: full output in $result"
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
rm -rf "$WORK"; mkdir -p "$WORK"; touch "$WORK/.cask-bench"
DATA="$WORK/data.tsv"; : >"$DATA"
LOG="$WORK/commands.log"; : >"$LOG"

# ---- tools ------------------------------------------------------------------------------------------
apt_updated=0
need() { # COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null && return 0
  echo "store-bench: $1 missing, installing Debian package $2"
  [ "$(id -u)" -eq 0 ] || die "$1 is missing and installing $2 needs root (apt-get install $2)"
  if [ "$apt_updated" = 0 ]; then apt-get update -qq || die "apt-get update failed"; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null || die "apt-get install $2 failed"
  command -v "$1" >/dev/null || die "$2 installed but $1 is still not on PATH"
}
need python3 python3; need qemu-img qemu-utils; need borg borgbackup; need restic restic
need casync casync; need flock util-linux

# q CMD...: run CMD with its output appended to the command log; on failure show the log tail, exit 1.
q() {
  printf '+ %s\n' "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "store-bench: command failed: $*" >&2
    tail -n 40 "$LOG" | sed 's/^/  | /' >&2
    exit 1
  fi
}
now() { date +%s.%N; }
py() { python3 -c "$@"; }
sub() { py 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$1" "$2"; }
dub() { du -sb "$@" | awk '{s += $1} END {printf "%.0f\n", s}'; }   # total bytes (apparent) of the paths
mib() { py 'import sys; print(f"{int(sys.argv[1]) / 1048576:.1f}")' "$1"; }
record() { printf '%s\t%s\n' "$1" "$2" >>"$DATA"; }   # METRIC VALUE (one line per run)

# ---- fixtures ---------------------------------------------------------------------------------------
missing=()
for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || missing+=("$i.raw"); done
if [ "${#missing[@]}" -gt 0 ]; then
  [ -x "$BUILD_IMAGES" ] || die "fixture images missing in $FIX (${missing[*]}) and the builder $BUILD_IMAGES is not present; build them first"
  echo "store-bench: building fixture images into $FIX with $BUILD_IMAGES (takes a while) ..."
  "$BUILD_IMAGES" "$FIX" || die "$BUILD_IMAGES failed"
  for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || die "$BUILD_IMAGES did not produce $FIX/$i.raw"; done
fi
SRC=(); for i in "${IMAGES[@]}"; do SRC+=("$FIX/$i.raw"); done
LOGICAL=$(stat -c %s "${SRC[@]}" | awk '{s += $1} END {printf "%.0f\n", s}')
ALLOC=$(stat -c %b "${SRC[@]}" | awk '{s += $1 * 512} END {printf "%.0f\n", s}')

# ---- cask under test --------------------------------------------------------------------------------
build_cask() { # builds the jar through the repo launcher, retrying while others' edits break the build
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if "$REPO_CASK" --help >/dev/null 2>"$WORK/build.log"; then return 0; fi
    echo "store-bench: building cask failed (attempt $attempt; others may be mid-edit), retrying in 30 s"
    sed 's/^/  | /' "$WORK/build.log" | tail -n 15
    sleep 30
  done
  die "could not build cask with $REPO_CASK (log above)"
}
SNAP="$WORK/cask-snapshot"
if [ "${BENCH_LIVE_LAUNCHER:-0}" = 1 ]; then
  build_cask
  CASK="$REPO_CASK"
else
  ok=0
  for attempt in 1 2 3 4 5; do
    build_cask
    rm -rf "$SNAP"; mkdir -p "$SNAP/scripts" "$SNAP/cask-cli/target"
    cp "$REPO_CASK" "$SNAP/cask"; cp "$root/scripts/jdk.sh" "$SNAP/scripts/jdk.sh"
    cp "$root/cask-cli/target/cask.jar" "$SNAP/cask-cli/target/cask.jar"
    # the copy may race with someone's `mvn package`: accept it only when it is a whole jar that runs
    if py 'import sys, zipfile; sys.exit(0 if zipfile.ZipFile(sys.argv[1]).testzip() is None else 1)' \
         "$SNAP/cask-cli/target/cask.jar" 2>/dev/null \
       && "$SNAP/cask" --version >"$WORK/snap.out" 2>&1 && ! grep -q 'cask: building' "$WORK/snap.out"; then
      ok=1; break
    fi
    echo "store-bench: the jar copy is not usable (concurrent rebuild?), retrying in 10 s"; sleep 10
  done
  [ "$ok" = 1 ] || { cat "$WORK/snap.out"; die "could not take a usable copy of cask-cli/target/cask.jar"; }
  CASK="$SNAP/cask"
fi
cask() { q "$CASK" "$@"; }

# cask_timed SETUP BODY: after SETUP (untimed) and sync, time the function BODY into $T. With the live
# launcher, a run during which the launcher rebuilt the jar is repeated.
cask_timed() {
  local attempt t0 t1 mark
  for attempt in 1 2 3 4 5; do
    [ "${BENCH_LIVE_LAUNCHER:-0}" = 1 ] && build_cask
    "$1"; sync
    mark=$(wc -l <"$LOG")
    t0=$(now); "$2"; t1=$(now)
    if tail -n +"$((mark + 1))" "$LOG" | grep -q 'cask: building'; then
      echo "  note: the launcher rebuilt the jar during the timed run (sources changed); repeating it"
      continue
    fi
    T=$(sub "$t0" "$t1"); return 0
  done
  die "the jar was rebuilt during 5 attempts of a timed run; sources are changing too fast"
}
# timed SETUP BODY: the same for peers.
timed() { local t0 t1; "$1"; sync; t0=$(now); "$2"; t1=$(now); T=$(sub "$t0" "$t1"); }
noop() { :; }

# ---- header -----------------------------------------------------------------------------------------
echo "== cask store benchmark, $(date -Is) =="
echo "host: $(uname -n), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
"$here/page-cache-note.sh"
echo "cask: $root @ $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)'), $("$CASK" --version 2>&1 | head -1)"
echo "      timed via: $CASK"
echo "java: $(. "$root/scripts/jdk.sh" && "$JAVA_HOME/bin/java" -version 2>&1 | head -1)"
echo "peers: $(qemu-img --version | head -1); $(borg --version); $(restic version | cut -d' ' -f1-2); $(casync --version 2>&1 | head -1)"
echo "data: ${#IMAGES[@]} images in $FIX: ${IMAGES[*]}"
echo "      logical $(mib "$LOGICAL") MiB, allocated on disk $(mib "$ALLOC") MiB"
echo "runs: $RUNS (peers $PEER_RUNS); work dir $WORK"
echo

echo "warming the page cache (reading every image once) ..."
for f in "${SRC[@]}"; do cat "$f" >/dev/null; done
# the first cask run after a build makes the launcher's start-up (AOT) cache; do it, and real work, untimed
echo "warming cask (one untimed import/export/clone, so the start-up cache exists before timing) ..."
mkdir -p "$WORK/warm"; cask --store "$WORK/warm" import "${SRC[0]}" w; cask --store "$WORK/warm" export w "$WORK/warm/w.raw"
cask --store "$WORK/warm" clone w w2; cask --store "$WORK/warm" stats --json; rm -rf "$WORK/warm"

# ---- clone fixtures ---------------------------------------------------------------------------------
CSTORE="$WORK/clone-store"; mkdir -p "$CSTORE"   # an explicit store must exist (an empty directory becomes one)
cask --store "$CSTORE" create big 2T
cask --store "$CSTORE" create small 4M

# ---- run bodies -------------------------------------------------------------------------------------
STORE="$WORK/store"; QDIR="$WORK/qcow2"; EXC="$WORK/export-cask"; EXQ="$WORK/export-qemu"; PEER="$WORK/peer"
reset_store() { rm -rf "$STORE"; mkdir -p "$STORE"; }
import_cask() { local i a=(); for i in "${!IMAGES[@]}"; do a+=("${SRC[$i]}" "${IMAGES[$i]}"); done; cask --store "$STORE" import "${a[@]}"; }
import_cask_each() { local i; for i in "${!IMAGES[@]}"; do cask --store "$STORE" import "${SRC[$i]}" "${IMAGES[$i]}"; done; }
reset_qcow2() { rm -rf "$QDIR"; mkdir -p "$QDIR"; }
import_qemu() { local i; for i in "${IMAGES[@]}"; do q qemu-img convert -f raw -O qcow2 "$FIX/$i.raw" "$QDIR/$i.qcow2"; done; }
reset_exc() { rm -rf "$EXC"; mkdir -p "$EXC"; }
export_cask() { local i a=(); for i in "${IMAGES[@]}"; do a+=("$i" "$EXC/$i.raw"); done; cask --store "$STORE" export "${a[@]}"; }
export_cask_each() { local i; for i in "${IMAGES[@]}"; do cask --store "$STORE" export "$i" "$EXC/$i.raw"; done; }
reset_exq() { rm -rf "$EXQ"; mkdir -p "$EXQ"; }
export_qemu() { local i; for i in "${IMAGES[@]}"; do q qemu-img convert -f qcow2 -O raw "$QDIR/$i.qcow2" "$EXQ/$i.raw"; done; }
clone_n=0   # a repeated attempt needs a fresh name
clone_big() { clone_n=$((clone_n + 1)); cask --store "$CSTORE" clone big "big-$clone_n"; }
clone_small() { clone_n=$((clone_n + 1)); cask --store "$CSTORE" clone small "small-$clone_n"; }
recompress_cask() { cask --store "$STORE" gc --recompress; }

export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
reset_peer() { rm -rf "$PEER"; mkdir -p "$PEER"; }
borg_setup() { reset_peer; export BORG_BASE_DIR="$PEER/home"; q borg init --encryption=none "$PEER/repo"; }
borg_default() { q borg create "$PEER/repo::bench" "${SRC[@]}"; }
borg_small() { q borg create --chunker-params buzhash,10,16,12,4095 "$PEER/repo::bench" "${SRC[@]}"; }
restic_setup() {
  reset_peer; echo bench >"$PEER/password"
  q restic --repo "$PEER/repo" --password-file "$PEER/password" --cache-dir "$PEER/cache" init
}
restic_backup() { q restic --repo "$PEER/repo" --password-file "$PEER/password" --cache-dir "$PEER/cache" backup "${SRC[@]}"; }
casync_setup() { reset_peer; mkdir -p "$PEER/repo"; }
casync_make() { local i; for i in "${IMAGES[@]}"; do q casync make --store="$PEER/repo/store" "$PEER/repo/$i.caibx" "$FIX/$i.raw"; done; }

# ---- the runs ---------------------------------------------------------------------------------------
for rep in $(seq 1 "$RUNS"); do
  echo "-- run $rep/$RUNS --"
  cask_timed reset_store import_cask; record cask_import_s "$T"
  stats=$("$CASK" --store "$STORE" stats --json) || die "cask stats failed"
  for k in stored_bytes logical_bytes allocated_bytes unique_chunks dedup_ratio; do
    record "cask_$k" "$(py 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$stats" "$k")"
  done
  record cask_store_du "$(dub "$STORE")"; record cask_packs_du "$(dub "$STORE/packs")"
  echo "  cask import x${#IMAGES[@]} (one command): $T s   (store du $(mib "$(dub "$STORE")") MiB, packs du $(mib "$(dub "$STORE/packs")") MiB)"
  mv "$STORE" "$STORE.batch"
  cask_timed reset_store import_cask_each; record cask_import_each_s "$T"
  echo "  cask import, one command per image: $T s"
  rm -rf "$STORE"; mv "$STORE.batch" "$STORE"
  timed reset_qcow2 import_qemu; record qemu_import_s "$T"
  echo "  qemu-img convert -> qcow2: $T s   (qcow2 du $(mib "$(dub "$QDIR")") MiB)"

  cask_timed reset_exc export_cask_each; record cask_export_each_s "$T"
  echo "  cask export -> raw, one command per image: $T s"
  cask_timed reset_exc export_cask; record cask_export_s "$T"
  echo "  cask export -> raw (one command): $T s"
  if [ "$rep" = 1 ]; then   # the benchmark is only worth something if the round trip is exact
    for i in "${IMAGES[@]}"; do cmp "$FIX/$i.raw" "$EXC/$i.raw" || die "cask export of $i differs from $FIX/$i.raw"; done
    echo "  (verified: the four cask exports are byte-identical to the source images)"
  fi
  rm -rf "$EXC"
  timed reset_exq export_qemu; record qemu_export_s "$T"
  echo "  qemu-img convert -> raw:   $T s"
  rm -rf "$EXQ" "$QDIR"
  # the store once compaction has run with recompression (the speed issue's item 5: the raised space target)
  cask_timed noop recompress_cask; record cask_recompress_s "$T"
  record cask_recompressed_bytes "$("$CASK" --store "$STORE" stats --json | py 'import json, sys; print(json.loads(sys.stdin.read())["stored_bytes"])')"
  echo "  cask gc --recompress: $T s   (stored $(mib "$(tail -n 1 "$DATA" | cut -f2)") MiB)"
  if [ "$rep" = 1 ]; then
    for i in "${IMAGES[@]}"; do cask --store "$STORE" export "$i" "$WORK/re.raw"; cmp "$FIX/$i.raw" "$WORK/re.raw" || die "$i after gc --recompress differs from $FIX/$i.raw"; done
    rm -f "$WORK/re.raw"; echo "  (verified: the four exports after gc --recompress are byte-identical to the source images)"
  fi
  rm -rf "$STORE"

  # a clone is one JVM start plus a catalog write (~0.5 s, +-0.1 s of noise here): five pairs per
  # run, alternating which goes first, so the median compares like with like
  tbs=(); tss=()
  for k in 1 2 3 4 5; do
    if [ $(((rep + k) % 2)) = 1 ]; then
      cask_timed noop clone_big; record clone_big_s "$T"; tbs+=("$T")
      cask_timed noop clone_small; record clone_small_s "$T"; tss+=("$T")
    else
      cask_timed noop clone_small; record clone_small_s "$T"; tss+=("$T")
      cask_timed noop clone_big; record clone_big_s "$T"; tbs+=("$T")
    fi
  done
  echo "  cask clone 2T: ${tbs[*]} s; clone 4M: ${tss[*]} s"

  if [ "$rep" -le "$PEER_RUNS" ]; then
    timed borg_setup borg_default; record borg_s "$T"; record borg_du "$(dub "$PEER/repo")"
    echo "  borg create (default chunker):   $T s, repo $(mib "$(dub "$PEER/repo")") MiB"
    timed borg_setup borg_small; record borg4k_s "$T"; record borg4k_du "$(dub "$PEER/repo")"
    echo "  borg create (buzhash,10,16,12):  $T s, repo $(mib "$(dub "$PEER/repo")") MiB"
    timed restic_setup restic_backup; record restic_s "$T"; record restic_du "$(dub "$PEER/repo")"
    echo "  restic backup:                   $T s, repo $(mib "$(dub "$PEER/repo")") MiB"
    timed casync_setup casync_make; record casync_s "$T"; record casync_du "$(dub "$PEER/repo")"
    echo "  casync make (shared store):      $T s, store + indexes $(mib "$(dub "$PEER/repo")") MiB"
    rm -rf "$PEER"
  fi
done
echo

# ---- the table --------------------------------------------------------------------------------------
set +e
python3 - "$DATA" "$LOGICAL" "$RUNS" "$PEER_RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
vals = defaultdict(list)
for line in open(sys.argv[1]):
    k, v = line.rstrip("\n").split("\t")
    vals[k].append(float(v))
logical = int(sys.argv[2])
med = lambda k: statistics.median(vals[k])
MiB = 1048576

print("per-run values (s or bytes):")
for k in sorted(vals):
    print(f"  {k:22} " + "  ".join(str(int(v)) if v.is_integer() else f"{v:g}" for v in vals[k]))
for k in ("cask_stored_bytes", "cask_packs_du", "borg_du", "borg4k_du", "restic_du", "casync_du"):
    if len(set(vals[k])) > 1:
        print(f"  note: {k} differs between runs; the median is used")
print()

peers = {"borg": "borg (default chunker)", "borg4k": "borg (buzhash,10,16,12,4095)",
         "restic": "restic", "casync": "casync (store + .caibx)"}
best = min(peers, key=lambda p: med(p + "_du"))
minpeer = med(best + "_du")
rows, missed = [], []
def row(name, cask, peer, ratio, target, ok):
    rows.append((name, cask, peer, ratio, target, "" if ok is None else ("yes" if ok else "NO")))
    if ok is False: missed.append(name)

# the issue's target is on stats stored_bytes (chunk data on disk, pack overhead included); the
# whole store dir (index.db and catalog.db too) and the packs dir are shown for information
for key, label, target in (("cask_stored_bytes", "stats stored_bytes", True), ("cask_packs_du", "du packs dir", False),
                           ("cask_store_du", "du store dir", False)):
    r = med(key) / minpeer
    row(f"{'space:' if target else 'info: space,'} cask {label} vs min(peers) = {best}", f"{med(key) / MiB:.1f} MiB",
        f"{minpeer / MiB:.1f} MiB", f"{r:.3f}", "<= 0.80" if target else "", (r <= 0.80) if target else None)
r = med("cask_recompressed_bytes") / minpeer
row(f"space after gc --recompress: stats stored_bytes vs {best}", f"{med('cask_recompressed_bytes') / MiB:.1f} MiB",
    f"{minpeer / MiB:.1f} MiB", f"{r:.3f}", "<= 0.72", r <= 0.72)
row("   (gc --recompress wall time, JVM start included)", f"{med('cask_recompress_s'):.2f} s", "", "", "", None)
ci, qi = med("cask_import_s"), med("qemu_import_s")
row("import 4 images: one cask import vs qemu-img -> qcow2", f"{ci:.2f} s", f"{qi:.2f} s", f"{ci / qi:.3f}", "<= 2.00", ci / qi <= 2.0)
ce, qe = med("cask_export_s"), med("qemu_export_s")
tc, tq = logical / ce / MiB, logical / qe / MiB
row("export to raw (logical MiB/s): cask vs qemu-img", f"{tc:.0f} MiB/s", f"{tq:.0f} MiB/s", f"{tc / tq:.3f}", ">= 1.00", tc / tq >= 1.0)
row("   (export wall time, 4 images, one cask export)", f"{ce:.2f} s", f"{qe:.2f} s", "", "", None)
cie, cee = med("cask_import_each_s"), med("cask_export_each_s")
row("info: import, one cask import per image", f"{cie:.2f} s", f"{qi:.2f} s", f"{cie / qi:.3f}", "", None)
row("info: export throughput, one cask export per image", f"{logical / cee / MiB:.0f} MiB/s", f"{tq:.0f} MiB/s", f"{logical / cee / MiB / tq:.3f}", "", None)
cb, cs = med("clone_big_s"), med("clone_small_s")
row("clone: cask clone 2T vs cask clone 4M", f"{cb:.3f} s", f"{cs:.3f} s", f"{cb / cs:.3f}", "<= ~1.0 (1.10)", cb / cs <= 1.10)
for p, label in peers.items():
    row(f"info: space, cask store dir vs {label}", f"{med('cask_store_du') / MiB:.1f} MiB",
        f"{med(p + '_du') / MiB:.1f} MiB", f"{med('cask_store_du') / med(p + '_du'):.3f}", "", None)
for p, label in peers.items():
    row(f"info: time, cask import vs {label.split(' (store')[0]} backup", f"{ci:.2f} s",
        f"{med(p + '_s'):.2f} s", f"{ci / med(p + '_s'):.3f}", "", None)

head = ("measurement", "cask", "peer", "ratio", "target", "met?")
w = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]
fmt = lambda r: " | ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r))
print(f"RESULTS (medians of {sys.argv[3]} runs, peers {sys.argv[4]}; ratio = cask / peer, export = throughput ratio)")
print(fmt(head)); print("-+-".join("-" * x for x in w))
for r in rows: print(fmt(r))
print(f"cask store: logical {med('cask_logical_bytes') / MiB:.0f} MiB, allocated {med('cask_allocated_bytes') / MiB:.1f} MiB, "
      f"stored {med('cask_stored_bytes') / MiB:.1f} MiB, {int(med('cask_unique_chunks'))} unique chunks, dedup ratio {med('cask_dedup_ratio'):.2f}")
print("targets missed: " + (", ".join(missed) if missed else "none"))
sys.exit(3 if missed else 0)
PY
table_rc=$?
set -e
[ "$table_rc" -eq 0 ] || [ "$table_rc" -eq 3 ] || die "computing the table failed"
echo
echo "notes: sizes are du -sb (apparent bytes) of each tool's whole repository after one backup of the"
echo "       four images: borg repo dir (data + index + hints), restic repo dir (packs + index + keys +"
echo "       snapshots; caches elsewhere), casync chunk store plus the four .caibx indexes; cask store dir"
echo "       (packs + index.db + catalog.db), packs dir alone, and its own stored_bytes. Peers use their"
echo "       default compression (borg lz4, restic v2 auto = zstd, casync zstd). Times are wall clock,"
echo "       sequential over the four images, JVM start included for cask."
if [ "$table_rc" -eq 3 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then exit 3; fi
exit 0
