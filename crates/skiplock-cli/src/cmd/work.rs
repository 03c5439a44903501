//! `skiplock work --exec`: a worker for jobs written in any language. Each
//! job runs `sh -c COMMAND` once per attempt, with the job's args on stdin and
//! its id, kind, queue and attempt in environment variables; exit status 0
//! completes the job, anything else fails the attempt with the end of stderr.
//! Each command runs under the guard of `exec_guard.rs`, which kills it if
//! this process dies.
//!
//! The runtime is the library's [`Worker`]: claims under leases, heartbeats,
//! retries with backoff, timeouts, operator cancels and graceful shutdown.
//! This file only starts processes and reads their output.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::value::RawValue;
use skiplock::{CancelReason, JobContext, JobError, QueueConfig, Worker};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio_util::sync::CancellationToken;

use super::{Ctx, exec_guard};
use crate::input::{self, utf8};
use printer::Printer;
use secrets::{CREDENTIAL_VARS, Secrets};

mod printer;
mod secrets;

/// Jobs of each queue running at once unless told otherwise.
const CONCURRENCY_DEFAULT: usize = 10;
/// Most of a failed command's stderr kept in the attempt's error, from the
/// end (where a script says what finally went wrong): 4 KiB.
const STDERR_TAIL: usize = 4 << 10;
/// Longest stdout line printed as one; longer ones are split.
const LINE_MAX: u64 = 64 << 10;
/// How long the last lines may take to be printed at the end, when stdout
/// is slow or not read at all, before the worker exits without them.
const PRINT_FLUSH: Duration = Duration::from_secs(5);
/// Longest status line the guard writes (`signal 15` and the like).
const STATUS_LINE_MAX: u64 = 32;
/// Once the command has exited and its process group was killed, how long a
/// read of its output may wait for more: what the group wrote is already in
/// the pipes and read at once, whatever the wait for stdout to take it (so
/// no line is lost); only a process that left the group (`setsid`) can hold
/// a pipe open and quiet that long.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);
/// Producers per queue, each with a claim in flight at times: the library's
/// `runtime::PRODUCERS_PER_QUEUE` (fewer when a queue's concurrency is lower).
const PRODUCERS_PER_QUEUE: usize = 2;
/// Pool connections used at once besides the producers': two completer
/// flushes in flight (`runtime/completer.rs` `IN_FLIGHT`), the statistics
/// writer (`runtime/stats.rs`), and the eight services of
/// `maintenance::Services::spawn` without periodic jobs (the elector,
/// rescuer, scheduler, archive, unique keys, vacuum, queue depth,
/// statistics), each one statement or transaction at a time. Not the pool's:
/// the heartbeat's connection (a pool of its own, `Db::dedicated`) and the
/// LISTEN connection. Not counted: the registry, whose connection is in use
/// only while the producers wait for it, and the elector's second one,
/// taken only while this process does not lead (its leader-only services
/// then idle). The start-up check is done before the worker starts.
const POOL_SERVICES: usize = 2 + 1 + 8;

const EXAMPLES: &str = r#"Examples:
  skiplock work --queue default --exec './handle-job.py'
  skiplock work --queue mail --queue media --concurrency 20 --timeout 5m --exec 'node worker.js'
  skiplock work --queue reports --kind report.daily --exec 'jq -r .date | xargs ./report'

The command:
  Runs as `sh -c COMMAND` once per attempt, with the job's args (JSON) on stdin and these
  environment variables: SKIPLOCK_JOB_ID, SKIPLOCK_JOB_KIND, SKIPLOCK_JOB_QUEUE,
  SKIPLOCK_JOB_ATTEMPT (from 1) and SKIPLOCK_JOB_MAX_ATTEMPTS; the worker's own DATABASE_URL
  and PGPASSWORD are removed (--pass-env-credentials keeps them). Exit status 0 completes the
  job; any other status, or death by a signal, fails the attempt (retried with backoff until
  the attempts are used up) and records the end of stderr in the job's errors. Each line
  the command prints on stdout is printed here, prefixed with `[job ID]` (--quiet drops it);
  while this worker's stdout is not read fast enough, commands wait to print (no line is
  dropped, and leases are still kept), up to their --timeout. The worker's password, and
  whatever looks like one (a URL's, password=..., PGPASSWORD=...), is printed as ***, in
  stdout lines and in the errors logged and stored.
  The command runs in a process group of its own: a timeout, an operator's cancel
  (`skiplock jobs cancel`) or the end of the shutdown grace kills the whole group, and
  whatever it left running is killed when it exits. If this worker dies, even by SIGKILL,
  the group is killed too: each command runs under a small guard (this binary again) that
  watches the worker.

Stopping:
  SIGINT (ctrl-c) or SIGTERM stops claiming; running commands get --shutdown-grace to
  finish, then are killed and their jobs go back to the queue without using an attempt.
  A second signal kills them at once."#;

/// Works jobs by running a shell command for each: a worker for any language.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A queue to work (repeat for more)
    #[arg(long = "queue", value_name = "QUEUE", required = true)]
    queues: Vec<OsString>,
    /// Jobs of each queue running at once
    #[arg(long, value_name = "N", default_value_t = CONCURRENCY_DEFAULT)]
    concurrency: usize,
    /// Most jobs of each queue claimed ahead of free slots, waiting here under a heartbeated
    /// lease; how many follows the commands' mean run time (about 50 ms of work). 0 claims only
    /// what can start at once
    #[arg(long, value_name = "N", default_value_t = skiplock::PREFETCH_DEFAULT)]
    prefetch: usize,
    /// How long a job claimed ahead may wait for a free slot before it goes back to the queue
    /// unstarted, for any worker with room [default: 1s]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    prefetch_wait: Option<OsString>,
    /// The command, run as `sh -c COMMAND` once per attempt
    #[arg(long, value_name = "COMMAND", required = true, allow_hyphen_values = true)]
    exec: OsString,
    /// Only jobs of this kind (repeat for more) [default: every kind]. Jobs of other kinds in
    /// the same queues are still claimed, and fail their attempt for want of a handler: give
    /// them queues of their own
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<OsString>,
    /// How long one run of the command may take before it is killed and the attempt fails;
    /// a job enqueued with its own timeout keeps it [default: 30m]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    timeout: Option<OsString>,
    /// How long a job stays leased without a heartbeat before another worker may take it
    /// back (heartbeats come every third of it) [default: 30s]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    lease: Option<OsString>,
    /// At SIGINT or SIGTERM, how long running commands may finish before they are killed
    /// [default: 30s]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    shutdown_grace: Option<OsString>,
    /// Drop the commands' stdout instead of printing it
    #[arg(long)]
    quiet: bool,
    /// Pass DATABASE_URL and PGPASSWORD on to the commands. Without it they are removed from
    /// the commands' environment, as the worker's credentials; other variables (PGHOST,
    /// PGUSER, PGPASSFILE, ...) pass. Either way the worker's password, and anything that
    /// looks like a password, is masked as *** in the output it prints and the errors it
    /// stores
    #[arg(long)]
    pass_env_credentials: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9187): GET /metrics, every metric
    /// in docs/OPERATIONS.md ("Metrics"): jobs claimed and finished, running, lag, queue depth
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
}

/// What every job's run needs.
struct Exec {
    /// This binary, to start as the guard of each command.
    guard: PathBuf,
    command: String,
    quiet: bool,
    /// Whether the commands get [`CREDENTIAL_VARS`].
    pass_env_credentials: bool,
    /// Masked in all the output and errors.
    secrets: Secrets,
    /// The one writer of stdout.
    printer: Printer,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    if args.concurrency == 0 {
        bail!("invalid --concurrency: must be at least 1");
    }
    if args.prefetch > skiplock::PREFETCH_MAX {
        bail!("invalid --prefetch: must be at most {}", skiplock::PREFETCH_MAX);
    }
    let queues = args.queues.iter().map(|q| utf8("--queue", q)).collect::<Result<Vec<_>>>()?;
    let kinds = args.kinds.iter().map(|k| utf8("--kind", k)).collect::<Result<Vec<_>>>()?;
    let command = utf8("--exec", &args.exec)?;
    if command.trim().is_empty() {
        bail!("invalid --exec: is empty; give a shell command such as './handle-job.sh'");
    }
    let duration = |flag: &str, value: &Option<OsString>| -> Result<Option<Duration>> {
        value.as_ref().map(|v| input::duration(flag, &utf8(flag, v)?)).transpose()
    };
    let timeout = duration("--timeout", &args.timeout)?;
    if timeout == Some(Duration::ZERO) {
        bail!("invalid --timeout: must be more than 0");
    }
    let lease = duration("--lease", &args.lease)?;
    let grace = duration("--shutdown-grace", &args.shutdown_grace)?;
    let prefetch_wait = duration("--prefetch-wait", &args.prefetch_wait)?.unwrap_or(skiplock::PREFETCH_WAIT_DEFAULT);
    if prefetch_wait.is_zero() || prefetch_wait > skiplock::PREFETCH_WAIT_MAX {
        bail!("invalid --prefetch-wait: must be between 1ms and {}s", skiplock::PREFETCH_WAIT_MAX.as_secs());
    }

    let Some(url) = ctx.database_url()? else {
        bail!("no database: pass --database-url or set DATABASE_URL");
    };
    // With --metrics-listen, one more service reads the depth count.
    let pool = pool_size(queues.len(), args.concurrency) + usize::from(args.metrics_listen.is_some());
    let client = ctx.client_with(&url, pool)?;
    let mut builder = Worker::builder(client.clone());
    for q in &queues {
        let config = QueueConfig::new(args.concurrency).prefetch(args.prefetch).prefetch_wait(prefetch_wait);
        builder = builder.queue_with(q, config);
    }
    if let Some(lease) = lease {
        builder = builder.lease(lease);
    }
    if let Some(grace) = grace {
        builder = builder.shutdown_grace(grace);
    }
    let printer = Printer::start().context("cannot start the thread that prints stdout")?;
    let pgpassword = std::env::var("PGPASSWORD").ok();
    let exec = Arc::new(Exec {
        guard: guard_program()?,
        command,
        quiet: args.quiet,
        pass_env_credentials: args.pass_env_credentials,
        secrets: Secrets::new(&url, pgpassword.as_deref()),
        printer,
    });
    let handler = {
        let exec = exec.clone();
        move |args: Box<RawValue>, job: JobContext| run_job(exec.clone(), args, job)
    };
    builder = if kinds.is_empty() {
        builder.register_any(timeout, handler)
    } else {
        kinds.iter().fold(builder, |b, kind| b.register_raw(kind, timeout, handler.clone()))
    };
    if let Some(addr) = args.metrics_listen {
        crate::prometheus::listen("--metrics-listen", addr)?;
        builder = builder.depth_metrics(true);
    }
    let worker = builder.build()?;
    // The cheapest statement there is (a primary-key look-up), to fail now
    // and in one line when the database is away or not migrated, rather than
    // warn about it in every producer's loop.
    client.job(0).await?;

    let kinds = if kinds.is_empty() { "every kind".to_owned() } else { format!("kinds {}", kinds.join(", ")) };
    let metrics = args.metrics_listen.map(|a| format!(", metrics on http://{a}/metrics")).unwrap_or_default();
    let started = format!(
        "working queues {} with {} slots each ({kinds}), command: {}{metrics}\n",
        queues.join(", "),
        args.concurrency,
        one_line(&exec.secrets.redact(&exec.command))
    );
    exec.printer.line(started.into_bytes()).await;
    let result = worker.run_until_signal().await;
    if result.is_ok() {
        exec.printer.line(b"stopped\n".to_vec()).await;
    }
    let unprinted = exec.printer.flush(PRINT_FLUSH).await;
    if unprinted > 0 {
        tracing::warn!("stdout is not being read: {unprinted} lines of output were not printed");
    }
    Ok(result?)
}

/// How the command's run ended.
enum Ended {
    Exited(std::io::Result<ExitStatus>),
    /// Killed because the handler was asked to stop.
    Stopped(Option<CancelReason>),
}

/// Runs the command for one attempt of a job: `sh -c COMMAND` under the
/// guard (`exec_guard.rs`), which kills it if this process dies.
async fn run_job(exec: Arc<Exec>, args: Box<RawValue>, job: JobContext) -> Result<(), JobError> {
    let cannot_start = |e: std::io::Error| JobError::retry(format!("cannot start the command: {e}"));
    let (control, theirs) = std::os::unix::net::UnixStream::pair().map_err(cannot_start)?;
    let mut child = {
        let mut cmd = tokio::process::Command::new(&exec.guard);
        cmd.arg0("skiplock")
            .arg(exec_guard::NAME)
            .arg("--")
            .arg(&exec.command)
            .env("SKIPLOCK_JOB_ID", job.id().to_string())
            .env("SKIPLOCK_JOB_KIND", job.kind())
            .env("SKIPLOCK_JOB_QUEUE", job.queue())
            .env("SKIPLOCK_JOB_ATTEMPT", job.attempt().to_string())
            .env("SKIPLOCK_JOB_MAX_ATTEMPTS", job.max_attempts().to_string())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(if exec.quiet { Stdio::null() } else { Stdio::piped() })
            .stderr(Stdio::piped())
            // A group of its own, led by the guard: a terminal's ctrl-c
            // reaches only the worker (which then shuts down gracefully), and
            // the group can be killed whole, guard, shell and all it started.
            .process_group(0)
            // Dropped when the library gives up on the handler (timeout, the
            // cancel grace run out): the group guard below kills the rest.
            .kill_on_drop(true);
        if !exec.pass_env_credentials {
            for var in CREDENTIAL_VARS {
                cmd.env_remove(var);
            }
        }
        // `cmd` goes out of scope here, and with it this process's copy of
        // the guard's end of the socket: only the guard holds it now.
        cmd.spawn().map_err(cannot_start)?
    };
    let group = Group::new(child.id());
    let mut control = control_stream(control).map_err(cannot_start)?;

    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let mut tail = Tail::default();
    let exited = CancellationToken::new();
    let output = async {
        tokio::join!(echo(stdout, job.id(), &exec, &exited), tail.read(stderr, &exited));
    };
    let wait = async {
        let ended = tokio::select! {
            status = command_status(&mut control, args.get()) => {
                // Closing the socket tells the guard to kill its group.
                let _ = control.shutdown().await;
                let guard = child.wait().await;
                Ended::Exited(match status {
                    Some(status) => Ok(status.exit_status()),
                    // No status line: the guard itself failed or was killed.
                    None => guard,
                })
            }
            () = job.cancelled() => {
                group.kill();
                let _ = child.wait().await;
                Ended::Stopped(job.cancel_reason())
            }
        };
        // Whatever the command left running goes with it, which also closes
        // the pipes the readers wait on.
        group.kill_and_disarm();
        exited.cancel();
        ended
    };
    let ((), ended) = tokio::join!(output, wait);

    match ended {
        Ended::Exited(Ok(status)) if status.success() => Ok(()),
        Ended::Exited(Ok(status)) => {
            // Masked here, before it is logged; the library masks what it
            // stores again.
            let error = exec.secrets.redact(&tail.error(status));
            tracing::warn!(id = job.id(), attempt = job.attempt(), "command failed: {}", first_line(&error));
            Err(JobError::retry(error))
        }
        Ended::Exited(Err(e)) => Err(JobError::retry(format!("cannot wait for the command: {e}"))),
        Ended::Stopped(reason) => Err(JobError::retry(match reason {
            Some(CancelReason::Cancelled) => "killed: the job was cancelled",
            Some(CancelReason::LeaseLost) => "killed: the job's lease was lost",
            Some(CancelReason::Shutdown) | None => "killed: the worker is shutting down",
        })),
    }
}

/// This process's end of a guard's control socket, for the runtime.
fn control_stream(socket: std::os::unix::net::UnixStream) -> std::io::Result<tokio::net::UnixStream> {
    socket.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(socket)
}

/// Sends the job's args to the guard (their length, a newline, the bytes)
/// and reads the command's status line back; `None` if the guard ended
/// without one.
async fn command_status(control: &mut tokio::net::UnixStream, args: &str) -> Option<exec_guard::Status> {
    let header = format!("{}\n", args.len());
    control.write_all(header.as_bytes()).await.ok()?;
    control.write_all(args.as_bytes()).await.ok()?;
    let mut line = String::new();
    BufReader::new(control).take(STATUS_LINE_MAX).read_line(&mut line).await.ok()?;
    exec_guard::Status::parse(&line)
}

/// Prints each line of the command's stdout, prefixed with the job id. While
/// stdout does not keep up, this waits, and so does the command's output
/// (`printer.rs` says why).
async fn echo(stdout: Option<tokio::process::ChildStdout>, id: i64, exec: &Exec, exited: &CancellationToken) {
    let Some(stdout) = stdout else { return };
    let mut reader = BufReader::new(stdout);
    let prefix = format!("[job {id}] ");
    loop {
        let mut line = Vec::new();
        match until_quiet((&mut reader).take(LINE_MAX).read_until(b'\n', &mut line), exited).await {
            None | Some(Ok(0) | Err(_)) => return,
            Some(Ok(_)) => {}
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let line = [prefix.as_bytes(), &exec.secrets.redact_bytes(line)].concat();
        exec.printer.line(line).await;
    }
}

/// `read`'s result, or `None` once the command has `exited` and the read
/// has waited [`OUTPUT_DRAIN`] past that without an answer.
async fn until_quiet<F: Future>(read: F, exited: &CancellationToken) -> Option<F::Output> {
    tokio::pin!(read);
    tokio::select! {
        biased;
        out = &mut read => return Some(out),
        () = exited.cancelled() => {}
    }
    tokio::time::timeout(OUTPUT_DRAIN, read).await.ok()
}

/// The last [`STDERR_TAIL`] bytes of the command's stderr.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Tail {
    async fn read(&mut self, stderr: Option<impl AsyncRead + Unpin>, exited: &CancellationToken) {
        let Some(mut stderr) = stderr else { return };
        let mut chunk = [0u8; 8 << 10];
        loop {
            match until_quiet(stderr.read(&mut chunk), exited).await {
                None | Some(Ok(0) | Err(_)) => return,
                Some(Ok(n)) => self.bytes.extend_from_slice(&chunk[..n]),
            }
            // Trim in halves, not per chunk: copying stays linear.
            if self.bytes.len() > 2 * STDERR_TAIL {
                self.bytes.drain(..self.bytes.len() - STDERR_TAIL);
                self.truncated = true;
            }
        }
    }

    /// The attempt's error: how the command ended, then its stderr's end.
    fn error(&self, status: ExitStatus) -> String {
        let ended = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => status.to_string(),
        };
        let start = self.bytes.len().saturating_sub(STDERR_TAIL);
        let text = String::from_utf8_lossy(&self.bytes[start..]);
        let text = text.trim();
        match (text.is_empty(), self.truncated || start > 0) {
            (true, _) => ended,
            (false, false) => format!("{ended}; stderr: {text}"),
            (false, true) => format!("{ended}; stderr (last {STDERR_TAIL} bytes): …{text}"),
        }
    }
}

/// The program to start as each command's guard: this binary. On Linux
/// `/proc/self/exe`, which is this process's own image even when a deploy
/// has replaced or removed the file meanwhile (so guard and worker always
/// speak the same protocol); elsewhere the path it was started from.
fn guard_program() -> Result<PathBuf> {
    let proc_exe = Path::new("/proc/self/exe");
    if cfg!(target_os = "linux") && proc_exe.exists() {
        return Ok(proc_exe.to_owned());
    }
    std::env::current_exe().context("cannot find the skiplock binary, which runs each command")
}

/// The connections the worker's pool may open: as many as may be in use at
/// once, so that the heartbeat never waits for one behind the producers
/// (a wait of up to the pool timeout, beyond which leases are lost):
/// `queues × min(2, concurrency) + 11`. (Besides the pool: the heartbeat's
/// connection and the LISTEN one.)
fn pool_size(queues: usize, concurrency: usize) -> usize {
    queues * PRODUCERS_PER_QUEUE.min(concurrency) + POOL_SERVICES
}

/// `command` as it can be shown on one line: quoted and escaped if it has
/// line breaks or other control characters.
fn one_line(command: &str) -> std::borrow::Cow<'_, str> {
    if command.contains(char::is_control) { format!("{command:?}").into() } else { command.into() }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The command's process group, killed when this is dropped unless the
/// command's end was already dealt with.
struct Group {
    pid: Option<rustix::process::Pid>,
    armed: AtomicBool,
}

impl Group {
    fn new(pid: Option<u32>) -> Group {
        let pid = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw);
        Group { pid, armed: AtomicBool::new(true) }
    }

    /// SIGKILL to every process of the group; a group already gone is fine.
    fn kill(&self) {
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }

    /// Kills the group once the shell has exited, and not again on drop: by
    /// then its id may be free for reuse.
    fn kill_and_disarm(&self) {
        self.kill();
        self.armed.store(false, Ordering::Relaxed);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Relaxed) {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: i32) -> ExitStatus {
        ExitStatus::from_raw(raw)
    }

    #[test]
    fn errors_say_how_the_command_ended_then_quote_stderr() {
        let tail = Tail { bytes: b"oops\n".to_vec(), truncated: false };
        assert_eq!(tail.error(status(3 << 8)), "exit status 3; stderr: oops");
        assert_eq!(Tail::default().error(status(9)), "killed by signal 9");
        let long = Tail { bytes: [b"x".repeat(STDERR_TAIL), b"END".to_vec()].concat(), truncated: false };
        let e = long.error(status(1 << 8));
        assert!(e.starts_with("exit status 1; stderr (last 4096 bytes): …x") && e.ends_with("xEND"), "{e}");
        assert!(e.len() < STDERR_TAIL + 100);
    }

    #[test]
    fn the_pool_has_a_connection_for_everything_that_may_query_at_once() {
        // Two producers per queue (one below concurrency 2), two completer
        // flushes, the statistics writer, eight maintenance services (the
        // heartbeat has a connection of its own).
        assert_eq!(pool_size(1, 10), 2 + 2 + 1 + 8);
        assert_eq!(pool_size(10, 20), 20 + 11);
        assert_eq!(pool_size(3, 1), 3 + 11);
    }

    #[test]
    fn commands_are_shown_on_one_line() {
        assert_eq!(one_line("./run.sh --fast"), "./run.sh --fast");
        assert_eq!(one_line("set -e\n./run.sh"), r#""set -e\n./run.sh""#);
    }
}
