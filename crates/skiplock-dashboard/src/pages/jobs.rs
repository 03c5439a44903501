//! The jobs page: hot and archived jobs, newest first, filtered by state,
//! queue, kind, tag, id and a key or value inside args (the filters live in
//! the URL), a page at a time by keyset (`before`/`after` an id), with
//! actions on a selection or on everything the filter matches.

use askama::Template;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use skiplock::{BulkAction, COUNT_CAP_DEFAULT, JobRow, JobState};

use super::{Ctx, Layout, When, count, shorten};
use crate::access::Can;
use crate::error::AppError;
use crate::params::{Filters, Params, STATE_CHOICES};

/// Jobs per page unless `limit` says otherwise.
const PAGE_DEFAULT: i64 = 50;

/// A job's line in a table.
pub(crate) struct JobLine {
    pub id: i64,
    pub state: &'static str,
    pub queue: String,
    pub kind: String,
    pub args: String,
    pub attempt: String,
    /// What the time column shows: `finished`, `due`, `started`.
    pub when_label: &'static str,
    pub when: When,
    pub tags: Vec<String>,
    pub error: Option<String>,
}

impl JobLine {
    pub fn of(j: &JobRow, now: chrono::DateTime<Utc>) -> JobLine {
        let (when_label, at) = match (j.finished_at, j.state) {
            (Some(f), _) => ("finished", f),
            (None, JobState::Running) => ("started", j.attempted_at.unwrap_or(j.run_at)),
            (None, _) => ("due", j.run_at),
        };
        JobLine {
            id: j.id,
            state: j.state.as_str(),
            queue: j.queue.clone(),
            kind: j.kind.clone(),
            args: shorten(&j.args.to_string(), 90),
            attempt: format!("{}/{}", j.attempt, j.max_attempts),
            when_label,
            when: When::of(at, now),
            tags: j.tags.clone(),
            error: j.errors.last().map(|e| shorten(e.error.lines().next().unwrap_or(""), 120)),
        }
    }
}

/// A state tab.
pub(crate) struct Tab {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
    pub count: Option<String>,
}

/// A bulk action link.
pub(crate) struct BulkLink {
    pub action: &'static str,
    pub href: String,
}

/// The table and its pager: what the fragment holds.
pub(crate) struct Table {
    pub base: String,
    pub rows: Vec<JobLine>,
    pub newer: Option<String>,
    pub older: Option<String>,
    pub can: Can,
    pub csrf: String,
    pub return_to: String,
}

#[derive(Template)]
#[template(path = "jobs_partial.html")]
struct JobsPartial<'a> {
    t: &'a Table,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage<'a> {
    l: Layout,
    f: Filters,
    states: &'static [&'static str],
    tabs: Vec<Tab>,
    bulk: Vec<BulkLink>,
    error: Option<String>,
    t: &'a Table,
}

fn tabs(base: &str, f: &Filters, depth: &skiplock::QueueDepth) -> Vec<Tab> {
    let mut out = Vec::new();
    let all = Filters { state: String::new(), ..f.clone() };
    out.push(Tab {
        label: "all",
        href: format!("{base}/jobs?{}", all.query(&[])),
        current: f.state.is_empty(),
        count: None,
    });
    for st in JobState::ALL {
        let n: i64 = depth
            .rows
            .iter()
            .filter(|r| r.state == st && (f.queue.is_empty() || r.queue == f.queue))
            .map(|r| r.count)
            .sum();
        let g = Filters { state: st.as_str().to_owned(), ..f.clone() };
        out.push(Tab {
            label: st.as_str(),
            href: format!("{base}/jobs?{}", g.query(&[])),
            current: f.state == st.as_str(),
            count: (!st.is_final()).then(|| count(n)),
        });
    }
    out
}

/// `GET /jobs`.
pub(crate) async fn page(ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let p = Params::query(q.as_deref());
    let f = Filters::from(&p);
    let base = ctx.info.base.clone();
    let can = ctx.can();
    let here = format!("{base}/jobs{}", q.as_deref().map(|q| format!("?{q}")).unwrap_or_default());
    let mut table = Table {
        base: base.clone(),
        rows: Vec::new(),
        newer: None,
        older: None,
        can,
        csrf: ctx.info.csrf.clone(),
        return_to: here,
    };
    let searched = async {
        let mut search = f.search().map_err(AppError::Bad)?;
        search.before = p.i64("before").map_err(AppError::Bad)?;
        search.after = p.i64("after").map_err(AppError::Bad)?;
        search.limit = Some(p.i64("limit").map_err(AppError::Bad)?.unwrap_or(PAGE_DEFAULT));
        Ok::<_, AppError>(ctx.app.client.jobs_search(&search).await?)
    };
    let (result, depth) = tokio::join!(searched, ctx.app.client.queue_depth());
    let depth = depth.unwrap_or_default();
    let mut error = None;
    match result {
        Ok(page) => {
            let now = Utc::now();
            table.rows = page.jobs.iter().map(|j| JobLine::of(j, now)).collect();
            let limit = p.get("limit").map(|l| ("limit", l));
            table.newer = page.newer.map(|id| {
                let id = id.to_string();
                format!(
                    "{base}/jobs?{}",
                    f.query(&[Some(("after", id.as_str())), limit].into_iter().flatten().collect::<Vec<_>>())
                )
            });
            table.older = page.older.map(|id| {
                let id = id.to_string();
                format!(
                    "{base}/jobs?{}",
                    f.query(&[Some(("before", id.as_str())), limit].into_iter().flatten().collect::<Vec<_>>())
                )
            });
        }
        Err(AppError::Bad(m)) => error = Some(m),
        Err(e) => return ctx.error(e),
    }
    if ctx.fragment {
        return ctx.render(JobsPartial { t: &table }.render());
    }
    let bulk = [
        (can.retry, BulkAction::Retry),
        (can.cancel, BulkAction::Cancel),
        (can.discard, BulkAction::Discard),
        (can.delete, BulkAction::Delete),
    ]
    .into_iter()
    .filter(|(ok, _)| *ok)
    .map(|(_, a)| BulkLink {
        action: a.as_str(),
        href: format!("{base}/jobs/bulk?{}", f.query(&[("action", a.as_str())])),
    })
    .collect();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let tabs = tabs(&base, &f, &depth);
    let html =
        JobsPage { l: ctx.layout("jobs", "Jobs"), f, states: &STATE_CHOICES, tabs, bulk, error, t: &table }.render();
    (status, ctx.render(html)).into_response()
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    pub l: Layout,
    /// What will happen, in words.
    pub question: String,
    /// More about it.
    pub detail: String,
    /// Where the form goes.
    pub action: String,
    /// Hidden fields.
    pub fields: Vec<(String, String)>,
    pub button: String,
    pub danger: bool,
    pub back: String,
}

/// `GET /jobs/bulk?…&action=`: how many jobs the filter matches, and the
/// form that acts on them.
pub(crate) async fn bulk_confirm(ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let p = Params::query(q.as_deref());
    let f = Filters::from(&p);
    let base = ctx.info.base.clone();
    let action: BulkAction = match p.get("action").unwrap_or("").parse() {
        Ok(a) => a,
        Err(e) => return ctx.error(AppError::Bad(format!("{e}"))),
    };
    if !ctx.app.access.allows(crate::actions::needs(action)) {
        return ctx.error(AppError::Forbidden(format!("This dashboard does not allow {}.", action.as_str())));
    }
    let search = match f.search() {
        Ok(s) => s,
        Err(m) => return ctx.error(AppError::Bad(m)),
    };
    let n = match ctx.app.client.jobs_count(&search, COUNT_CAP_DEFAULT).await {
        Ok(n) => n,
        Err(e) => return ctx.error(e),
    };
    let shown = if n.capped { format!("more than {}", count(n.n)) } else { count(n.n) };
    let what = if f.is_empty() { "every job".to_owned() } else { describe(&f) };
    let max_id = n.max_id.to_string();
    let mut fields: Vec<(String, String)> = f.pairs().into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    fields.push(("action".into(), action.as_str().into()));
    fields.push(("max_id".into(), max_id));
    let page = ConfirmPage {
        l: ctx.layout("jobs", "Confirm"),
        question: format!("{} {shown} matching jobs?", capital(action.as_str())),
        detail: format!(
            "Filter: {what}. Jobs enqueued from now on are left alone; at most {} are acted on per confirmation, {} at a time.{}",
            count(skiplock::BULK_MAX_DEFAULT as i64),
            count(skiplock::BULK_BATCH),
            match action {
                BulkAction::Cancel => " Running jobs are told to stop.",
                BulkAction::Discard | BulkAction::Delete => " Running jobs are left as they are.",
                _ => " Running jobs are left as they are.",
            }
        ),
        action: format!("{base}/jobs/bulk"),
        fields,
        button: format!("{} {shown} jobs", capital(action.as_str())),
        danger: matches!(action, BulkAction::Delete | BulkAction::Discard | BulkAction::Cancel),
        back: format!("{base}/jobs?{}", f.query(&[])),
    };
    ctx.render(page.render())
}

/// `s` with its first letter upper case.
pub(crate) fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The filters in words: `state discarded, queue mail`.
pub(crate) fn describe(f: &Filters) -> String {
    f.pairs().into_iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
