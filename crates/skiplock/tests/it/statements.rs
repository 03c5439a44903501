//! Every `.sql` file the library runs prepares against the migrated schema,
//! with the parameter types the library declares for it.

use skiplock::Schema;

use crate::support::fresh;

#[tokio::test]
async fn every_statement_prepares_with_its_declared_types() {
    let t = fresh().await;
    let pg = t.sql().await;
    let all = skiplock::__private::statements(&Schema::default());
    assert!(all.len() >= 10);
    for (name, sql, types) in all {
        let st = pg.prepare_typed(&sql, &types).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(st.params(), &types[..], "{name}: the server infers other parameter types");
    }
}

#[tokio::test]
async fn statements_render_into_a_custom_schema() {
    let t = crate::support::fresh().await;
    let mut pg = t.sql().await;
    let custom = Schema::new("jobs_v2").unwrap();
    skiplock::migrate(&mut pg, &custom).await.unwrap();
    for (name, sql, types) in skiplock::__private::statements(&custom) {
        assert!(!sql.contains("\"skiplock\""), "{name}");
        pg.prepare_typed(&sql, &types).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let client = skiplock::Client::builder(t.db.url()).schema("jobs_v2").unwrap().build().unwrap();
    let id = client.enqueue_job(skiplock::NewJob::new("k", &(), Default::default()).unwrap()).await.unwrap().id;
    assert!(client.job(id).await.unwrap().is_some());
    assert!(t.client.job(id).await.unwrap().is_none(), "the default schema is separate");
}

/// The column list of each `INSERT INTO <schema>.jobs_archive (…)` in `sql`
/// (the schema as rendered, quoted or not).
fn archive_inserts(sql: &str) -> Vec<Vec<String>> {
    let lower = sql.to_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("insert into ") {
        let at = from + i + "insert into ".len();
        let table = lower[at..].split_whitespace().next().unwrap_or("");
        from = at;
        if !table.ends_with(".jobs_archive") {
            continue;
        }
        let open = at + lower[at..].find('(').expect("a column list");
        let close = open + lower[open..].find(')').expect("its end");
        out.push(lower[open + 1..close].split(',').map(|c| c.trim().to_owned()).collect());
        from = close;
    }
    out
}

/// Moving a job to the archive names every column: the statements and the
/// SQL API's functions that do it each list them, and a column added to the
/// tables but missed in one list would be lost (NULL) for the jobs that
/// statement finishes. The lists are checked against the archive's columns
/// as migrated, and those against the hot table's.
#[tokio::test]
async fn every_move_to_the_archive_lists_every_column() {
    let t = fresh().await;
    let pg = t.sql().await;
    let columns = |table: &'static str| {
        let pg = &pg;
        async move {
            let rows = pg
                .query(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = 'skiplock' AND table_name = $1 ORDER BY ordinal_position",
                    &[&table],
                )
                .await
                .unwrap();
            let mut c: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            c.sort();
            c
        }
    };
    let archive = columns("jobs_archive").await;
    assert!(archive.len() >= 19, "{archive:?}");
    // The archive keeps every column of the hot table but the running
    // attempt's bookkeeping, and adds when the job finished.
    let mut hot: Vec<String> = columns("jobs")
        .await
        .into_iter()
        .filter(|c| !["lease_expires_at", "cancel_requested_at"].contains(&c.as_str()))
        .chain(["finished_at".to_owned()])
        .collect();
    hot.sort();
    assert_eq!(hot, archive, "the archive has the hot table's columns, less the lease's, plus finished_at");
    let mut lists = Vec::new();
    for (name, sql, _) in skiplock::__private::statements(&Schema::default()) {
        lists.extend(archive_inserts(&sql).into_iter().map(|l| (name.to_owned(), l)));
    }
    for r in pg
        .query(
            "SELECT p.proname::text, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'skiplock'",
            &[],
        )
        .await
        .unwrap()
    {
        let (name, src): (String, String) = (r.get(0), r.get(1));
        lists.extend(archive_inserts(&src).into_iter().map(|l| (format!("function {name}"), l)));
    }
    let names: Vec<&str> = lists.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["job/finish_claim.sql", "job/rescue.sql", "function cancel"] {
        assert!(names.contains(&expected), "{expected} moves jobs to the archive: found {names:?}");
    }
    for (name, mut list) in lists {
        list.sort();
        assert_eq!(list, archive, "{name}: its column list is not the archive's");
    }
}
