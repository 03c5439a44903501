#!/bin/bash
# Correctness stress for the mark (d1) and the ring + mark (d3), horizon pinned:
# producers enqueue random priorities with run_at up to 3 s in the past (keys below the mark),
# workers claim+finish, others claim then release (requeue), others claim and ROLLBACK, the
# advancer runs every 1 ms, the rotator (d3) every 10 ms, a checker samples the invariant.
# Then producers stop, workers drain, and the checks run:
#   lost = produced ids found neither in the archive nor in jobs; dup = ids archived twice;
#   left = available jobs no claim could reach; violations = samples with a job below the mark.
#   ./stress.sh d1|d3 [seconds]
set -u
cd "$(dirname "$0")"; W=$(pwd); d=$1; T=${2:-30}
BIN=/usr/lib/postgresql/15/bin
export PGHOST=$W/sock PGPORT=55432 PGUSER=postgres PGDATABASE=${DB:-scratch}
as_pg() { su postgres -c "$(printf '%q ' "$@")"; }
psqlq() { as_pg env PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE $BIN/psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
OUT=$W/results/stress-$d; mkdir -p "$OUT"; chown -R postgres "$W/results"
as_pg $BIN/pg_ctl -D "$W/data" status >/dev/null 2>&1 || as_pg $BIN/pg_ctl -D "$W/data" -l "$W/results/pg.log" -w start >/dev/null
psqlq -f sql/common.sql -f sql/${d}_schema.sql -f sql/stress_schema_extra.sql >/dev/null 2>&1
PIDS=()
bg() {  # file: loop it in a background session
  local rep=$OUT/$(basename "$1" .sql).loop.sql
  { echo "SET application_name = 'bg';"; awk '{a[NR]=$0} END{for(i=0;i<200000;i++) for(j=1;j<=NR;j++) print a[j]}' "$1"; } > "$rep"; chown postgres "$rep"
  as_pg env PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE $BIN/psql -X -q -o /dev/null -f "$rep" >/dev/null 2>&1 & PIDS+=($!)
}
printf "SET application_name = 'pin';\nBEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM q.pin_target;\nSELECT pg_sleep(3600);\n" > "$OUT/pin.sql"; chown postgres "$OUT/pin.sql"
as_pg env PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE $BIN/psql -X -q -o /dev/null -f "$OUT/pin.sql" >/dev/null 2>&1 & PIN=$!
bg sql/stress_adv.sql; if [ -e sql/stress_check_$d.sql ]; then bg sql/stress_check_$d.sql; else bg sql/stress_check.sql; fi
{ [ "$d" = d3 ] || [ "$d" = d5 ]; } && bg sql/stress_rot.sql
psqlq -v n=20000 -f sql/${d}_load.sql >/dev/null
as_pg env PGHOST=$PGHOST PGPORT=$PGPORT $BIN/pgbench -n -M prepared --max-tries=10 -D ids={} -D toks={} -D rids={} -D rtoks={} \
  -f sql/stress_produce.sql@5 -f sql/${d}_work.sql@4 -f sql/stress_release_$d.sql@1 -f sql/stress_abort.sql@1 \
  -c 8 -j 2 -T $T $PGDATABASE > "$OUT/mixed.pgbench" 2>&1
# drain without producers (and finish what each worker still holds)
for i in 1 2 3; do
  as_pg env PGHOST=$PGHOST PGPORT=$PGPORT $BIN/pgbench -n -M prepared --max-tries=10 -D ids={} -D toks={} -f sql/${d}_work.sql -c 4 -j 2 -t 2000 $PGDATABASE > "$OUT/drain$i.pgbench" 2>&1
done
sleep 0.5   # one more advancer pass, checker samples
psqlq -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ('bg','pin') AND datname = current_database()" >/dev/null
for p in "${PIDS[@]}" $PIN; do wait $p 2>/dev/null; done
psqlq -f sql/${d}_cleanup.sql >/dev/null   # the last batch each worker held
psqlq -F ' ' -c "
SELECT '$d' AS design,
  (SELECT count(*) FROM q.produced) + 20000 AS produced,
  (SELECT count(*) FROM q.jobs_archive) AS archived,
  (SELECT count(*) FROM q.produced p WHERE NOT EXISTS (SELECT 1 FROM q.jobs_archive a WHERE a.id = p.id)
                                       AND NOT EXISTS (SELECT 1 FROM q.jobs j WHERE j.id = p.id)) AS lost,
  (SELECT count(*) - count(DISTINCT id) FROM q.jobs_archive) AS dup,
  (SELECT count(*) FROM q.violations) AS samples,
  (SELECT coalesce(max(n), 0) FROM q.violations) AS max_violation,
  (SELECT count(*) FROM q.queue_marks) AS mark_rows" | sed 's/^/design produced archived lost dup samples max_violation mark_rows\n/' | tee "$OUT/check.txt"
grep -E "left_before_cleanup" /dev/null
grep -E "^tps|number of transactions actually|retries" "$OUT/mixed.pgbench" | tr '\n' ' '; echo
{ [ "$d" = d3 ] || [ "$d" = d5 ]; } && psqlq -F ' ' -c "SELECT outcome, count(*) FROM q.rotations GROUP BY 1"
exit 0
