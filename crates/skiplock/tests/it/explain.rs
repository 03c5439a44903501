//! Every statement a worker runs is backed by an index, checked with EXPLAIN
//! at 1,000,000 rows; a million far-future jobs do not reach the claim.

use serde_json::Value;
use skiplock::Schema;
use tokio_postgres::Client as Pg;

use crate::support::{TestDb, explain_json, fresh};

/// The worker's statement with no outcomes to write: a plain claim of 100.
const CLAIM_ONLY: &str = "('{}', '{}', '{}', '{}', '{}', 'default', 100, 30000, 'w', true)";

/// (statement file, EXECUTE arguments, index its plan must use)
const WORKER_QUERIES: &[(&str, &str, &str)] = &[
    ("job/finish_claim.sql", CLAIM_ONLY, "jobs_claim_idx"),
    (
        "job/finish_claim.sql",
        "('{1,2}', '{1,2}', '{completed,failed}', '{NULL,x}', '{0,1000}', 'default', 100, 30000, 'w', true)",
        "jobs_pkey",
    ),
    ("job/heartbeat.sql", "('{1,2}', '{1,2}', 30000, '{NULL,\"{}\"}', 'w', 1, 2)", "jobs_pkey"),
    ("job/rescue.sql", "(1000)", "jobs_lease_idx"),
    ("job/release_unknown.sql", "('w', '{1}', '{1}')", "jobs_lease_idx"),
    ("job/promote.sql", "(1000)", "jobs_due_idx"),
];

/// Statements `skiplock health` runs against the hot table, which a probe
/// may run every minute: index-backed too.
const HEALTH_QUERIES: &[(&str, &str, &str)] =
    &[("health/unserved.sql", "(10000)", "jobs_claim_idx"), ("health/stuck.sql", "(60000)", "jobs_lease_idx")];

async fn prepare_all(pg: &Pg) {
    for (name, sql, types) in skiplock::__private::statements(&Schema::default()) {
        if ["COPY", "VACUUM", "ANALYZE"].iter().any(|k| sql.trim_start().starts_with(k)) {
            continue; // not preparable with SQL PREPARE
        }
        let types: Vec<&str> = types.iter().map(|t| t.name()).collect();
        let stmt = statement_name(name);
        let params = if types.is_empty() { String::new() } else { format!("({})", types.join(", ")) };
        let sql = format!("PREPARE {stmt}{params} AS {sql}");
        pg.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

fn statement_name(file: &str) -> String {
    file.trim_end_matches(".sql").replace('/', "_")
}

/// The plan of a prepared statement, as JSON.
async fn plan(pg: &Pg, file: &str, args: &str, analyze: bool) -> Value {
    let opts = if analyze { "ANALYZE, BUFFERS, " } else { "" };
    explain_json(pg, &format!("EXPLAIN ({opts}FORMAT JSON) EXECUTE {}{args}", statement_name(file))).await
}

/// Every node of a plan, depth first (init plans and CTEs included).
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut out = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for c in children {
            out.extend(nodes(c));
        }
    }
    out
}

fn assert_uses_index(file: &str, plan: &Value, index: &str) {
    let all = nodes(plan);
    let seq_on_jobs = all.iter().any(|n| n["Node Type"] == "Seq Scan" && n["Relation Name"] == "jobs");
    assert!(!seq_on_jobs, "{file} scans the whole jobs table:\n{plan:#}");
    assert!(all.iter().any(|n| n["Index Name"] == index), "{file} does not use {index}:\n{plan:#}");
}

async fn load(t: &TestDb, sql: &str) -> Pg {
    let pg = t.sql().await;
    pg.batch_execute(sql).await.unwrap();
    pg.batch_execute("VACUUM ANALYZE skiplock.jobs").await.unwrap();
    prepare_all(&pg).await;
    pg
}

#[tokio::test]
async fn worker_queries_use_their_indexes_at_a_million_queued_jobs() {
    let t = fresh().await;
    // A realistic mix: most available, some running with leases, some waiting.
    let pg = load(
        &t,
        "INSERT INTO skiplock.jobs (queue, kind, args, state, run_at, attempt, lease_token, lease_expires_at)
         SELECT CASE WHEN g % 10 = 0 THEN 'other' ELSE 'default' END, 'k', '{}',
                CASE WHEN g % 100 = 1 THEN 'running'::skiplock.job_state
                     WHEN g % 100 = 2 THEN 'retryable' WHEN g % 100 = 3 THEN 'scheduled'
                     ELSE 'available' END,
                now() + CASE WHEN g % 100 IN (2, 3) THEN interval '1 hour' ELSE interval '0' END,
                CASE WHEN g % 100 = 1 THEN 1 ELSE 0 END,
                CASE WHEN g % 100 = 1 THEN g END,
                CASE WHEN g % 100 = 1 THEN now() + interval '1 hour' END
         FROM generate_series(1, 1000000) g",
    )
    .await;
    for mode in ["force_custom_plan", "force_generic_plan"] {
        pg.batch_execute(&format!("SET plan_cache_mode = {mode}")).await.unwrap();
        for (file, args, index) in WORKER_QUERIES.iter().chain(HEALTH_QUERIES) {
            assert_uses_index(file, &plan(&pg, file, args, false).await, index);
        }
    }
}

#[tokio::test]
async fn a_million_far_future_jobs_do_not_reach_the_claim() {
    let t = fresh().await;
    let pg = load(
        &t,
        "INSERT INTO skiplock.jobs (queue, kind, args) SELECT 'default', 'k', '{}' FROM generate_series(1, 1000)",
    )
    .await;
    let before = plan(&pg, "job/finish_claim.sql", CLAIM_ONLY, false).await;

    pg.batch_execute(
        "INSERT INTO skiplock.jobs (queue, kind, args, state, run_at)
         SELECT 'default', 'k', '{}', 'scheduled', now() + interval '1 year' FROM generate_series(1, 1000000)",
    )
    .await
    .unwrap();
    pg.batch_execute("VACUUM ANALYZE skiplock.jobs").await.unwrap();
    let after = plan(&pg, "job/finish_claim.sql", CLAIM_ONLY, false).await;
    // The claim's part (the fence's, given no outcomes, may pick any index:
    // `id = ANY('{}')` is false, which every partial index's predicate follows from).
    assert_eq!(shape(cte(&before, "claimed")), shape(cte(&after, "claimed")), "the plan did not change");
    assert_uses_index("job/finish_claim.sql", &after, "jobs_claim_idx");

    // Run it (rolled back) and look at what it read: only the rows it took.
    pg.batch_execute("BEGIN").await.unwrap();
    let run = plan(&pg, "job/finish_claim.sql", CLAIM_ONLY, true).await;
    pg.batch_execute("ROLLBACK").await.unwrap();
    let scan = nodes(&run).into_iter().find(|n| n["Index Name"] == "jobs_claim_idx").unwrap().clone();
    assert_eq!(scan["Actual Rows"], 100, "{run:#}");
    assert_eq!(scan["Rows Removed by Filter"].as_i64().unwrap_or(0), 0);
    let buffers = scan["Shared Hit Blocks"].as_i64().unwrap() + scan["Shared Read Blocks"].as_i64().unwrap();
    assert!(buffers < 50, "the claim read {buffers} blocks for 100 rows:\n{run:#}");
    assert_eq!(t.client.claim("default", 5000, std::time::Duration::from_secs(30), "w").await.unwrap().len(), 1000);
}

/// The node of CTE `name` in a plan.
fn cte<'a>(plan: &'a Value, name: &str) -> &'a Value {
    let want = format!("CTE {name}");
    nodes(plan)
        .into_iter()
        .find(|n| n["Subplan Name"] == want.as_str())
        .unwrap_or_else(|| panic!("no {want}:\n{plan:#}"))
}

/// A plan's node types and index names, without costs.
fn shape(plan: &Value) -> Vec<String> {
    nodes(plan).iter().map(|n| format!("{} {}", n["Node Type"], n["Index Name"])).collect()
}

/// Review S3: a pooled connection caches the workers' statements' generic
/// plans (the client forces generic plans). Made on a table analysed empty
/// (as it is after a drain), the claim's plan scans the whole table and
/// sorts it; a burst of a million jobs would run that plan until the next
/// analyze, which autovacuum gets to within a minute. The leader's vacuum
/// service analyzes the table once it changed as much as the planner
/// believes it holds, and the analyze invalidates the cached plans: on the
/// same session, the same prepared statement then walks the claim index.
#[tokio::test]
async fn a_claim_plan_cached_on_an_empty_table_is_replanned_after_a_burst() {
    let t = fresh().await;
    let pg = load(&t, "SELECT 1").await;
    pg.batch_execute("SET plan_cache_mode = force_generic_plan").await.unwrap();
    let claim = || async {
        pg.batch_execute("BEGIN").await.unwrap();
        let p = plan(&pg, "job/finish_claim.sql", CLAIM_ONLY, true).await;
        pg.batch_execute("ROLLBACK").await.unwrap();
        p
    };
    let empty = claim().await;
    let walks_the_index = |p: &Value| nodes(p).iter().any(|n| n["Index Name"] == "jobs_claim_idx");
    assert!(!walks_the_index(&empty), "an empty table's plan scans it (the case this test is about)");
    pg.batch_execute(
        "INSERT INTO skiplock.jobs (queue, kind, args) SELECT 'default', 'k', '{}' FROM generate_series(1, 1000000)",
    )
    .await
    .unwrap();
    assert!(!walks_the_index(&claim().await), "the cached plan still scans");
    // The leader's vacuum service: the table changed more than the planner
    // believes it holds (nothing), so it is analyzed. Statistics reach the
    // collector a moment late: bounded polling.
    let m = skiplock::Maintenance::builder(t.client.clone()).id("m").build().unwrap();
    assert!(m.elect().await.unwrap());
    // (The vacuum of a million new rows takes its time on a loaded machine.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while m.vacuum_once().await.unwrap() != Some(true) {
        assert!(std::time::Instant::now() < deadline, "never analyzed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let burst = claim().await;
    assert_uses_index("job/finish_claim.sql", &burst, "jobs_claim_idx");
    let scan = nodes(&burst).into_iter().find(|n| n["Index Name"] == "jobs_claim_idx").unwrap().clone();
    assert_eq!(scan["Actual Rows"], 100, "{burst:#}");
}

/// The plans of the statements a function runs (auto_explain, sent to this
/// session as notices): migration 0005's job search runs its query through
/// EXECUTE, planned at each call with the values given.
async fn nested_plans(url: &str, call: &str) -> Vec<Value> {
    use futures_util::StreamExt as _;
    let (pg, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(n) = m {
                let _ = tx.send(n.message().to_owned());
            }
        }
    });
    pg.batch_execute(
        "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
         SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; SET auto_explain.log_format = 'json';
         SET auto_explain.log_level = 'notice'; SET client_min_messages = 'notice';
         SET plan_cache_mode = force_generic_plan",
    )
    .await
    .unwrap();
    pg.batch_execute(call).await.unwrap();
    drop(pg);
    let mut plans = Vec::new();
    while let Some(text) = rx.recv().await {
        if let Some(json) = text.find('{').map(|i| &text[i..])
            && let Ok(v) = serde_json::from_str::<Value>(json)
            && v["Query Text"].as_str().is_some_and(|q| q.contains("jobs_archive") && !q.contains("jobs_search("))
        {
            plans.push(v["Plan"].clone());
        }
    }
    plans
}

fn buffers(plan: &Value) -> i64 {
    plan["Shared Hit Blocks"].as_i64().unwrap_or(0) + plan["Shared Read Blocks"].as_i64().unwrap_or(0)
}

/// The dashboard's job search, at a million archived jobs: each filter uses
/// its index (or the partitions' pruning), and a page reads a few hundred
/// blocks at most, where a scan of the archive reads tens of thousands.
/// (docs/BENCHMARKS.md measures the page render.)
#[tokio::test]
async fn the_job_search_uses_its_indexes_at_a_million_archived_jobs() {
    let t = fresh().await;
    let pg = t.sql().await;
    pg.batch_execute(
        "SELECT skiplock.archive_partitions_ensure(now(), 0);
         INSERT INTO skiplock.jobs_archive (id, run_at, created_at, attempted_at, finished_at, state, attempt,
             max_attempts, priority, queue, kind, args, errors, tags, meta)
         SELECT g, now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours',
                date_trunc('day', now(), 'UTC') + (g % 3600) * interval '1 second',
                CASE WHEN g % 20 = 0 THEN 'discarded' WHEN g % 20 = 1 THEN 'cancelled' ELSE 'completed' END::skiplock.job_state,
                1, 20, 0, CASE WHEN g % 1000 = 7 THEN 'rare' ELSE 'q' || (g % 9) END, 'k' || (g % 20),
                jsonb_build_object('i', g, 'user', g % 1000), '[]',
                CASE WHEN g % 500 = 0 THEN '{vip}'::text[] ELSE '{}' END, '{}'
         FROM generate_series(1, 1000000) g;
         ANALYZE skiplock.jobs_archive",
    )
    .await
    .unwrap();
    let archived: i64 = pg.query_one("SELECT count(*) FROM skiplock.jobs_archive", &[]).await.unwrap().get(0);
    assert_eq!(archived, 1_000_000);
    let n = "NULL";
    // (what, the call's arguments but the limit, an index its plan must use, most blocks read)
    let cases: &[(&str, String, &str, i64)] = &[
        ("the newest page", format!("{n},{n},{n},{n},{n},{n},{n},{n},{n},{n}"), "_id_idx", 300),
        ("a page deep down", format!("{n},{n},{n},{n},{n},{n},{n},500000,{n},{n}"), "_id_idx", 300),
        ("a state", format!("'{{discarded}}',{n},{n},{n},{n},{n},{n},{n},{n},{n}"), "discarded_id_idx", 300),
        ("a rare queue", format!("{n},'rare',{n},{n},{n},{n},{n},{n},{n},{n}"), "queue_id_idx", 300),
        ("a kind and state", format!("'{{completed}}',{n},'k19',{n},{n},{n},{n},{n},{n},{n}"), "kind_id_idx", 300),
        ("a tag", format!("{n},{n},{n},'vip',{n},{n},{n},{n},{n},{n}"), "", 3000),
        ("a value in args", format!("{n},{n},{n},{n},{n},'{{\"user\": 7}}',{n},{n},{n},{n}"), "args_idx", 3000),
        ("an id", format!("{n},{n},{n},{n},777,{n},{n},{n},{n},{n}"), "_id_idx", 300),
    ];
    for (what, args, index, max_blocks) in cases {
        let call = format!("SELECT count(*) FROM skiplock.jobs_search({args}, 51)");
        let plans = nested_plans(t.db.url(), &call).await;
        let plan = plans.first().unwrap_or_else(|| panic!("{what}: no nested plan seen"));
        let all = nodes(plan);
        assert!(
            // (The default partition is empty: its scan costs nothing. A tag
            // may be found fastest by reading a small partition whole.)
            index.is_empty()
                || !all.iter().any(|n| n["Node Type"] == "Seq Scan"
                    && n["Relation Name"].as_str().is_some_and(|r| r.starts_with("jobs_archive_p"))),
            "{what} scans an archive partition:\n{plan:#}"
        );
        if !index.is_empty() {
            assert!(
                all.iter().any(|n| n["Index Name"].as_str().is_some_and(|i| i.ends_with(index))),
                "{what} does not use an index named …{index}:\n{plan:#}"
            );
        }
        if what.starts_with("a state") {
            let leaves: Vec<&str> = all.iter().filter_map(|n| n["Relation Name"].as_str()).collect();
            assert!(leaves.iter().all(|r| !r.ends_with("_completed")), "{what}: not pruned: {leaves:?}");
        }
        let read = buffers(plan);
        assert!(read <= *max_blocks, "{what} read {read} blocks:\n{plan:#}");
        eprintln!("{what}: {read} blocks");
    }
}
