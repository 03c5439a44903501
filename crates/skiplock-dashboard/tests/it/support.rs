//! Shared setup: a fresh migrated database, a dashboard served on loopback,
//! and a headless Chromium driven through chromedriver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiplock::Client;
use skiplock_testdb::TestDatabase;

/// A fresh database with the skiplock schema, and a client for it.
pub struct TestDb {
    pub db: TestDatabase,
    pub client: Client,
}

/// The same template as skiplock's own tests (same key, same migration).
pub async fn fresh() -> TestDb {
    let key = format!("skiplock-{}", skiplock::__private::fingerprint());
    let db = skiplock_testdb::fresh_database(&key, |url| async move {
        Client::connect(&url)?.migrate().await?;
        Ok(())
    })
    .await
    .expect("a fresh test database");
    let client = Client::connect(db.url()).expect("client");
    TestDb { db, client }
}

impl TestDb {
    /// A plain connection, for checks in SQL.
    pub async fn sql(&self) -> tokio_postgres::Client {
        self.db.connect().await.expect("connect")
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs`.
pub async fn until<T, F: Future<Output = Option<T>>>(secs: u64, what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "not within {secs}s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A router served on a loopback port until dropped.
pub struct Served {
    pub addr: SocketAddr,
    /// Dropped with this: the server stops.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub async fn serve(router: axum::Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        axum::serve(listener, router).with_graceful_shutdown(stopped).await.unwrap();
    });
    Served { addr, _stop: stop }
}

/// A headless Chromium driven through its own chromedriver. Both are
/// stopped, and the profile removed, when dropped.
pub struct Browser {
    pub c: fantoccini::Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and a fresh Chromium session with
    /// a window of `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        let profile = std::env::temp_dir().join(format!("skiplock-dashboard-chromium-{}-{port}", std::process::id()));
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={width},{height}"),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": args, "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()) }),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: a bounded poll.
        let c = until(30, "chromedriver starts a session", || {
            let caps = caps.clone();
            let url = url.clone();
            async move {
                fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await;
        Browser { c, driver, profile }
    }

    /// The text of the first element matching `css`, if any.
    pub async fn text(&self, css: &str) -> Option<String> {
        let el = self.c.find(fantoccini::Locator::Css(css)).await.ok()?;
        el.text().await.ok()
    }

    /// Waits (at most 15 s) until the element `css` reads `want`.
    pub async fn wait_text(&self, css: &str, want: &str) {
        until(15, &format!("{css} reads {want:?}"), || async {
            (self.text(css).await.as_deref().map(str::trim) == Some(want)).then_some(())
        })
        .await;
    }

    /// Saves a screenshot of the page to `docs/images/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/images");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Ends the browser session (the driver stops when dropped).
    pub async fn quit(self) {
        let _ = self.c.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
