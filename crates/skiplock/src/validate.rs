//! Input rules and their limits. Everything a caller passes is checked here
//! before it reaches SQL, and a rejection names the field.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::job::JobState;

/// The queue a job goes to when none is named: `default`.
pub const QUEUE_DEFAULT: &str = "default";
/// Longest queue name, in bytes.
pub const QUEUE_NAME_MAX: usize = 128;
/// Longest kind name, in bytes.
pub const KIND_MAX: usize = 255;
/// Default priority: 0, the first to run.
pub const PRIORITY_DEFAULT: i16 = 0;
/// Lowest priority: 9. Priorities run 0 (first) to 9 (last).
pub const PRIORITY_MAX: i16 = 9;
/// Default attempts before a failing job is discarded: 20 (as Oban).
pub const MAX_ATTEMPTS_DEFAULT: i32 = 20;
/// Most attempts a job may be given.
pub const MAX_ATTEMPTS_LIMIT: i32 = 10_000;
/// Default largest args document, in bytes of JSON: 1 MiB.
pub const ARGS_MAX_BYTES_DEFAULT: usize = 1 << 20;
/// Longest unique key, in bytes.
pub const UNIQUE_KEY_MAX: usize = 512;
/// Longest tag, in bytes.
pub const TAG_MAX: usize = 128;
/// Most tags on one job.
pub const TAGS_MAX: usize = 32;
/// Largest metadata document, in bytes of JSON: 64 KiB.
pub const META_MAX_BYTES: usize = 64 << 10;
/// Furthest ahead a job may be scheduled: about ten years. A date beyond it
/// is almost always a unit mistake (milliseconds taken for seconds).
pub const SCHEDULE_HORIZON: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// Most UTC days of partitions kept ready beyond today: 366 (the archive's
/// functions refuse more, whoever calls them).
pub const ARCHIVE_DAYS_AHEAD_MAX: u32 = 366;

/// How far from the database's clock an archive pass's time may be
/// ([`Maintenance::archive_once`](crate::Maintenance::archive_once)): 31
/// days, before or (for the partitions made ahead, not for retention) after.
/// The archive's `SECURITY DEFINER` functions refuse other times, so a role
/// allowed to call them can neither make tables without bound nor drop
/// today's.
pub const ARCHIVE_AT_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);

/// Longest retention of a state: 100 years (of 366 days). Longer means
/// forever: use `None`. (Beyond about 6,000 years the cut-off would fall
/// before the earliest date PostgreSQL has, and beyond 292,000 the interval
/// itself overflows: every archive pass would fail.)
pub const RETENTION_MAX: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// The longest leader lease accepted: 1 hour. The election's `SECURITY
/// DEFINER` function refuses longer ones, so a role allowed to run it cannot
/// hold the leader row for longer without renewing it.
pub const LEADER_LEASE_MAX: Duration = Duration::from_secs(3600);

/// Shortest unique period: 1 second.
pub const UNIQUE_PERIOD_MIN: Duration = Duration::from_secs(1);

/// The states a unique key is held in: every unfinished state (the hot
/// table's unique index holds those; leaving one out would let a claim or a
/// retry collide with a newer job's key), plus any final states.
pub(crate) fn unique_states(field: &str, states: &[JobState]) -> Result<()> {
    let missing: Vec<&str> =
        JobState::ALL.iter().filter(|s| !s.is_final() && !states.contains(s)).map(|s| s.as_str()).collect();
    if !missing.is_empty() {
        return Err(Error::invalid(
            field,
            format!(
                "must include every unfinished state (available, scheduled, running, retryable); {} missing",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// A unique period: whole seconds, from [`UNIQUE_PERIOD_MIN`] to the
/// [`SCHEDULE_HORIZON`].
pub(crate) fn unique_period(field: &str, d: Duration) -> Result<()> {
    if d < UNIQUE_PERIOD_MIN || d > SCHEDULE_HORIZON || d.subsec_nanos() != 0 {
        return Err(Error::invalid(field, format!("{d:?} is not a whole number of seconds from 1s to ten years")));
    }
    Ok(())
}

/// A queue name: 1 to 128 bytes of ASCII letters, digits and `_ . : -`,
/// starting with a letter or digit.
pub(crate) fn queue(field: &str, name: &str) -> Result<()> {
    name_rule(field, name, QUEUE_NAME_MAX, |c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

/// A kind name: 1 to 255 bytes of ASCII letters, digits and `_ . : / -`,
/// starting with a letter or digit.
pub(crate) fn kind(field: &str, name: &str) -> Result<()> {
    name_rule(field, name, KIND_MAX, |c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
}

fn name_rule(field: &str, name: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.len() > max {
        return Err(Error::invalid(field, format!("is {} bytes long, the limit is {max}", name.len())));
    }
    if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        return Err(Error::invalid(
            field,
            format!(
                "{} contains {bad:?}; allowed are ASCII letters, digits and {}",
                shorten(name),
                if max == KIND_MAX { "_ . : / -" } else { "_ . : -" }
            ),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(Error::invalid(field, format!("{} must start with a letter or digit", shorten(name))));
    }
    Ok(())
}

/// Shows at most 40 characters of user input in a message.
pub(crate) fn shorten(s: &str) -> String {
    if s.chars().count() <= 40 { format!("{s:?}") } else { format!("{:?}…", s.chars().take(40).collect::<String>()) }
}

pub(crate) fn priority(field: &str, p: i16) -> Result<()> {
    if !(0..=PRIORITY_MAX).contains(&p) {
        return Err(Error::invalid(field, format!("{p} is out of range 0 (first) to {PRIORITY_MAX} (last)")));
    }
    Ok(())
}

pub(crate) fn max_attempts(field: &str, n: i32) -> Result<()> {
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&n) {
        return Err(Error::invalid(field, format!("{n} is out of range 1 to {MAX_ATTEMPTS_LIMIT}")));
    }
    Ok(())
}

pub(crate) fn run_at(field: &str, at: DateTime<Utc>) -> Result<()> {
    if at.timestamp() < 0 {
        return Err(Error::invalid(field, format!("{at} is before 1970-01-01")));
    }
    let horizon = Utc::now() + SCHEDULE_HORIZON;
    if at > horizon {
        return Err(Error::invalid(field, format!("{at} is more than ten years ahead")));
    }
    Ok(())
}

/// A timeout: at least 1ms, at most `i32::MAX` ms (about 24 days).
pub(crate) fn timeout(field: &str, d: Duration) -> Result<()> {
    if d < Duration::from_millis(1) || d.as_millis() > i32::MAX as u128 {
        return Err(Error::invalid(field, format!("{}ms is out of range 1ms to {}ms", d.as_millis(), i32::MAX)));
    }
    Ok(())
}

pub(crate) fn delay(field: &str, d: Duration) -> Result<()> {
    if d > SCHEDULE_HORIZON {
        return Err(Error::invalid(field, format!("{}s is more than ten years", d.as_secs())));
    }
    Ok(())
}

/// Text stored as-is: PostgreSQL text cannot hold NUL.
pub(crate) fn text(field: &str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if s.len() > max {
        return Err(Error::invalid(field, format!("is {} bytes long, the limit is {max}", s.len())));
    }
    if s.contains('\0') {
        return Err(Error::invalid(field, "contains a NUL byte"));
    }
    Ok(())
}

/// JSON that `jsonb` will take: within `max` bytes and without `\u0000`
/// escapes (jsonb cannot store NUL in strings).
pub(crate) fn json(field: &str, json: &str, max: usize) -> Result<()> {
    if json.len() > max {
        return Err(Error::invalid(field, format!("is {} bytes of JSON, the limit is {max}", json.len())));
    }
    if has_nul_escape(json) {
        return Err(Error::invalid(field, "contains a NUL character (\\u0000), which PostgreSQL cannot store"));
    }
    Ok(())
}

/// True if `json` holds a `\u0000` escape (a backslash run of odd length
/// before `u0000`; an even run is an escaped backslash followed by text).
fn has_nul_escape(json: &str) -> bool {
    let b = json.as_bytes();
    let mut from = 0;
    while let Some(pos) = json[from..].find("u0000") {
        let at = from + pos;
        let slashes = b[..at].iter().rev().take_while(|&&c| c == b'\\').count();
        if slashes % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        for ok in ["default", "mail.high", "tenant-1:reports", "Q_2"] {
            queue("queue", ok).unwrap();
        }
        for (bad, why) in [
            ("", "must not be empty"),
            ("\"; drop table jobs; --", "contains '\"'"),
            ("it's", "contains '\\''"),
            ("a\0b", "contains '\\0'"),
            ("-x", "must start with a letter or digit"),
            ("naïve", "contains 'ï'"),
        ] {
            let e = queue("queue", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid queue: ") && e.contains(why), "{bad:?}: {e}");
        }
        let long = "q".repeat(QUEUE_NAME_MAX + 1);
        assert!(queue("queue", &long).unwrap_err().to_string().contains("the limit is 128"));
    }

    #[test]
    fn kinds_allow_paths() {
        kind("kind", "app::mail/Send-v2.x").unwrap();
        assert!(kind("kind", "drop table;").is_err());
    }

    #[test]
    fn ranges() {
        assert!(priority("priority", -1).is_err());
        assert!(priority("priority", 10).is_err());
        priority("priority", 9).unwrap();
        assert!(max_attempts("max_attempts", 0).unwrap_err().to_string().contains("0 is out of range"));
        assert!(max_attempts("max_attempts", -3).is_err());
        assert!(
            run_at("run_at", DateTime::from_timestamp(-1, 0).unwrap()).unwrap_err().to_string().contains("before 1970")
        );
        assert!(
            run_at("run_at", Utc::now() + chrono::Duration::days(365 * 20))
                .unwrap_err()
                .to_string()
                .contains("ten years")
        );
        run_at("run_at", Utc::now() + chrono::Duration::days(365)).unwrap();
    }

    #[test]
    fn nul_escapes_are_found_exactly() {
        assert!(has_nul_escape(r#"{"a":"x\u0000y"}"#));
        assert!(has_nul_escape(r#"{"a":"\\\u0000"}"#));
        assert!(!has_nul_escape(r#"{"a":"\\u0000"}"#), "an escaped backslash, then text");
        assert!(!has_nul_escape(r#"{"a":"u0000"}"#));
        assert!(json("args", r#"{"a":"\u0000"}"#, 100).unwrap_err().to_string().starts_with("invalid args:"));
        assert!(json("args", "[1,2,3]", 3).unwrap_err().to_string().contains("the limit is 3"));
    }
}
