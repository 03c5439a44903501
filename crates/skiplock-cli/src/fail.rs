//! Errors at the edge: every failure becomes one readable line on stderr.

use std::error::Error as StdError;
use std::fmt;
use std::process::ExitCode;

/// Exit status after an error.
const EXIT_ERROR: u8 = 1;
/// Exit status after ctrl-c or SIGTERM: 128 + SIGINT, as shells report it.
const EXIT_INTERRUPTED: u8 = 130;
/// Exit status of `skiplock health` when a finding needs action (1: it could
/// not check; 2 is clap's, for bad usage).
pub const EXIT_NEEDS_ACTION: u8 = 3;

/// `skiplock health` found this many things that need action (printed).
#[derive(Debug)]
pub struct NeedsAction(pub usize);

impl fmt::Display for NeedsAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 finding needs action"),
            n => write!(f, "{n} findings need action"),
        }
    }
}

impl StdError for NeedsAction {}

/// The run was stopped by ctrl-c or SIGTERM (after cleaning up).
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl StdError for Interrupted {}

/// Prints `e` as `error: …` on one line of stderr and picks the exit status.
pub fn report(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(e));
    if e.downcast_ref::<Interrupted>().is_some() {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if e.downcast_ref::<NeedsAction>().is_some() {
        ExitCode::from(EXIT_NEEDS_ACTION)
    } else {
        ExitCode::from(EXIT_ERROR)
    }
}

/// The error and its causes, joined with `: ` on one line. Causes already
/// quoted by the message above them are left out, and PostgreSQL's errors are
/// shown by their message rather than the driver's "db error".
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let (text, done) = describe(cause);
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if done {
            break;
        }
    }
    let joined = parts.join(": ");
    // One line, whatever a message holds (server logs, DETAIL lines).
    joined.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}

/// One cause's text, and whether it already covered the causes below it.
/// The library's errors say everything themselves (their text is made in
/// one place, `skiplock::Error`'s `Display`); a driver error met outside
/// the library is shown with its causes.
fn describe(cause: &(dyn StdError + 'static)) -> (String, bool) {
    if let Some(e) = cause.downcast_ref::<skiplock::Error>() {
        return (e.to_string(), true);
    }
    if let Some(e) = cause.downcast_ref::<tokio_postgres::Error>() {
        return (pg_text(e), true);
    }
    (cause.to_string(), false)
}

/// A driver error met outside the library (the bench's raw connections) as
/// a person wants it: the server's message with its detail
/// and hint, or the client-side failure with its cause.
fn pg_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_owned();
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!(" (hint: {h})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// Whether `e` says the database could not be reached or would not let us in,
/// so that naming the server helps.
pub fn is_connection_error(e: &anyhow::Error) -> bool {
    e.chain().filter_map(|c| c.downcast_ref::<skiplock::Error>()).any(|e| {
        e.is_transient()
            || e.sqlstate().is_some_and(|code| code.starts_with("28") || code == "3D000" || code.starts_with("08"))
    })
}

/// A connection error with the server it is about in front.
pub fn at_place(e: &anyhow::Error, place: &str) -> anyhow::Error {
    anyhow::anyhow!("{place}: {}", one_line(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_join_on_one_line_without_repeats() {
        let inner = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(inner).context("cannot reach 127.0.0.1:1").context("line 3:\nsecond");
        assert_eq!(one_line(&e), "line 3: | second: cannot reach 127.0.0.1:1: connection refused");
        let e = anyhow::Error::new(skiplock::Error::Duplicate { key: None });
        assert_eq!(one_line(&e), "duplicate unique key");
    }

    #[test]
    fn interrupted_exits_130() {
        assert_eq!(report(&anyhow::Error::new(Interrupted)), ExitCode::from(130));
    }
}
