//! TLS against real PostgreSQL: private clusters with `ssl = on`, a CA and server certificate
//! made for the test, and a `pg_hba.conf` that accepts TCP with TLS only (`hostssl`). What
//! `verify-full` accepts, the one clear error each misconfiguration gets, client certificates,
//! and a drain by a real worker whose pool and LISTEN connection are both TLS.

use std::time::Duration;

use skiplock::{Client, Error, Event, SslMode, WakeSource, Worker};
use skiplock_testdb::{Cluster, ClusterOptions, ClusterTls};

/// A private TLS cluster made with `tls`, started off the async threads.
async fn tls_cluster(tls: ClusterTls) -> Cluster {
    let opts = ClusterOptions { tls: Some(tls), ..Default::default() };
    tokio::task::spawn_blocking(move || Cluster::start(opts)).await.unwrap().expect("a TLS cluster")
}

/// `postgres://postgres@HOST:PORT/postgres?QUERY`.
fn url(cluster: &Cluster, host: &str, query: &str) -> String {
    format!("postgres://postgres@{host}:{}/postgres?{query}", cluster.port())
}

/// Whether the connection `pg` runs over is encrypted, by the server's account.
async fn encrypted(pg: &tokio_postgres::Client) -> bool {
    pg.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

/// True when the pool of `client` (named `app`) opened connections and all
/// of them are encrypted, as the server sees them (over `url`).
async fn pool_encrypted(client: &Client, app: &str, url: &str) -> bool {
    client.warm_up(2).await.unwrap();
    let pg = skiplock::connect_raw(url).await.unwrap();
    let row = pg
        .query_one(
            "SELECT coalesce(bool_and(s.ssl), false), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let (all, n): (bool, i64) = (row.get(0), row.get(1));
    n >= 2 && all
}

/// The error of a client's first connection (the pool's).
async fn first_error(client: Client) -> Error {
    client.migrate().await.expect_err("the connection should have been refused")
}

fn ca(cluster: &Cluster) -> String {
    cluster.ca_cert().expect("a TLS cluster has a CA").display().to_string()
}

#[tokio::test]
async fn verify_full_connects_over_tls_from_the_url_or_the_builder() {
    let cluster = tls_cluster(ClusterTls::default()).await;
    // The URL names the CA and verify-full (Cluster::url of a TLS cluster).
    let client = Client::builder(cluster.url("postgres")).application_name("pool-verify-full").build().unwrap();
    client.migrate().await.unwrap();
    assert!(
        pool_encrypted(&client, "pool-verify-full", &cluster.url("postgres")).await,
        "the pool's connections are encrypted"
    );
    // The key-value form, by host name.
    let kv = format!(
        "host=localhost port={} user=postgres sslmode=verify-full sslrootcert='{}'",
        cluster.port(),
        ca(&cluster)
    );
    assert!(encrypted(&skiplock::connect_raw(&kv).await.unwrap()).await);
    // The builder's setters over a URL that says nothing of TLS.
    let builder = Client::builder(url(&cluster, "127.0.0.1", "application_name=setters"))
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(cluster.ca_cert().unwrap());
    assert!(encrypted(&builder.connect_single().await.unwrap()).await);
    builder.build().unwrap().migrate().await.unwrap();
}

#[tokio::test]
async fn a_wrong_ca_fails_with_one_error_naming_sslrootcert() {
    let cluster = tls_cluster(ClusterTls::default()).await;
    let dir = cluster.socket_dir().join("elsewhere");
    std::fs::create_dir(&dir).unwrap();
    let wrong = dir.join("other-ca.crt");
    skiplock_testdb::write_unrelated_ca(&wrong).unwrap();
    for mode in ["verify-full", "verify-ca", "require"] {
        let query = format!("sslmode={mode}&sslrootcert={}", wrong.display());
        let e = first_error(Client::connect(&url(&cluster, "127.0.0.1", &query)).unwrap()).await;
        let text = e.to_string();
        assert!(matches!(e, Error::Tls { .. }), "{mode}: {e:?}");
        assert_eq!(
            text,
            format!(
                "TLS: the server's certificate is not signed by a CA in sslrootcert ({}) (sslmode={mode}, host \
                 127.0.0.1)",
                wrong.display()
            ),
            "{mode}"
        );
        assert!(e.is_transient(), "a worker keeps trying, as for a server that is down");
    }
    // The same words from connect_raw.
    let e = skiplock::connect_raw(&url(
        &cluster,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", wrong.display()),
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().starts_with("TLS: the server's certificate is not signed by a CA in sslrootcert"), "{e}");
}

#[tokio::test]
async fn a_certificate_for_another_host_fails_verify_full_naming_both_hosts() {
    // The certificate is for 127.0.0.1 only; we connect by the name localhost.
    let cluster = tls_cluster(ClusterTls { server_names: vec!["127.0.0.1".into()], ..Default::default() }).await;
    let query = format!("sslmode=verify-full&sslrootcert={}", ca(&cluster));
    let e = first_error(Client::connect(&url(&cluster, "localhost", &query)).unwrap()).await;
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "TLS: the server's certificate is for host 127.0.0.1, not localhost (sslmode=verify-full)"
    );
    // verify-ca checks the chain only, so the same host name is fine there; and by the
    // certificate's own name verify-full connects.
    let query = format!("sslmode=verify-ca&sslrootcert={}", ca(&cluster));
    assert!(encrypted(&skiplock::connect_raw(&url(&cluster, "localhost", &query)).await.unwrap()).await);
    let query = format!("sslmode=verify-full&sslrootcert={}", ca(&cluster));
    assert!(encrypted(&skiplock::connect_raw(&url(&cluster, "127.0.0.1", &query)).await.unwrap()).await);
}

#[tokio::test]
async fn sslmode_disable_against_a_tls_only_server_says_to_set_sslmode_require() {
    let cluster = tls_cluster(ClusterTls::default()).await;
    let e = first_error(Client::connect(&url(&cluster, "127.0.0.1", "sslmode=disable")).unwrap()).await;
    let text = e.to_string();
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(
        text.starts_with(
            "TLS: the server accepts only TLS connections here, and sslmode=disable: set sslmode=require or stronger"
        ),
        "{text}"
    );
    assert!(text.contains("no pg_hba.conf entry"), "the server's own words follow: {text}");
    assert_eq!(e.sqlstate(), Some("28000"));
    // The default, prefer, encrypts and connects (no root file: no verification, as libpq).
    let prefer = skiplock::connect_raw(&url(&cluster, "127.0.0.1", "application_name=prefer")).await.unwrap();
    assert!(encrypted(&prefer).await);
}

#[tokio::test]
async fn client_certificates_are_sent_from_the_url_or_the_builder_when_the_server_asks() {
    let cluster = tls_cluster(ClusterTls { client_certs: true, ..Default::default() }).await;
    let (cert, key) = cluster.client_cert("postgres").unwrap();
    let verify = format!("sslmode=verify-full&sslrootcert={}", ca(&cluster));
    // Without one, the server refuses, and says why.
    let e = first_error(Client::connect(&url(&cluster, "127.0.0.1", &verify)).unwrap()).await;
    assert!(e.to_string().contains("certificate"), "{e}");
    // From the URL.
    let with_cert = format!("{verify}&sslcert={}&sslkey={}", cert.display(), key.display());
    let client =
        Client::builder(url(&cluster, "127.0.0.1", &with_cert)).application_name("pool-client-cert").build().unwrap();
    client.migrate().await.unwrap();
    assert!(pool_encrypted(&client, "pool-client-cert", &url(&cluster, "127.0.0.1", &with_cert)).await);
    // From the builder.
    let client = Client::builder(url(&cluster, "127.0.0.1", &verify)).ssl_client_cert(&cert, &key).build().unwrap();
    client.migrate().await.unwrap();
    // A key others may read is refused before any connection, naming the file, not its contents.
    let loose = cluster.socket_dir().join("loose.key");
    std::fs::copy(&key, &loose).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Client::builder(url(&cluster, "127.0.0.1", &verify)).ssl_client_cert(&cert, &loose).build().unwrap_err();
    let text = e.to_string();
    assert!(text.contains("has group or world access") && text.contains(&loose.display().to_string()), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_drains_over_tls_with_its_listen_connection_over_tls_and_loses_nothing() {
    const JOBS: usize = 2_000;
    let cluster = tls_cluster(ClusterTls::default()).await;
    let client = Client::connect(&cluster.url("postgres")).unwrap();
    client.migrate().await.unwrap();
    let ids = enqueue(&client, JOBS / 2).await;
    let worker = Worker::builder(client.clone())
        .queue("tls", 20)
        // Long polls: after the first batch, jobs are found through NOTIFY.
        .poll_interval(Duration::from_secs(3600), Duration::from_secs(3600))
        .register_any(None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    // The first half's outcomes, and the LISTEN connection (which may come up after some of
    // them, on a loaded machine).
    let (mut done, mut listening) = (Vec::new(), false);
    while done.len() < JOBS / 2 || !listening {
        let what = format!("the first half ({} of {} finished, listening: {listening})", done.len(), JOBS / 2);
        match next(&mut events, &what).await {
            Event::ListenerConnected => listening = true,
            Event::Finished { id, state, .. } if state.is_final() => done.push((id, state)),
            _ => {}
        }
    }
    let check = skiplock::connect_raw(&cluster.url("postgres")).await.unwrap();
    let listeners: i64 = check
        .query_one(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.query ILIKE 'LISTEN%' AND s.ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(listeners, 1, "the LISTEN connection is encrypted");
    // The second half wakes the idle worker through the encrypted LISTEN connection.
    let more = enqueue(&client, JOBS / 2).await;
    let mut notified = false;
    while done.len() < JOBS {
        match next(
            &mut events,
            &format!("the second half ({} of {JOBS} finished, woken by NOTIFY: {notified})", done.len()),
        )
        .await
        {
            Event::Woken { source, .. } => notified |= source == WakeSource::Notify,
            Event::Finished { id, state, .. } if state.is_final() => done.push((id, state)),
            _ => {}
        }
    }
    assert!(notified, "a NOTIFY woke the worker");
    handle.shutdown().await;

    let mut want: Vec<i64> = ids.into_iter().chain(more).collect();
    let mut got: Vec<i64> = done.iter().map(|(id, _)| *id).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "every job finished once");
    assert!(done.iter().all(|(_, s)| *s == skiplock::JobState::Completed));
    let row = check
        .query_one(
            "SELECT (SELECT count(*) FROM skiplock.jobs), (SELECT count(*) FROM skiplock.jobs_archive WHERE state = 'completed'), \
                    (SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.backend_type = 'client backend' AND NOT s.ssl AND a.client_addr IS NOT NULL)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)), (0, JOBS as i64, 0));
}

/// The worker's next event, waiting at most a minute; `what` says what was awaited.
async fn next(events: &mut tokio::sync::broadcast::Receiver<Event>, what: &str) -> Event {
    match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => panic!("{what}: the event stream failed: {e}"),
        Err(_) => panic!("{what}: no event within 60 s"),
    }
}

async fn enqueue(client: &Client, n: usize) -> Vec<i64> {
    let opts = skiplock::EnqueueOptions::new().queue("tls");
    let jobs =
        (0..n).map(|i| skiplock::NewJob::from_json("tls.noop", &format!(r#"{{"i":{i}}}"#), opts.clone()).unwrap());
    client.enqueue_many(jobs.collect()).await.unwrap().into_iter().map(|e| e.id).collect()
}
