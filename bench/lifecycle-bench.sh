#!/usr/bin/env bash
# lifecycle-bench.sh: "a simulated month in minutes" (the lifecycle issue's benchmark).
#
#   bench/lifecycle-bench.sh              # the default run: 20 clones, 720 simulated hours (~30-40 min here)
#   QUICK=1 bench/lifecycle-bench.sh      # smoke test: 4 clones, 60 simulated hours (~5 min; 10+ when the machine is busy)
#
# What it does. The four fixture images (../shared/fixtures/build-images.sh, cached in
# ~/.cache/cask-fixtures) are imported into a fresh store and CLONES clones are made of them
# (round robin) and served by one `cask serve`. Then, for every simulated hour:
#   1. fio (nbd engine) writes WRITE_KIB of new data into each clone, 64 KiB random writes inside a
#      HOT_MIB region at 1 GiB (the part of a disk a VM keeps rewriting, so that old versions hold
#      data nothing newer does); --refill_buffers --randrepeat=0, COMPRESS_PCT % compressible,
#      DEDUPE_PCT % duplicates of earlier blocks. Each clone's client leaves, and the server makes
#      its automatic checkpoint (an `auto` version): one version per clone per simulated hour.
#   2. The same history goes to restic and borg: the hot region of each clone's new version is read
#      back through the server (`vm/NN@latest`, python3-libnbd) into a copy of the disk kept as
#      files: the part before the hot region, the hot region as PIECE_MIB pieces, the part after it
#      (files that did not change keep their mtime, so restic's and borg's files caches skip them,
#      as changed-block tracking would: otherwise each tool would re-read 2 GiB per disk per hour);
#      then one `restic backup --time` and one `borg create --timestamp` of all disks at the
#      simulated hour (in parallel, untimed, overlapping the next hour's fio).
#   3. `cask prune` (the default policy: keep-within 2h, hourly 48, daily 30, weekly 8, monthly 12),
#      every PRUNE_EVERY hours and at every maintenance point, alongside step 2. (`serve` prunes
#      hourly, but only images it has open, and these clients leave every hour. Pruning every 6 hours
#      keeps the same versions at each point, the rules being the same; it is for speed: a `cask
#      prune` that removes versions walks every tree to print freed_bytes, ~6.5 s of CPU at 1,100 versions.)
# Every GC_EVERY simulated hours (a "maintenance point"; default daily):
#   - `cask stats --json`; an fio latency window of LAT_SECONDS without GC; then `cask gc` with the
#     same fio latency load running until gc exits (one fio run for both windows, each I/O's latency
#     logged with its time, so that neither window holds fio's start); `cask stats --json` again. The latency load:
#     on LAT_CLONES clones, 4 KiB random reads over the whole disk (LAT_READ_IOPS each) and 4 KiB
#     random writes into the hot region (LAT_WRITE_IOPS each), queue depth 1; p99 of fio's clat.
#   - `restic forget` (same policy) + `restic prune`, and `borg prune` (same policy) + `borg compact`,
#     each timed, and the repositories' sizes (du: allocated bytes, so punched holes count as freed).
#   - one row: versions, stored_bytes before/after GC against live_bytes, GC seconds, p99s,
#     restic/borg sizes and times, the load (1-min load average, and the CPU others used during one
#     idle second of this script: marked "disturbed" when >= 0.5 core).
# At the end: medians over the points and the issue's targets as ratios:
#   store after GC <= 1.10 x live_bytes; a GC pass <= 0.2 x restic prune (`cask prune`, hourly, is
#   restic forget's counterpart; forget + prune is shown too); NBD p99 during GC <= 1.5 x without.
#   Output: terminal and bench/results/lifecycle-bench-<date>.txt.
#
# Simulated time: every cask process runs with -Dcask.now=@$WORK/now (dev.cask.common.Clocks), a
# file holding the simulated time, which the script sets to T0 + h hours before hour h: versions
# are stamped with it and prune counts back from it, so retention thins a month's checkpoints as a
# month would. restic's keep-within counts from the newest snapshot (the simulated hour); borg's
# from the wall clock, so borg prune runs under faketime at the simulated hour. TZ=UTC for all.
# Policies differ in details: restic counts a period already kept by keep-within again for hourly
# (keeps ~2 fewer), borg keeps the oldest archive when a rule's count is not reached.
#
# Knobs (env): QUICK=1, CLONES=20, HOURS=720, WRITE_KIB=1024 (per clone per hour), HOT_MIB=4,
#   PIECE_MIB=4, COMPRESS_PCT=50, DEDUPE_PCT=20, GC_EVERY=24, PRUNE_EVERY=6, LAT_SECONDS=5,
#   LAT_CLONES=4, LAT_READ_IOPS=100, LAT_WRITE_IOPS=50, PEERS=1 (0: cask only),
#   GC_VIA=socket (the maintenance point's gc is asked of the server through its control socket, as
#   `cask gc` does, but by python3, started and connected before the latency load, so that the
#   window "during gc" (from its request to the server's reply, timed by the client) holds the gc
#   and neither a JVM's nor a Python's start beside the clients (up to session 21 the window held
#   the client's Python start); GC_VIA=cli runs `cask gc --json`, JVM start included, as sessions up
#   to 11 measured),
#   GC_PACED=0 (1: that gc is paced as the server's background gc is, `gc paced`: it rests three
#   times as long as each step took, 199 times while the server's clients are busy, as they are
#   throughout the window, which is therefore about 200 times the gc's work; GC_VIA=cli: `cask gc
#   --paced`, which the server runs the same way),
#   GC_CONTROL=0 (1: every other point, from the second on, is a control: the same client and the
#   same fio run, but the client sends nothing and only waits as long as the previous point's gc
#   took; its window is cut and reported like a gc window ("ctl"), so the summary shows what this
#   way of measuring gives when the server does nothing extra: the floor of the p99 ratio),
#   CLI_GC=1 (0: no `cask gc` from the CLI: give the server its own, e.g. SERVE_ARGS="--gc-interval 1m",
#   where serve has it), SERVE_ARGS= (extra `cask serve` options), BENCH_WORK=/var/tmp/cask-lifecycle-bench
#   (deleted at the end unless BENCH_KEEP=1), CASK_FIXTURES=~/.cache/cask-fixtures.
# Needs fio, restic, borgbackup, faketime, python3-libnbd (Debian packages; installed when missing, as root).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

if [ "${QUICK:-0}" = 1 ]; then
  : "${CLONES:=4}" "${HOURS:=60}" "${GC_EVERY:=12}" "${LAT_SECONDS:=3}" "${LAT_CLONES:=2}"
fi
CLONES=${CLONES:-20}; HOURS=${HOURS:-720}; WRITE_KIB=${WRITE_KIB:-1024}; HOT_MIB=${HOT_MIB:-4}
PIECE_MIB=${PIECE_MIB:-4}; COMPRESS_PCT=${COMPRESS_PCT:-50}; DEDUPE_PCT=${DEDUPE_PCT:-20}
GC_EVERY=${GC_EVERY:-24}; PRUNE_EVERY=${PRUNE_EVERY:-6}; LAT_SECONDS=${LAT_SECONDS:-5}
LAT_CLONES=${LAT_CLONES:-4}; LAT_READ_IOPS=${LAT_READ_IOPS:-100}; LAT_WRITE_IOPS=${LAT_WRITE_IOPS:-50}
PEERS=${PEERS:-1}; CLI_GC=${CLI_GC:-1}; SERVE_ARGS=${SERVE_ARGS:-}; GC_VIA=${GC_VIA:-socket}; GC_PACED=${GC_PACED:-0}
GC_CONTROL=${GC_CONTROL:-0}
WORK=${BENCH_WORK:-/var/tmp/cask-lifecycle-bench}
FIX=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
IMAGES=(bookworm-minbase bookworm-server trixie-minbase bookworm-minbase-63)
T0=1736121600            # 2025-01-06T00:00:00Z, a Monday: simulated hour h is T0 + h * 3600
HOT_OFF=$((1 << 30))     # the hot region starts at 1 GiB
export TZ=UTC

die() { echo "lifecycle-bench: error: $*" >&2; exit 1; }
for v in CLONES HOURS WRITE_KIB HOT_MIB PIECE_MIB GC_EVERY PRUNE_EVERY LAT_SECONDS LAT_CLONES LAT_READ_IOPS LAT_WRITE_IOPS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $COMPRESS_PCT =~ ^[0-9]+$ && $COMPRESS_PCT -le 100 && $DEDUPE_PCT =~ ^[0-9]+$ && $DEDUPE_PCT -le 100 ]] \
  || die "COMPRESS_PCT and DEDUPE_PCT are percentages"
[ $((HOT_MIB % PIECE_MIB)) -eq 0 ] || die "HOT_MIB must be a multiple of PIECE_MIB"
[ "$LAT_CLONES" -le "$CLONES" ] || LAT_CLONES=$CLONES
[ "$GC_CONTROL" = 0 ] || [ "$GC_VIA" = socket ] || die "GC_CONTROL=1 needs GC_VIA=socket"
[ "$((WRITE_KIB % 64))" -eq 0 ] || die "WRITE_KIB must be a multiple of 64 (fio writes 64 KiB blocks)"

# ---- output ---------------------------------------------------------------------------------------
mkdir -p "$here/results"
result="$here/results/lifecycle-bench-$(date +%Y-%m-%dT%H%M%S)$( [ "${QUICK:-0}" = 1 ] && echo -quick || true).txt"
exec > >(tee "$result") 2>&1
tee_pid=$!

# ---- work dir -------------------------------------------------------------------------------------
if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ] && [ ! -f "$WORK/.lifecycle-bench" ]; then
  die "work dir $WORK exists, is not empty and was not made by this script; set BENCH_WORK"
fi
pids=()
finish() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "lifecycle-bench: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  [ "$rc" -eq 0 ] || echo "lifecycle-bench: FAILED (exit $rc); the end of $WORK/commands.log was printed above"
  echo "lifecycle-bench: output in $result"
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
rm -rf "$WORK"; mkdir -p "$WORK"; touch "$WORK/.lifecycle-bench"
LOG="$WORK/commands.log"; : >"$LOG"
DATA="$WORK/data.tsv"; : >"$DATA"
S="$WORK/store"; mkdir -p "$S"

# ---- tools ----------------------------------------------------------------------------------------
apt_updated=0
need() { # COMMAND DEBIAN_PACKAGE [TEST]
  if [ -n "${3:-}" ]; then eval "$3" >/dev/null 2>&1 && return 0; else command -v "$1" >/dev/null && return 0; fi
  echo "lifecycle-bench: $1 missing, installing Debian package $2"
  [ "$(id -u)" -eq 0 ] || die "$1 is missing and installing $2 needs root (apt-get install $2)"
  if [ "$apt_updated" = 0 ]; then apt-get update -qq || die "apt-get update failed"; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null || die "apt-get install $2 failed"
}
PY=/usr/bin/python3   # Debian's: python3-libnbd is installed for it
need fio fio; need "$PY" python3; need nbd python3-libnbd "$PY -c 'import nbd'"
if [ "$PEERS" = 1 ]; then need restic restic; need borg borgbackup; need faketime faketime; fi

q() { # CMD...: output appended to the command log; on failure the log's tail and exit 1
  printf '+ %s %s\n' "$(date +%T.%3N)" "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    echo "lifecycle-bench: command failed: $*" >&2
    tail -n 30 "$LOG" | sed 's/^/  | /' >&2
    exit 1
  fi
}
now() { date +%s.%N; }
sub() { "$PY" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$1" "$2"; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$DATA"; }   # POINT METRIC VALUE
set_clock() { # HOUR: the simulated time every cask process reads (written whole, then renamed)
  echo $((T0 + $1 * 3600)) >"$WORK/now.tmp"; mv -f "$WORK/now.tmp" "$WORK/now"
}
sim_time() { date -u -d "@$((T0 + $1 * 3600))" "+$2"; }

# ---- fixtures -------------------------------------------------------------------------------------
missing=0; for i in "${IMAGES[@]}"; do [ -f "$FIX/$i.raw" ] || missing=1; done
if [ "$missing" = 1 ]; then
  script="$root/../shared/fixtures/build-images.sh"; [ -f "$script" ] || script="$root/scripts/build-images.sh"
  echo "lifecycle-bench: building the fixture images into $FIX with $script ..."
  bash "$script" "$FIX" || die "$script failed"
fi

# ---- cask under test: a copy of the launcher and jar, so rebuilds in the tree do not change it mid-run
"$root/cask" --help >/dev/null 2>"$WORK/build.log" || { cat "$WORK/build.log"; die "could not build cask"; }
mkdir -p "$WORK/cask/scripts" "$WORK/cask/cask-cli/target"
cp "$root/cask" "$WORK/cask/cask"; cp "$root/scripts/jdk.sh" "$WORK/cask/scripts/jdk.sh"
cp "$root/cask-cli/target/cask.jar" "$WORK/cask/cask-cli/target/cask.jar"
CASK="$WORK/cask/cask"
export CASK_JAVA_OPTS="${CASK_JAVA_OPTS:-} -Dcask.now=@$WORK/now"
cask() { q "$CASK" --store "$S" "$@"; }
set_clock -1
"$CASK" --version >/dev/null 2>&1 || true   # makes the start-up cache, untimed

echo "== cask lifecycle benchmark (a simulated month in minutes), $(date -Is) =="
echo "host: $(uname -n), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, load avg $(cut -d' ' -f1-3 /proc/loadavg)"
"$here/page-cache-note.sh"
echo "cask: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)'), $("$CASK" --version 2>&1 | head -1)"
echo "tools: $(fio --version)$( [ "$PEERS" = 1 ] && echo "; $(restic version | cut -d' ' -f1-2); $(borg --version)")"
echo "scale: CLONES=$CLONES HOURS=$HOURS ($(sim_time 0 '%F %H:%M') to $(sim_time "$HOURS" '%F %H:%M') UTC, simulated)"
echo "       WRITE_KIB=$WRITE_KIB per clone per hour into HOT_MIB=$HOT_MIB at 1 GiB, COMPRESS_PCT=$COMPRESS_PCT DEDUPE_PCT=$DEDUPE_PCT"
echo "       GC_EVERY=$GC_EVERY h, PRUNE_EVERY=$PRUNE_EVERY h, CLI_GC=$CLI_GC GC_VIA=$GC_VIA GC_PACED=$GC_PACED, LAT_SECONDS=$LAT_SECONDS on LAT_CLONES=$LAT_CLONES"
echo "       (reads ${LAT_READ_IOPS}/s, writes ${LAT_WRITE_IOPS}/s each), PEERS=$PEERS, PIECE_MIB=$PIECE_MIB, SERVE_ARGS='$SERVE_ARGS'"
echo "work dir: $WORK"
echo

# ---- the store: fixture images, clones ------------------------------------------------------------
t=$(now)
args=(); for i in "${IMAGES[@]}"; do args+=("$FIX/$i.raw" "base/$i"); done
cask import "${args[@]}"
names=()
for c in $(seq "$CLONES"); do
  n=$(printf 'vm/%02d' "$c"); names+=("$n")
  cask clone "base/${IMAGES[$(((c - 1) % ${#IMAGES[@]}))]}" "$n"
done
echo "store: 4 images imported, $CLONES clones made in $(sub "$t" "$(now)") s"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
"$CASK" --store "$S" serve --listen "127.0.0.1:$PORT" --checkpoint-interval 0 --prune-interval 0 $SERVE_ARGS \
  >"$WORK/serve.log" 2>&1 &
pids+=($!); SERVE_PID=$!
for _ in $(seq 300); do grep -q 'cask: serving' "$WORK/serve.log" && break; kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
grep -q 'cask: serving' "$WORK/serve.log" || { cat "$WORK/serve.log"; die "cask serve did not start"; }

wait_checkpoints() { # until no journal is left: the checkpoints of the clients that left are committed
  local i
  for i in $(seq 3000); do
    compgen -G "$S/journals/*.journal-*" >/dev/null || return 0
    kill -0 "$SERVE_PID" 2>/dev/null || die "cask serve exited (see $WORK/serve.log)"
    sleep 0.05
  done
  die "checkpoints did not finish in 150 s: $(ls "$S/journals")"
}
uri() { echo "nbd://127.0.0.1:$PORT/$1"; }
mix=(--refill_buffers --randrepeat=0 --buffer_compress_percentage="$COMPRESS_PCT" --dedupe_percentage="$DEDUPE_PCT")

# ---- the peers' copy of the disks, and the extractor ----------------------------------------------
cat >"$WORK/pieces.py" <<'EOF'
# pieces.py init SRC DIR OFF LEN PIECE: SRC as files in DIR: a = [0, OFF), pNNNNN = the PIECE-byte
#   pieces of [OFF, OFF+LEN), z = the rest (sparse: holes stay holes; the bytes are SRC's)
# pieces.py hot PORT OFF LEN PIECE ROOT NAME...: reads [OFF, OFF+LEN) of NAME@latest from the cask
#   server into ROOT/<NAME, / as ->/pNNNNN, rewriting (new file, renamed) only pieces that changed
import os, sys
def put(path, data, size):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        if data.count(0) != len(data): f.write(data)
        f.truncate(size)
    os.replace(tmp, path)
def copy(fd, start, end, path):  # [start, end) of fd into path, holes skipped
    with open(path + ".tmp", "wb") as f:
        off = start
        while off < end:
            try: off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError: break
            if off >= end: break
            stop = min(end, os.lseek(fd, off, os.SEEK_HOLE))
            while off < stop:
                n = min(stop - off, 8 << 20)
                f.seek(off - start); f.write(os.pread(fd, n, off)); off += n
        f.truncate(end - start)
    os.replace(path + ".tmp", path)
if sys.argv[1] == "init":
    src, dst, hot, length, piece = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    os.makedirs(dst, exist_ok=True)
    fd = os.open(src, os.O_RDONLY); size = os.fstat(fd).st_size
    copy(fd, 0, hot, os.path.join(dst, "a"))
    for p in range(hot, hot + length, piece): copy(fd, p, p + piece, os.path.join(dst, f"p{p // piece:05d}"))
    copy(fd, hot + length, size, os.path.join(dst, "z"))
else:
    import nbd
    port, off, length, piece, root = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    changed = 0
    for name in sys.argv[7:]:
        h = nbd.NBD(); h.set_export_name(name + "@latest"); h.connect_tcp("127.0.0.1", port)
        for p in range(off, off + length, piece):
            data = h.pread(piece, p)
            path = os.path.join(root, name.replace("/", "-"), f"p{p // piece:05d}")
            with open(path, "rb") as f: old = f.read()
            if old != data: put(path, data, piece); changed += 1
        h.shutdown()
    print(changed)
EOF
DISKS="$WORK/disks"
export RESTIC_PASSWORD=lifecycle-bench RESTIC_REPOSITORY="$WORK/restic" RESTIC_CACHE_DIR="$WORK/restic-cache"
export BORG_BASE_DIR="$WORK/borg-home" BORG_REPO="$WORK/borg"
KEEP=(--keep-within 2h --keep-hourly 48 --keep-daily 30 --keep-weekly 8 --keep-monthly 12)
BORG_KEEP=(--keep-within 2H --keep-hourly 48 --keep-daily 30 --keep-weekly 8 --keep-monthly 12)   # borg: H is hours
if [ "$PEERS" = 1 ]; then
  t=$(now)
  for i in "${IMAGES[@]}"; do
    q "$PY" "$WORK/pieces.py" init "$FIX/$i.raw" "$WORK/template/$i" "$HOT_OFF" $((HOT_MIB << 20)) $((PIECE_MIB << 20))
  done
  mkdir -p "$DISKS"
  for c in $(seq "$CLONES"); do
    q cp -a --sparse=always "$WORK/template/${IMAGES[$(((c - 1) % ${#IMAGES[@]}))]}" "$DISKS/vm-$(printf %02d "$c")"
  done
  rm -rf "$WORK/template"
  q restic init; q borg init --encryption=none
  echo "peers: each disk as files (the hot region in $((HOT_MIB / PIECE_MIB)) pieces), repositories made, in $(sub "$t" "$(now)") s"
fi

# ---- load: the CPU others use while this script idles ---------------------------------------------
others_cpu() { # cores busy during one second in which this script and its server do nothing
  "$PY" - <<'EOF'
import time
def busy():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)
b0, t0 = busy(); time.sleep(1.0); b1, t1 = busy()
import os
print(f"{(b1 - b0) / max(1, t1 - t0) * os.cpu_count():.2f}")
EOF
}

# ---- the latency window: fio on LAT_CLONES clones, reads all over the disk, writes in the hot region
lat_args() { # OUT RUNTIME_SECONDS: the fio command line into LAT
  LAT=(--output-format=json --output="$1" --ioengine=nbd --time_based --runtime="$2" --group_reporting
           --bs=4k --iodepth=1)
  local c
  for c in $(seq "$LAT_CLONES"); do
    local n; n=$(printf 'vm/%02d' "$c")
    LAT+=(--name="r$c" --uri="$(uri "$n")" --rw=randread --offset=0 --size=2G --rate_iops="$LAT_READ_IOPS")
    LAT+=(--name="w$c" --uri="$(uri "$n")" --rw=randwrite --offset="$HOT_OFF" --size="${HOT_MIB}M"
        --rate_iops="$LAT_WRITE_IOPS" "${mix[@]}")
  done
}
p99() { # FIO_JSON -> "read_p99_ms write_p99_ms ios"
  "$PY" - "$1" <<'EOF'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index("{"):])["jobs"][0]
def p(d):
    pc = d["clat_ns"].get("percentile", {})
    return f'{pc.get("99.000000", 0) / 1e6:.3f}'
print(p(j["read"]), p(j["write"]), j["read"]["total_ios"] + j["write"]["total_ios"])
EOF
}
stats() { # POINT SUFFIX: cask stats --json into the data file
  "$CASK" --store "$S" stats --json >"$WORK/stats.json" 2>>"$LOG" || die "cask stats failed"
  "$PY" - "$WORK/stats.json" "$1" "$2" >>"$DATA" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("stored_bytes", "live_bytes", "reclaimable_bytes"): print(f"{sys.argv[2]}\t{k}_{sys.argv[3]}\t{j[k]}")
EOF
}
count_versions() { # versions in the catalog (read-only)
  "$PY" -c 'import sqlite3, sys; c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True); print(c.execute("select count(*) from versions").fetchone()[0])' "$S/catalog.db" 2>/dev/null || echo "?"
}

# ---- a maintenance point --------------------------------------------------------------------------
point() { # HOUR
  local h=$1 d
  d=$(sim_time "$h" '%F %H:00')
  record "$h" when "$d"
  record "$h" load1 "$(cut -d' ' -f1 /proc/loadavg)"
  record "$h" others_cpu "$(others_cpu)"
  record "$h" versions "$(count_versions)"
  stats "$h" before
  if [ "$CLI_GC" != 1 ]; then
    lat_args "$WORK/lat-base.json" "$LAT_SECONDS"
    fio "${LAT[@]}" 2>>"$LOG" || die "fio (latency, no GC) failed"
    read -r r w n < <(p99 "$WORK/lat-base.json"); record "$h" p99r_nogc "$r"; record "$h" p99w_nogc "$w"; record "$h" ios_nogc "$n"
    wait_checkpoints
  else
    # one fio run per point: LAT_SECONDS without gc, then the gc, then a fifth of a second; every
    # I/O's latency is logged with its time, and both windows are cut out of the same run, so that
    # neither holds fio's start (connections, first requests: a short window made of little else
    # read as a slow gc) and both see the same clients. fio stops on SIGINT and writes its logs.
    rm -f "$WORK"/lat_*.log
    lat_args "$WORK/lat.json" 3600
    LAT=(--write_lat_log="$WORK/lat" --log_avg_msec=0 "${LAT[@]}") # global options go before the first job
    local tf t0 t1 tk gp= ctl=0 win=gc
    # a control point (GC_CONTROL=1): odd-numbered points from the second on wait as long as the last gc took
    if [ "$GC_CONTROL" = 1 ] && [ $((npoint % 2)) = 1 ]; then ctl=$last_gc_wall; win=ctl; fi
    npoint=$((npoint + 1))
    if [ "$GC_VIA" = socket ]; then
      # the client starts, connects and waits before fio does, so that neither window holds a
      # Python start; it times the gc itself, from its request to the server's reply
      rm -f "$WORK/gc.go" "$WORK/gc.times"; mkfifo "$WORK/gc.go"
      "$PY" - "$S" "$WORK/gc.json" "$GC_PACED" "$WORK/gc.go" "$WORK/gc.times" "$ctl" 2>>"$LOG" <<'EOF' & gp=$!
import glob, json, socket, sys, time
# what `cask gc` sends to a running server (docs/format.md: the control socket), without a JVM start
path = sorted(glob.glob(sys.argv[1] + "/serve.*.sock"))[0]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
replies = s.makefile(encoding="utf-8")
open(sys.argv[4]).read()  # the fifo: "go" once the window without gc is over
t0 = time.time()
if float(sys.argv[6]) > 0:  # a control point: no gc, the same wait
    time.sleep(float(sys.argv[6]))
    json.dump({"control": True}, open(sys.argv[2], "w"))
    open(sys.argv[5], "w").write(f"{t0:.6f} {time.time():.6f}\n")
    sys.exit(0)
s.sendall(b"gc paced\n" if sys.argv[3] == "1" else b"gc\n")
for line in replies:
    line = line.rstrip("\n")
    if line.startswith("error"):
        sys.exit("gc: " + line)
    if line == "ok" or line.startswith("ok "):
        t1 = time.time()
        def value(v):
            if v in ("true", "false"): return v == "true"
            for t in (int, float):
                try: return t(v)
                except ValueError: pass
            return v
        json.dump({k: value(v) for k, v in (w.split("=", 1) for w in line.split()[1:])}, open(sys.argv[2], "w"))
        open(sys.argv[5], "w").write(f"{t0:.6f} {t1:.6f}\n")
        sys.exit(0)
sys.exit("gc: the server closed the control socket without a reply")
EOF
      sleep 0.5 # its start is over before fio's
    fi
    tf=$(now)
    fio "${LAT[@]}" 2>>"$LOG" & local fp=$!
    sleep "$((LAT_SECONDS + 1))"
    if [ "$GC_VIA" = socket ]; then
      echo go 1<>"$WORK/gc.go" # read-write: never blocks, also when the client died
      wait "$gp" || { kill -INT "$fp"; die "gc through the control socket failed (see $LOG)"; }
      read -r t0 t1 < "$WORK/gc.times"
    else
      t0=$(now)
      "$CASK" --store "$S" gc --json $( [ "$GC_PACED" = 1 ] && echo --paced) >"$WORK/gc.json" 2>>"$LOG" || { kill -INT "$fp"; die "cask gc failed (see $LOG)"; }
      t1=$(now)
    fi
    sleep 0.2
    tk=$(now)
    kill -INT "$fp"; wait "$fp" || true
    "$PY" - "$WORK" "$h" "$(sub "$tf" "$t0")" "$(sub "$tf" "$t1")" "$(sub "$tf" "$tk")" "$win" >>"$DATA" <<'EOF'
import glob, math, sys
work, h, t0, t1, tk, win = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
rows = []  # (seconds since fio's jobs started, latency ms, 0 read / 1 write)
for f in glob.glob(work + "/lat_clat.*.log"):
    for line in open(f):
        x = line.split(",")
        if len(x) >= 3: rows.append((int(x[0]) / 1000, int(x[1]) / 1e6, int(x[2])))
if not rows: sys.exit("lifecycle-bench: fio wrote no latency log in " + work)
# fio's clock starts with its jobs, a little after its launch (tf): its last I/O ends at the kill
shift = tk - max(r[0] for r in rows)
windows = {"nogc": [(l, d) for t, l, d in rows if 1.0 <= t + shift < t0 - 0.05],
           win: [(l, d) for t, l, d in rows if t0 <= t + shift <= t1]}
def p99(xs):
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.99 * len(xs)) - 1)] if xs else 0.0
for name, win in windows.items():
    print(f"{h}\tp99r_{name}\t{p99([l for l, d in win if d == 0]):.3f}")
    print(f"{h}\tp99w_{name}\t{p99([l for l, d in win if d == 1]):.3f}")
    print(f"{h}\tios_{name}\t{len(win)}")
    with open(f"{work}/lat-pool-{name}.txt", "a") as out:  # every point's I/Os, for p99s over the whole run
        for l, d in win: out.write(f"{d} {l:.4f}\n")
EOF
    if [ "$win" = ctl ]; then record "$h" ctl_wall "$(sub "$t0" "$t1")"; else record "$h" gc_wall "$(sub "$t0" "$t1")"; last_gc_wall=$(sub "$t0" "$t1"); fi
    "$PY" - "$WORK/gc.json" "$h" >>"$DATA" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("seconds", "bytes_freed", "packs_rewritten", "packs_deleted", "pack_bytes_before", "pack_bytes_after",
          "sweep", "chunks_freed", "chunks_copied", "bytes_punched", "mark_seconds", "sweep_seconds", "compact_seconds", "wait_seconds", "rest_seconds"):
    print(f"{sys.argv[2]}\tgc_{k}\t{j.get(k, '')}")
EOF
    wait_checkpoints
    stats "$h" after
  fi
  record "$h" store_du "$(du -s -B1 "$S" | cut -f1)"
  record "$h" packs "$(find "$S/packs" -name '*.pack' | wc -l)"
  record "$h" last_pack "$(find "$S/packs" -name '*.pack' | sort | tail -1 | xargs stat -c %s)"
  if [ "$PEERS" = 1 ]; then
    local t0
    t0=$(now); q restic forget "${KEEP[@]}"; record "$h" restic_forget "$(sub "$t0" "$(now)")"
    t0=$(now); q restic prune; record "$h" restic_prune "$(sub "$t0" "$(now)")"
    record "$h" restic_du "$(du -s -B1 "$RESTIC_REPOSITORY" | cut -f1)"
    record "$h" restic_snapshots "$(restic snapshots --json 2>>"$LOG" | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))')"
    t0=$(now); q faketime "$(sim_time "$h" '%F %T')" borg prune "${BORG_KEEP[@]}"; record "$h" borg_prune "$(sub "$t0" "$(now)")"
    t0=$(now); q borg compact; record "$h" borg_compact "$(sub "$t0" "$(now)")"
    record "$h" borg_du "$(du -s -B1 "$BORG_REPO" | cut -f1)"
    record "$h" borg_archives "$(borg list --short 2>>"$LOG" | wc -l)"
  fi
  row "$h"
}

# one line per point, from the data file
row() {
  "$PY" - "$DATA" "$1" "$CLONES" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
v = {m: x for p, m, x in rows if p == sys.argv[2]}
def mib(k): return f'{int(v[k]) / 1048576:.0f}' if v.get(k, "").isdigit() else "-"
def g(k): return v.get(k, "-")
ratio = lambda a, b: f'{int(v[a]) / int(v[b]):.3f}' if v.get(a, "").isdigit() and v.get(b, "").isdigit() and int(v[b]) else "-"
flag = " DISTURBED" if float(v.get("others_cpu", 0)) >= 0.5 else ""
print(f'{g("when"):>16} {g("versions"):>6} {mib("stored_bytes_before"):>7} {mib("live_bytes_before"):>7} '
      f'{mib("stored_bytes_after"):>7} {mib("live_bytes_after"):>7} {ratio("stored_bytes_after", "live_bytes_after"):>6} '
      f'{g("gc_seconds"):>6} {g("gc_wall"):>6} {g("p99r_nogc"):>7} {v.get("p99r_gc") or g("p99r_ctl") + "c":>7} {g("p99w_nogc"):>7} {v.get("p99w_gc") or g("p99w_ctl") + "c":>7} '
      f'{mib("restic_du"):>7} {g("restic_snapshots"):>4} {g("restic_forget"):>6} {g("restic_prune"):>6} '
      f'{mib("borg_du"):>7} {g("borg_archives"):>4} {g("borg_prune"):>6} {g("borg_compact"):>6} '
      f'{g("load1"):>5} {g("others_cpu"):>5}{flag}', flush=True)
EOF
}

# ---- the simulated month ---------------------------------------------------------------------------
echo
echo "columns: simulated time; versions in the catalog; cask stored/live MiB before GC, after GC, stored/live after;"
echo "         gc seconds (its --json, and wall with JVM start); p99 ms of reads without/with GC, writes without/with GC;"
echo "         restic MiB, snapshots, forget s, prune s; borg MiB, archives, prune s, compact s; load avg; others' CPU"
printf '%16s %6s %7s %7s %7s %7s %6s %6s %6s %7s %7s %7s %7s %7s %4s %6s %6s %7s %4s %6s %6s %5s %5s\n' \
  sim-time vers stored live stor_a live_a ratio gc_s gc_w r99 r99gc w99 w99gc restic snap forget prune borg arch prune compct load other
fio_hour=(--output-format=json --thread --ioengine=nbd --rw=randwrite --bs=64k --iodepth=4 --offset="$HOT_OFF" --size="${HOT_MIB}M"
          --io_size="${WRITE_KIB}k" "${mix[@]}")
for n in "${names[@]}"; do fio_hour+=(--name="${n//\//-}" --uri="$(uri "$n")"); done
ms() { date +%s%3N; }
bg=()
finish_bg() { local p; for p in "${bg[@]}"; do wait "$p" || die "a background step failed (see above)"; done; bg=(); }
npoint=0; last_gc_wall=0.2
t_start=$(ms); t_fio=0; t_ckpt=0; t_wait=0; t_extract=0; t_points=0; t_initial=0
for h in $(seq 0 $((HOURS - 1))); do
  set_clock "$h"
  t=$(ms)
  fio "${fio_hour[@]}" >"$WORK/fio-hour.json" 2>>"$LOG" || die "fio (hour $h) failed (see $LOG)"
  t1=$(ms); t_fio=$((t_fio + t1 - t))
  wait_checkpoints
  t2=$(ms); t_ckpt=$((t_ckpt + t2 - t1))
  finish_bg   # the previous hour's backups and prune
  t3=$(ms); t_wait=$((t_wait + t3 - t2))
  if [ "$PEERS" = 1 ]; then
    q "$PY" "$WORK/pieces.py" hot "$PORT" "$HOT_OFF" $((HOT_MIB << 20)) $((PIECE_MIB << 20)) "$DISKS" "${names[@]}"
    t_extract=$((t_extract + $(ms) - t3))
    ( cd "$WORK" && q restic backup -q --host bench --time "$(sim_time "$h" '%F %T')" disks ) & bg+=($!)
    ( cd "$WORK" && q borg create --timestamp "$(sim_time "$h" '%FT%T')" "::h$(printf %05d "$h")" disks ) & bg+=($!)
  fi
  at_point=0; if [ $(((h + 1) % GC_EVERY)) -eq 0 ] || [ "$h" -eq $((HOURS - 1)) ]; then at_point=1; fi
  if [ $(((h + 1) % PRUNE_EVERY)) -eq 0 ] || [ "$at_point" = 1 ]; then cask prune --json & bg+=($!); fi
  if [ "$h" -eq 0 ]; then finish_bg; t_initial=$(($(ms) - t3)); fi   # the peers' first backups read every disk whole
  if [ "$at_point" = 1 ]; then
    finish_bg; t4=$(ms); point "$h"; t_points=$((t_points + $(ms) - t4))
  fi
done
t_end=$(ms)
echo
echo "simulated $HOURS hours in $(((t_end - t_start) / 1000)) s: hourly fio $((t_fio / 1000)) s, waiting for checkpoints $((t_ckpt / 1000)) s,"
echo "  waiting for the previous hour's backups and prune $((t_wait / 1000)) s, reading hot regions back for the peers $((t_extract / 1000)) s,"
echo "  the peers' first backups (every disk read whole) $((t_initial / 1000)) s, maintenance points $((t_points / 1000)) s"

# ---- summary ---------------------------------------------------------------------------------------
GC_VIA=$GC_VIA LAT_POOL=$WORK "$PY" - "$DATA" "$CLONES" "$CLI_GC" "$PEERS" <<'EOF'
import os, sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
pts = {}
for p, m, x in rows: pts.setdefault(p, {})[m] = x
P = [pts[k] for k in sorted(pts, key=int)]
def nums(k, f=float): return [f(p[k]) for p in P if p.get(k) not in (None, "", "-", "?")]
def med(k): x = nums(k); return st.median(x) if x else None
clones, cli_gc, peers = int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
print()
print(f"SUMMARY over {len(P)} maintenance points (medians; the last point in brackets)")
last = P[-1]
def show(label, v, unit="", last_v=None):
    if v is None: return
    print(f"  {label:<46} {v:>10.3f} {unit}" + (f"  [{last_v}]" if last_v is not None else ""))
if cli_gc:
    r = [int(p["stored_bytes_after"]) / int(p["live_bytes_after"]) for p in P if p.get("live_bytes_after", "0") not in ("0", "")]
    show("cask stored/live after GC", st.median(r), "x", f'{r[-1]:.3f}, max {max(r):.3f}')
    show("cask stored/live before GC", st.median([int(p["stored_bytes_before"]) / int(p["live_bytes_before"]) for p in P]), "x")
    show("cask stored MiB after GC", med("stored_bytes_after") / 1048576, "MiB", f'{int(last["stored_bytes_after"]) / 1048576:.0f}')
    show("cask live MiB after GC", med("live_bytes_after") / 1048576, "MiB", f'{int(last["live_bytes_after"]) / 1048576:.0f}')
    show("cask gc seconds (--json)", med("gc_seconds"), "s", last.get("gc_seconds"))
    import os
    via = "asked through the control socket" if os.environ.get("GC_VIA") == "socket" else "cask gc, JVM start included"
    show(f"gc wall seconds ({via})", med("gc_wall"), "s", last.get("gc_wall"))
    print(f'  packs at the end: {last["packs"]}; the newest, which compaction never takes (the one being written), '
          f'{int(last["last_pack"]) / 1048576:.0f} MiB; packs rewritten by gc over the run: '
          f'{sum(int(p.get("gc_packs_rewritten") or 0) for p in P)}, deleted: {sum(int(p.get("gc_packs_deleted") or 0) for p in P)}')
if cli_gc:
    print("  gc phases per point (--json): sweep kind, seconds waiting / marking / sweeping / compacting (punching included); chunks freed, copied; MiB punched")
    for k in sorted(pts, key=int):
        p = pts[k]
        print(f'    hour {k:>4}: {p.get("gc_sweep") or "?":<11} {p.get("gc_wait_seconds", "?"):>6} / {p.get("gc_mark_seconds", "?"):>6} / '
              f'{p.get("gc_sweep_seconds", "?"):>6} / {p.get("gc_compact_seconds", "?"):>6} s; {p.get("gc_chunks_freed", "?")} freed, '
              f'{p.get("gc_chunks_copied", "?")} copied; {int(p.get("gc_bytes_punched") or 0) / 1048576:.1f} MiB punched')
    inc = [float(p["gc_seconds"]) for p in P if p.get("gc_sweep") == "incremental"]
    if inc: show("cask gc seconds, incremental sweeps only", st.median(inc), "s", f"{len(inc)} of {len(P)} points")
show("cask store dir MiB (du: packs, index, catalog)", med("store_du") / 1048576, "MiB", f'{int(last["store_du"]) / 1048576:.0f}')
if peers:
    show("restic repo MiB", med("restic_du") / 1048576, "MiB", f'{int(last["restic_du"]) / 1048576:.0f}')
    show("restic prune seconds", med("restic_prune"), "s", last.get("restic_prune"))
    show("restic forget + prune seconds", st.median([float(p["restic_forget"]) + float(p["restic_prune"]) for p in P]), "s")
    show("borg repo MiB", med("borg_du") / 1048576, "MiB", f'{int(last["borg_du"]) / 1048576:.0f}')
    show("borg prune + compact seconds", st.median([float(p["borg_prune"]) + float(p["borg_compact"]) for p in P]), "s")
    show("restic repo / cask store dir (medians)", med("restic_du") / med("store_du"), "x")
    show("borg repo / cask store dir (medians)", med("borg_du") / med("store_du"), "x")
    auto = (int(last["versions"]) - 4 - clones) / clones if last["versions"].isdigit() else float("nan")
    print(f'  kept at the end: cask {auto:.1f} automatic versions per clone (catalog: {last["versions"]} versions, with the imports '
          f'and each clone\'s first version), restic {last["restic_snapshots"]} snapshots, borg {last["borg_archives"]} archives (all disks in each)')
show("NBD p99 read ms without GC", med("p99r_nogc"), "ms")
show("NBD p99 write ms without GC", med("p99w_nogc"), "ms")
if cli_gc:
    show("NBD p99 read ms during GC", med("p99r_gc"), "ms")
    show("NBD p99 write ms during GC", med("p99w_gc"), "ms")
    import math, os
    pooled = {}  # every point's I/Os together: a gc window is short, so one point's p99 rests on a few I/Os
    for name in ("nogc", "gc", "ctl"):
        xs = {0: [], 1: []}
        try:
            for line in open(f'{os.environ["LAT_POOL"]}/lat-pool-{name}.txt'):
                d, l = line.split(); xs[int(d)].append(float(l))
        except FileNotFoundError:
            pass
        for d in (0, 1):
            v = sorted(xs[d])
            pooled[(name, d)] = (v[max(0, math.ceil(0.99 * len(v)) - 1)] if v else None, len(v))
    for d, what in ((0, "read"), (1, "write")):
        for name, when in (("nogc", "without"), ("gc", "during"), ("ctl", "in control windows, no")):
            v, n = pooled[(name, d)]
            if v is not None: show(f"NBD p99 {what} ms {when} GC, all points' I/Os", v, "ms", f"{n} I/Os")
dist = [p["when"] for p in P if float(p.get("others_cpu", 0)) >= 0.5]
print(f'  load: 1-min average median {med("load1"):.2f}; others\' CPU median {med("others_cpu"):.2f} cores; '
      + (f'disturbed (others >= 0.5 core) at {len(dist)} of {len(P)} points' if dist else "no point disturbed"))
print()
print("TARGETS (the issue's)                                  value     target  met")
def target(label, v, limit):
    if v is None: return
    print(f"  {label:<50} {v:>7.3f}   <= {limit:<5} {'yes' if v <= limit else 'NO'}")
if cli_gc:
    target("store after GC / live_bytes (max over points)", max(r), 1.10)
    target("store after GC / live_bytes (median)", st.median(r), 1.10)
    if peers:
        # cask prune (hourly) is restic forget's counterpart; gc (sweep + compaction) is restic prune's
        target("gc pass (wall" + (")" if os.environ.get("GC_VIA") == "socket" else ", JVM start included)") + " / restic prune",
               med("gc_wall") / med("restic_prune"), 0.2)
        target("gc pass (--json seconds) / restic prune", med("gc_seconds") / med("restic_prune"), 0.2)
        target("gc pass (wall) / restic forget + prune", med("gc_wall") / st.median([float(p["restic_forget"]) + float(p["restic_prune"]) for p in P]), 0.2)
    def ratios(win, k):
        """p99 in the `win` windows against the windows without gc of the same points (those that have
        both): median of the per-point ratios, ratio of the medians, and of all their I/Os pooled (or None)"""
        pp = [p for p in P if p.get(f"p99{k}_{win}") and float(p.get(f"p99{k}_nogc", 0)) > 0]
        if not pp: return None
        q = [float(p[f"p99{k}_{win}"]) / float(p[f"p99{k}_nogc"]) for p in pp]
        of_medians = st.median([float(p[f"p99{k}_{win}"]) for p in pp]) / st.median([float(p[f"p99{k}_nogc"]) for p in pp])
        (g, _), (b, _) = pooled[(win, 0 if k == "r" else 1)], pooled[("nogc", 0 if k == "r" else 1)]
        return st.median(q), of_medians, (g / b if g and b else None)
    for k, name in (("r", "read"), ("w", "write")):
        r = ratios("gc", k)
        if r is None: continue
        target(f"NBD p99 {name} during GC / without (median of ratios)", r[0], 1.5)
        target(f"NBD p99 {name} during GC / without (ratio of medians)", r[1], 1.5)
        target(f"NBD p99 {name} during GC / without (all I/Os pooled)", r[2], 1.5)
    if any(p.get("ctl_wall") for p in P):
        print()
        print("CONTROL (GC_CONTROL=1: windows as long as a gc, cut the same way, while the server does nothing extra;")
        print("         the floor of this measurement, not a target)")
        print(f'  control points: {sum(1 for p in P if p.get("ctl_wall"))}, gc points: {sum(1 for p in P if p.get("gc_wall"))}')
        for k, name in (("r", "read"), ("w", "write")):
            for win, what in (("ctl", "control window"), ("gc", "gc window")):
                r = ratios(win, k)
                if r is None: continue
                print(f"  NBD p99 {name} {what} / without: median of ratios {r[0]:.3f}, ratio of medians {r[1]:.3f}, "
                      f"pooled {r[2] if r[2] is not None else float('nan'):.3f}")
EOF
echo "load avg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
