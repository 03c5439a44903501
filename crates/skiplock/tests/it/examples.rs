//! The web-service examples run end to end (`--self-test`): one signup
//! through their own HTTP server, its welcome email run by their worker,
//! then the shutdown in order.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::fresh;

/// The example binary `name`, built beside this test binary. The suite's
/// `--all-targets` compiles the examples as test harnesses only, so the
/// program itself is built here, with the same cargo, features and target
/// directory (cached after the first test's build).
async fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let mut build = tokio::process::Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--workspace", "--all-features", "--example", "axum_sqlx", "--example"]);
    build.arg("axum_postgres").current_dir(env!("CARGO_MANIFEST_DIR"));
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let build = build.output().await.expect("cargo runs");
    assert!(build.status.success(), "building the examples: {}", String::from_utf8_lossy(&build.stderr));
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

async fn self_test(name: &str) {
    let t = fresh().await;
    let run = tokio::process::Command::new(example(name).await)
        .arg("--self-test")
        .env("DATABASE_URL", t.db.url())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("done within 120s").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("welcome, ada (user 1, email job "), "{stdout}");
    assert!(stdout.contains("sending the welcome email to ada (job "), "{stdout}");
    assert!(stdout.trim_end().ends_with("stopped"), "{stdout}");
    assert_eq!(t.count("jobs_archive", "kind = 'welcome' AND state = 'completed'").await, 1);
    let welcomed: i64 =
        t.sql().await.query_one("SELECT count(*) FROM users WHERE welcomed_at IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(welcomed, 1);
}

#[cfg(feature = "sqlx")]
#[tokio::test]
async fn the_axum_and_sqlx_example_signs_up_sends_the_email_and_stops_in_order() {
    self_test("axum_sqlx").await;
}

#[tokio::test]
async fn the_axum_and_deadpool_example_signs_up_sends_the_email_and_stops_in_order() {
    self_test("axum_postgres").await;
}
