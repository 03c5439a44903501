//! The actions: POSTs only, each checked against the access mode and the
//! CSRF token, each answered with a redirect to the page it came from and a
//! confirmation of what it did (shown once, as a toast). Destructive ones
//! (cancel, discard, delete, and every bulk action) ask first: without our
//! script, on a confirmation page; with it, in a dialog.

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use skiplock::{BULK_MAX_DEFAULT, BulkAction, CancelResult};

use crate::Action;
use crate::auth::same;
use crate::error::AppError;
use crate::pages::jobs::{ConfirmPage, capital, describe};
use crate::pages::{Ctx, count};
use crate::params::{Filters, Params};

/// The access an action on jobs needs.
pub(crate) fn needs(a: BulkAction) -> Action {
    match a {
        BulkAction::Retry => Action::Retry,
        BulkAction::Cancel => Action::Cancel,
        BulkAction::Discard => Action::Discard,
        BulkAction::Delete => Action::Delete,
        _ => Action::Delete,
    }
}

/// Refuses a form that did not come from this dashboard.
fn check(ctx: &Ctx, p: &Params, action: Action) -> Result<(), Box<Response>> {
    if !ctx.info.bearer && !p.get("csrf").is_some_and(|c| same(c, &ctx.info.csrf)) {
        return Err(Box::new(crate::error::page(
            StatusCode::FORBIDDEN,
            &ctx.app,
            &ctx.info.base,
            "This form did not come from this dashboard (its CSRF token is missing or wrong): refused. Reload the page and try again.",
        )));
    }
    if !ctx.app.access.allows(action) {
        return Err(Box::new(
            ctx.error(AppError::Forbidden(format!("This dashboard does not allow the {action} action."))),
        ));
    }
    Ok(())
}

/// The job action a form asks for, if it may be done.
fn job_action(ctx: &Ctx, p: &Params) -> Result<BulkAction, Box<Response>> {
    let action: BulkAction = p
        .get("action")
        .unwrap_or("")
        .parse()
        .map_err(|e: skiplock::Error| Box::new(ctx.error(AppError::Bad(e.to_string()))))?;
    check(ctx, p, needs(action))?;
    Ok(action)
}

/// Back to `to` (a path inside the dashboard, else its overview), with the
/// confirmation `message`.
fn done(ctx: &Ctx, to: Option<&str>, message: &str) -> Response {
    let base = &ctx.info.base;
    let to = match to {
        Some(t) if crate::pages::inside(base, t) => t.to_owned(),
        _ => crate::pages::home(base),
    };
    let mut res = Redirect::to(&to).into_response();
    res.headers_mut().append(header::SET_COOKIE, crate::auth::flash(base, message));
    res
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{} {one}s", count(n as i64)) }
}

/// `POST /jobs/act`: `action` on the jobs `ids` (one, or a selection).
pub(crate) async fn jobs_act(ctx: Ctx, body: Bytes) -> Response {
    let p = Params::parse(&body);
    let action = match job_action(&ctx, &p) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let ids: Result<Vec<i64>, _> = p.all("ids").into_iter().map(str::parse::<i64>).collect();
    let ids = match ids {
        Ok(ids) if !ids.is_empty() => ids,
        Ok(_) => return done(&ctx, p.get("return"), "No job was selected: nothing done."),
        Err(_) => return ctx.error(AppError::Bad("ids: not job ids".into())),
    };
    let destructive = !matches!(action, BulkAction::Retry);
    if destructive && p.get("confirmed").is_none() {
        let mut fields: Vec<(String, String)> = ids.iter().map(|id| ("ids".to_owned(), id.to_string())).collect();
        fields.push(("action".into(), action.as_str().into()));
        if let Some(r) = p.get("return") {
            fields.push(("return".into(), r.into()));
        }
        let what = if ids.len() == 1 { format!("job {}", ids[0]) } else { plural(ids.len(), "selected job") };
        let page = ConfirmPage {
            l: ctx.layout("jobs", "Confirm"),
            question: format!("{} {what}?", capital(action.as_str())),
            detail: match action {
                BulkAction::Cancel => "Waiting jobs are cancelled now; running ones are told to stop.".into(),
                BulkAction::Discard => "Waiting jobs move to the archive as discarded; running ones are left.".into(),
                _ => "The jobs are removed for good (running ones are left).".into(),
            },
            action: format!("{}/jobs/act", ctx.info.base),
            fields,
            button: format!("{} {what}", capital(action.as_str())),
            danger: true,
            back: p.get("return").map_or_else(|| format!("{}/jobs", ctx.info.base), str::to_owned),
        };
        return ctx.render(askama::Template::render(&page));
    }
    let c = &ctx.app.client;
    let message = match action {
        BulkAction::Retry => c.retry(&ids).await.map(|done| {
            let left = ids.len() - done.len();
            let mut m = format!("Retried {}: available now.", plural(done.len(), "job"));
            if left > 0 {
                m.push_str(&format!(" {} left as it was (running, or unknown).", plural(left, "job")));
            }
            m
        }),
        BulkAction::Cancel => c.cancel(&ids).await.map(|r| {
            let n = |want| r.iter().filter(|(_, x)| *x == want).count();
            let (now, asked, none) =
                (n(CancelResult::Cancelled), n(CancelResult::Cancelling), n(CancelResult::NotFound));
            let mut m = format!("Cancelled {}.", plural(now, "job"));
            if asked > 0 {
                m.push_str(&format!(" Told {} running to stop.", plural(asked, "job")));
            }
            if none > 0 {
                m.push_str(&format!(" {} had finished already.", plural(none, "job")));
            }
            m
        }),
        BulkAction::Discard => c.jobs_discard(&ids).await.map(|done| {
            let left = ids.len() - done.len();
            let mut m = format!("Discarded {}.", plural(done.len(), "job"));
            if left > 0 {
                m.push_str(&format!(" {} left as it was (running, or finished).", plural(left, "job")));
            }
            m
        }),
        _ => c.jobs_delete(&ids).await.map(|done| {
            let left = ids.len() - done.len();
            let mut m = format!("Deleted {}.", plural(done.len(), "job"));
            if left > 0 {
                m.push_str(&format!(" {} left (running, or gone already).", plural(left, "job")));
            }
            m
        }),
    };
    let message = match message {
        Ok(m) => m,
        Err(skiplock::Error::Duplicate { .. }) => {
            "Not retried: another unfinished job holds its unique key.".to_owned()
        }
        Err(e) => return ctx.error(e),
    };
    // A deleted job's page is gone: back to the list.
    let back = p.get("return").filter(|r| action != BulkAction::Delete || !r.contains("/jobs/"));
    let back = back.map(str::to_owned).unwrap_or_else(|| format!("{}/jobs", ctx.info.base));
    done(&ctx, Some(&back), &message)
}

/// `POST /jobs/bulk`: `action` on every job the filters match, up to
/// `max_id` (from the count shown before), at most [`BULK_MAX_DEFAULT`].
pub(crate) async fn jobs_bulk(ctx: Ctx, body: Bytes) -> Response {
    let p = Params::parse(&body);
    let action = match job_action(&ctx, &p) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let f = Filters::from(&p);
    let mut search = match f.search() {
        Ok(s) => s,
        Err(m) => return ctx.error(AppError::Bad(m)),
    };
    match p.i64("max_id") {
        Ok(Some(id)) => search.max_id = Some(id),
        Ok(None) => return ctx.error(AppError::Bad("max_id: missing; start from the jobs page".into())),
        Err(m) => return ctx.error(AppError::Bad(m)),
    }
    let r = match ctx.app.client.jobs_bulk(&search, action, BULK_MAX_DEFAULT).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let verb = match action {
        BulkAction::Retry => "Retried",
        BulkAction::Cancel => "Cancelled",
        BulkAction::Discard => "Discarded",
        _ => "Deleted",
    };
    let what = if f.is_empty() { "every job".to_owned() } else { describe(&f) };
    let mut message = format!(
        "{verb} {} of {} matching {what}, in {}.",
        count(r.acted as i64),
        plural(r.matched as usize, "job"),
        plural(r.batches as usize, "batch").replace("batchs", "batches")
    );
    if r.skipped > 0 {
        message.push_str(&format!(" {} left as they were.", count(r.skipped as i64)));
    }
    if r.more {
        message.push_str(" More match: run it again for the next ones.");
    }
    done(&ctx, Some(&format!("{}/jobs?{}", ctx.info.base, f.query(&[]))), &message)
}

/// `POST /queues/act`: pause or resume `queue`.
pub(crate) async fn queues_act(ctx: Ctx, body: Bytes) -> Response {
    let p = Params::parse(&body);
    if let Err(r) = check(&ctx, &p, Action::Pause) {
        return *r;
    }
    let Some(queue) = p.get("queue") else { return ctx.error(AppError::Bad("queue: missing".into())) };
    let c = &ctx.app.client;
    let (result, message) = match p.get("action") {
        Some("pause") => (c.queue_pause(queue).await, format!("Paused queue {queue}: no more claims from it.")),
        Some("resume") => (c.queue_resume(queue).await, format!("Resumed queue {queue}: its workers were woken.")),
        _ => return ctx.error(AppError::Bad("action: pause or resume".into())),
    };
    if let Err(e) = result {
        return ctx.error(e);
    }
    done(&ctx, p.get("return"), &message)
}

/// `POST /periodic/act`: pause, resume or run now the periodic job `name`.
pub(crate) async fn periodic_act(ctx: Ctx, body: Bytes) -> Response {
    let p = Params::parse(&body);
    if let Err(r) = check(&ctx, &p, Action::Periodic) {
        return *r;
    }
    let Some(name) = p.get("name") else { return ctx.error(AppError::Bad("name: missing".into())) };
    let c = &ctx.app.client;
    let (result, yes, no) = match p.get("action") {
        Some("pause") => (c.periodic_pause(name).await, "Paused", "No periodic job"),
        Some("resume") => (c.periodic_resume(name).await, "Resumed", "No periodic job"),
        Some("run") => (c.periodic_run_now(name).await, "Asked the leader to run", "Not run (unknown or paused):"),
        _ => return ctx.error(AppError::Bad("action: pause, resume or run".into())),
    };
    let message = match result {
        Ok(true) if p.get("action") == Some("run") => format!("{yes} {name} now: it is enqueued within a second."),
        Ok(true) => format!("{yes} periodic job {name}."),
        Ok(false) => format!("{no} {name}."),
        Err(e) => return ctx.error(e),
    };
    done(&ctx, Some(&format!("{}/periodic", ctx.info.base)), &message)
}
