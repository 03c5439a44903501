//! `skiplock __exec-guard COMMAND`, hidden: the process `work --exec` starts
//! for each attempt, between the worker and `sh -c COMMAND`, so that the
//! command dies with the worker however the worker dies (SIGKILL, the OOM
//! killer, an abort), when no code of the worker's runs any more.
//!
//! The worker starts this guard as the leader of a new process group and
//! holds the other end of a Unix socket that is the guard's stdin (the
//! control socket). The guard:
//!
//! 1. reads the job's args from the control socket, sent as their length in
//!    decimal, a newline, then the bytes;
//! 2. runs `sh -c COMMAND` in its own process group (the guard's), the args
//!    on the shell's stdin, its stdout and stderr the guard's, which are the
//!    worker's pipes;
//! 3. watches the control socket: end of file (or an error) means the worker
//!    is gone or gave up on the attempt, and the guard SIGKILLs its whole
//!    process group, itself, the shell and all they started;
//! 4. when the shell exits, writes one status line back on the control
//!    socket, `exit N` or `signal N`, and exits: with N, or 128 + N after a
//!    signal, as shells report it (the worker goes by the line, which
//!    tells the two apart).
//!
//! Why end of file and not `PR_SET_PDEATHSIG`: the kernel closes every file
//! of a process that dies, however it dies, so the socket tells of the
//! worker's death without a race and on every Unix; the death signal would
//! be sent when the *thread* that spawned the guard exits, and the runtime's
//! threads come and go. The worker's end of the socket is close-on-exec, so
//! no other process holds it open; the shell does not inherit the guard's.
//!
//! Kept small and synchronous: no async runtime, no logging, nothing printed
//! on stdout (which is the command's).

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitCode, ExitStatus, Stdio};

/// The subcommand's name, as the worker invokes it.
pub const NAME: &str = "__exec-guard";

/// Longest length line the worker sends: the digits of a `usize`, a newline.
const LENGTH_LINE_MAX: u64 = 24;
/// Exit status when the guard cannot do its job (as a shell's for a command
/// it cannot run); the reason goes to stderr, where the worker quotes it.
const EXIT_CANNOT: u8 = 127;

/// Runs `sh -c COMMAND` for `skiplock work --exec`, and kills it when the
/// worker is gone. Internal: started by the worker, not by people.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell command.
    #[arg(allow_hyphen_values = true)]
    command: OsString,
}

/// How the shell ended, as the status line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exited with this code.
    Exit(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Status {
    fn of(status: ExitStatus) -> Option<Status> {
        match (status.code(), status.signal()) {
            (Some(code), _) => Some(Status::Exit(code)),
            (None, Some(signal)) => Some(Status::Signal(signal)),
            (None, None) => None,
        }
    }

    /// The line the guard writes, newline included.
    pub fn line(self) -> String {
        match self {
            Status::Exit(code) => format!("exit {code}\n"),
            Status::Signal(signal) => format!("signal {signal}\n"),
        }
    }

    /// Reads a status line; `None` for anything else.
    pub fn parse(line: &str) -> Option<Status> {
        let (word, n) = line.trim_end_matches('\n').split_once(' ')?;
        let n: i32 = n.parse().ok()?;
        match word {
            "exit" => Some(Status::Exit(n)),
            "signal" => Some(Status::Signal(n)),
            _ => None,
        }
    }

    /// As the `ExitStatus` the shell's own `wait` gave (raw wait status).
    pub fn exit_status(self) -> ExitStatus {
        match self {
            Status::Exit(code) => ExitStatus::from_raw((code & 0xff) << 8),
            Status::Signal(signal) => ExitStatus::from_raw(signal & 0x7f),
        }
    }
}

/// Runs the guard: returns only when it could not run the command, having
/// said why on stderr; otherwise the process ends in [`watch`].
pub fn run(args: &Args) -> ExitCode {
    match guard(args) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("skiplock exec guard: {e}");
            ExitCode::from(EXIT_CANNOT)
        }
    }
}

fn guard(args: &Args) -> std::io::Result<std::convert::Infallible> {
    use std::os::fd::AsFd as _;
    let control = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut reader = BufReader::new(control.try_clone()?);
    let job_args = match read_args(&mut reader)? {
        Some(a) => a,
        // The worker went away before the args were all sent.
        None => std::process::exit(i32::from(EXIT_CANNOT)),
    };

    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(&args.command)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start sh: {e}")))?;
    let stdin = shell.stdin.take();
    // A command that does not read its args is fine: the write just fails.
    std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&job_args);
        }
    });
    std::thread::spawn(move || watch(reader));

    let status = shell.wait()?;
    let status = Status::of(status).unwrap_or(Status::Exit(i32::from(EXIT_CANNOT)));
    let _ = (&control).write_all(status.line().as_bytes());
    // Stay until the worker closes the socket: the watcher then kills the
    // group, and with it whatever the command left running in the
    // background, even if the worker dies before it could do so itself.
    loop {
        std::thread::park();
    }
}

/// The args the worker sent, or `None` if the socket closed before.
fn read_args(reader: &mut BufReader<UnixStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if reader.by_ref().take(LENGTH_LINE_MAX).read_line(&mut line)? == 0 || !line.ends_with('\n') {
        return Ok(None);
    }
    let len: usize = line.trim_end().parse().map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad length line {line:?} from the worker"))
    })?;
    let mut bytes = vec![0; len];
    match reader.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Blocks until the control socket ends, then kills the process group.
fn watch(mut reader: BufReader<UnixStream>) {
    let mut buf = [0u8; 64];
    // The worker sends nothing after the args; anything else is ignored.
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    // The whole group, this process included: nothing is left to report to.
    let _ = rustix::process::kill_current_process_group(rustix::process::Signal::KILL);
    std::process::exit(i32::from(EXIT_CANNOT));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_round_trip() {
        for s in [Status::Exit(0), Status::Exit(3), Status::Exit(255), Status::Signal(9), Status::Signal(13)] {
            assert_eq!(Status::parse(&s.line()), Some(s));
            assert_eq!(Status::of(s.exit_status()), Some(s));
        }
        assert_eq!(Status::parse("exit\n"), None);
        assert_eq!(Status::parse("stopped 1\n"), None);
        assert_eq!(Status::parse(""), None);
    }
}
