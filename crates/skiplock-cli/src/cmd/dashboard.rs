//! `skiplock dashboard`: serves the web dashboard (`skiplock-dashboard`)
//! alone, on an address of its own, until ctrl-c or SIGTERM.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use skiplock::Client;
use skiplock_dashboard::{Access, Dashboard};
use tokio_util::sync::CancellationToken;

use super::Ctx;

/// The address served unless told otherwise.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8080";
/// Connections the dashboard's pool may open: a page runs up to five small
/// reads at once.
const POOL_SIZE: usize = 8;
/// The environment variable `--token` defaults to.
pub const TOKEN_ENV: &str = "SKIPLOCK_DASHBOARD_TOKEN";

/// Serve the web dashboard: overview, jobs, queues, periodic jobs, workers.
///
/// A non-loopback address needs --token or --basic-auth. Every page works
/// without JavaScript; actions are POSTs protected against cross-site
/// request forgery.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  skiplock dashboard                                   # http://127.0.0.1:8080/
  SKIPLOCK_DASHBOARD_TOKEN=s3cret skiplock dashboard --listen 0.0.0.0:8080
  skiplock dashboard --basic-auth ops:pa55 --read-only
  skiplock dashboard --allow retry,pause")]
pub struct Args {
    /// Where to listen
    #[arg(long, value_name = "ADDR", default_value = LISTEN_DEFAULT)]
    pub listen: SocketAddr,
    /// Require this token: `Authorization: Bearer T`, or the login form (sets a cookie)
    #[arg(long, value_name = "T", env = TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
    /// Require HTTP basic authentication with this user and password
    #[arg(long, value_name = "USER:PASS")]
    pub basic_auth: Option<String>,
    /// Show everything, allow no action
    #[arg(long, conflicts_with = "allow")]
    pub read_only: bool,
    /// Allow only these actions: retry, cancel, discard, delete, pause, periodic (comma-separated)
    #[arg(long, value_name = "ACTIONS")]
    pub allow: Option<String>,
}

impl Args {
    /// Loopback, no authentication, full access: the demo's dashboard.
    pub fn local(listen: SocketAddr) -> Args {
        Args { listen, token: None, basic_auth: None, read_only: false, allow: None }
    }
}

/// The dashboard these options describe.
pub fn build(client: Client, args: &Args) -> Result<Dashboard> {
    let mut d = Dashboard::new(client);
    if let Some(t) = &args.token {
        if t.trim().is_empty() {
            bail!("--token (or {TOKEN_ENV}) is empty");
        }
        d = d.token(t.clone());
    }
    if let Some(b) = &args.basic_auth {
        let Some((user, pass)) = b.split_once(':').filter(|(u, p)| !u.is_empty() && !p.is_empty()) else {
            bail!("--basic-auth must be USER:PASS, both non-empty");
        };
        d = d.basic_auth(user, pass);
    }
    if !args.listen.ip().is_loopback() && !d.has_auth() {
        bail!(
            "refusing to serve the dashboard on {} without authentication: pass --token (or set {TOKEN_ENV}) \
             or --basic-auth, or listen on a loopback address",
            args.listen
        );
    }
    if args.read_only {
        d = d.access(Access::ReadOnly);
    } else if let Some(list) = &args.allow {
        d = d.access(Access::only(list).map_err(|e| anyhow::anyhow!("--allow: {e}"))?);
    }
    Ok(d)
}

/// Serves `dashboard` on `listener` until `stop` fires.
pub async fn serve(listener: tokio::net::TcpListener, dashboard: Dashboard, stop: CancellationToken) -> Result<()> {
    axum::serve(listener, dashboard.router())
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("the dashboard's server failed")
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let url = ctx.database_url()?.context("no database: pass --database-url or set DATABASE_URL")?;
    let client = ctx.client_with(&url, POOL_SIZE)?;
    let dashboard = build(client, &args)?.metrics(crate::prometheus::install()?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("dashboard at http://{addr}/ (ctrl-c to stop)");
    let stop = CancellationToken::new();
    let signals = tokio::spawn(super::demo::stop_on_signal(stop.clone()));
    let served = serve(listener, dashboard, stop).await;
    signals.abort();
    served
}
