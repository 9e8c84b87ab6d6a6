#!/usr/bin/env bash
# page-cache-note.sh: one line for a benchmark's header saying whether this host pages out cold
# page cache by itself (a DAMON "pageout" scheme, as some VM hosts run to give memory back). With
# it, a store's pack and index pages nobody touched for about a minute leave the page cache, and
# reads of them wait for the disk: on the 2-core bench VM of session 20, a served disk's p99 read
# latency at QD1 was 4-7 ms with it and 0.4-0.8 ms without, gc or not. Benchmarks do not change
# the host's setting; they print it so that runs on different hosts can be told apart.
shopt -s nullglob
on=()
for k in /sys/kernel/mm/damon/admin/kdamonds/*/; do
  [ "$(cat "$k/state" 2>/dev/null)" = on ] || continue
  for s in "$k"contexts/*/schemes/*/; do
    [ "$(cat "$s/action" 2>/dev/null)" = pageout ] || continue
    aggr=$(cat "$k"contexts/0/monitoring_attrs/intervals/aggr_us 2>/dev/null || echo 0)
    age=$(cat "$s/access_pattern/age/min" 2>/dev/null || echo 0)
    on+=("pages unused for $((aggr * age / 1000000)) s")
  done
done
if [ "${#on[@]}" -gt 0 ]; then
  echo "page cache: the host pages out cold memory itself (DAMON pageout: ${on[*]}); reads of store pages not touched since wait for the disk"
else
  echo "page cache: no proactive reclaim by the host (DAMON pageout off or absent)"
fi
