//! `skiplock bench --quick`, the smoke test CI runs: the real binary, every
//! workload, on a private durable cluster of its own (or, when the tests are
//! pointed at a server, in a fresh database there). No assertion on speed:
//! only that it finishes, in time, with a number for every figure.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The budget for `--quick` in CI.
const BUDGET: Duration = Duration::from_secs(120);
/// Longest the run may take before the test gives up on it (a loaded
/// machine may be slower than CI; the budget is checked separately).
const TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn bench_quick_reports_every_workload() {
    let dir = std::env::temp_dir().join(format!("skiplock-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_file = dir.join("bench.json");

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_skiplock"));
    cmd.env_remove("DATABASE_URL").env_remove("SKIPLOCK_SCHEMA").env_remove("RUST_LOG");
    // Tests pointed at a server (no local PostgreSQL binaries) bench there.
    let _db = if std::env::var_os("SKIPLOCK_TEST_DATABASE_URL").is_some() || std::env::var_os("DATABASE_URL").is_some()
    {
        let db = skiplock_testdb::fresh_database("skiplock-bench-empty", |_| async { Ok(()) }).await.unwrap();
        cmd.env("DATABASE_URL", db.url());
        Some(db)
    } else {
        None
    };
    cmd.args(["bench", "--quick", "--json-file"]).arg(&json_file);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);

    let started = Instant::now();
    let out = tokio::time::timeout(TIMEOUT, cmd.output()).await.expect("bench --quick finishes").expect("runs");
    let took = started.elapsed();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench --quick failed\nstdout: {stdout}\nstderr: {stderr}");
    if took > BUDGET {
        eprintln!("note: bench --quick took {took:?}, over the {BUDGET:?} CI budget (a loaded machine?)");
    }

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(doc["quick"], true);
    assert!(doc["machine"]["postgres"]["server_version"].is_string(), "{}", doc["machine"]);
    for w in ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"] {
        let section = &doc["workloads"][w];
        let rows = section["rows"].as_array().unwrap_or_else(|| panic!("{w} has no rows: {doc}"));
        assert!(!rows.is_empty(), "{w} has no rows");
        for row in rows {
            let median = row["median"].as_f64();
            assert!(median.is_some_and(f64::is_finite), "{w}: no number for {row}");
            if let Some(ratio) = row.get("ratio").filter(|r| !r.is_null()) {
                assert!(ratio.as_f64().is_some_and(f64::is_finite), "{w}: bad ratio in {row}");
            }
        }
        // Its table was printed too.
        assert!(stdout.contains(&w.to_uppercase()), "{w} missing from the tables:\n{stdout}");
    }
    // The ceiling ran beside skiplock: W1 and W2 compare with it.
    for w in ["w1", "w2"] {
        let rows = doc["workloads"][w]["rows"].as_array().unwrap();
        assert!(rows.iter().any(|r| r["ceiling"]["median"].as_f64().is_some_and(|c| c > 0.0)), "{w}: no ceiling");
    }
}
