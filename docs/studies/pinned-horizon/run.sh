#!/bin/bash
# Reproduces the whole study: starts a private PostgreSQL 15 cluster, runs every design
# (unpinned rounds, pinned rounds, recovery), prints the tables, stops the cluster.
#   ./run.sh                 all designs (d0 d1 d2 d3 d4 d5), about 35 minutes
#   DESIGNS="d0 d1" ./run.sh some of them;  ROUNDS=10 N=100000 CLIENTS=10 ./run.sh
#   KEEP=1 ./run.sh          leave the cluster running (reuses a running one)
set -u
cd "$(dirname "$0")"
W=$(pwd)
BIN=/usr/lib/postgresql/15/bin
export PGHOST=$W/sock PGPORT=55432 PGUSER=postgres PGDATABASE=postgres
DESIGNS=${DESIGNS:-"d0 d1 d2 d3 d4 d5"}
ROUNDS=${ROUNDS:-10}
N=${N:-100000}
CLIENTS=${CLIENTS:-10}
BATCH=10
# Worker sessions' planner settings. enable_bitmapscan=off: once autoanalyze has seen the hot
# table empty, the claim was planned as a bitmap scan of every entry >= the mark + a sort (1.5 s
# per claim); an ordered index scan is what every design needs. Empty it to see that happen.
WORKER_OPTS=${WORKER_OPTS--c enable_bitmapscan=off}
CAP=${CAP:-45}          # a drain is cut off after this many seconds; jobs/s = jobs claimed / time
TAG=${TAG:-run$(date +%H%M%S)}
OUT=$W/results/$TAG
mkdir -p "$OUT" "$W/sock"; chown -R postgres "$W/results" "$W/sock"; chmod o+rx "$W"

as_pg() { su postgres -c "$(printf '%q ' "$@")"; }
psqlq() { as_pg env PGHOST=$PGHOST PGPORT=$PGPORT $BIN/psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

start_cluster() {
  if [ ! -f "$W/data/PG_VERSION" ]; then
    mkdir -p "$W/data" && chown postgres "$W/data" && chmod 700 "$W/data"
    as_pg $BIN/initdb -D "$W/data" -A trust -U postgres >/dev/null
    cat >> "$W/data/postgresql.conf" <<CONF
port = 55432
unix_socket_directories = '$W/sock'
listen_addresses = ''
shared_buffers = 512MB
max_wal_size = 4GB
synchronous_commit = off
jit = off
deadlock_timeout = 100ms
max_connections = 50
CONF
  fi
  as_pg $BIN/pg_ctl -D "$W/data" status >/dev/null 2>&1 || as_pg $BIN/pg_ctl -D "$W/data" -l "$W/results/pg.log" -w start >/dev/null
}
stop_cluster() { as_pg $BIN/pg_ctl -D "$W/data" -m fast -w stop >/dev/null; }

# background sessions: each sql/<design>_bg*.sql is two lines repeated (work; sleep)
BG_PIDS=()
start_bg() {
  local d=$1 f
  for f in sql/${d}_bg*.sql; do
    [ -e "$f" ] || continue
    local rep=$OUT/$(basename "$f" .sql).loop.sql
    { echo "SET application_name = 'bg';"; awk '{a[NR]=$0} END{for(i=0;i<100000;i++) for(j=1;j<=NR;j++) print a[j]}' "$f"; } > "$rep"
    chown postgres "$rep"
    as_pg env PGHOST=$PGHOST PGPORT=$PGPORT PGOPTIONS="$WORKER_OPTS" $BIN/psql -X -q -o /dev/null -f "$rep" >/dev/null 2>&1 &
    BG_PIDS+=($!)
  done
}
stop_bg() {
  psqlq -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'bg' AND datname = current_database()" >/dev/null
  local p; for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done; BG_PIDS=()
}

PIN_PID=
pin() {
  cat > "$OUT/pin.sql" <<PIN
SET application_name = 'pin';
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM q.pin_target;
SELECT pg_sleep(3600);
PIN
  chown postgres "$OUT/pin.sql"
  as_pg env PGHOST=$PGHOST PGPORT=$PGPORT $BIN/psql -X -q -o /dev/null -f "$OUT/pin.sql" >/dev/null 2>&1 &
  PIN_PID=$!
  until [ -n "$(psqlq -c "SELECT backend_xmin FROM pg_stat_activity WHERE application_name='pin' AND backend_xmin IS NOT NULL")" ]; do sleep 0.2; done
}
unpin() {
  psqlq -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pin' AND datname = current_database()" >/dev/null
  wait "$PIN_PID" 2>/dev/null; PIN_PID=
}

# sizes of the hot relations: the leaves of q.jobs (itself if not partitioned)
stats() {
  psqlq -F ' ' -c "
    SELECT round(sum(pg_relation_size(t.relid)) / 1048576.0, 1),
           round(sum(pg_indexes_size(t.relid)) / 1048576.0, 1),
           sum(s.n_dead_tup), sum(s.n_live_tup)
    FROM (SELECT c.oid AS relid FROM pg_class c WHERE c.oid = 'q.jobs'::regclass AND c.relkind = 'r'
          UNION ALL
          SELECT p.relid FROM pg_partition_tree('q.jobs') p WHERE p.isleaf AND p.relid <> 'q.jobs'::regclass) t
    JOIN pg_stat_user_tables s ON s.relid = t.relid"
}

# one round: load N jobs, drain them with CLIENTS pgbench workers, record
round() {
  local d=$1 label=$2 pinned=$3 opts="$WORKER_OPTS"
  [ "$d" = d5 ] && opts="$opts -c enable_seqscan=off"   # generic plans on a slot that was empty
  psqlq -v n=$N -f sql/${d}_load.sql >/dev/null
  local per=$(( N / CLIENTS / BATCH ))
  local t0=$(date +%s.%N)
  as_pg env PGHOST=$PGHOST PGPORT=$PGPORT PGOPTIONS="$opts" timeout $CAP $BIN/pgbench -n -M prepared --max-tries=10 \
      -D ids={} -D toks={} -f sql/${d}_work.sql -c $CLIENTS -j 2 -t $per postgres > "$OUT/$d.$label.pgbench" 2>&1
  local left=$(psqlq -c "SELECT count(*) FROM q.jobs WHERE state = 'available'")
  local t1=$(date +%s.%N)
  psqlq -f sql/${d}_cleanup.sql >/dev/null
  local served=$(( N - left ))
  sleep 1.5   # let the backends' statistics reach pg_stat
  local secs=$(echo "$t1 - $t0" | bc -l)
  local rate=$(echo "$served / $secs" | bc -l)
  local st=$(stats)
  local fails=$(grep -o 'total number of retries: [0-9]*' "$OUT/$d.$label.pgbench" | awk '{print $5}')
  local marks=-
  [ -n "$(psqlq -c "SELECT to_regclass('q.queue_marks')")" ] && marks=$(psqlq -c "SELECT count(*) FROM q.queue_marks")
  printf "%s %s %s %.2f %.0f %s %s %s %s %s\n" "$d" "$label" "$pinned" "$secs" "$rate" "$st" "${left:-?}" "${fails:-0}" "$marks" | tee -a "$OUT/rounds.txt"
}

run_design() {
  local d=$1
  echo "== $d ($(date +%T))"
  psqlq -f sql/common.sql -f sql/${d}_schema.sql >/dev/null 2>&1 || { echo "schema $d failed"; psqlq -f sql/common.sql -f sql/${d}_schema.sql; return; }
  start_bg $d
  round $d u1 no; round $d u2 no
  pin
  local r
  for r in $(seq 1 $ROUNDS); do
    round $d p$r yes
    if [ "$d" = d0 ] && [ $r = 2 ]; then
      psqlq -c "VACUUM (VERBOSE) q.jobs" 2>&1 | grep -E 'tuples:|removable cutoff|index scan' | sed "s/^/   vacuum after p2: /" | tee -a "$OUT/rounds.txt"
      echo "d0 vac2 yes 0 0 $(stats) - 0 -" >> "$OUT/rounds.txt"
    fi
  done
  if [ "$d" = d2 ] || [ "$d" = d3 ]; then psqlq -F ' ' -c "SELECT outcome, count(*), round(avg(held_ms)::numeric,2), round(max(held_ms)::numeric,2) FROM q.rotations GROUP BY 1" | sed 's/^/   rotations (outcome n avg_ms max_ms): /' | tee -a "$OUT/rounds.txt"; fi
  unpin
  round $d r1 released
  round $d r2 released
  stop_bg
}

start_cluster
echo "design round pinned secs jobs/s table_MiB index_MiB dead live left_available retries mark_rows" | tee "$OUT/rounds.txt"
for d in $DESIGNS; do run_design $d; done
echo; echo "== summary (ratio = jobs/s / jobs/s of the design's round u2)"
awk '$2=="u2"{base[$1]=$5} $1 ~ /^d[0-9]/ && $5 ~ /^[0-9]+$/ && $5>0 {printf "%-3s %-5s %-8s %8s jobs/s  ratio %.2f  table %7s MiB  index %7s MiB  dead %9s\n", $1,$2,$3,$5,(base[$1]?$5/base[$1]:0),$6,$7,$8}' "$OUT/rounds.txt" | tee "$OUT/summary.txt"
[ "${KEEP:-0}" = 1 ] || stop_cluster
echo "results in $OUT"
