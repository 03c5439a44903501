//! Migrations: idempotent, concurrent-safe, all or nothing, reversible.

use skiplock::{Schema, migrate, migrate_to, schema_version};

use crate::support::fresh;

#[tokio::test]
async fn migrating_again_is_a_no_op() {
    let t = fresh().await; // the template is migrated already
    let report = t.client.migrate().await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.version, skiplock::MIGRATIONS.last().unwrap().version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrators_apply_each_migration_once() {
    let t = fresh().await;
    let schema = Schema::new("concurrent").unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let url = t.db.url().to_owned();
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            let (mut c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            migrate(&mut c, &schema).await.unwrap().applied.len()
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += task.await.unwrap();
    }
    assert_eq!(applied, skiplock::MIGRATIONS.len(), "each migration ran exactly once");
    let pg = t.sql().await;
    assert_eq!(schema_version(&pg, &schema).await.unwrap(), skiplock::MIGRATIONS.last().unwrap().version);
}

#[tokio::test]
async fn down_then_up_restores_the_schema() {
    let t = fresh().await;
    let mut pg = t.sql().await;
    let schema = Schema::default();
    let report = migrate_to(&mut pg, &schema, 0).await.unwrap();
    assert_eq!(report.version, 0);
    let gone: bool = pg.query_one("SELECT to_regclass('skiplock.jobs') IS NULL", &[]).await.unwrap().get(0);
    assert!(gone);
    migrate(&mut pg, &schema).await.unwrap();
    t.seed("default", "k", 1).await;
    let e = migrate_to(&mut pg, &schema, 99).await.unwrap_err().to_string();
    assert!(e.starts_with("invalid target:"), "{e}");
}

#[tokio::test]
async fn a_failed_migration_leaves_nothing_behind() {
    let t = fresh().await;
    let mut pg = t.sql().await;
    // A table in the way makes migration 1 fail half-way, after it created
    // its enum type and sequence.
    pg.batch_execute("CREATE SCHEMA blocked; CREATE TABLE blocked.jobs_archive (x int)").await.unwrap();
    let err = migrate(&mut pg, &Schema::new("blocked").unwrap()).await.unwrap_err();
    assert!(matches!(err, skiplock::Error::Database(_)), "{err:?}");
    let leftovers: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'blocked'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 1, "only the table that was there before");
    assert_eq!(schema_version(&pg, &Schema::new("blocked").unwrap()).await.unwrap(), 0);
}

#[tokio::test]
async fn an_unmigrated_schema_gives_a_clear_error() {
    let t = fresh().await;
    let client = skiplock::Client::builder(t.db.url()).schema("nowhere").unwrap().build().unwrap();
    let e = client.enqueue_job(skiplock::NewJob::new("k", &(), Default::default()).unwrap()).await.unwrap_err();
    assert!(matches!(e, skiplock::Error::NotMigrated { .. }), "{e:?}");
    assert!(e.to_string().contains("skiplock migrate"), "{e}");
}
