//! The LISTEN side: one connection per worker process, listening on the
//! schema's insert and control channels, publishing what it hears as typed
//! [`Notification`]s to whoever subscribed. It knows nothing of workers:
//! the runtime subscribes and acts (`runtime/wakeups.rs`), and so could
//! anything else that wants to hear about new jobs.
//!
//! When the connection drops it says so ([`Notification::Lost`]), retries
//! with a backoff, and says when it is back ([`Notification::Connected`]):
//! notifications sent meanwhile are gone, so a subscriber should look for
//! itself then.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::schema::Schema;
use crate::service::sleep_or;
use crate::tls::TlsConnector;

/// Longest pause between reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Notifications kept for a slow subscriber; one that lags is told so
/// (`RecvError::Lagged`) and should act as after a reconnection.
const BUFFERED: usize = 1024;

/// What the LISTEN connection heard, or what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Notification {
    /// Jobs became available in a queue (an enqueue, the scheduler, a
    /// retry).
    Insert { queue: String },
    /// An operator's message on the control channel.
    Control(Control),
    /// The connection is up; `again` after it had been lost.
    Connected { again: bool },
    /// The connection was lost; it is being re-established.
    Lost { error: String },
}

/// A message on the control channel, as the SQL API sends it: a JSON object
/// with one key (`{"cancel": 42}`, `{"pause": "mail"}`, `{"resume": "mail"}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Control {
    /// Job `id` was cancelled: stop it if it runs here.
    Cancel(i64),
    /// A queue was paused (claims find nothing in it from now on).
    Pause(String),
    /// A queue was resumed: look at it now.
    Resume(String),
}

impl Control {
    /// Parses a control payload; `None` for one this version does not know.
    pub fn parse(payload: &str) -> Option<Control> {
        serde_json::from_str(payload).ok()
    }
}

type Messages = mpsc::UnboundedReceiver<Result<tokio_postgres::Notification, tokio_postgres::Error>>;

/// The LISTEN connection of one process; see the module doc.
pub(crate) struct Listener {
    config: tokio_postgres::Config,
    tls: TlsConnector,
    insert_channel: String,
    control_channel: String,
    /// How often to check that the connection still answers.
    ping_every: Duration,
    tx: broadcast::Sender<Notification>,
}

impl Listener {
    /// A listener for `schema`'s channels over a connection made with
    /// `config` and `tls`, checked every `ping_every`.
    pub fn new(config: tokio_postgres::Config, tls: TlsConnector, schema: &Schema, ping_every: Duration) -> Self {
        Listener {
            config,
            tls,
            insert_channel: schema.insert_channel(),
            control_channel: schema.control_channel(),
            ping_every: ping_every.max(Duration::from_millis(100)),
            tx: broadcast::channel(BUFFERED).0,
        }
    }

    /// Notifications from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.tx.subscribe()
    }

    fn publish(&self, n: Notification) {
        let _ = self.tx.send(n);
    }

    /// Listens until `stop`, reconnecting whenever the connection is lost.
    pub async fn run(&self, stop: &CancellationToken) {
        let mut wait = Duration::from_millis(100);
        let mut connected_before = false;
        loop {
            match self.listen().await {
                Ok((client, mut messages)) => {
                    self.publish(Notification::Connected { again: connected_before });
                    connected_before = true;
                    wait = Duration::from_millis(100);
                    // A connection that silently stopped delivering (a
                    // half-open path, a proxy that forgot it) says nothing:
                    // ask it once per `ping_every` (the longest a missed
                    // wake-up would cost a polling worker anyway), and
                    // reconnect when it does not answer within another.
                    let every = self.ping_every;
                    let mut ping = tokio::time::interval(every);
                    ping.reset();
                    let error = loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            m = messages.recv() => match m {
                                Some(Ok(n)) => self.heard(n.channel(), n.payload()),
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
                    tracing::warn!(%error, "LISTEN connection lost; polling until it is back");
                    self.publish(Notification::Lost { error });
                }
                Err(e) => tracing::warn!(error = %e, "cannot open the LISTEN connection; polling meanwhile"),
            }
            if !sleep_or(stop, wait).await {
                return;
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// Publishes one notification as what it means.
    fn heard(&self, channel: &str, payload: &str) {
        if channel == self.insert_channel {
            self.publish(Notification::Insert { queue: payload.to_owned() });
        } else if channel == self.control_channel {
            match Control::parse(payload) {
                Some(c) => self.publish(Notification::Control(c)),
                None => tracing::debug!(payload, "ignoring a control message this version does not know"),
            }
        }
    }

    /// Connects and LISTENs; notifications arrive on the returned channel, which
    /// ends (with an error or closed) when the connection does.
    async fn listen(&self) -> Result<(tokio_postgres::Client, Messages), Error> {
        let (client, mut connection) =
            self.config.connect(self.tls.clone()).await.map_err(|e| self.tls.explain(Error::from_pg(e, "")))?;
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
        let sql = format!("LISTEN \"{}\"; LISTEN \"{}\"", self.insert_channel, self.control_channel);
        client.batch_execute(&sql).await.map_err(|e| Error::from_pg(e, ""))?;
        Ok((client, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::Control;

    #[test]
    fn control_messages_parse_as_the_sql_api_sends_them() {
        assert_eq!(Control::parse(r#"{"cancel": 42}"#), Some(Control::Cancel(42)));
        assert_eq!(Control::parse(r#"{"pause":"mail"}"#), Some(Control::Pause("mail".into())));
        assert_eq!(Control::parse(r#"{"resume":"mail"}"#), Some(Control::Resume("mail".into())));
        assert_eq!(Control::parse(r#"{"reboot":true}"#), None);
        assert_eq!(Control::parse("not json"), None);
    }
}
