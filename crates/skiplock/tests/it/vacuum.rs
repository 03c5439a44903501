//! The leader vacuums the hot table when dead tuples pile up between
//! autovacuum's visits.

use skiplock::Maintenance;

use crate::support::fresh;

#[tokio::test]
async fn the_leader_vacuums_a_hot_table_full_of_dead_tuples() {
    let t = fresh().await;
    let pg = t.sql().await;
    // 60,000 jobs inserted and deleted: as many dead tuples.
    pg.batch_execute(
        "ALTER TABLE skiplock.jobs SET (autovacuum_enabled = false);
         INSERT INTO skiplock.jobs (queue, kind) SELECT 'q', 'k' FROM generate_series(1, 60000);
         DELETE FROM skiplock.jobs;",
    )
    .await
    .unwrap();
    let m = Maintenance::builder(t.client.clone()).id("vacuumer").build().unwrap();
    assert_eq!(m.vacuum_once().await.unwrap(), None, "only the leader vacuums");
    assert!(m.elect().await.unwrap());
    // The statistics arrive a moment after the transactions that made them.
    let vacuumed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            pg.batch_execute("SELECT pg_stat_force_next_flush()").await.ok();
            let dead: i64 = pg
                .query_one(
                    "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs' AND schemaname = 'skiplock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if dead >= 60_000 {
                break m.vacuum_once().await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the statistics show the dead tuples within 30s");
    assert_eq!(vacuumed, Some(true));
    let count: i64 = pg
        .query_one(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs' AND schemaname = 'skiplock'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
    // Nothing left to vacuum: the next pass does nothing.
    assert_eq!(m.vacuum_once().await.unwrap(), Some(false));
}
