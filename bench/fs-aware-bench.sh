#!/usr/bin/env bash
# fs-aware-bench.sh: what `cask import --fs-aware` saves on an ext4 image whose free blocks hold
# deleted data (issue 4, DESIGN.md "Partition- and file-system-aware encoding").
#
#   bench/fs-aware-bench.sh      (env: BENCH_WORK=/tmp/cask-fs-aware-bench CASK_FIXTURES=~/.cache/cask-fixtures
#                                 FS_SIZE=640M, BENCH_KEEP=1 keeps the work dir, BENCH_STRICT=1 exits 3 when
#                                 the target is missed)
#
# Data, built here with e2fsprogs (no mount needed):
#   clean  mkfs.ext4 -d of the bookworm-minbase root file system (~200 MiB of files) into FS_SIZE
#   dirty  the same, then a file of random bytes filling 90 % of the free space is written into it
#          with debugfs and deleted again: the same files, but the free blocks hold old data
#   recycled       random bytes in every block first, then mkfs.ext4 -E nodiscard -d (a reused
#                  volume): the free blocks, most of them in groups mkfs left BLOCK_UNINIT, hold old
#                  data; lazy_itable_init=0 (mkfs writes the inode tables, as clean's are)
#   recycled-lazy  the same with lazy_itable_init=1 (mkfs's default on a block device): the inode
#                  tables of unused groups keep old data too until the kernel zeroes them
# Each import goes into a fresh store; `cask stats --json` stored_bytes is compared:
#   dirty --fs-aware / clean --fs-aware      target <= 1.05
#   recycled --fs-aware / clean --fs-aware   target <= 1.05
#   recycled-lazy --fs-aware                 for scale (old inode tables are used blocks: stored)
#   dirty, recycled without --fs-aware       for scale (the old data is stored)
#   clean without --fs-aware                 for scale
# The dirty and recycled --fs-aware exports are checked with e2fsck -fn. Space is deterministic: one run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
CASK="$root/cask"
WORK=${BENCH_WORK:-/tmp/cask-fs-aware-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
ROOTFS="$FIX/rootfs-bookworm-minbase"
FS_SIZE=${FS_SIZE:-640M}

die() { echo "fs-aware-bench: error: $*" >&2; exit 1; }
[ -d "$ROOTFS" ] || die "$ROOTFS missing; build the fixtures with /work/shared/fixtures/build-images.sh $FIX"
for t in mkfs.ext4 debugfs dumpe2fs e2fsck; do command -v "$t" >/dev/null || die "$t missing (apt-get install e2fsprogs)"; done

mkdir -p "$here/results"
result="$here/results/fs-aware-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$result") 2>&1
tee_pid=$!

if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -f "$WORK/.cask-bench" ]; then
  die "work dir $WORK exists, is not empty and was not made by this script; set BENCH_WORK"
fi
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "fs-aware-bench: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || echo "fs-aware-bench: FAILED (exit $rc)"
  echo "fs-aware-bench: full output in $result"
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
    echo "fs-aware-bench: command failed: $*" >&2; tail -n 30 "$LOG" | sed 's/^/  | /' >&2; exit 1
  fi
}
stored() { "$CASK" --store "$1" stats --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["stored_bytes"])'; }
field() { dumpe2fs -h "$1" 2>/dev/null | sed -n "s/^$2:[[:space:]]*//p"; }

"$CASK" --help >/dev/null 2>"$WORK/build.log" || { cat "$WORK/build.log"; die "could not build cask"; }
echo "== cask fs-aware benchmark, $(date -Is) =="
echo "host: $(uname -n), $(nproc) cores, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cask: $root @ $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)')"
echo "tools: $(mke2fs -V 2>&1 | head -1)"
echo "data: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1)) in a $FS_SIZE ext4 image, 4 KiB blocks"

CLEAN="$WORK/clean.img"; DIRTY="$WORK/dirty.img"; RECYCLED="$WORK/recycled.img"; RECYCLED_LAZY="$WORK/recycled-lazy.img"
mkimg() { # IMG [EXTENDED-OPTIONS]: on zeros, unless IMG holds old data (mkold)
  [ -f "$1" ] || truncate -s "$FS_SIZE" "$1"
  q mkfs.ext4 -q -F -b 4096 -U clear -E "hash_seed=00000000-0000-0000-0000-000000000000${2:+,$2}" -d "$ROOTFS" "$1"
}
mkold() { # IMG LAZY: random bytes everywhere, then mkfs without discard
  rm -f "$1"; head -c "$(numfmt --from=iec "$FS_SIZE")" /dev/urandom >"$1"
  mkimg "$1" "nodiscard,lazy_itable_init=$2,lazy_journal_init=0"
}
mkimg "$CLEAN" "lazy_itable_init=0,lazy_journal_init=0"
mkimg "$DIRTY" "lazy_itable_init=0,lazy_journal_init=0"
mkold "$RECYCLED" 0
mkold "$RECYCLED_LAZY" 1
q e2fsck -fn "$RECYCLED"
q e2fsck -fn "$RECYCLED_LAZY"
echo "recycled: $FS_SIZE of random bytes, then mkfs.ext4 -E nodiscard -d (lazy_itable_init=0; recycled-lazy: =1);" \
     "$(dumpe2fs "$RECYCLED" 2>/dev/null | grep -c 'BLOCK_UNINIT') of $(dumpe2fs "$RECYCLED" 2>/dev/null | grep -c '^Group ') groups BLOCK_UNINIT"
free_blocks=$(field "$DIRTY" "Free blocks")
junk_mib=$(( free_blocks * 4096 * 9 / 10 / 1048576 ))
head -c "${junk_mib}M" /dev/urandom >"$WORK/junk"
q debugfs -w -R "write $WORK/junk junk" "$DIRTY"
echo "dirty: wrote a ${junk_mib} MiB random file into $(( free_blocks * 4096 / 1048576 )) MiB of free space" \
     "($(( $(field "$DIRTY" "Free blocks") * 4096 / 1048576 )) MiB left), then deleted it"
q debugfs -w -R "rm /junk" "$DIRTY"
rm -f "$WORK/junk"
q e2fsck -fn "$CLEAN"
q e2fsck -fn "$DIRTY"
[ "$(field "$CLEAN" "Free blocks")" = "$(field "$DIRTY" "Free blocks")" ] || die "clean and dirty images differ in free blocks"
echo "       allocated on disk: clean $(( $(stat -c %b "$CLEAN") * 512 / 1048576 )) MiB, dirty $(( $(stat -c %b "$DIRTY") * 512 / 1048576 )) MiB"
echo

declare -A S
for case in clean-fs-aware dirty-fs-aware recycled-fs-aware recycled-lazy-fs-aware dirty-plain recycled-plain clean-plain; do
  case $case in
    dirty*) img=$DIRTY ;;
    recycled-lazy*) img=$RECYCLED_LAZY ;;
    recycled*) img=$RECYCLED ;;
    *) img=$CLEAN ;;
  esac
  opt=(); [[ $case == *fs-aware ]] && opt=(--fs-aware)
  printf '+ cask import %s\n' "$case" >>"$LOG"
  mkdir -p "$WORK/$case"
  line=$("$CASK" --store "$WORK/$case" import "${opt[@]}" "$img" x 2>&1) || { echo "$line"; die "import $case failed"; }
  grep -q 'warning' <<<"$line" && { echo "$line"; die "import $case warned"; }
  echo "$case: $line"
  S[$case]=$(stored "$WORK/$case")
  if [ "$case" = dirty-fs-aware ] || [ "$case" = recycled-fs-aware ] || [ "$case" = recycled-lazy-fs-aware ]; then
    q "$CASK" --store "$WORK/$case" export x "$WORK/out.img"
    q e2fsck -fn "$WORK/out.img"
    echo "   (verified: e2fsck -fn is clean on the $case export)"
    rm -f "$WORK/out.img"
  fi
  rm -rf "${WORK:?}/$case"
done
echo

set +e
python3 - "${S[clean-fs-aware]}" "${S[dirty-fs-aware]}" "${S[recycled-fs-aware]}" "${S[recycled-lazy-fs-aware]}" \
          "${S[dirty-plain]}" "${S[recycled-plain]}" "${S[clean-plain]}" <<'PY'
import sys
cf, df, rf, rl, dp, rp, cp = (int(x) for x in sys.argv[1:])
MiB = 1048576
rows = [
    ("clean image, --fs-aware", cf, "", "", ""),
    ("dirty image, --fs-aware", df, df / cf, "<= 1.05", "MET" if df / cf <= 1.05 else "MISSED"),
    ("recycled image, --fs-aware", rf, rf / cf, "<= 1.05", "MET" if rf / cf <= 1.05 else "MISSED"),
    ("recycled image, lazy_itable_init=1, --fs-aware", rl, rl / cf, "(info)", ""),
    ("dirty image, without --fs-aware (scale)", dp, dp / cf, "(info)", ""),
    ("recycled image, without --fs-aware (scale)", rp, rp / cf, "(info)", ""),
    ("clean image, without --fs-aware (scale)", cp, cp / cf, "(info)", ""),
]
head = ("import", "stored_bytes", "ratio to clean --fs-aware", "target", "result")
cells = [(r[0], f"{r[1] / MiB:.1f} MiB", "" if r[2] == "" else f"{r[2]:.3f}", r[3], r[4]) for r in rows]
w = [max(len(x[i]) for x in cells + [head]) for i in range(5)]
fmt = lambda r: " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r))
print("RESULTS (stats stored_bytes of a fresh store per import)")
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
