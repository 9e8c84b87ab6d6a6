#!/usr/bin/env bash
# serve-bench.sh: cask serve against qemu-nbd on the same data, in the same run (issue 3 targets).
#   fio (nbd engine): 1 MiB sequential read and write at queue depth 8, 4 KiB random read and write
#   at queue depth 32, against cask, qemu-nbd serving a qcow2 copy and qemu-nbd serving a raw copy;
#   and the boot time of the Debian fixture VM (TCG, init=/sbin/bootcheck) from cask vs qemu-nbd raw.
#   Reports medians of BENCH_RUNS (default 3) and the ratios the issue sets targets for:
#   reads >= 1.0 x qemu-nbd (qcow2), writes >= 0.8 x qemu-nbd (qcow2), boot <= 1.05 x qemu-nbd (raw).
# env: BENCH_RUNS=3 FIO_SECONDS=15 BENCH_SKIP_FIO=1 (boot only) BENCH_SKIP_BOOT=1 (fio only)
#      BENCH_JOBS="write randwrite" (a subset of read write randread randwrite)
#      BENCH_WORK=/tmp/cask-serve-bench CASK_FIXTURES=~/.cache/cask-fixtures
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${BENCH_RUNS:-3}; secs=${FIO_SECONDS:-15}
work=${BENCH_WORK:-/tmp/cask-serve-bench}
fx=${CASK_FIXTURES:-$HOME/.cache/cask-fixtures}
mkdir -p "$here/bench/results"
out="$here/bench/results/serve-bench-$(date +%Y-%m-%dT%H%M%S).txt"
exec > >(tee "$out") 2>&1
for t in fio qemu-nbd qemu-img qemu-system-x86_64 python3; do
  command -v "$t" >/dev/null || { echo "serve-bench: $t is missing (run scripts/install-deps.sh)"; exit 1; }
done
if [ ! -f "$fx/bookworm-minbase.raw" ]; then
  script="$here/../shared/fixtures/build-images.sh"; [ -f "$script" ] || script="$here/scripts/build-images.sh"
  bash "$script" "$fx"
fi
rm -rf "$work"; mkdir -p "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
echo "== cask serve benchmark $(date -Is), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) =="
echo "cask $(git -C "$here" rev-parse --short HEAD); $(qemu-nbd --version | head -1); $(fio --version)"
img="$fx/bookworm-minbase.raw"
"$here/cask" --help >/dev/null
mkdir -p "$work/store"; "$here/cask" --store "$work/store" import "$img" vm >/dev/null
qemu-img convert -O qcow2 "$img" "$work/vm.qcow2"
cp --sparse=always "$img" "$work/vm.raw"
CASK_JAVA_OPTS="${CASK_JAVA_OPTS:-}" "$here/cask" --store "$work/store" serve --listen 127.0.0.1:10901 --checkpoint-interval 0 > "$work/serve.log" 2>&1 &
pids+=($!)
qemu-nbd -f qcow2 -x vm -b 127.0.0.1 -p 10902 --persistent --shared=8 "$work/vm.qcow2" & pids+=($!)
qemu-nbd -f raw -x vm -b 127.0.0.1 -p 10903 --persistent --shared=8 "$work/vm.raw" & pids+=($!)
for _ in $(seq 100); do grep -q serving "$work/serve.log" && break; sleep 0.2; done
sleep 1

fio_run() { # PORT RW BS DEPTH -> MiB/s for bandwidth jobs, IOPS for 4k jobs (json parse)
  fio --name=b --ioengine=nbd --uri="nbd://127.0.0.1:$1/vm" --rw="$2" --bs="$3" --iodepth="$4" \
      --size=1536M --runtime="$secs" --time_based --output-format=json 2>/dev/null \
    | python3 -c "import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index('{'):])['jobs'][0]; print((j['read']['bw_bytes']+j['write']['bw_bytes'])/1048576)"
}
median() { python3 -c "import statistics,sys; print(round(statistics.median([float(x) for x in sys.argv[1:]]),1))" "$@"; }
declare -A res
jobs=()
for j in "read 1M 8" "write 1M 8" "randread 4k 32" "randwrite 4k 32"; do
  case " ${BENCH_JOBS:-read write randread randwrite} " in *" ${j%% *} "*) jobs+=("$j") ;; esac
done
[ -n "${BENCH_SKIP_FIO:-}" ] && jobs=()  # boot times only
for rw in read write randread randwrite; do for t in cask qcow2 raw; do res["$rw/$t"]=1; done; done
for job in "${jobs[@]}"; do
  set -- $job
  for target in cask:10901 qcow2:10902 raw:10903; do
    vals=()
    for r in $(seq "$runs"); do
      vals+=("$(fio_run "${target#*:}" "$1" "$2" "$3")")
      # cask checkpoints when fio disconnects (hashing what fio wrote): wait for it, so that it
      # never runs beside the next measurement, and report how long it took
      if [ "${target%%:*}" = cask ]; then
        w0=$(date +%s.%N)
        for _ in $(seq 1200); do compgen -G "$work/store/journals/vm.journal-*" >/dev/null || break; sleep 0.1; done
        echo "  cask checkpoint after fio $1: $(python3 -c "print(round($(date +%s.%N)-$w0,1))") s"
      fi
    done
    res["$1/${target%%:*}"]=$(median "${vals[@]}")
    echo "fio $1 bs=$2 qd=$3 ${target%%:*}: ${vals[*]} MiB/s -> median ${res["$1/${target%%:*}"]}"
  done
done
kill "${pids[@]}" 2>/dev/null || true; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=()

boot() { # URI -> seconds until the VM powered off after BOOT-OK
  local s e
  s=$(date +%s.%N)
  timeout 600 qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -nographic -no-reboot -kernel "$fx/vmlinuz" \
    -initrd "$fx/initrd.img" -append "root=/dev/vda1 console=ttyS0 init=/sbin/bootcheck panic=-1" \
    -drive "file=$1,format=raw,if=virtio" < /dev/null > "$work/boot.log" 2>&1
  e=$(date +%s.%N)
  grep -q BOOT-OK "$work/boot.log" || { echo "boot from $1 failed" >&2; tail -20 "$work/boot.log" >&2; return 1; }
  python3 -c "print(round($e-$s,2))"
}
cb=(); qb=()
boots=$runs; [ -n "${BENCH_SKIP_BOOT:-}" ] && { boots=0; cb=(1); qb=(1); }
# cask serve is a long-running daemon that serves every image of a store: one server serves the
# boots, each from a fresh copy of the image (fio wrote over "vm"; dedup makes the import cheap).
# qemu-nbd serves one file per process, so it starts for each boot.
for r in $(seq "$boots"); do "$here/cask" --store "$work/store" import "$img" "boot/$r" >/dev/null; done
if [ "$boots" -gt 0 ]; then
  "$here/cask" --store "$work/store" serve --listen 127.0.0.1:10904 --checkpoint-interval 0 > "$work/serve-boot.log" 2>&1 & sp=$!
  pids+=("$sp")
  for _ in $(seq 100); do grep -q serving "$work/serve-boot.log" && break; sleep 0.2; done
fi
for r in $(seq "$boots"); do
  cb+=("$(boot "nbd://127.0.0.1:10904/boot/$r")")
  for _ in $(seq 600); do compgen -G "$work/store/journals/boot+$r.journal-*" >/dev/null || break; sleep 0.1; done
  cp --sparse=always "$img" "$work/vm.raw"
  qemu-nbd -f raw -x vm -b 127.0.0.1 -p 10903 "$work/vm.raw" & qp=$!; sleep 1
  qb+=("$(boot nbd://127.0.0.1:10903/vm)"); wait "$qp" 2>/dev/null || true
done
echo "boot cask: ${cb[*]} s; qemu-nbd raw: ${qb[*]} s"

ratio() { python3 -c "print(round($1/$2,3))"; }
echo
echo "RESULTS (medians of $runs; ratio = cask / qemu-nbd)"
printf "%-28s %10s %10s %10s %8s %8s\n" measurement cask qcow2 raw ratio target
for rw in read randread; do
  printf "%-28s %10s %10s %10s %8s %8s\n" "fio $rw MiB/s" "${res[$rw/cask]}" "${res[$rw/qcow2]}" "${res[$rw/raw]}" \
    "$(ratio "${res[$rw/cask]}" "${res[$rw/qcow2]}")" ">= 1.0"
done
for rw in write randwrite; do
  printf "%-28s %10s %10s %10s %8s %8s\n" "fio $rw MiB/s" "${res[$rw/cask]}" "${res[$rw/qcow2]}" "${res[$rw/raw]}" \
    "$(ratio "${res[$rw/cask]}" "${res[$rw/qcow2]}")" ">= 0.8"
done
cbm=$(median "${cb[@]}"); qbm=$(median "${qb[@]}")
printf "%-28s %10s %10s %10s %8s %8s\n" "boot seconds (TCG)" "$cbm" "-" "$qbm" "$(ratio "$cbm" "$qbm")" "<= 1.05"
echo "output kept in $out"
