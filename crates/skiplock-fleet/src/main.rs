//! `skiplock-fleet-worker`: one real skiplock worker process, for tests that
//! need several processes (sharing work, a crash and its rescue). It serves
//! one queue with a catch-all handler chosen on the command line:
//!
//! - `noop`: completes at once.
//! - `log`: writes a row to `public.fleet_log` when it starts and stamps its
//!   `finished_at` when it ends, so that overlapping runs of a job show.
//! - `block`: logs its start, then runs until it is told to stop.
//! - `sleep:MS`: logs, sleeps `MS` milliseconds (or until told to stop).
//!
//! The handlers that log expect `public.fleet_log` (created by
//! `skiplock_fleet::setup`) in the database at `--log-url`, which defaults
//! to `--database-url`: a test that breaks the queue's database or its
//! network keeps its log elsewhere, out of harm's way.
//!
//! It prints `ready` on stdout once its LISTEN connection is up (at once with
//! `--listen off`), and with `--print-outcomes` a line per outcome written
//! (`finished ID STATE`) or refused as stale (`stale ID`). It shuts down
//! gracefully on SIGTERM or SIGINT (a second signal stops at once).

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use skiplock::{Event, JobContext, JobError, Listen, StatementMode, Worker};
use tokio::sync::broadcast::error::RecvError;

/// Connections of the `fleet_log` pool, at most.
const LOG_POOL_MAX: usize = 8;

/// The worker's settings; unset ones take the library's defaults.
#[derive(Debug, clap::Parser)]
#[command(name = "skiplock-fleet-worker", args_override_self = true)]
struct Args {
    /// The database, already migrated
    #[arg(long, value_name = "URL")]
    database_url: String,
    /// The queue to serve
    #[arg(long, default_value = skiplock::QUEUE_DEFAULT)]
    queue: String,
    /// Jobs running at once
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// What each job does: noop, log, block or sleep:MS
    #[arg(long, default_value = "noop", value_parser = Handler::parse)]
    handler: Handler,
    /// The lease, in milliseconds
    #[arg(long, value_name = "MS")]
    lease_ms: Option<u64>,
    /// How often the rescuer runs, in milliseconds
    #[arg(long, value_name = "MS")]
    rescue_ms: Option<u64>,
    /// The idle poll interval, in milliseconds (no back-off)
    #[arg(long, value_name = "MS")]
    poll_ms: Option<u64>,
    /// The name left in `leased_by`
    #[arg(long, value_name = "ID")]
    worker_id: Option<String>,
    /// Run no maintenance services (rescuer, scheduler) in this process
    #[arg(long)]
    no_maintenance: bool,
    /// The leader's lease, in milliseconds
    #[arg(long, value_name = "MS")]
    leader_lease_ms: Option<u64>,
    /// Where to LISTEN: auto (on a connection like the pool's), off (poll
    /// only), or a postgres:// URL (a direct connection, past PgBouncer)
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = parse_listen)]
    listen: Listen,
    /// How statements are sent: prepared, or unnamed (PgBouncer in
    /// transaction mode)
    #[arg(long, value_name = "MODE", default_value = "prepared", value_parser = parse_statement_mode)]
    statement_mode: StatementMode,
    /// Longest wait for one statement, in milliseconds
    #[arg(long, value_name = "MS")]
    statement_timeout_ms: Option<u64>,
    /// The database holding `public.fleet_log` (default: --database-url)
    #[arg(long, value_name = "URL")]
    log_url: Option<String>,
    /// Print `finished ID STATE` or `stale ID` on stdout for each outcome
    #[arg(long)]
    print_outcomes: bool,
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    match s {
        "auto" => Ok(Listen::Auto),
        "off" => Ok(Listen::Disabled),
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(Listen::Url(url.to_owned())),
        _ => Err(format!("{s:?} is not auto, off or a postgres:// URL")),
    }
}

fn parse_statement_mode(s: &str) -> Result<StatementMode, String> {
    match s {
        "prepared" => Ok(StatementMode::Prepared),
        "unnamed" => Ok(StatementMode::Unnamed),
        _ => Err(format!("{s:?} is not prepared or unnamed")),
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy)]
enum Handler {
    Noop,
    Log,
    Block,
    Sleep(Duration),
}

impl Handler {
    fn parse(s: &str) -> Result<Handler, String> {
        match s {
            "noop" => Ok(Handler::Noop),
            "log" => Ok(Handler::Log),
            "block" => Ok(Handler::Block),
            _ => match s.strip_prefix("sleep:").map(str::parse::<u64>) {
                Some(Ok(ms)) => Ok(Handler::Sleep(Duration::from_millis(ms))),
                _ => Err(format!("{s:?} is not one of noop, log, block, sleep:MS")),
            },
        }
    }
}

/// A handler and the pool it logs through.
struct Runner {
    handler: Handler,
    log: Option<deadpool_postgres::Pool>,
}

impl Runner {
    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        let row = match (&self.log, self.handler) {
            (Some(pool), Handler::Log | Handler::Block | Handler::Sleep(_)) => Some(log_start(pool, &job).await?),
            _ => None,
        };
        let stopped = match self.handler {
            Handler::Noop | Handler::Log => false,
            Handler::Block => {
                job.cancelled().await;
                true
            }
            Handler::Sleep(d) => tokio::select! {
                () = tokio::time::sleep(d) => false,
                () = job.cancelled() => true,
            },
        };
        if let (Some(pool), Some(row)) = (&self.log, row) {
            log_end(pool, row).await?;
        }
        if stopped { Err(JobError::retry(format!("stopped: {:?}", job.cancel_reason()))) } else { Ok(()) }
    }
}

/// Records that an execution of `job` started; returns its log row.
async fn log_start(pool: &deadpool_postgres::Pool, job: &JobContext) -> Result<i64, JobError> {
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let db = pool.get().await?;
    let row = db
        .query_one(
            "INSERT INTO public.fleet_log (job_id, attempt, pid, started_at) \
             VALUES ($1, $2, $3, clock_timestamp()) RETURNING id",
            &[&job.id(), &job.attempt(), &pid],
        )
        .await?;
    Ok(row.get(0))
}

/// Records that the execution logged as `row` ended.
async fn log_end(pool: &deadpool_postgres::Pool, row: i64) -> Result<(), JobError> {
    let db = pool.get().await?;
    db.execute("UPDATE public.fleet_log SET finished_at = clock_timestamp() WHERE id = $1", &[&row]).await?;
    Ok(())
}

/// Prints `ready` once the LISTEN connection is up (at once if `listening`
/// is false), and with `outcomes` a line per outcome written or refused.
async fn announce(mut events: tokio::sync::broadcast::Receiver<Event>, listening: bool, outcomes: bool) {
    let mut ready = !listening;
    if ready {
        println!("ready");
    }
    loop {
        match events.recv().await {
            Ok(Event::ListenerConnected) if !ready => {
                ready = true;
                println!("ready");
            }
            Ok(Event::Finished { id, state, .. }) if outcomes => println!("finished {id} {state}"),
            Ok(Event::Stale { id }) if outcomes => println!("stale {id}"),
            // Outcomes missed: say so, so that a test fails rather than waits.
            Err(RecvError::Lagged(n)) if outcomes => println!("lagged {n}"),
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        if ready && !outcomes {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let log = match args.handler {
        Handler::Noop => None,
        Handler::Log | Handler::Block | Handler::Sleep(_) => {
            // With the URL's TLS settings, as the library's own connections.
            let url = args.log_url.clone().unwrap_or_else(|| args.database_url.clone());
            let (pg, tls) = skiplock::TlsConfig::from_url(&url)?;
            let manager = deadpool_postgres::Manager::new(pg, tls.connector()?);
            let size = args.concurrency.clamp(1, LOG_POOL_MAX);
            Some(deadpool_postgres::Pool::builder(manager).max_size(size).build()?)
        }
    };
    let runner = Arc::new(Runner { handler: args.handler, log });

    let mut client = skiplock::Client::builder(&args.database_url).statement_mode(args.statement_mode);
    if let Some(ms) = args.statement_timeout_ms {
        client = client.statement_timeout(Some(Duration::from_millis(ms)));
    }
    let client = client.build()?;
    let mut builder = Worker::builder(client).queue(&args.queue, args.concurrency).register_any(None, move |_, job| {
        let runner = runner.clone();
        async move { runner.run(job).await }
    });
    if let Some(ms) = args.lease_ms {
        builder = builder.lease(Duration::from_millis(ms));
    }
    if let Some(ms) = args.rescue_ms {
        builder = builder.rescue_interval(Duration::from_millis(ms));
    }
    if let Some(ms) = args.poll_ms {
        builder = builder.poll_interval(Duration::from_millis(ms), Duration::from_millis(ms));
    }
    if let Some(id) = args.worker_id {
        builder = builder.worker_id(id);
    }
    if args.no_maintenance {
        builder = builder.maintenance(false);
    }
    if let Some(ms) = args.leader_lease_ms {
        builder = builder.leader_lease(Duration::from_millis(ms));
    }
    // No LISTEN connection: off, or unnamed statements without a URL.
    let listening = match args.listen {
        Listen::Disabled => false,
        Listen::Auto => args.statement_mode == StatementMode::Prepared,
        Listen::Url(_) => true,
    };
    let worker = builder.listen(args.listen).build()?;
    tokio::spawn(announce(worker.subscribe(), listening, args.print_outcomes));
    worker.run_until_signal().await?;
    Ok(())
}
