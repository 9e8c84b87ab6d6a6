#!/usr/bin/env bash
# shared-bench.sh (issue 14): three cask nodes on one PostgreSQL + S3 (s3proxy) against the local
# embedded store and qemu-nbd, in the same run. The script starts everything itself: a PostgreSQL
# server (initdb into the work directory, Debian's binaries, fsync ON: a FLUSH on a shared store
# commits its journal bytes to PostgreSQL, and that commit's fsync is part of what is measured),
# s3proxy (the jar Maven fetches into cask-s3/target/s3proxy/, filesystem backend on this disk) and
# the cask nodes, each with its own --state directory and port; everything is stopped and deleted
# on exit.
#
# Rows (every fio job that writes uses unique data: --refill_buffers --randrepeat=0):
#   flush     fio nbd engine, rand write 4K QD1 with --fsync=1 (a FLUSH after every write) for
#             FLUSH_SECONDS (20) on a new 1 GiB image: FLUSH latency p50/p99 (fio's "sync" latency)
#             and write p50, for cask shared store (node 1), cask local store, qemu-nbd qcow2
#   seqwrite  fio seq write 1M QD8 of SEQ_SIZE (512M) with --fsync=32 (a FLUSH every 32 MiB) on a
#             new image: MiB/s, for the same three
#             (each image held open by a second client all along, as a VM does, and both servers
#             run with --checkpoint-interval 0: no checkpoint runs during a measurement)
#   boot      the Debian fixture VM's boot (serve-bench.sh's method: TCG, init=/sbin/bootcheck, until
#             it powers off) from a fresh clone of the imported image: through node 2 with a new
#             --cache directory (cold), through node 2 again with that cache after the cold boot
#             (warm; the server restarted, so nothing is in its memory), and through a local store
#             (also restarted before each boot). The page cache is not dropped: s3proxy's files, the
#             node's cache files and the local store's packs are all in it alike.
#   exports   EXPORTS (1000) clones of a 64 MiB image of random data, spread over the three nodes
#             (node K serves `cask serve --export mK`, a third each); one client opens every export
#             in turn (NBD handshake: the image's open and its lease), reads 4K at a random offset,
#             keeps the connection, then reads 4K once more on each of the open connections;
#             p50/p99 of the open, the first and the second read; the same clones on ONE local-store
#             server for reference.
# Targets (issue 14): warm-cache boot <= 1.05 x local store; cold-cache boot <= 1.5 x local store;
# FLUSH p50/p99 printed next to qemu-nbd's; the exports' p99 printed.
# Every measurement is printed with the load average; then medians of BENCH_RUNS (FLUSH, seq write)
# and of BENCH_BOOTS (boots), and ratios (median of each run's pair measured back to back).
# Output: bench/results/shared-bench-TIME.txt.
#
# env: BENCH_RUNS=3 FLUSH_SECONDS=20 SEQ_SIZE=512M BENCH_BOOTS=3 EXPORTS=1000
#      BENCH_SKIP_FLUSH=1 BENCH_SKIP_BOOT=1 BENCH_SKIP_EXPORTS=1 BENCH_SKIP_LOCAL_EXPORTS=1
#      BENCH_QUICK=1 (smoke: 1 run, 5 s, 64M, 1 boot each, 60 exports)
#      BENCH_WORK=/var/tmp/cask-shared-bench CASK=./cask of another checkout CASK_JAVA_OPTS (cask serve)
#      CASK_FIXTURES=~/.cache/cask-fixtures CASK_PG_BIN (else the newest /usr/lib/postgresql/*/bin)
#      PG_OPTS="-c max_wal_size=4GB ..." (more PostgreSQL settings; default: PostgreSQL's own but fsync on)
#      MVN_ARGS (extra Maven arguments when the s3proxy jar must be fetched, e.g. -Dmaven.repo.local=...)
# Ports: free ones the kernel hands out (never the 10809-10931 the other benches use).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cask=${CASK:-$here/cask}
caskdir=$(dirname "$cask")
runs=${BENCH_RUNS:-3}; fsecs=${FLUSH_SECONDS:-20}; seqsize=${SEQ_SIZE:-512M}; boots=${BENCH_BOOTS:-3}
nexports=${EXPORTS:-1000}
if [ -n "${BENCH_QUICK:-}" ]; then
  runs=${BENCH_RUNS:-1}; fsecs=${FLUSH_SECONDS:-5}; seqsize=${SEQ_SIZE:-64M}; boots=${BENCH_BOOTS:-1}; nexports=${EXPORTS:-60}
fi
work=${BENCH_WORK:-/var/tmp/cask-shared-bench}
fx=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
for t in fio qemu-nbd qemu-img qemu-system-x86_64 nbdinfo python3; do
  command -v "$t" >/dev/null || { echo "shared-bench: $t is missing (run scripts/install-deps.sh)"; exit 1; }
done
pgbin=${CASK_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ] || { echo "shared-bench: no PostgreSQL binaries (apt-get install postgresql, or set CASK_PG_BIN)"; exit 1; }
. "$caskdir/scripts/jdk.sh"   # JAVA_HOME: a JDK 25+ (s3proxy and the clone helper run on it)
java="$JAVA_HOME/bin/java"
s3jar="$caskdir/cask-s3/target/s3proxy/s3proxy.jar"
if [ ! -f "$s3jar" ]; then   # Maven fetches it only when tests are not skipped (see the parent pom)
  echo "shared-bench: fetching s3proxy into $s3jar (mvn -pl cask-s3 generate-test-resources) ..."
  (cd "$caskdir" && mvn -q -B ${MVN_ARGS:-} -pl cask-s3 generate-test-resources) || { echo "shared-bench: mvn could not fetch s3proxy"; exit 1; }
fi
if [ -e "$work" ] && [ ! -f "$work/.cask-shared-bench" ]; then echo "shared-bench: $work exists and is not ours; set BENCH_WORK"; exit 1; fi
mkdir -p "$here/bench/results"
out="$here/bench/results/shared-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1

pids=(); pgdata=
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "$pgdata" ] && [ -d "$pgdata" ] && aspg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work"; mkdir -p "$work"; touch "$work/.cask-shared-bench"; chmod 755 "$work"
load() { cut -d' ' -f1-3 /proc/loadavg; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # the exports probe holds one socket per export
freeport() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
now() { date +%s.%N; }
since() { python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),2))" "$1"; }
forget() { local p=$1 q=(); for x in "${pids[@]}"; do [ "$x" = "$p" ] || q+=("$x"); done; pids=("${q[@]}"); }
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget "$1"; }

# ---- PostgreSQL (as user postgres when we are root: PostgreSQL refuses to run as root) ----
pguser=$(id -un); [ "$(id -u)" = 0 ] && { pguser=postgres; id postgres >/dev/null 2>&1 || pguser=nobody; }
aspg() { if [ "$(id -u)" = 0 ]; then runuser -u "$pguser" -- "$@"; else "$@"; fi; }
pgdir="$work/pg"; mkdir -p "$pgdir"; chown "$pguser" "$pgdir"; chmod 700 "$pgdir"
pgpass="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$pgpass" > "$pgdir/pwfile"; chown "$pguser" "$pgdir/pwfile"
aspg "$pgbin/initdb" -D "$pgdir/data" -U cask --pwfile="$pgdir/pwfile" -A scram-sha-256 -E UTF8 \
  --locale=C --no-instructions > "$pgdir/initdb.log" 2>&1 || { cat "$pgdir/initdb.log"; exit 1; }
rm -f "$pgdir/pwfile"
pgport=$(freeport)
aspg "$pgbin/pg_ctl" -D "$pgdir/data" -w -t 60 -l "$pgdir/server.log" -o "-p $pgport \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pgdir -c max_connections=300 -c shared_buffers=128MB \
  -c fsync=on -c synchronous_commit=on -c full_page_writes=on ${PG_OPTS:-}" start > /dev/null || { tail -20 "$pgdir/server.log"; exit 1; }
pgdata="$pgdir/data"
PGPASSWORD=$pgpass "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U cask cask
catalog="postgresql://cask:$pgpass@127.0.0.1:$pgport/cask"
psql_cask() { PGPASSWORD=$pgpass "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U cask -d cask -Atc "$1" 2>/dev/null || echo '?'; }
started=$(now)

# ---- s3proxy (filesystem backend; a bucket is a directory of it) ----
s3dir="$work/s3"; mkdir -p "$s3dir/data/bench"
s3port=$(freeport); s3secret="secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$s3dir/s3proxy.conf" <<EOF
s3proxy.endpoint=http://127.0.0.1:$s3port
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=cask-bench
s3proxy.credential=$s3secret
jclouds.provider=filesystem
jclouds.filesystem.basedir=$s3dir/data
EOF
(cd "$s3dir" && exec "$java" -Xmx512m -XX:+UseSerialGC -DLOG_LEVEL=warn -jar "$s3jar" --properties "$s3dir/s3proxy.conf" > "$s3dir/s3proxy.log" 2>&1) &
pids+=($!)
for i in $(seq 900); do
  (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null && break
  [ "$i" = 900 ] && { echo "s3proxy did not start:"; tail -20 "$s3dir/s3proxy.log"; exit 1; }
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$s3port" AWS_ACCESS_KEY_ID=cask-bench AWS_SECRET_ACCESS_KEY=$s3secret AWS_REGION=us-east-1
shared=(--store s3://bench/vm --catalog "$catalog")
local_store="$work/local"

s3ver=$(python3 -c "
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
n = [x for x in z.namelist() if x.endswith('s3proxy/pom.properties')]
print(dict(l.split('=', 1) for l in z.read(n[0]).decode().splitlines() if '=' in l).get('version', '?') if n else '?')" "$s3jar" 2>/dev/null || echo '?')
echo "== shared store benchmark (issue 14) $(date -Is), $(nproc) cores, load $(load) =="
echo "cask $(git -C "$caskdir" log --oneline -1 | cut -c1-70)$([ -z "$(git -C "$caskdir" status --porcelain --untracked-files=no 2>/dev/null)" ] || echo ' (+ uncommitted changes)')"
echo "$(qemu-nbd --version | head -1); $(fio --version); $("$pgbin/postgres" --version); s3proxy $s3ver; $("$java" -version 2>&1 | head -1)"
echo "PostgreSQL: fsync=on, synchronous_commit=on (a shared store's FLUSH pays its commit), max_wal_size $(psql_cask "show max_wal_size")${PG_OPTS:+, $PG_OPTS}; s3proxy: filesystem backend"
echo "on this machine's disk, over loopback HTTP (no network latency: real S3 GETs take longer)"
echo "flush rows: $runs runs of ${fsecs} s; seq write $seqsize; boots: $boots each; exports: $nexports over 3 nodes"
"$cask" --version >/dev/null   # builds the jar if needed: untimed

# ---- servers ----
declare -A logs
wait_serving() { # LOG PID N0: until LOG has more "serving" lines than N0
  for _ in $(seq 1200); do
    [ "$(grep -c "serving" "$1" 2>/dev/null || true)" -gt "$3" ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "cask serve did not start:"; tail -20 "$1"; exit 1
}
spid=
start_node() { # NAME PORT [extra serve options...] -> $spid; NAME: node1..3 (shared) or local
  local name=$1 port=$2; shift 2
  local log="$work/$name.log" n0
  n0=$(grep -c "serving" "$log" 2>/dev/null || true); n0=${n0:-0}
  if [ "$name" = local ]; then
    CASK_JAVA_OPTS="${CASK_JAVA_OPTS:-}" "$cask" --store "$local_store" serve --listen "127.0.0.1:$port" \
      --checkpoint-interval 0 "$@" >> "$log" 2>&1 &
  else
    CASK_JAVA_OPTS="${CASK_JAVA_OPTS:-}" "$cask" "${shared[@]}" --state "$work/state-$name" serve --listen "127.0.0.1:$port" \
      --checkpoint-interval 0 "$@" >> "$log" 2>&1 &
  fi
  spid=$!; pids+=($spid)
  wait_serving "$log" "$spid" "$n0"
}
qpid=
start_qemu() { # FILE FORMAT PORT
  qemu-nbd -f "$2" -x vm -b 127.0.0.1 -p "$3" --persistent --shared=8 "$1" & qpid=$!; pids+=($qpid)
  for _ in $(seq 100); do nbdinfo --size "nbd://127.0.0.1:$3/vm" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "qemu-nbd did not start"; exit 1
}
holders=()
hold() { # URI: a client that stays connected (a 4K read a second), as a running VM does
  fio --name=hold --ioengine=nbd --uri="$1" --rw=randread --bs=4k --size=64M --rate_iops=1 --runtime=1000000 \
      --time_based >/dev/null 2>&1 & holders+=($!); pids+=($!)
  sleep 0.5
}
unhold() { for p in "${holders[@]}"; do stop "$p"; done; holders=(); }

echo
echo "setup:"
t0=$(now); "$cask" "${shared[@]}" --state "$work/state-node1" init >/dev/null; echo "  cask init (shared): $(since "$t0") s"
"$cask" init "$local_store" >/dev/null

rows="$work/rows"; : > "$rows"
record() { # ROW TARGET VALUES... ; printed with the load
  echo "$*" >> "$rows"
  printf "  %-9s %-7s %s  load %s\n" "$1" "$2" "${*:3}" "$(load)"
}

# ---- FLUSH latency and seq write ----
fio_json() { # URI fio options... -> prints the JSON's first job through $work/fio.json
  local uri=$1; shift
  fio --name=b --ioengine=nbd --uri="$uri" "$@" --output-format=json 2>"$work/fio.err" > "$work/fio.json" \
    || { echo "fio failed ($uri $*):" >&2; cat "$work/fio.err" >&2; exit 1; }
}
flush_stats() { # -> "flush_p50_ms flush_p99_ms write_p50_ms ops/s(writes)"
  python3 - "$work/fio.json" <<'PY'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index('{'):])['jobs'][0]
s = j['sync']['lat_ns']['percentile']; w = j['write']['clat_ns']['percentile']
print("%.3f %.3f %.3f %.0f" % (s['50.000000'] / 1e6, s['99.000000'] / 1e6, w['50.000000'] / 1e6, j['write']['iops']))
PY
}
bw_stats() { # -> "MiB/s write_p99_ms"
  python3 - "$work/fio.json" <<'PY'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index('{'):])['jobs'][0]['write']
print("%.1f %.2f" % (j['bw_bytes'] / 1048576, j['clat_ns']['percentile']['99.000000'] / 1e6))
PY
}
uniq=(--refill_buffers --randrepeat=0)
if [ -z "${BENCH_SKIP_FLUSH:-}" ]; then
  echo
  echo "FLUSH latency (rand write 4K QD1, --fsync=1, ${fsecs} s; ms: flush p50, flush p99, write p50; writes/s) and seq write 1M QD8 --fsync=32 of $seqsize (MiB/s, p99 ms):"
  p1=$(freeport); pl=$(freeport); pq=$(freeport)
  pg0=$(psql_cask "select checkpoints_req + checkpoints_timed || ' ' || pg_current_wal_lsn() from pg_stat_bgwriter")
  start_node node1 "$p1"; n1=$spid
  start_node local "$pl"; nl=$spid
  for r in $(seq "$runs"); do
    for row in flush seqwrite; do
      img="$row-$r"
      "$cask" "${shared[@]}" --state "$work/state-node1" create "$img" 1G >/dev/null
      "$cask" --store "$local_store" create "$img" 1G >/dev/null
      qemu-img create -q -f qcow2 "$work/$img.qcow2" 1G
      start_qemu "$work/$img.qcow2" qcow2 "$pq"
      hold "nbd://127.0.0.1:$p1/$img"; hold "nbd://127.0.0.1:$pl/$img"; hold "nbd://127.0.0.1:$pq/vm"
      order=(qemu local shared); [ $((r % 2)) = 0 ] && order=(shared local qemu)   # no target always first
      for t in "${order[@]}"; do
        case $t in shared) uri="nbd://127.0.0.1:$p1/$img" ;; local) uri="nbd://127.0.0.1:$pl/$img" ;; qemu) uri="nbd://127.0.0.1:$pq/vm" ;; esac
        if [ "$row" = flush ]; then
          fio_json "$uri" --rw=randwrite --bs=4k --iodepth=1 --fsync=1 --size=1G --runtime="$fsecs" --time_based "${uniq[@]}"
          record flush "$t" $(flush_stats)
        else
          fio_json "$uri" --rw=write --bs=1M --iodepth=8 --fsync=32 --size="$seqsize" "${uniq[@]}"
          record seqwrite "$t" $(bw_stats)
        fi
      done
      unhold; stop "$qpid"; rm -f "$work/$img.qcow2"
    done
  done
  stop "$n1"; stop "$nl"
  echo "  (journal_ranges rows left after the nodes stopped: $(psql_cask "select count(*) from journal_ranges"); PostgreSQL during these rows:" \
    "$(psql_cask "select checkpoints_req + checkpoints_timed - ${pg0%% *} || ' checkpoints, ' || pg_size_pretty(pg_current_wal_lsn() - '${pg0#* }') || ' of WAL' from pg_stat_bgwriter"))"
fi

# ---- boot: cold cache, warm cache, local store ----
boot() { # URI -> seconds until the VM powered off after BOOT-OK (serve-bench.sh's boot)
  local s e
  s=$(date +%s.%N)
  timeout 600 qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -nographic -no-reboot -kernel "$fx/vmlinuz" \
    -initrd "$fx/initrd.img" -append "root=/dev/vda1 console=ttyS0 init=/sbin/bootcheck panic=-1" \
    -drive "file=$1,format=raw,if=virtio" < /dev/null > "$work/boot.log" 2>&1
  e=$(date +%s.%N)
  grep -q BOOT-OK "$work/boot.log" || { echo "boot from $1 failed" >&2; tail -20 "$work/boot.log" >&2; return 1; }
  python3 -c "print(round($e-$s,2))"
}
cache_line() { grep "cache $work/cache" "$work/node2.log" | tail -1 | sed 's/.*cache /cache /' | cut -c1-150; }
if [ -z "${BENCH_SKIP_BOOT:-}" ] && [ "$boots" -gt 0 ]; then
  if [ ! -f "$fx/bookworm-minbase.raw" ]; then
    script="$here/../shared/fixtures/build-images.sh"; [ -f "$script" ] || script="$here/scripts/build-images.sh"
    bash "$script" "$fx"
  fi
  fimg="$fx/bookworm-minbase.raw"
  echo
  echo "boot (seconds, TCG) of $(basename "$fimg") ($(du -h --apparent-size "$fimg" | cut -f1)), a fresh clone per boot:"
  t0=$(now); "$cask" "${shared[@]}" --state "$work/state-node2" import "$fimg" boot/base >/dev/null
  echo "  import into the shared store: $(since "$t0") s"
  t0=$(now); "$cask" --store "$local_store" import "$fimg" boot/base >/dev/null
  echo "  import into the local store: $(since "$t0") s"
  pb=$(freeport)
  for b in $(seq "$boots"); do
    for kind in cold warm; do "$cask" "${shared[@]}" --state "$work/state-node2" clone boot/base "boot/$kind-$b" >/dev/null; done
    "$cask" --store "$local_store" clone boot/base "boot/local-$b" >/dev/null
    order=(local cold warm); [ $((b % 2)) = 0 ] && order=(cold warm local)   # warm always follows its cold boot
    for kind in "${order[@]}"; do
      if [ "$kind" = local ]; then
        start_node local "$pb"
      else
        [ "$kind" = cold ] && rm -rf "$work/cache"
        start_node node2 "$pb" --cache "$work/cache" --cache-size 4G
      fi
      cl=; [ "$kind" = local ] || cl=$(cache_line)
      v=$(boot "nbd://127.0.0.1:$pb/boot/$kind-$b")
      stop "$spid"
      record boot "$kind" "$v"
      [ -z "$cl" ] || echo "      node 2 at its start: $cl"
    done
  done
  echo "  node 2's cache at its last stop: $(cache_line)"
fi

# ---- many exports ----
cat > "$work/probe.py" <<'PY'
# One client, many exports: NBD handshake (fixed newstyle, NBD_OPT_GO) on each in turn, a 4K read
# at a random offset, the connection kept; then a second 4K read on every open connection.
# argv: SIZE_BYTES then HOST:PORT/NAME ... ; prints "open p50 p99 read1 p50 p99 read2 p50 p99" (ms) and the count
import random, socket, struct, sys, time
size = int(sys.argv[1]); targets = sys.argv[2:]
def recvall(s, n):
    b = bytearray()
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise IOError("connection closed")
        b += c
    return bytes(b)
def connect(hp, name):
    host, port = hp.split(':')
    s = socket.create_connection((host, int(port))); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    magic, opt, flags = struct.unpack('>QQH', recvall(s, 18))
    assert magic == 0x4e42444d41474943 and opt == 0x49484156454f5054, "not an NBD server"
    s.sendall(struct.pack('>I', 3))
    n = name.encode()
    s.sendall(struct.pack('>QII', 0x49484156454f5054, 7, 4 + len(n) + 2) + struct.pack('>I', len(n)) + n + struct.pack('>H', 0))
    while True:
        _, _, typ, ln = struct.unpack('>QIII', recvall(s, 20)); data = recvall(s, ln)
        if typ == 1: return s
        if typ & 0x80000000: raise IOError("export %s refused: %r" % (name, data))
handle = 0
def read(s, off):
    global handle; handle += 1
    s.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, handle, off, 4096))
    magic, err, h = struct.unpack('>IIQ', recvall(s, 16))
    if magic != 0x67446698 or err != 0 or h != handle: raise IOError("read failed: error %d" % err)
    recvall(s, 4096)
def pct(v, p):
    v = sorted(v); return v[max(0, -(-len(v) * p // 100) - 1)] * 1000
opens, r1, r2, conns = [], [], [], []
for t in targets:
    hp, name = t.split('/', 1)
    a = time.perf_counter(); s = connect(hp, name); b = time.perf_counter()
    read(s, random.randrange(size // 4096) * 4096); c = time.perf_counter()
    opens.append(b - a); r1.append(c - b); conns.append(s)
for s in conns:
    a = time.perf_counter(); read(s, random.randrange(size // 4096) * 4096); r2.append(time.perf_counter() - a)
for s in conns: s.close()
print("%.2f %.2f %.2f %.2f %.3f %.3f %d" % (pct(opens, 50), pct(opens, 99), pct(r1, 50), pct(r1, 99), pct(r2, 50), pct(r2, 99), len(targets)))
PY
if [ -z "${BENCH_SKIP_EXPORTS:-}" ] && [ "$nexports" -gt 0 ]; then
  echo
  echo "many exports: $nexports clones of a 64 MiB image over 3 nodes (node K: --export mK), one client, sequential:"
  head -c 64M /dev/urandom > "$work/seed.raw"
  "$cask" "${shared[@]}" --state "$work/state-node1" import "$work/seed.raw" m/base >/dev/null
  cp="$caskdir/cask-cli/target/cask.jar"
  t0=$(now)
  half=$((nexports / 2))   # two JVMs, one per core: a clone is mostly the CLI opening the shared store
  CLONE_GROUPS=3 "$java" --enable-native-access=ALL-UNNAMED -cp "$cp" "$here/bench/CloneMany.java" m/base 'm%d/vm%04d' 0 "$half" \
    "${shared[@]}" --state "$work/state-node1" > "$work/clone1.out" & c1=$!
  CLONE_GROUPS=3 "$java" --enable-native-access=ALL-UNNAMED -cp "$cp" "$here/bench/CloneMany.java" m/base 'm%d/vm%04d' "$half" "$nexports" \
    "${shared[@]}" --state "$work/state-node3" > "$work/clone2.out" & c2=$!
  wait "$c1"; wait "$c2"
  echo "  shared store: $nexports clones in $(since "$t0") s (two processes: $(cat "$work/clone1.out"); $(cat "$work/clone2.out"))"
  ports=(); targets=(); nodes=()
  for k in 0 1 2; do
    p=$(freeport); ports+=("$p")
    start_node "node$((k + 1))" "$p" --export "m$k" --cache "$work/cache-m$k" --max-connections 2000; nodes+=("$spid")
  done
  for i in $(seq 0 $((nexports - 1))); do targets+=("127.0.0.1:${ports[$((i % 3))]}/m$((i % 3))/$(printf 'vm%04d' "$i")"); done
  t0=$(now)
  v=$(python3 "$work/probe.py" $((64 << 20)) "${targets[@]}")
  record exports shared $v
  echo "      ($(since "$t0") s for the probe; lease rows in PostgreSQL: $(psql_cask "select count(*) from leases"), one per image ever opened)"
  for p in "${nodes[@]}"; do stop "$p"; done
  if [ -z "${BENCH_SKIP_LOCAL_EXPORTS:-}" ]; then
    "$cask" --store "$local_store" import "$work/seed.raw" m/base >/dev/null
    CLONE_GROUPS=3 "$java" --enable-native-access=ALL-UNNAMED -cp "$cp" "$here/bench/CloneMany.java" m/base 'm%d/vm%04d' 0 "$nexports" --store "$local_store" \
      | sed 's/^/  local store: /'
    p=$(freeport); start_node local "$p" --max-connections 2000; targets=()
    for i in $(seq 0 $((nexports - 1))); do targets+=("127.0.0.1:$p/m$((i % 3))/$(printf 'vm%04d' "$i")"); done
    t0=$(now)
    record exports local $(python3 "$work/probe.py" $((64 << 20)) "${targets[@]}")
    echo "      ($(since "$t0") s for the probe; one local-store server serves all)"
    stop "$spid"
  fi
fi

echo
echo "RESULTS (load at the end: $(load); the whole run took $(python3 -c "import sys,time; print(round((time.time()-float(sys.argv[1]))/60,1))" "$started") min)"
python3 - "$rows" "$runs" "$boots" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(list))
for l in open(sys.argv[1]):
    f = l.split(); rows[f[0]][f[1]].append([float(x) for x in f[2:]])
med = lambda v: statistics.median(v)
def pair_ratio(a, b, i):  # median of the per-run ratios (each pair measured back to back)
    return med([x[i] / y[i] for x, y in zip(a, b)]) if a and b else float('nan')
def ok(x, target): return "MET" if x <= target else "NOT MET"
if 'flush' in rows:
    f = rows['flush']
    print("FLUSH latency, rand write 4K QD1 --fsync=1, unique data; medians of %d runs (ms)" % len(f['qemu']))
    print("  %-22s %10s %10s %10s %10s" % ("", "flush p50", "flush p99", "write p50", "writes/s"))
    for t, name in (('shared', 'cask shared store'), ('local', 'cask local store'), ('qemu', 'qemu-nbd qcow2')):
        if t in f: print("  %-22s %10.3f %10.3f %10.3f %10.0f" % (name, *[med(v[i] for v in f[t]) for i in range(4)]))
    for t, name in (('shared', 'shared / qemu-nbd'), ('local', 'local / qemu-nbd')):
        if t in f and 'qemu' in f:
            print("  %-22s %10.2f %10.2f %10.2f %10.2f" % (name, *[pair_ratio(f[t], f['qemu'], i) for i in range(4)]))
    if 'shared' in f and 'local' in f:
        print("  %-22s %10.2f %10.2f %10.2f %10.2f" % ('shared / local', *[pair_ratio(f['shared'], f['local'], i) for i in range(4)]))
if 'seqwrite' in rows:
    s = rows['seqwrite']
    print("seq write 1M QD8 --fsync=32, unique data; medians (MiB/s, p99 ms); ratio = cask / qemu-nbd qcow2")
    for t, name in (('shared', 'cask shared store'), ('local', 'cask local store'), ('qemu', 'qemu-nbd qcow2')):
        if t in s:
            print("  %-22s %8.1f MiB/s  p99 %8.2f ms%s" % (name, med(v[0] for v in s[t]), med(v[1] for v in s[t]),
                  "" if t == 'qemu' else "  ratio %.3f" % pair_ratio(s[t], s['qemu'], 0)))
if 'boot' in rows:
    b = rows['boot']; loc = med(v[0] for v in b['local'])
    print("boot seconds (TCG), medians of %d; ratio = median of each round's node-2 boot / its local-store boot" % len(b['local']))
    print("  %-30s %7.2f   (all: %s)" % ('local embedded store', loc, ' '.join('%.2f' % v[0] for v in b['local'])))
    for t, name, target in (('warm', 'shared, warm node cache', 1.05), ('cold', 'shared, cold node cache', 1.5)):
        if t in b:
            r = pair_ratio(b[t], b['local'], 0)
            print("  %-30s %7.2f   ratio %.3f  target <= %.2f: %s   (all: %s)" % (name, med(v[0] for v in b[t]), r, target,
                  ok(r, target), ' '.join('%.2f' % v[0] for v in b[t])))
if 'exports' in rows:
    e = rows['exports']
    print("many exports (ms): open = NBD handshake incl. image open and lease; read1 = first 4K read; read2 = a second one")
    print("  %-34s %8s %8s %8s %8s %8s %8s" % ("", "open p50", "p99", "read1 p50", "p99", "read2 p50", "p99"))
    for t, name in (('shared', 'shared, 3 nodes (%d exports)'), ('local', 'local store, 1 server (%d)')):
        if t in e:
            v = e[t][0]; print("  %-34s %8.2f %8.2f %8.2f %8.2f %8.3f %8.3f" % (name % v[6], *v[:6]))
PY
echo "output kept in $out"
