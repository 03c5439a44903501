//! One LISTEN connection per worker process: insert notifications wake the
//! queue's producer, control notifications cancel running jobs and resume
//! queues. When the connection drops, producers fall back to polling at the
//! shortest interval, and after reconnecting every producer polls once, since
//! notifications sent meanwhile are gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::handler::CancelReason;
use crate::runtime::{Event, Shared, WakeSource, sleep_or};
use crate::worker::Listen;

/// Longest pause between reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

pub(crate) async fn run(sh: Arc<Shared>) {
    let (config, tls) = match &sh.cfg.listen {
        Listen::Disabled => return,
        Listen::Auto => (sh.client.pg_config().clone(), sh.client.tls_connector().clone()),
        // With its own TLS settings, read as the client's are.
        Listen::Url(url) => match crate::tls::TlsConfig::from_url(url).and_then(|(c, t)| Ok((c, t.connector()?))) {
            // As the client's own connections: a peer that vanished is
            // noticed in about a minute, not the kernel's two hours, and a
            // connect attempt does not hang.
            Ok((mut c, tls)) => {
                c.keepalives(true)
                    .keepalives_idle(Duration::from_secs(30))
                    .keepalives_interval(Duration::from_secs(10));
                if c.get_connect_timeout().is_none() {
                    c.connect_timeout(Duration::from_secs(10));
                }
                (c, tls)
            }
            Err(e) => {
                tracing::error!(error = %e, "the LISTEN url, or a TLS file it names, is wrong; polling only");
                return;
            }
        },
    };
    // Listen once this process holds its worker id, when its producers may
    // claim: a wake-up before that would find nobody to wake.
    if !sh.registry.wait(&sh.services_stop).await {
        return;
    }
    let mut wait = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        match listen(&sh, &config, &tls).await {
            Ok((client, mut messages)) => {
                sh.listening.store(true, Ordering::Relaxed);
                sh.emit(Event::ListenerConnected);
                if connected_before {
                    sh.wake_all(WakeSource::Reconnect);
                }
                connected_before = true;
                wait = Duration::from_millis(100);
                // A connection that silently stopped delivering (a half-open
                // path, a proxy that forgot it) says nothing: ask it once per
                // longest poll interval (the longest a missed wake-up would
                // cost anyway), and reconnect when it does not answer within
                // another.
                let every = sh.cfg.poll_interval_max.max(Duration::from_millis(100));
                let mut ping = tokio::time::interval(every);
                ping.reset();
                let error = loop {
                    tokio::select! {
                        _ = sh.services_stop.cancelled() => return,
                        m = messages.recv() => match m {
                            Some(Ok(n)) => dispatch(&sh, n.channel(), n.payload()),
                            Some(Err(e)) => break e.to_string(),
                            None => break "connection closed".to_owned(),
                        },
                        _ = ping.tick() => {
                            match tokio::time::timeout(every, client.simple_query("")).await {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => break e.to_string(),
                                Err(_) => break format!("no answer to a ping within {every:?}"),
                            }
                        }
                    }
                };
                drop(client);
                sh.listening.store(false, Ordering::Relaxed);
                tracing::warn!(%error, "LISTEN connection lost; polling until it is back");
                sh.emit(Event::ListenerLost { error });
                // Jobs may have arrived unannounced: look now.
                sh.wake_all(WakeSource::Reconnect);
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the LISTEN connection; polling meanwhile"),
        }
        if !sleep_or(&sh.services_stop, wait).await {
            return;
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

type Messages = mpsc::UnboundedReceiver<Result<tokio_postgres::Notification, tokio_postgres::Error>>;

/// Connects and LISTENs; notifications arrive on the returned channel, which
/// ends (with an error or closed) when the connection does.
async fn listen(
    sh: &Shared,
    config: &tokio_postgres::Config,
    tls: &crate::tls::TlsConnector,
) -> Result<(tokio_postgres::Client, Messages), crate::Error> {
    let (client, mut connection) =
        config.connect(tls.clone()).await.map_err(|e| tls.explain(crate::Error::from_pg(e, "")))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = stream.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Ok(n)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    // Channel names are the validated schema name plus a suffix: plain
    // identifiers, quoted anyway.
    let sql = format!(
        "LISTEN \"{}\"; LISTEN \"{}\"",
        sh.client.schema().insert_channel(),
        sh.client.schema().control_channel()
    );
    client.batch_execute(&sql).await.map_err(|e| crate::Error::from_pg(e, ""))?;
    Ok((client, rx))
}

/// Acts on one notification.
fn dispatch(sh: &Shared, channel: &str, payload: &str) {
    let schema = sh.client.schema();
    if channel == schema.insert_channel() {
        if let Some(q) = sh.queue(payload) {
            // One producer looks; if it finds a full batch it wakes the next.
            q.wake(WakeSource::Notify, false);
        }
    } else if channel == schema.control_channel() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(payload) else {
            tracing::debug!(payload, "ignoring a control message that is not JSON");
            return;
        };
        if let Some(id) = msg.get("cancel").and_then(|v| v.as_i64()) {
            sh.cancel_job(id, CancelReason::Cancelled);
        }
        if let Some(q) = msg.get("resume").and_then(|v| v.as_str()).and_then(|name| sh.queue(name)) {
            q.wake(WakeSource::Notify, true);
        }
    }
}
