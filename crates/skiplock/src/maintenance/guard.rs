//! The leader guard every leader-only pass runs under: [`guarded!`].
//! Why passes of two processes never overlap is told in the module doc of
//! `maintenance`.

/// Runs `$body` (which uses `$on: db::On<'_>`) in a transaction of `$db`
/// opened by the leader guard: only if `$l` (a [`leader::Leadership`])
/// leads by its own view and, at this moment, by the database's (the leader
/// row is then locked FOR KEY SHARE until commit, so a takeover waits for
/// this pass; the leader's own renewal does not). The transaction is
/// bounded: statement, lock and idle-in-transaction timeouts on the server,
/// and a timeout on the whole pass here, after which the connection is
/// discarded. Evaluates to `Result<Option<(body's value, confirmed at, done
/// at)>>`, `None` when this process does not lead; the database saying no
/// also ends its leadership locally. (A macro, not a function taking an
/// async closure: such a closure's future cannot be proven `Send` for every
/// borrow of the transaction, which `tokio::spawn` needs.)
macro_rules! guarded {
    ($l:expr, $db:expr, |$on:ident| $body:expr) => {{
        let (l, db): (&$crate::maintenance::leader::Leadership, &$crate::db::Db) = ($l, $db);
        async {
            if !l.is_leader() {
                return Ok(None);
            }
            let mut conn = $crate::db::Discardable::new(db.raw().await?);
            let pass = async {
                let tx = conn.transaction().await?;
                let started = {
                    let $on = db.on(&tx);
                    $crate::db::leader::guard($on, &l.id, &l.limits.pass).await?
                };
                let Some(started) = started else {
                    drop(tx);
                    l.lost("the database says another process leads");
                    return Ok(None);
                };
                let $on = db.on(&tx);
                let out = $body;
                let finished = $crate::db::leader::clock($on).await?;
                tx.commit().await?;
                Ok::<_, $crate::Error>(Some((out, started, finished)))
            };
            // The server ends a stuck pass by itself (guard.sql's limits);
            // this bounds the client's wait too, if the server cannot be
            // heard from at all.
            match tokio::time::timeout(l.limits.client, pass).await {
                Ok(done) => {
                    if done.as_ref().err().is_none_or(|e: &$crate::Error| e.sqlstate().is_some()) {
                        conn.keep();
                    }
                    done
                }
                Err(_) => Err($crate::Error::Timeout { after: l.limits.client }),
            }
        }
        .await
    }};
}
pub(crate) use guarded;
