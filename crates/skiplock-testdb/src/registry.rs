//! The per-user directory of clusters: who uses each one, and who cleans up after them.
//!
//! ```text
//! /tmp/skiplock-testdb-<uid>/     under /tmp so that the `postgres` user can reach it
//! ├── lock                        flock(2)ed to create, register with, sweep or tear down
//! ├── shared/                     the cluster `fresh_database` shares between processes
//! └── c-<pid>-<n>/                one private `Cluster`
//!     ├── users/<pid>             one empty file per process using the cluster
//!     ├── watchdog.pid            the watchdog that tears the cluster down when users are gone
//!     ├── bin_dir, port           what a later process needs to reuse or stop it
//!     ├── server.log, .s.PGSQL.*  server log and unix socket
//!     └── data/                   PGDATA
//! ```
//!
//! Liveness is read from `/proc` because a process can die by SIGKILL and run no code. Each
//! cluster gets a detached watchdog script that tears it down once no user is alive; if the
//! watchdog is gone too, the next process to start any cluster sweeps the directory.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fs4::fs_std::FileExt as _;

use crate::Error;
use crate::process::{Programs, alive, effective_uid};

/// The shared cluster's directory name under the base directory.
pub(crate) const SHARED_DIR: &str = "shared";
/// Seconds the shared cluster outlives its last user, so that the next test process (nextest
/// runs one per test) finds it still running instead of paying for initdb again.
pub(crate) const SHARED_GRACE_SECS: u32 = 10;
/// A private cluster goes as soon as its owner is seen dead.
pub(crate) const PRIVATE_GRACE_SECS: u32 = 1;

/// The watchdog: a detached shell script, so it outlives a SIGKILLed owner. It polls because a
/// shell has no way to wait for the death of a process that is not its child.
/// Arguments: lock file, cluster dir, grace seconds, then the `pg_ctl` argv.
const WATCHDOG_SCRIPT: &str = r#"
lock=$1 dir=$2 grace=$3
shift 3
users_alive() {
  for f in "$dir"/users/*; do
    { read -r stat < "/proc/${f##*/}/stat"; } 2>/dev/null || continue
    case ${stat##*) } in Z*|X*) ;; *) return 0 ;; esac
  done
  return 1
}
idle=0
while [ -d "$dir" ]; do
  if users_alive; then idle=0; else idle=$((idle + 1)); fi
  if [ "$idle" -ge "$grace" ]; then
    # Decide under the lock: a process registering right now must not get a dying cluster.
    exec 9>>"$lock"
    flock 9
    if [ -d "$dir" ] && ! users_alive; then
      [ -f "$dir/data/postmaster.pid" ] && "$@" stop -D "$dir/data" -m immediate -w -s >/dev/null 2>&1
      rm -rf "$dir"
      exit 0
    fi
    exec 9>&-
    idle=0
  fi
  sleep 1
done
"#;

/// `/tmp/skiplock-testdb-<euid>`, created if needed. It must be ours and a real directory: a
/// world-writable /tmp lets anyone create that name first.
pub(crate) fn base_dir() -> Result<PathBuf, Error> {
    let uid = effective_uid()?;
    let base = PathBuf::from(format!("/tmp/skiplock-testdb-{uid}"));
    match fs::create_dir(&base) {
        // 0755: when we are root the server runs as `postgres` and must get through it.
        Ok(()) => fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).map_err(Error::io("chmod", &base))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create directory", &base)(e)),
    }
    let meta = fs::symlink_metadata(&base).map_err(Error::io("stat", &base))?;
    if !meta.is_dir() || meta.uid() != uid {
        let why = std::io::Error::other(format!("not a directory owned by uid {uid}; remove it"));
        return Err(Error::io("use", &base)(why));
    }
    Ok(base)
}

/// The exclusive lock on the base directory, released when dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

/// Takes the base directory's lock, blocking until it is free. It is held for seconds at most
/// (an initdb), and the kernel drops it if the holder dies.
pub(crate) fn lock(base: &Path) -> Result<Lock, Error> {
    let path = base.join("lock");
    let file = OpenOptions::new().create(true).append(true).open(&path).map_err(Error::io("open", &path))?;
    file.lock_exclusive().map_err(Error::io("lock", &path))?;
    Ok(Lock { _file: file })
}

/// Creates an empty cluster directory owned by the server user, with this process registered
/// as its user. Call it holding the [`Lock`], so a sweep never sees it without a user.
pub(crate) fn create_cluster_dir(dir: &Path, programs: &Programs) -> Result<(), Error> {
    fs::create_dir(dir).map_err(Error::io("create directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(Error::io("chmod", dir))?;
    programs.chown(dir)?;
    let users = dir.join("users");
    fs::create_dir(&users).map_err(Error::io("create directory", &users))?;
    let bin_file = dir.join("bin_dir");
    fs::write(&bin_file, programs.bin.as_os_str().as_encoded_bytes()).map_err(Error::io("write", &bin_file))?;
    register(dir)
}

/// Records this process as a user of the cluster in `dir`. Never undone: the watchdog notices
/// when the process is gone, however it ended.
pub(crate) fn register(dir: &Path) -> Result<(), Error> {
    let file = dir.join("users").join(std::process::id().to_string());
    fs::write(&file, b"").map_err(Error::io("write", &file))
}

/// Whether any process registered in `dir/users` is alive.
fn users_alive(dir: &Path) -> bool {
    let pids = fs::read_dir(dir.join("users")).into_iter().flatten().flatten();
    pids.filter_map(|e| e.file_name().to_str()?.parse().ok()).any(alive)
}

/// Whether the watchdog recorded in `dir/watchdog.pid` is alive.
pub(crate) fn watchdog_alive(dir: &Path) -> bool {
    let pid = fs::read_to_string(dir.join("watchdog.pid")).ok().and_then(|s| s.trim().parse().ok());
    pid.is_some_and(alive)
}

/// Starts the watchdog for the cluster in `dir`, detached (own session, so terminal and
/// process-group signals aimed at tests miss it) and reparented to init, so it is nobody's
/// zombie. The intermediate shell reports its pid before exiting, so `watchdog.pid` is written
/// by the time this returns.
pub(crate) fn spawn_watchdog(base: &Path, dir: &Path, grace_secs: u32, programs: &Programs) -> Result<(), Error> {
    let spawn = r#"setsid sh -c "$0" skiplock-testdb-watchdog "$@" </dev/null >/dev/null 2>&1 & echo $!"#;
    let out = Command::new("sh")
        .args(["-c", spawn, WATCHDOG_SCRIPT])
        .arg(base.join("lock"))
        .arg(dir)
        .arg(grace_secs.to_string())
        .args(programs.pg_ctl_argv())
        .current_dir("/")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Command {
            program: "sh (watchdog)".into(),
            status: format!("could not run it: {e}"),
            output: String::new(),
        })?;
    let pid_file = dir.join("watchdog.pid");
    fs::write(&pid_file, &out.stdout).map_err(Error::io("write", &pid_file))
}

/// Tears down every cluster under `base` that nobody uses and no watchdog looks after: the
/// leftovers of processes killed together with their watchdog. Call it holding the [`Lock`].
pub(crate) fn sweep(base: &Path, programs: &Programs) {
    for entry in fs::read_dir(base).into_iter().flatten().flatten() {
        let dir = entry.path();
        if dir.is_dir() && !users_alive(&dir) && !watchdog_alive(&dir) {
            teardown(&dir, programs);
        }
    }
}

/// Stops the server in `dir`, if one runs, and deletes the directory. Best effort: used on
/// drop and on leftovers, where there is nobody to report an error to.
pub(crate) fn teardown(dir: &Path, programs: &Programs) {
    let data = dir.join("data");
    if data.join("postmaster.pid").exists() {
        // Stop with the installation that started it, which need not be ours.
        let bin = fs::read(dir.join("bin_dir")).ok().and_then(|b| String::from_utf8(b).ok());
        let programs = programs.with_bin(bin.map_or_else(|| programs.bin.clone(), PathBuf::from));
        let _ = programs.run("pg_ctl", &stop_args(&data));
    }
    let _ = fs::remove_dir_all(dir);
}

/// `pg_ctl` arguments for an immediate stop: no checkpoint, like a crash, and fast. Crash
/// recovery at the next start is cheap for a test cluster, which may not even be restarted.
pub(crate) fn stop_args(data: &Path) -> [&OsStr; 7] {
    ["stop".as_ref(), "-D".as_ref(), data.as_ref(), "-m".as_ref(), "immediate".as_ref(), "-w".as_ref(), "-s".as_ref()]
}
