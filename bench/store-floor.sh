#!/usr/bin/env bash
# store-floor.sh: how fast can an import or export of the four fixture images be on this machine,
# with SHA-256 chunk ids, zstd level 3 and a JVM, whatever cask's code does around them? Prints the
# floor next to qemu-img's time on the same data in the same run (see bench/StoreFloor.java).
#
#   bench/store-floor.sh          (env: CASK_FIXTURES=~/.cache/cask-fixtures BENCH_WORK=/tmp/cask-floor
#                                  FLOOR_CORES=<this machine's>)
#
# qemu-img times are medians of 3 (four `convert -O qcow2` of the raw images; four `convert -O raw`
# of those qcow2 files), the JVM start is the median of 5 `cask --version`. Output also goes to
# bench/results/store-floor-<date>.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
WORK=${BENCH_WORK:-/tmp/cask-floor}
IMAGES=(bookworm-minbase bookworm-server trixie-minbase bookworm-minbase-63)
die() { echo "store-floor: error: $*" >&2; exit 1; }

for i in "${IMAGES[@]}"; do
  [ -f "$FIX/$i.raw" ] || /work/shared/fixtures/build-images.sh "$FIX" >/dev/null || die "cannot build fixtures in $FIX"
done
command -v qemu-img >/dev/null || die "qemu-img missing (apt-get install qemu-utils)"
if [ -e "$WORK" ] && [ ! -f "$WORK/.cask-floor" ]; then die "$WORK exists and is not ours; set BENCH_WORK"; fi
rm -rf "$WORK"; mkdir -p "$WORK"; touch "$WORK/.cask-floor"
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$here/results"
result="$here/results/store-floor-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1

"$root/cask" --version >/dev/null   # builds the jar and its start-up cache when needed
. "$root/scripts/jdk.sh"
now() { date +%s.%N; }
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.3f}")' "$@"; }

echo "== cask store floor, $(date -Iseconds) =="
echo "host: $(hostname), $(nproc) cores; cask $(git -C "$root" rev-parse --short HEAD); $(qemu-img --version | head -1)"
for i in "${IMAGES[@]}"; do cat "$FIX/$i.raw" >/dev/null; done   # warm page cache, as store-bench does

starts=()
for k in 1 2 3 4 5; do t0=$(now); "$root/cask" --version >/dev/null; t1=$(now); starts+=("$(python3 -c "print($t1 - $t0)")"); done
imports=(); exports=()
for k in 1 2 3; do
  rm -rf "$WORK/q" "$WORK/r"; mkdir -p "$WORK/q" "$WORK/r"; sync
  t0=$(now); for i in "${IMAGES[@]}"; do qemu-img convert -f raw -O qcow2 "$FIX/$i.raw" "$WORK/q/$i.qcow2"; done; t1=$(now)
  imports+=("$(python3 -c "print($t1 - $t0)")"); sync   # the qcow2 files' dirty pages are not billed to the export
  t0=$(now); for i in "${IMAGES[@]}"; do qemu-img convert -f qcow2 -O raw "$WORK/q/$i.qcow2" "$WORK/r/$i.raw"; done; t1=$(now)
  exports+=("$(python3 -c "print($t1 - $t0)")")
done
rm -rf "$WORK/q" "$WORK/r"
echo "qemu-img import x4: ${imports[*]} s; export x4: ${exports[*]} s; cask --version: ${starts[*]} s"
srcs=(); for i in "${IMAGES[@]}"; do srcs+=("$FIX/$i.raw"); done
"$JAVA_HOME/bin/java" -Xmx6g --enable-native-access=ALL-UNNAMED -Djava.io.tmpdir="$WORK" \
  ${FLOOR_CORES:+-Dfloor.cores=$FLOOR_CORES} -cp "$root/cask-cli/target/cask.jar" "$here/StoreFloor.java" \
  "$(median "${starts[@]}")" "$(median "${imports[@]}")" "$(median "${exports[@]}")" "${srcs[@]}"
echo "store-floor: output in $result"
