#!/usr/bin/env bash
# layout-bench.sh: what cutting a disk at its partition boundaries saves (issue 4, DESIGN.md
# "Partition- and file-system-aware encoding").
#
#   bench/layout-bench.sh        (env: BENCH_WORK=/tmp/cask-layout-bench CASK_FIXTURES=~/.cache/cask-fixtures
#                                 BENCH_KEEP=1 keeps the work dir, BENCH_STRICT=1 exits 3 when a target is missed)
#
# Data: bookworm-minbase.raw (ext4 in an MBR partition at sector 2048) and bookworm-minbase-63.raw
# (the same files, partition at sector 63), 2 GiB sparse fixture images.
# Each case imports into a fresh store and reads `cask stats --json` stored_bytes:
#   a  bookworm-minbase.raw alone (partition-aware layout, the default)
#   b  bookworm-minbase.raw + bookworm-minbase-63.raw            target: b / a <= 1.10
#   c  both with --whole-disk (fixed 4 KiB blocks from offset 0)  expected: c / a about 2 (for scale)
#   d  both with --fs-aware, against bookworm-minbase.raw alone with --fs-aware   (information)
# Space is deterministic, so one run is enough; the b exports are checked to be byte-identical.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
CASK="$root/cask"
WORK=${BENCH_WORK:-/tmp/cask-layout-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
A="$FIX/bookworm-minbase.raw"
B="$FIX/bookworm-minbase-63.raw"

die() { echo "layout-bench: error: $*" >&2; exit 1; }
[ -f "$A" ] && [ -f "$B" ] || die "fixture images missing in $FIX; build them with /work/shared/fixtures/build-images.sh $FIX"

mkdir -p "$here/results"
result="$here/results/layout-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1
tee_pid=$!

if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -f "$WORK/.cask-bench" ]; then
  die "work dir $WORK exists, is not empty and was not made by this script; set BENCH_WORK"
fi
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "layout-bench: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || echo "layout-bench: FAILED (exit $rc)"
  echo "layout-bench: full output in $result"
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
rm -rf "$WORK"; mkdir -p "$WORK"; touch "$WORK/.cask-bench"
LOG="$WORK/commands.log"; : >"$LOG"

q() { # CMD...: output to the command log; on failure show its tail and stop
  printf '+ %s\n' "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "layout-bench: command failed: $*" >&2; tail -n 30 "$LOG" | sed 's/^/  | /' >&2; exit 1
  fi
}
stored() { "$CASK" --store "$1" stats --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["stored_bytes"])'; }
mib() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1048576:.1f}")' "$1"; }

"$CASK" --help >/dev/null 2>"$WORK/build.log" || { cat "$WORK/build.log"; die "could not build cask"; }
echo "== cask layout benchmark, $(date -Is) =="
echo "host: $(uname -n), $(nproc) cores, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cask: $root @ $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)')"
echo "data: $A ($(sfdisk -d "$A" 2>/dev/null | grep -o 'start= *[0-9]*' | head -1 | tr -d ' '))"
echo "      $B ($(sfdisk -d "$B" 2>/dev/null | grep -o 'start= *[0-9]*' | head -1 | tr -d ' '))"
echo

echo "a: bookworm-minbase.raw alone"
mkdir -p "$WORK/a" "$WORK/b" "$WORK/c" "$WORK/d1" "$WORK/d2"   # explicit stores must exist
q "$CASK" --store "$WORK/a" import "$A" a
SA=$(stored "$WORK/a")
echo "b: bookworm-minbase.raw + bookworm-minbase-63.raw"
q "$CASK" --store "$WORK/b" import "$A" a
q "$CASK" --store "$WORK/b" import "$B" b
SB=$(stored "$WORK/b")
"$CASK" --store "$WORK/b" info b --json | python3 -c '
import json, sys
print("   layout of bookworm-minbase-63 (offset+length/block size):",
      ", ".join(str(e["offset"]) + "+" + str(e["length"]) + "/" + str(e["block_size"]) for e in json.load(sys.stdin)["layout"]))'
q "$CASK" --store "$WORK/b" export b "$WORK/b.raw"
cmp "$B" "$WORK/b.raw" || die "export of bookworm-minbase-63 differs from the source"
rm -f "$WORK/b.raw"
echo "   (verified: the sector-63 image exports byte-identical)"
rm -rf "$WORK/a"
echo "c: both with --whole-disk"
q "$CASK" --store "$WORK/c" import --whole-disk "$A" a
q "$CASK" --store "$WORK/c" import --whole-disk "$B" b
SC=$(stored "$WORK/c")
rm -rf "$WORK/b" "$WORK/c"
echo "d: --fs-aware, bookworm-minbase.raw alone, then both"
q "$CASK" --store "$WORK/d1" import --fs-aware "$A" a
SD1=$(stored "$WORK/d1")
q "$CASK" --store "$WORK/d2" import --fs-aware "$A" a
q "$CASK" --store "$WORK/d2" import --fs-aware "$B" b
SD2=$(stored "$WORK/d2")
rm -rf "$WORK/d1" "$WORK/d2"
echo

set +e
python3 - "$SA" "$SB" "$SC" "$SD1" "$SD2" <<'PY'
import sys
a, b, c, d1, d2 = (int(x) for x in sys.argv[1:])
MiB = 1048576
rows = [
    ("a: bookworm-minbase.raw alone", a, "", "", ""),
    ("b: + bookworm-minbase-63.raw (partition-aware)", b, b / a, "<= 1.10", "MET" if b / a <= 1.10 else "MISSED"),
    ("c: both, --whole-disk (fixed 4 KiB from offset 0)", c, c / a, "about 2", "MET" if 1.8 <= c / a <= 2.2 else "MISSED"),
    ("d1: bookworm-minbase.raw alone, --fs-aware", d1, d1 / a, "(info)", ""),
    ("d2: both, --fs-aware", d2, d2 / d1, "(info: / d1)", ""),
]
head = ("case", "stored_bytes", "ratio to a", "target", "result")
cells = [(r[0], f"{r[1] / MiB:.1f} MiB", "" if r[2] == "" else f"{r[2]:.3f}", r[3], r[4]) for r in rows]
w = [max(len(x[i]) for x in cells + [head]) for i in range(5)]
fmt = lambda r: " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r))
print("RESULTS (stats stored_bytes of a fresh store per case)")
print(fmt(head)); print("-+-".join("-" * x for x in w))
for r in cells: print(fmt(r))
missed = [r[0] for r in rows if r[4] == "MISSED"]
print("targets missed: " + (", ".join(missed) if missed else "none"))
sys.exit(3 if missed else 0)
PY
rc=$?
set -e
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || die "computing the table failed"
if [ "$rc" -eq 3 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then exit 3; fi
exit 0
