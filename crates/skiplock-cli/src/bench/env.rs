//! Where the benchmark runs: the private cluster it starts (or the database
//! it was given), and a description of the machine for the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use skiplock_testdb::{Cluster, ClusterOptions};

use super::db::Db;

/// `shared_buffers` of the private cluster: a quarter of a small machine's
/// memory is the usual advice; 512MB keeps the 5,000,000-job table of W4
/// mostly cached without asking much.
pub const SHARED_BUFFERS: &str = "512MB";
/// Settings of the private cluster besides the server's defaults. Durability
/// stays the default (fsync, synchronous_commit and full_page_writes on);
/// only checkpoints are spaced out, so the millions of rows W4 writes do not
/// checkpoint every few seconds.
pub const SETTINGS: [(&str, &str); 1] = [("max_wal_size", "4GB")];
/// The server settings the report names.
const REPORTED: [&str; 14] = [
    "server_version",
    "shared_buffers",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "max_wal_size",
    "checkpoint_timeout",
    "autovacuum",
    "autovacuum_naptime",
    "jit",
    "max_connections",
    "work_mem",
    "shared_preload_libraries",
];

/// The database the benchmark runs against, and the cluster it started for
/// that, if any (stopped and removed by [`Env::stop`]).
pub struct Env {
    /// The database's URL.
    pub url: String,
    cluster: Option<Cluster>,
}

impl Env {
    /// Uses `url`, or starts a private durable cluster with `extra`
    /// settings (`NAME=VALUE`) on top of ours.
    pub async fn start(url: Option<String>, extra: &[String]) -> Result<Env> {
        if let Some(url) = url {
            if !extra.is_empty() {
                bail!("--pg-setting applies to the private cluster only; set them on your server instead");
            }
            return Ok(Env { url, cluster: None });
        }
        let mut settings: Vec<(String, String)> =
            SETTINGS.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        for s in extra {
            let Some((name, value)) = s.split_once('=') else {
                bail!("invalid --pg-setting: {s:?} is not NAME=VALUE");
            };
            settings.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let opts =
            ClusterOptions { durable: true, shared_buffers: SHARED_BUFFERS.to_owned(), settings, ..Default::default() };
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(opts))
            .await
            .context("cannot start a private PostgreSQL cluster")?
            .context("cannot start a private PostgreSQL cluster")?;
        Ok(Env { url: cluster.url("postgres"), cluster: Some(cluster) })
    }

    /// The private cluster's data directory, if this run started one.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.cluster.as_ref().map(Cluster::data_dir)
    }

    /// Stops and removes the private cluster, if any.
    pub async fn stop(self) {
        if let Some(cluster) = self.cluster {
            // Stopping runs pg_ctl: blocking work, off the async threads.
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
    }
}

/// The machine and server a report was measured on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// The CPU model.
    pub cpu: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// Memory, in GiB.
    pub memory_gib: f64,
    /// The kernel release.
    pub kernel: String,
    /// The file system holding the private cluster's data, if we started it.
    pub data_filesystem: Option<String>,
    /// `release` or `debug`: how this binary was built.
    pub build: &'static str,
    /// Whether the benchmark started its own cluster.
    pub private_cluster: bool,
    /// The server's settings that matter here.
    pub postgres: BTreeMap<String, Option<String>>,
}

impl Machine {
    /// Reads `/proc` and the server's settings.
    pub async fn read(db: &Db, env: &Env) -> Result<Machine> {
        let proc = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = proc("/proc/cpuinfo");
        let field = |text: &str, key: &str| {
            text.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned())
        };
        let mem_kib: f64 = field(&proc("/proc/meminfo"), "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let names: Vec<&str> = REPORTED.to_vec();
        let rows = db.admin().query(include_str!("env/settings.sql"), &[&names]).await?;
        Ok(Machine {
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (mem_kib / (1u64 << 20) as f64 * 10.0).round() / 10.0,
            kernel: proc("/proc/sys/kernel/osrelease").trim().to_owned(),
            data_filesystem: env.data_dir().and_then(|d| filesystem_of(&d, &proc("/proc/mounts"))),
            build: if cfg!(debug_assertions) { "debug" } else { "release" },
            private_cluster: env.cluster.is_some(),
            postgres: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        })
    }
}

/// The file system type and device of the mount holding `path`, from the
/// text of `/proc/mounts`.
fn filesystem_of(path: &Path, mounts: &str) -> Option<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, at, fs) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(at).then(|| (at.len(), format!("{fs} on {dev}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

/// The load average over 1, 5 and 15 minutes (zeros where unreadable).
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [it.next().unwrap_or(0.0), it.next().unwrap_or(0.0), it.next().unwrap_or(0.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_mount_point_wins() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n";
        assert_eq!(filesystem_of(Path::new("/tmp/x/data"), mounts).as_deref(), Some("tmpfs on tmpfs"));
        assert_eq!(filesystem_of(Path::new("/work"), mounts).as_deref(), Some("ext4 on /dev/vda"));
    }
}
