//! Authentication and request forgery.
//!
//! - **Token**: `Authorization: Bearer <token>`, or the login form, which
//!   sets a cookie holding a SHA-256 digest of the token (`HttpOnly`,
//!   `SameSite=Lax`), so the token itself is never stored in the browser.
//! - **Basic**: `Authorization: Basic …`, with the browser's own prompt.
//! - **Cross-site request forgery**: every POST must carry the token of the
//!   `skiplock_csrf` cookie (random, `HttpOnly`, `SameSite=Strict`) in its
//!   `csrf` field (double submit), and is refused when the browser says it
//!   comes from another site (`Sec-Fetch-Site`, or an `Origin` that is not
//!   this host). A request authenticated by a bearer token (a script; no
//!   browser sends one by itself) needs no CSRF token.
//!
//! Secrets are compared in constant time.

use std::sync::Arc;

use askama::Template;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::App;
use crate::params::Params;

/// The session cookie (a digest of the token).
const SESSION_COOKIE: &str = "skiplock_session";
/// The CSRF cookie.
const CSRF_COOKIE: &str = "skiplock_csrf";
/// The cookie carrying an action's confirmation to the page after it.
const FLASH_COOKIE: &str = "skiplock_flash";

/// The configured credentials.
pub(crate) struct Auth {
    token: Option<String>,
    session: Option<String>,
    basic: Option<String>,
}

impl Auth {
    pub fn new(token: Option<String>, basic: Option<(String, String)>) -> Auth {
        Auth {
            session: token.as_deref().map(session_value),
            token,
            basic: basic.map(|(u, p)| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))),
        }
    }

    fn required(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }
}

fn session_value(token: &str) -> String {
    let digest = Sha256::digest(format!("skiplock-dashboard-session\0{token}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the guard learnt of a request, for the handlers.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo {
    /// The path the dashboard is nested under (`""` at the root).
    pub base: String,
    /// This browser's CSRF token.
    pub csrf: String,
    /// Authenticated by a bearer token (no CSRF token needed).
    pub bearer: bool,
    /// An action's confirmation to show.
    pub flash: Option<String>,
    /// Whether the dashboard asks for credentials (the logout button).
    pub auth: bool,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn cookie_header(name: &str, value: &str, path: &str, extra: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; HttpOnly{extra}"))
        .unwrap_or_else(|_| HeaderValue::from_static("skiplock_invalid=1"))
}

fn cookie_path(base: &str) -> String {
    crate::pages::home(base)
}

/// Sets the confirmation shown by the next page.
pub(crate) fn flash(base: &str, message: &str) -> HeaderValue {
    let v = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message.as_bytes());
    cookie_header(FLASH_COOKIE, &v, &cookie_path(base), "; SameSite=Strict; Max-Age=60")
}

/// The path this router is nested under: what the original URI has before
/// the path the router sees.
fn base_of(original: Option<&OriginalUri>, path: &str) -> String {
    let Some(OriginalUri(o)) = original else { return String::new() };
    o.path().strip_suffix(path).unwrap_or("").trim_end_matches('/').to_owned()
}

/// Whether a browser says the request comes from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST)) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            host.to_str().map_or(true, |h| !origin_host.eq_ignore_ascii_case(h))
        }
        _ => false,
    }
}

/// Authenticates, refuses cross-site writes, and hands the handlers what
/// they need to know ([`RequestInfo`]).
pub(crate) async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let base = base_of(req.extensions().get::<OriginalUri>(), &path);
    let headers = req.headers();
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let bearer = app.auth.token.as_deref().is_some_and(|t| given.strip_prefix("Bearer ").is_some_and(|g| same(g, t)));
    let basic = app.auth.basic.as_deref().is_some_and(|b| given.strip_prefix("Basic ").is_some_and(|g| same(g, b)));
    let session =
        app.auth.session.as_deref().is_some_and(|s| cookie(headers, SESSION_COOKIE).is_some_and(|c| same(c, s)));
    let (csrf, fresh) = match cookie(headers, CSRF_COOKIE).filter(|c| c.len() == 64) {
        Some(c) => (c.to_owned(), false),
        None => (format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>()), true),
    };
    let csrf_cookie = || cookie_header(CSRF_COOKIE, &csrf, &cookie_path(&base), "; SameSite=Strict");
    let open = path == "/login" || path.starts_with("/assets/");
    if app.auth.required() && !(bearer || basic || session || open) {
        let mut res = refuse_unauthenticated(&app, &base, req.method(), &path, &csrf);
        if fresh {
            res.headers_mut().append(header::SET_COOKIE, csrf_cookie());
        }
        return res;
    }
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
    if writes && cross_site(headers) {
        return crate::error::page(StatusCode::FORBIDDEN, &app, &base, "This request came from another site: refused.");
    }
    let flash = cookie(headers, FLASH_COOKIE)
        .and_then(|v| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let shows_flash = flash.is_some() && !writes && path != "/live" && !path.starts_with("/assets/");
    let info = RequestInfo {
        base: base.clone(),
        csrf: csrf.clone(),
        bearer,
        flash: if shows_flash { flash } else { None },
        auth: app.auth.required(),
    };
    req.extensions_mut().insert(info);
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if fresh {
        h.append(header::SET_COOKIE, csrf_cookie());
    }
    if shows_flash {
        // Shown once: forgotten by the browser with this answer.
        h.append(header::SET_COOKIE, cookie_header(FLASH_COOKIE, "", &cookie_path(&base), "; Max-Age=0"));
    }
    res
}

fn refuse_unauthenticated(app: &App, base: &str, method: &Method, path: &str, csrf: &str) -> Response {
    if app.auth.token.is_none() {
        let mut res = crate::error::page(StatusCode::UNAUTHORIZED, app, base, "Sign in to see this dashboard.");
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"skiplock\""));
        return res;
    }
    if *method == Method::GET && path != "/live" {
        let next = format!("{base}{path}");
        let page = LoginPage { title: &app.title, base, csrf, next: &next, error: "" };
        return (StatusCode::UNAUTHORIZED, Html(page.render().unwrap_or_default())).into_response();
    }
    crate::error::page(StatusCode::UNAUTHORIZED, app, base, "Sign in first: this request carried no valid token.")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    base: &'a str,
    csrf: &'a str,
    next: &'a str,
    error: &'a str,
}

/// A `next` that stays inside the dashboard.
fn safe_next(base: &str, next: Option<&str>) -> String {
    match next {
        Some(n) if crate::pages::inside(base, n) => n.to_owned(),
        _ => crate::pages::home(base),
    }
}

/// `GET /login`: the token form.
pub(crate) async fn login_page(
    State(app): State<Arc<App>>,
    axum::Extension(info): axum::Extension<RequestInfo>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let p = Params::query(q.as_deref());
    let next = safe_next(&info.base, p.get("next"));
    let page = LoginPage { title: &app.title, base: &info.base, csrf: &info.csrf, next: &next, error: "" };
    Html(page.render().unwrap_or_default()).into_response()
}

/// `POST /login`: sets the session cookie when the token is right.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    axum::Extension(info): axum::Extension<RequestInfo>,
    body: axum::body::Bytes,
) -> Response {
    let p = Params::parse(&body);
    let next = safe_next(&info.base, p.get("next"));
    if !p.get("csrf").is_some_and(|c| same(c, &info.csrf)) {
        return crate::error::page(
            StatusCode::FORBIDDEN,
            &app,
            &info.base,
            "The form had expired: reload it and try again.",
        );
    }
    let (Some(token), Some(session)) = (app.auth.token.as_deref(), app.auth.session.as_deref()) else {
        return Redirect::to(&next).into_response();
    };
    if !p.get("token").is_some_and(|t| same(t, token)) {
        let page = LoginPage {
            title: &app.title,
            base: &info.base,
            csrf: &info.csrf,
            next: &next,
            error: "That token is not the one this dashboard was started with.",
        };
        return (StatusCode::UNAUTHORIZED, Html(page.render().unwrap_or_default())).into_response();
    }
    let mut res = Redirect::to(&next).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, cookie_header(SESSION_COOKIE, session, &cookie_path(&info.base), "; SameSite=Lax"));
    res
}

/// `POST /logout`: forgets the session cookie.
pub(crate) async fn logout(axum::Extension(info): axum::Extension<RequestInfo>, body: axum::body::Bytes) -> Response {
    let p = Params::parse(&body);
    if !p.get("csrf").is_some_and(|c| same(c, &info.csrf)) {
        return (StatusCode::FORBIDDEN, "forged request refused").into_response();
    }
    let mut res = Redirect::to(&format!("{}/login", info.base)).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, cookie_header(SESSION_COOKIE, "", &cookie_path(&info.base), "; Max-Age=0"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }

    #[test]
    fn next_stays_inside() {
        assert_eq!(safe_next("/admin", Some("/admin/jobs?x=1")), "/admin/jobs?x=1");
        assert_eq!(safe_next("/admin", Some("https://evil.example/")), "/admin");
        assert_eq!(safe_next("/admin", Some("/adminx")), "/admin");
        assert_eq!(safe_next("", Some("//evil.example/")), "/");
    }

    #[test]
    fn other_origins_are_cross_site() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(cross_site(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }
}
