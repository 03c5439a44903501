//! Live updates: `GET /live` is a stream of server-sent events, each the
//! overview's live fragment (`overview_partial.html`) when it changed,
//! read every [`Dashboard::live_interval`](crate::Dashboard::live_interval).
//! Each read is the overview's five small reads (never the jobs table). The
//! script closes the stream while its tab is hidden and opens it again when
//! it shows; where server-sent events fail, it polls the overview for the
//! same fragment.

use std::convert::Infallible;
use std::sync::Arc;

use askama::Template;
use axum::extract::RawQuery;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use crate::App;
use crate::pages::Ctx;
use crate::pages::overview::{self, LivePartial};
use crate::params::Params;

struct Feed {
    app: Arc<App>,
    base: String,
    queue: Option<String>,
    last: Option<String>,
    first: bool,
}

/// `GET /live` (`?queue=` as the overview's).
pub(crate) async fn stream(ctx: Ctx, RawQuery(q): RawQuery) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let p = Params::query(q.as_deref());
    let feed = Feed {
        app: ctx.app.clone(),
        base: ctx.info.base.clone(),
        queue: p.get("queue").map(str::to_owned),
        last: None,
        first: true,
    };
    let events = futures_util::stream::unfold(feed, |mut f| async move {
        loop {
            if !f.first {
                tokio::time::sleep(f.app.live_interval).await;
            }
            f.first = false;
            let html = match overview::load(&f.app, &f.base, f.queue.as_deref()).await {
                Ok(live) => match (LivePartial { v: &live }).render() {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(error = %e, "live fragment not drawn");
                        continue;
                    }
                },
                Err(e) => {
                    tracing::debug!(error = ?e, "live figures not read; trying again");
                    continue;
                }
            };
            if f.last.as_deref() == Some(html.as_str()) {
                continue;
            }
            let event = Event::default().event("overview").data(&html);
            f.last = Some(html);
            return Some((Ok(event), f));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
