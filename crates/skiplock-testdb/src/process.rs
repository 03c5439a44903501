//! Running the server programs as the right user, and telling live processes from dead ones.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// The account the server runs as when we are root.
const SERVER_USER: &str = "postgres";
/// How many lines of a failed program's output go into an error.
const OUTPUT_TAIL_LINES: usize = 40;

/// The server programs of one installation, run as the user the server must run as.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    pub(crate) bin: PathBuf,
    /// `Some` when we are root: PostgreSQL refuses to run as root, so it runs as `postgres`.
    user: Option<(u32, u32)>,
}

impl Programs {
    pub(crate) fn new(bin: PathBuf) -> Result<Self, Error> {
        let user = if effective_uid()? == 0 { Some(server_user()?) } else { None };
        Ok(Self { bin, user })
    }

    /// The same user with another installation's programs.
    pub(crate) fn with_bin(&self, bin: PathBuf) -> Self {
        Self { bin, user: self.user }
    }

    /// A command for `program` from the bin directory, as the server user, with no stdin and
    /// `/` as working directory (the server user may not be able to enter ours).
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir("/").stdin(Stdio::null()).env("LC_ALL", "C");
        cmd
    }

    /// Runs `program` to completion; a non-zero exit is an error carrying its output's tail.
    pub(crate) fn run(&self, program: &str, args: &[&OsStr]) -> Result<(), Error> {
        let fail = |status: String, output: String| Error::Command {
            program: match program {
                "pg_ctl" => format!(
                    "{} {}",
                    self.bin.join(program).display(),
                    args.first().map(|a| a.to_string_lossy()).unwrap_or_default()
                ),
                _ => self.bin.join(program).display().to_string(),
            },
            status,
            output,
        };
        // pg_ctl start hands the server its own stdout (the -l log), so waiting for our pipes to
        // close does not wait for the server.
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| fail(format!("could not run it: {e}"), String::new()))?;
        if out.status.success() {
            return Ok(());
        }
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Err(fail(out.status.to_string(), tail(&text, OUTPUT_TAIL_LINES)))
    }

    /// Gives `path` to the server user, so it can write there. A no-op unless we are root.
    pub(crate) fn chown(&self, path: &Path) -> Result<(), Error> {
        match self.user {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(Error::io("chown", path)),
            None => Ok(()),
        }
    }

    /// The argv prefix a shell script uses to run `pg_ctl` as the server user.
    pub(crate) fn pg_ctl_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = match self.user {
            Some(_) => ["runuser", "-u", SERVER_USER, "--"].map(OsString::from).into(),
            None => Vec::new(),
        };
        argv.push(self.bin.join("pg_ctl").into());
        argv
    }
}

/// Our effective uid: `/proc/self` is owned by it. (std has no `geteuid`, and unsafe is out.)
pub(crate) fn effective_uid() -> Result<u32, Error> {
    std::fs::metadata("/proc/self").map(|m| m.uid()).map_err(Error::io("stat", "/proc/self"))
}

/// The uid and gid of [`SERVER_USER`], from `/etc/passwd`.
fn server_user() -> Result<(u32, u32), Error> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(Error::io("read", "/etc/passwd"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == SERVER_USER)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or(Error::NoServerUser)
}

/// Whether `pid` is a running process. A zombie counts as dead: it has exited, and only its
/// parent's bookkeeping is left. `kill -0` is no use here because it fails across users.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may hold anything.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
