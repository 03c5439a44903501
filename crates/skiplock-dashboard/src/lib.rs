//! # skiplock-dashboard
//!
//! A web dashboard for a [skiplock](skiplock) queue: an axum [`Router`] to
//! nest under any path of your own app, or to serve alone with
//! `skiplock dashboard --listen 127.0.0.1:8080`.
//!
//! Server-rendered HTML (askama templates, compiled and checked with the
//! crate), our own small CSS and JavaScript as progressive enhancement:
//! every page reads and every action works as a plain link or form; the
//! script adds live updates (server-sent events, paused while the tab is
//! hidden), confirmations in place and the theme switch. Charts are SVG
//! drawn on the server. Every figure comes from [`skiplock::Client`]'s
//! methods; a page view never scans the jobs table (the queue depth and
//! per-minute statistics are recorded by the workers and their leader).
//!
//! ## Map
//!
//! | module | what lives there |
//! |---|---|
//! | [`Dashboard`] (`lib.rs`) | the settings and the router |
//! | [`Access`], [`Action`] (`access.rs`) | full, read-only, or a list of allowed actions |
//! | `auth.rs` | token (bearer or login cookie) and basic auth; CSRF checks |
//! | `pages/` | one handler per page: full page, or the fragment the script asks for |
//! | `actions.rs` | the POST handlers: retry, cancel, discard, delete, pause, periodic |
//! | `live.rs` | server-sent events for the overview |
//! | `chart.rs` | SVG charts |
//! | `error.rs` | errors as pages |
//!
//! ## Example: nest it under `/admin/queue`, read-only, behind a token
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = skiplock::Client::connect("postgres://localhost/app")?;
//! let dashboard = skiplock_dashboard::Dashboard::new(client)
//!     .token("a long random secret")
//!     .access(skiplock_dashboard::Access::ReadOnly)
//!     .router();
//! let app = axum::Router::new().nest("/admin/queue", dashboard);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod access;
mod actions;
mod auth;
mod chart;
mod error;
mod live;
mod pages;
mod params;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

pub use access::{Access, Action};

/// How often live figures are sent to an open overview: 2 seconds.
pub const LIVE_INTERVAL_DEFAULT: Duration = Duration::from_secs(2);

/// The dashboard's settings. Build the [`Router`] with [`Dashboard::router`].
#[derive(Clone)]
pub struct Dashboard {
    client: skiplock::Client,
    access: Access,
    token: Option<String>,
    basic: Option<(String, String)>,
    title: String,
    live_interval: Duration,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("access", &self.access)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("basic", &self.basic.as_ref().map(|(u, _)| (u, "***")))
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard of `client`'s queue: full access, no authentication of
    /// its own (layer yours on the router, or call [`Dashboard::token`] or
    /// [`Dashboard::basic_auth`]).
    pub fn new(client: skiplock::Client) -> Self {
        Dashboard {
            client,
            access: Access::Full,
            token: None,
            basic: None,
            title: "skiplock".to_owned(),
            live_interval: LIVE_INTERVAL_DEFAULT,
            metrics: None,
        }
    }

    /// Serves this installed recorder on `/metrics` (every metric the process
    /// records, with the queue depth added at each scrape). Without it,
    /// `/metrics` serves the queue depth alone, from a recorder of its own.
    pub fn metrics(mut self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// What users may do (default [`Access::Full`]).
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Requires this token: sent as `Authorization: Bearer <token>`, or
    /// typed once into the login form, which sets a cookie (a digest of the
    /// token, `HttpOnly`, `SameSite=Lax`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Requires HTTP basic authentication with this user and password
    /// (either this or the token, when both are set).
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic = Some((user.into(), password.into()));
        self
    }

    /// The name shown in the header and the tab (default `skiplock`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// How often live figures are sent (default [`LIVE_INTERVAL_DEFAULT`],
    /// at least 100 ms).
    pub fn live_interval(mut self, every: Duration) -> Self {
        self.live_interval = every.max(Duration::from_millis(100));
        self
    }

    /// Whether the dashboard authenticates requests itself.
    pub fn has_auth(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    /// The router: pages under `/`, `/jobs`, `/jobs/{id}`, `/queues`,
    /// `/periodic`, `/workers`; actions as POSTs; `/live` (server-sent
    /// events), `/metrics` (Prometheus text), `/assets/…`. Nest it anywhere.
    pub fn router(self) -> Router {
        let app = Arc::new(App {
            client: self.client,
            access: self.access,
            auth: auth::Auth::new(self.token, self.basic),
            title: self.title,
            live_interval: self.live_interval,
            metrics: self.metrics.map_or_else(pages::metrics::Source::own, pages::metrics::Source::Installed),
            depth_gauges: skiplock::DepthGauges::new(),
        });
        Router::new()
            .route("/", get(pages::overview::page))
            .route("/jobs", get(pages::jobs::page))
            .route("/jobs/bulk", get(pages::jobs::bulk_confirm).post(actions::jobs_bulk))
            .route("/jobs/act", post(actions::jobs_act))
            .route("/jobs/{id}", get(pages::job::page))
            .route("/queues", get(pages::queues::page))
            .route("/queues/act", post(actions::queues_act))
            .route("/periodic", get(pages::periodic::page))
            .route("/periodic/act", post(actions::periodic_act))
            .route("/workers", get(pages::workers::page))
            .route("/live", get(live::stream))
            .route("/metrics", get(pages::metrics::page))
            .route("/login", get(auth::login_page).post(auth::login))
            .route("/logout", post(auth::logout))
            .route("/assets/app.css", get(pages::assets::css))
            .route("/assets/app.js", get(pages::assets::js))
            .fallback(pages::not_found)
            .layer(axum::middleware::from_fn_with_state(app.clone(), auth::guard))
            .with_state(app)
    }
}

/// What every handler shares.
pub(crate) struct App {
    pub client: skiplock::Client,
    pub access: Access,
    pub auth: auth::Auth,
    pub title: String,
    pub live_interval: Duration,
    pub metrics: pages::metrics::Source,
    pub depth_gauges: skiplock::DepthGauges,
}
