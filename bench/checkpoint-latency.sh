#!/usr/bin/env bash
# checkpoint-latency.sh: the speed issue's item 3, second target: a served disk's p99 latency while
# a checkpoint folds another image's large journal into the store, against the same disk's p99 just
# before it (no checkpoint running). Target: at most 2 x.
#
# One `cask serve` (--checkpoint-interval 0 and a journal limit above what the bench writes, so that
# nothing checkpoints unless asked), two images: "probe", its first 256 MiB written with unique data
# and checkpointed (its reads meet the store, not its journal), and "bulk". Each round: fio writes
# SIZE of unique data to bulk (seq 1M QD8; it stays in bulk's journal), `sync`; then the probe load
# starts (4K random reads at READ_IOPS over those 256 MiB and 4K random writes of unique, half
# compressible data at WRITE_IOPS, QD1 each; every I/O's latency logged with its time), runs IDLE
# seconds, then the bench asks the server to checkpoint bulk through its control socket (a Python
# client, connected before the load starts: no process start in either window) and stops the load
# 0.2 s after the reply. CHECKPOINT says which checkpoint: `paced-checkpoint` (default: as the
# server's timer makes them, paced beside busy clients, see Pacer.checkpoint) or `checkpoint` (at
# full speed, as one a snapshot or an export asks for and waits for). The p99 of reads and of writes in both windows; per round the ratio
# during / before; medians over the rounds. Output: terminal and
# bench/results/checkpoint-latency-TIME.txt.
#
# env: ROUNDS=5 SIZE=1G IDLE=8 READ_IOPS=200 WRITE_IOPS=100 PORT=10964 CHECKPOINT=paced-checkpoint
#      BENCH_WORK=/var/tmp/cask-checkpoint-latency CASK_JAVA_OPTS (cask serve)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
ROUNDS=${ROUNDS:-5}; SIZE=${SIZE:-1G}; IDLE=${IDLE:-8}; PORT=${PORT:-10964}
READ_IOPS=${READ_IOPS:-200}; WRITE_IOPS=${WRITE_IOPS:-100}; CHECKPOINT=${CHECKPOINT:-paced-checkpoint}
case "$CHECKPOINT" in checkpoint|paced-checkpoint) ;; *) echo "checkpoint-latency: CHECKPOINT=$CHECKPOINT: expected checkpoint or paced-checkpoint" >&2; exit 2;; esac
WORK=${BENCH_WORK:-/var/tmp/cask-checkpoint-latency}
CASK="$root/cask"
for t in fio nbdinfo python3; do command -v "$t" >/dev/null || { echo "checkpoint-latency: $t is missing (run scripts/install-deps.sh)" >&2; exit 1; }; done
if [ -e "$WORK" ] && [ ! -f "$WORK/.cask-checkpoint-latency" ]; then echo "checkpoint-latency: $WORK exists and is not ours; set BENCH_WORK" >&2; exit 1; fi
mkdir -p "$here/results"
out="$here/results/checkpoint-latency-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
rm -rf "$WORK"; mkdir -p "$WORK"; touch "$WORK/.cask-checkpoint-latency"
spid=; hpid=
cleanup() { for p in $hpid $spid; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
now() { date +%s.%N; }
echo "== checkpoint latency $(date -Is), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
echo "cask $(git -C "$root" log --oneline -1 | cut -c1-70); $(fio --version)"
"$here/page-cache-note.sh" 2>/dev/null || true
echo "$ROUNDS rounds: bulk $SIZE of unique data checkpointed ($CHECKPOINT; CASK_JAVA_OPTS=${CASK_JAVA_OPTS:-}); probe 4K QD1, $READ_IOPS reads/s + $WRITE_IOPS writes/s; $IDLE s before the checkpoint"

S="$WORK/store"
"$CASK" init "$S" >/dev/null
"$CASK" --store "$S" create probe 1G >/dev/null
"$CASK" --store "$S" create bulk 8G >/dev/null
"$CASK" --store "$S" serve --listen "127.0.0.1:$PORT" --checkpoint-interval 0 --journal-limit 16G >"$WORK/serve.log" 2>&1 & spid=$!
for _ in $(seq 300); do nbdinfo --size "nbd://127.0.0.1:$PORT/probe" >/dev/null 2>&1 && break; sleep 0.1; done
nbdinfo --size "nbd://127.0.0.1:$PORT/probe" >/dev/null || { echo "checkpoint-latency: the server did not start:"; cat "$WORK/serve.log"; exit 1; }
uri() { echo "nbd://127.0.0.1:$PORT/$1"; }
# the control socket's one request: `checkpoint NAME` or `paced-checkpoint NAME` (docs/format.md), from Python: no JVM start
control() { # REQUEST TIMES_FILE GO_FIFO: sends REQUEST after a line on GO_FIFO, writes "t0 t1"
  python3 - "$S" "$1" "$2" "$3" <<'EOF'
import glob, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sorted(glob.glob(sys.argv[1] + "/serve.*.sock"))[0])
replies = s.makefile(encoding="utf-8")
open(sys.argv[4]).read()
t0 = time.time()
s.sendall((sys.argv[2] + "\n").encode())
line = replies.readline().rstrip("\n")
t1 = time.time()
if not line.startswith("ok"): sys.exit("checkpoint-latency: " + sys.argv[2] + ": " + (line or "no reply"))
open(sys.argv[3], "w").write(f"{t0:.6f} {t1:.6f}\n")
EOF
}
fio --name=fill --ioengine=nbd --uri="$(uri probe)" --rw=write --bs=1M --iodepth=8 --size=256M \
    --refill_buffers --randrepeat=0 --buffer_compress_percentage=50 >/dev/null
for _ in $(seq 600); do grep -q "closed image 'probe'" "$WORK/serve.log" && break; sleep 0.1; done # its last client left: checkpointed
# a client that stays on bulk (a read a second, as a VM): the image stays open, its journal is
# checkpointed only when the bench asks (an image whose last client leaves is checkpointed then)
fio --name=hold --ioengine=nbd --uri="$(uri bulk)" --rw=randread --bs=4k --size=1G --rate_iops=1 \
    --runtime=1000000 --time_based >/dev/null 2>&1 & hpid=$!
sleep 0.5

rows="$WORK/rows"; : >"$rows"
for r in $(seq "$ROUNDS"); do
  fio --name=bulk --ioengine=nbd --uri="$(uri bulk)" --rw=write --bs=1M --iodepth=8 --size="$SIZE" \
      --refill_buffers --randrepeat=0 --output-format=terse >/dev/null
  sync
  rm -f "$WORK"/lat_*.log "$WORK/go" "$WORK/cp.times"; mkfifo "$WORK/go"
  control "$CHECKPOINT bulk" "$WORK/cp.times" "$WORK/go" & cpid=$!
  sleep 0.5   # Python is connected
  tf=$(now)
  fio --write_lat_log="$WORK/lat" --log_avg_msec=0 --ioengine=nbd --uri="$(uri probe)" --bs=4k --iodepth=1 \
      --time_based --runtime=3600 --size=256M --randrepeat=0 \
      --name=r --rw=randread --rate_iops="$READ_IOPS" \
      --name=w --rw=randwrite --rate_iops="$WRITE_IOPS" --refill_buffers --buffer_compress_percentage=50 \
      >/dev/null 2>"$WORK/fio.err" & fp=$!
  sleep "$((IDLE + 1))"
  echo go >"$WORK/go"
  wait "$cpid" || { kill -INT "$fp"; exit 1; }
  sleep 0.2
  tk=$(now)
  kill -INT "$fp"; wait "$fp" || true
  read -r t0 t1 <"$WORK/cp.times"
  python3 - "$WORK" "$r" "$tf" "$t0" "$t1" "$tk" "$IDLE" "$rows" <<'EOF'
import glob, math, sys
work, r = sys.argv[1], sys.argv[2]
tf, t0, t1, tk, idle = (float(x) for x in sys.argv[3:8])
out = open(sys.argv[8], "a")
rows = []  # (seconds since fio's jobs started, latency ms, 0 read / 1 write)
for f in glob.glob(work + "/lat_clat.*.log"):
    for line in open(f):
        x = line.split(",")
        if len(x) >= 3: rows.append((int(x[0]) / 1000, int(x[1]) / 1e6, int(x[2])))
if not rows: sys.exit("checkpoint-latency: fio wrote no latency log in " + work)
shift = (tk - tf) - max(t for t, _, _ in rows)  # fio's clock starts a little after its launch
def p99(xs):
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.99 * len(xs)) - 1)] if xs else float("nan")
before = [(l, d) for t, l, d in rows if t0 - tf - idle <= t + shift < t0 - tf]
during = [(l, d) for t, l, d in rows if t0 - tf <= t + shift <= t1 - tf]
v = [p99([l for l, d in w if d == k]) for w in (before, during) for k in (0, 1)]
print(f"round {r}: checkpoint {t1 - t0:.2f} s; p99 before read {v[0]:.3f} write {v[1]:.3f} ms ({len(before)} I/Os);"
      f" during read {v[2]:.3f} write {v[3]:.3f} ms ({len(during)} I/Os); ratio read {v[2] / v[0]:.2f} write {v[3] / v[1]:.2f}")
out.write(" ".join(f"{x:.4f}" for x in [t1 - t0] + v + [v[2] / v[0], v[3] / v[1]]) + "\n")
EOF
done
grep "image 'bulk'.*-> version" "$WORK/serve.log" | sed "s/.*image 'bulk': /  bulk: /" || true
python3 - "$rows" <<'EOF'
import statistics, sys
rs = [l.split() for l in open(sys.argv[1]) if l.strip()]
cols = {"checkpoint s": 0, "p99 read before": 1, "p99 write before": 2, "p99 read during": 3, "p99 write during": 4,
        "ratio read": 5, "ratio write": 6}
print("\nmedians over %d rounds (ms; ratio = p99 during the checkpoint / p99 before it, target <= 2):" % len(rs))
for name, i in cols.items():
    print(f"  {name:18s} {statistics.median(float(x[i]) for x in rs):8.3f}")
EOF
echo "output kept in $out"
