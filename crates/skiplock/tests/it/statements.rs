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
