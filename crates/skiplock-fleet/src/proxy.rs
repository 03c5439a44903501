//! [`Proxy`]: a TCP proxy between workers and PostgreSQL that breaks the
//! network on command: it drops every open connection (mid-statement,
//! mid-transaction, mid-commit: wherever each one is), stalls them all (a
//! partition: bytes stop in both directions, nobody is told), or refuses new
//! ones. Loopback only.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running proxy on 127.0.0.1, forwarding to one upstream address. Stops
/// (and drops every connection) when dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    upstream: SocketAddr,
    /// Each open connection's kill switch.
    conns: Mutex<HashMap<u64, CancellationToken>>,
    next_id: AtomicU64,
    /// True while partitioned: no byte moves in either direction.
    stalled: watch::Sender<bool>,
    /// True while new connections are closed as soon as they are accepted.
    refusing: AtomicBool,
    accepted: AtomicU64,
    dropped: AtomicU64,
}

/// What a proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted (including refused ones).
    pub accepted: u64,
    /// Open connections dropped by [`Proxy::drop_all`].
    pub dropped: u64,
}

impl Proxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of `upstream`.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stalled: watch::Sender::new(false),
            refusing: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy { port, shared, accept })
    }

    /// Starts a proxy in front of the server of `database_url`
    /// (`postgres://user@host:port/db`, host an IP address).
    ///
    /// # Errors
    ///
    /// When the URL names no TCP address, or no port can be bound.
    pub async fn in_front_of(database_url: &str) -> io::Result<Proxy> {
        let (host, port) = host_port(database_url)?;
        let addr = format!("{host}:{port}").parse().map_err(|e| io::Error::other(format!("{host}:{port}: {e}")))?;
        Proxy::start(addr).await
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `database_url` with its host and port replaced by this proxy's.
    pub fn url(&self, database_url: &str) -> String {
        let (host, port) = host_port(database_url).expect("a URL with a TCP host");
        database_url.replacen(&format!("{host}:{port}"), &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Closes every open connection now, wherever its conversation is.
    /// Returns how many.
    pub fn drop_all(&self) -> usize {
        let conns: Vec<CancellationToken> = self.shared.conns.lock().expect("not poisoned").values().cloned().collect();
        for c in &conns {
            c.cancel();
        }
        self.shared.dropped.fetch_add(conns.len() as u64, Ordering::Relaxed);
        conns.len()
    }

    /// Stalls (true) or resumes (false) every connection, open or new: while
    /// stalled, nothing is read or written on either side, and neither side
    /// learns why. A new connection's upstream is still opened.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.send_replace(stalled);
    }

    /// Refuses (true) or accepts (false) new connections: a refused one is
    /// closed as soon as it is accepted, as if the server were down.
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.conns.lock().expect("not poisoned").len()
    }

    /// What it has done so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.shared.conns.lock().expect("not poisoned").values() {
            c.cancel();
        }
    }
}

/// The host and port of a `postgres://` URL.
fn host_port(url: &str) -> io::Result<(String, u16)> {
    let cfg: tokio_postgres::Config = url.parse().map_err(|e| io::Error::other(format!("{url}: {e}")))?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => return Err(io::Error::other(format!("{url}: no TCP host"))),
    };
    Ok((host, cfg.get_ports().first().copied().unwrap_or(5432)))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.refusing.load(Ordering::Relaxed) {
            drop(client);
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let kill = CancellationToken::new();
        shared.conns.lock().expect("not poisoned").insert(id, kill.clone());
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = kill.cancelled() => {}
                _ = relay(client, &shared) => {}
            }
            shared.conns.lock().expect("not poisoned").remove(&id);
        });
    }
}

/// Relays one connection until either side closes or fails.
async fn relay(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let server = TcpStream::connect(shared.upstream).await?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::select! {
        r = pump(cr, sw, shared.stalled.subscribe()) => r,
        r = pump(sr, cw, shared.stalled.subscribe()) => r,
    }
}

/// Copies bytes one way, holding still while stalled.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut stalled: watch::Receiver<bool>) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let _ = stalled.wait_for(|s| !*s).await;
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let _ = stalled.wait_for(|s| !*s).await;
        to.write_all(&buf[..n]).await?;
    }
}
