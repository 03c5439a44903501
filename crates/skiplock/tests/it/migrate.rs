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
            let mut c = skiplock::connect_raw(&url).await.unwrap();
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

/// Everything a schema holds that a migration defines: functions (body,
/// rights, settings, SECURITY DEFINER), tables, indexes and sequences with
/// their rights and options, columns, constraints.
async fn catalog(pg: &tokio_postgres::Client, schema: &str) -> Vec<String> {
    let queries = [
        "SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || pg_get_functiondef(p.oid)
                || ' acl=' || coalesce(p.proacl::text, '-') || ' config=' || coalesce(p.proconfig::text, '-')
                || ' definer=' || p.prosecdef::text
         FROM pg_proc p WHERE p.pronamespace = $1::text::regnamespace ORDER BY 1",
        "SELECT c.relname || ' ' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '-')
                || ' options=' || coalesce(c.reloptions::text, '-')
         FROM pg_class c WHERE c.relnamespace = $1::text::regnamespace ORDER BY 1",
        "SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                || ' acl=' || coalesce(a.attacl::text, '-')
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = $1::text::regnamespace AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1",
        "SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
         WHERE connamespace = $1::text::regnamespace ORDER BY 1",
    ];
    let mut out = Vec::new();
    for q in queries {
        for row in pg.query(q, &[&schema]).await.unwrap() {
            out.push(row.get(0));
        }
    }
    out
}

/// Each migration's down script restores exactly what the version before
/// it defined, function bodies and settings included.
#[tokio::test]
async fn each_down_restores_the_version_before_exactly() {
    let t = fresh().await;
    let mut pg = t.sql().await;
    let schema = Schema::new("roundtrip").unwrap();
    for version in 1..skiplock::MIGRATIONS.last().unwrap().version {
        migrate_to(&mut pg, &schema, version).await.unwrap();
        let before = catalog(&pg, "roundtrip").await;
        migrate_to(&mut pg, &schema, version + 1).await.unwrap();
        assert_ne!(catalog(&pg, "roundtrip").await, before, "migration {} changes something", version + 1);
        migrate_to(&mut pg, &schema, version).await.unwrap();
        let after = catalog(&pg, "roundtrip").await;
        let diff: Vec<_> =
            before.iter().filter(|l| !after.contains(l)).chain(after.iter().filter(|l| !before.contains(l))).collect();
        assert!(diff.is_empty(), "down of {} left a difference: {diff:#?}", version + 1);
    }
}
