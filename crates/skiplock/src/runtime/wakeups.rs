//! What the worker does with what its LISTEN connection hears
//! ([`crate::notify`]): an insert wakes a producer of its queue, a cancel
//! stops the job if it runs here, a resume wakes every producer of the
//! queue. While the connection is down, producers poll at the shortest
//! interval; when it is back (or when this subscriber fell behind and
//! missed some), every producer looks once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::config::Listen;
use super::shared::Shared;
use crate::events::{Event, WakeSource};
use crate::handler::CancelReason;
use crate::notify::{Control, Listener, Notification};
use crate::service::supervise;

/// The connection settings and TLS of a `Listen::Url`: the URL's
/// `sslmode` and certificate files, read as a client's are.
pub(crate) fn listen_settings(url: &str) -> crate::Result<(tokio_postgres::Config, crate::tls::TlsConnector)> {
    let (c, t) = crate::tls::TlsConfig::from_url(url)?;
    Ok((c, t.connector()?))
}

/// Starts the listener and the task acting on it (none if the worker does
/// not listen).
pub(crate) fn spawn(sh: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    let (config, tls) = match &sh.cfg.listen {
        Listen::Disabled => return Vec::new(),
        Listen::Auto => (sh.db.pg_config().clone(), sh.db.tls().clone()),
        Listen::Url(url) => {
            // Checked by WorkerBuilder::build; its own TLS settings, read as
            // the client's are.
            let Ok((mut c, tls)) = listen_settings(url) else { return Vec::new() };
            // As the pool's connections: a peer that vanished is noticed in
            // about a minute, not the kernel's two hours, and a connect
            // attempt does not hang.
            c.keepalives(true).keepalives_idle(Duration::from_secs(30)).keepalives_interval(Duration::from_secs(10));
            if c.get_connect_timeout().is_none() {
                c.connect_timeout(Duration::from_secs(10));
            }
            (c, tls)
        }
    };
    let listener = Arc::new(Listener::new(config, tls, sh.db.schema(), sh.cfg.poll_interval_max));
    // Subscribed before the listener starts: nothing it says is missed.
    let mut rx = listener.subscribe();
    let stop = sh.tokens.services.clone();
    let (l, s, sh2) = (listener.clone(), stop.clone(), sh.clone());
    let listen = supervise("listener", stop.clone(), move || {
        let (l, s, sh) = (l.clone(), s.clone(), sh2.clone());
        async move {
            // Listen once this process holds its worker id, when its
            // producers may claim: a wake-up before that would find nobody
            // to wake.
            if sh.registry.wait(&s).await {
                l.run(&s).await;
            }
        }
    });
    let sh = sh.clone();
    let act = tokio::spawn(async move {
        loop {
            let n = tokio::select! {
                _ = stop.cancelled() => return,
                n = rx.recv() => n,
            };
            match n {
                Ok(n) => act(&sh, n),
                Err(RecvError::Lagged(_)) => sh.wake_all(WakeSource::Reconnect),
                Err(RecvError::Closed) => return,
            }
        }
    });
    vec![listen, act]
}

/// Acts on one notification.
fn act(sh: &Shared, n: Notification) {
    match n {
        Notification::Insert { queue } => {
            if let Some(q) = sh.queue(&queue) {
                // One producer looks; if it finds a full batch it wakes the
                // next.
                q.wake(WakeSource::Notify, false);
            }
        }
        Notification::Control(Control::Cancel(id)) => sh.cancel_job(id, CancelReason::Cancelled),
        Notification::Control(Control::Resume(queue)) => {
            if let Some(q) = sh.queue(&queue) {
                q.wake(WakeSource::Notify, true);
            }
        }
        // Claims check the queues row; nothing to do here.
        Notification::Control(Control::Pause(_)) => {}
        Notification::Connected { again } => {
            sh.listening.store(true, Ordering::Relaxed);
            sh.events.emit(Event::ListenerConnected);
            if again {
                sh.wake_all(WakeSource::Reconnect);
            }
        }
        Notification::Lost { error } => {
            sh.listening.store(false, Ordering::Relaxed);
            sh.events.emit(Event::ListenerLost { error });
            // Jobs may have arrived unannounced: look now.
            sh.wake_all(WakeSource::Reconnect);
        }
    }
}
