//! The subcommands, one file each, and what they share: the database
//! connection and where it points.

pub mod bench;
pub mod dashboard;
pub mod demo;
pub mod enqueue;
pub mod exec_guard;
pub mod health;
pub mod jobs;
pub mod migrate;
pub mod queues;
pub mod stats;
pub mod work;

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Result, bail};
use skiplock::Client;

use crate::cli::{Cli, Command, Global};
use crate::{fail, input};

/// The environment variable `--database-url` defaults to.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
/// Connections a command's pool may open; the CLI runs one statement at a time.
const POOL_SIZE: usize = 4;
/// How long to wait for the database before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every subcommand gets: the global options, and once connected, where to.
pub struct Ctx {
    /// The global options.
    pub global: Global,
    /// `host:port/dbname` of the database, set on connecting, for errors.
    place: OnceLock<String>,
}

impl Ctx {
    /// The database URL given by flag or environment, if any. A URL that is
    /// not UTF-8 is refused naming where it came from, never quoted: it may
    /// hold a password.
    pub fn database_url(&self) -> Result<Option<String>> {
        let Some(url) = self.global.database_url.as_ref() else { return Ok(None) };
        let from =
            if std::env::var_os(DATABASE_URL_ENV).as_ref() == Some(url) { DATABASE_URL_ENV } else { "--database-url" };
        Ok(Some(input::utf8_secret(from, url)?).filter(|u| !u.trim().is_empty()))
    }

    /// A client for the database given, with `pool_size` connections at most.
    pub fn client_with(&self, url: &str, pool_size: usize) -> Result<Client> {
        let schema = input::utf8("--schema", &self.global.schema)?;
        let client = Client::builder(url)
            .schema(&schema)?
            .pool_size(pool_size)
            .pool_timeout(CONNECT_TIMEOUT)
            .application_name("skiplock-cli")
            .build()?;
        let _ = self.place.set(client.place());
        Ok(client)
    }

    /// A client for the database given, or the "no database" error.
    pub fn client(&self) -> Result<Client> {
        match self.database_url()? {
            Some(url) => self.client_with(&url, POOL_SIZE),
            None => bail!("no database: pass --database-url or set DATABASE_URL"),
        }
    }

    /// Whether to print JSON.
    pub fn json(&self) -> bool {
        self.global.json
    }
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx { global: cli.global, place: OnceLock::new() };
    let result = match cli.command {
        Command::Migrate(args) => migrate::run(&ctx, args).await,
        Command::Enqueue(args) => enqueue::run(&ctx, args).await,
        Command::Jobs(cmd) => jobs::run(&ctx, cmd).await,
        Command::Stats(args) => stats::run(&ctx, args).await,
        Command::Health(args) => health::run(&ctx, args).await,
        Command::Queues(cmd) => queues::run(&ctx, cmd).await,
        Command::Dashboard(args) => dashboard::run(&ctx, args).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
        Command::Bench(args) => bench::run(&ctx, args).await,
        Command::Work(args) => work::run(&ctx, args).await,
        // Started by `work --exec`, and run by `main` before any runtime.
        Command::ExecGuard(_) => bail!("{} is internal to `skiplock work --exec`", exec_guard::NAME),
    };
    // Name the server when we could not reach it or were turned away; the
    // password never appears, as the place is built from host, port and name.
    result.map_err(|e| match ctx.place.get() {
        Some(place) if fail::is_connection_error(&e) => fail::at_place(&e, place),
        _ => e,
    })
}
