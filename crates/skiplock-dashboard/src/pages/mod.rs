//! The pages: one handler each, returning the full page, or the fragment
//! our script asks for with the `X-Skiplock-Fragment` header. What they
//! share: the request's context ([`Ctx`]), the layout's fields, and how
//! times and durations read.

pub(crate) mod assets;
pub(crate) mod job;
pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod overview;
pub(crate) mod periodic;
pub(crate) mod queues;
pub(crate) mod workers;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::App;
use crate::access::Can;
use crate::auth::RequestInfo;
use crate::error::{AppError, PageError};

/// The header our script sends to get a page's live fragment only.
pub(crate) const FRAGMENT_HEADER: &str = "x-skiplock-fragment";

/// A request's context: the app, what the guard learnt, whether only the
/// fragment is wanted.
pub(crate) struct Ctx {
    pub app: Arc<App>,
    pub info: RequestInfo,
    pub fragment: bool,
}

impl FromRequestParts<Arc<App>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let info =
            parts.extensions.get::<RequestInfo>().cloned().ok_or_else(|| {
                (StatusCode::INTERNAL_SERVER_ERROR, "the dashboard's guard did not run").into_response()
            })?;
        let fragment = parts.headers.contains_key(FRAGMENT_HEADER);
        Ok(Ctx { app: app.clone(), info, fragment })
    }
}

impl Ctx {
    /// The layout's fields for a page titled `heading` under `nav`.
    pub fn layout(&self, nav: &'static str, heading: impl Into<String>) -> Layout {
        Layout {
            title: self.app.title.clone(),
            heading: heading.into(),
            base: self.info.base.clone(),
            home: home(&self.info.base),
            nav,
            csrf: self.info.csrf.clone(),
            flash: self.info.flash.clone(),
            auth: self.info.auth,
            access: self.app.access.describe(),
        }
    }

    pub fn can(&self) -> Can {
        Can::of(&self.app.access)
    }

    /// An error as a page in this request's context.
    pub fn error(&self, e: impl Into<AppError>) -> Response {
        PageError { app: &self.app, base: &self.info.base, error: e.into() }.into_response()
    }

    /// The rendered page or fragment, or the error page.
    pub fn render(&self, html: askama::Result<String>) -> Response {
        match html {
            Ok(h) => Html(h).into_response(),
            Err(e) => self.error(e),
        }
    }
}

/// The fields every page's layout shows.
pub(crate) struct Layout {
    pub title: String,
    pub heading: String,
    pub base: String,
    /// The overview's path.
    pub home: String,
    /// Which tab is current.
    pub nav: &'static str,
    pub csrf: String,
    pub flash: Option<String>,
    /// Whether to offer signing out.
    pub auth: bool,
    pub access: String,
}

impl Layout {
    /// `aria-current` for the nav tab `name`.
    pub fn current(&self, name: &str) -> &'static str {
        if self.nav == name { "page" } else { "false" }
    }
}

/// The overview's path: the base itself when nested (`/admin/queue`; a
/// nested router does not answer `/admin/queue/`), else `/`.
pub(crate) fn home(base: &str) -> String {
    if base.is_empty() { "/".to_owned() } else { base.to_owned() }
}

/// Whether `to` is a path inside the dashboard (for redirects).
pub(crate) fn inside(base: &str, to: &str) -> bool {
    let rest = if base.is_empty() { Some(to) } else { to.strip_prefix(base) };
    rest.is_some_and(|r| (r.is_empty() || r.starts_with('/') || r.starts_with('?')) && !to.starts_with("//"))
        && to.starts_with('/')
        && !to.contains('\\')
}

/// Unknown paths.
pub(crate) async fn not_found(ctx: Ctx) -> Response {
    ctx.error(AppError::NotFound("There is no such page.".into()))
}

/// A duration as people read it: `850 ms`, `4.2 s`, `3 min`, `2 h 5 min`,
/// `3 d 4 h`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", (s * 1000.0).round() as u64)
    } else if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{} s", s.round() as u64)
    } else if s < 7200.0 {
        format!("{} min", (s / 60.0).round() as u64)
    } else if s < 172_800.0 {
        let m = (s / 60.0).round() as u64;
        format!("{} h {} min", m / 60, m % 60)
    } else {
        let h = (s / 3600.0).round() as u64;
        format!("{} d {} h", h / 24, h % 24)
    }
}

/// `t` beside `now`: `5 s ago`, `in 3 min`, `now`.
pub(crate) fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = now - t;
    match d.to_std() {
        Ok(past) if past < Duration::from_millis(500) => "now".to_owned(),
        Ok(past) => format!("{} ago", human(past)),
        Err(_) => format!("in {}", human((t - now).to_std().unwrap_or_default())),
    }
}

/// `t` in full, UTC: `2025-01-31 14:05:09 UTC`.
pub(crate) fn absolute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time shown relative, with the exact time for a tooltip and a
/// `<time datetime>`.
pub(crate) struct When {
    pub rel: String,
    pub abs: String,
    pub iso: String,
}

impl When {
    pub fn of(t: DateTime<Utc>, now: DateTime<Utc>) -> When {
        When { rel: relative(t, now), abs: absolute(t), iso: t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }
    }

    pub fn opt(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<When> {
        t.map(|t| When::of(t, now))
    }
}

/// A count with thousands separators: `1,234,567`.
pub(crate) fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_counts_read_well() {
        assert_eq!(human(Duration::from_millis(850)), "850 ms");
        assert_eq!(human(Duration::from_secs_f64(4.24)), "4.2 s");
        assert_eq!(human(Duration::from_secs(180)), "3 min");
        assert_eq!(human(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
