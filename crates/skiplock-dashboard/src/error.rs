//! Errors as pages: what went wrong, in the dashboard's layout, with the
//! status that says so.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::App;

/// A handler's error.
#[derive(Debug)]
pub(crate) enum AppError {
    /// Bad input: a filter, an id, a form field (400).
    Bad(String),
    /// Not allowed in this access mode (403).
    Forbidden(String),
    /// No such thing (404).
    NotFound(String),
    /// The queue's library failed (database away: 503; else 500).
    Queue(skiplock::Error),
    /// A template failed to render (500).
    Render(askama::Error),
}

impl From<skiplock::Error> for AppError {
    fn from(e: skiplock::Error) -> Self {
        match e {
            skiplock::Error::InvalidInput { .. } => AppError::Bad(e.to_string()),
            e => AppError::Queue(e),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Render(e)
    }
}

/// An error with the request's context, to render in the layout.
pub(crate) struct PageError<'a> {
    pub app: &'a App,
    pub base: &'a str,
    pub error: AppError,
}

impl AppError {
    fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            AppError::Bad(m) => (StatusCode::BAD_REQUEST, m.clone()),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            AppError::Queue(e) => {
                tracing::warn!(error = %e, "dashboard request failed");
                let transient = matches!(e, skiplock::Error::Transient(_) | skiplock::Error::Pool(_))
                    || matches!(e, skiplock::Error::Timeout { .. });
                let status =
                    if transient { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
                (status, format!("The queue's database did not answer as expected: {e}"))
            }
            AppError::Render(e) => {
                tracing::error!(error = %e, "dashboard template failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "This page could not be drawn.".to_owned())
            }
        }
    }
}

impl IntoResponse for PageError<'_> {
    fn into_response(self) -> Response {
        let (status, message) = self.error.status_and_message();
        page(status, self.app, self.base, &message)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    base: &'a str,
    home: String,
    status: u16,
    reason: &'a str,
    message: &'a str,
}

/// A page that says `message`, with `status`.
pub(crate) fn page(status: StatusCode, app: &App, base: &str, message: &str) -> Response {
    let p = ErrorPage {
        title: &app.title,
        base,
        home: crate::pages::home(base),
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or(""),
        message,
    };
    match p.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_owned()).into_response(),
    }
}
