#!/bin/bash
# Enqueue cost of the mark protocol: single-row enqueues (insert_one.sql-like), 10 clients, 10 s,
# D0 (plain) vs D4 (plain insert + mark_lower in the same statement, advancer running).
# Alternated, REPS times; prints tps per run. Runs in database "scratch".
set -u; cd "$(dirname "$0")"; W=$(pwd); REPS=${REPS:-3}
BIN=/usr/lib/postgresql/15/bin
export PGHOST=$W/sock PGPORT=55432 PGUSER=postgres PGDATABASE=scratch
as_pg() { su postgres -c "$(printf '%q ' "$@")"; }
psqlq() { as_pg env PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE $BIN/psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
psqlq -c "SELECT 1" >/dev/null 2>&1 || { as_pg env PGHOST=$PGHOST PGPORT=$PGPORT $BIN/psql -X -q -d postgres -c "CREATE DATABASE scratch"; }
for rep in $(seq 1 $REPS); do
  for d in d0 d4; do
    psqlq -f sql/common.sql -f sql/${d}_schema.sql >/dev/null 2>&1
    f=sql/enq_plain.sql; P=
    if [ $d = d4 ]; then
      f=sql/enq_mark.sql
      { echo "SET application_name = 'bg';"; awk '{a[NR]=$0} END{for(i=0;i<100000;i++) for(j=1;j<=NR;j++) print a[j]}' sql/d4_bg.sql; } > results/enq_bg.sql; chown postgres results/enq_bg.sql
      as_pg env PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE $BIN/psql -X -q -o /dev/null -f results/enq_bg.sql >/dev/null 2>&1 & P=$!
    fi
    tps=$(as_pg env PGHOST=$PGHOST PGPORT=$PGPORT $BIN/pgbench -n -M prepared -f $f -c 10 -j 2 -T 10 $PGDATABASE 2>&1 | grep -o 'tps = [0-9.]*' | awk '{print $3}')
    echo "enqueue $d rep$rep tps $tps"
    if [ -n "$P" ]; then psqlq -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'bg' AND datname = current_database()" >/dev/null; wait $P 2>/dev/null; fi
  done
done
