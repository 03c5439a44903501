//! [`Fleet`]: the worker processes of a test or a soak, started from the
//! `skiplock-fleet-worker` binary, signalled, and killed when dropped.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::Signal;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Longest wait for a worker's `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a worker to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// One worker process.
struct Proc {
    child: Child,
    pid: u32,
    /// Its stdout after `ready` (outcome lines, with `--print-outcomes`).
    stdout: Lines<BufReader<ChildStdout>>,
    /// False once killed or stopped.
    alive: bool,
}

/// Worker processes, each started with `--database-url` and its own
/// arguments; every one still running is killed when the fleet is dropped,
/// however the test ends.
pub struct Fleet {
    exe: PathBuf,
    database_url: String,
    procs: Vec<Proc>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.start_kill();
        }
    }
}

impl Fleet {
    /// A fleet of `exe` (the `skiplock-fleet-worker` binary) processes on
    /// the database at `database_url`.
    pub fn new(exe: impl Into<PathBuf>, database_url: impl Into<String>) -> Fleet {
        Fleet { exe: exe.into(), database_url: database_url.into(), procs: Vec::new() }
    }

    /// Starts a worker with `args` and waits for its `ready` line; returns
    /// its index.
    ///
    /// # Errors
    ///
    /// When it cannot be started, or prints anything else first, or nothing
    /// within [`READY_TIMEOUT`] (it is killed then).
    pub async fn start<S: AsRef<std::ffi::OsStr>>(&mut self, args: &[S]) -> io::Result<usize> {
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("--database-url")
            .arg(&self.database_url)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("start {}: {e}", self.exe.display())))?;
        let pid = child.id().expect("a running child has a pid");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let line = match tokio::time::timeout(READY_TIMEOUT, stdout.next_line()).await {
            Ok(line) => line?,
            Err(_) => None,
        };
        if line.as_deref() != Some("ready") {
            let _ = child.kill().await;
            return Err(io::Error::other(format!(
                "worker {pid}: wanted `ready` within {READY_TIMEOUT:?}, got {line:?}"
            )));
        }
        self.procs.push(Proc { child, pid, stdout, alive: true });
        Ok(self.procs.len() - 1)
    }

    /// Worker `i`'s pid.
    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].pid
    }

    /// The indexes of the workers not killed.
    pub fn live(&self) -> Vec<usize> {
        (0..self.procs.len()).filter(|&i| self.procs[i].alive).collect()
    }

    /// Kills worker `i` at once (SIGKILL: no shutdown, no outcome written)
    /// and reaps it; returns its pid.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub async fn kill(&mut self, i: usize) -> io::Result<u32> {
        let p = &mut self.procs[i];
        p.child.kill().await?;
        p.alive = false;
        Ok(p.pid)
    }

    /// Sends `signal` to worker `i` (SIGSTOP freezes it, SIGCONT thaws it).
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn signal(&self, i: usize, signal: Signal) -> io::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.procs[i].pid as i32).expect("pids are positive");
        rustix::process::kill_process(pid, signal).map_err(io::Error::from)
    }

    /// The next line worker `i` prints, waiting at most `limit`.
    ///
    /// # Errors
    ///
    /// When none comes within `limit`, or its stdout closed.
    pub async fn next_line(&mut self, i: usize, limit: Duration) -> io::Result<String> {
        let p = &mut self.procs[i];
        match tokio::time::timeout(limit, p.stdout.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err(io::Error::other(format!("worker {}: stdout closed", p.pid))),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("worker {}: no line within {limit:?}", p.pid)))
            }
        }
    }

    /// Sends SIGTERM to every live worker and waits for each to exit.
    ///
    /// # Errors
    ///
    /// When one is still running after [`EXIT_TIMEOUT`] or exits other than
    /// with success.
    pub async fn stop_all(&mut self) -> io::Result<()> {
        for i in self.live() {
            self.signal(i, Signal::TERM)?;
        }
        for p in self.procs.iter_mut().filter(|p| p.alive) {
            let status = tokio::time::timeout(EXIT_TIMEOUT, p.child.wait()).await.map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, format!("worker {} still running after SIGTERM", p.pid))
            })??;
            p.alive = false;
            if !status.success() {
                return Err(io::Error::other(format!("worker {} exited with {status}", p.pid)));
            }
        }
        Ok(())
    }
}
