//! Reading what a person typed: arguments that must be UTF-8, durations,
//! timestamps and JSON. Every rejection names the flag or field.

use std::ffi::OsStr;
use std::time::Duration;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};

/// The units a duration may use, longest suffix first so `ms` wins over `m`.
const UNITS: [(&str, u64); 5] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

/// The help text's description of a duration.
pub const DURATION_FORMS: &str = "a number and a unit such as 1500ms, 30s, 5m, 2h or 1d (or sums: 1h30m)";

/// An argument as UTF-8 text, or an error naming `flag`.
pub fn utf8(flag: &str, value: &OsStr) -> Result<String> {
    match value.to_str() {
        Some(s) => Ok(s.to_owned()),
        None => bail!("invalid {flag}: is not valid UTF-8 ({:?})", value.to_string_lossy()),
    }
}

/// A secret argument as UTF-8 text, or an error naming `flag` that never
/// shows the value, not even in part.
pub fn utf8_secret(flag: &str, value: &OsStr) -> Result<String> {
    match value.to_str() {
        Some(s) => Ok(s.to_owned()),
        None => bail!("invalid {flag}: is not valid UTF-8"),
    }
}

/// An optional argument as UTF-8 text.
pub fn utf8_opt(flag: &str, value: Option<&std::ffi::OsString>) -> Result<Option<String>> {
    value.map(|v| utf8(flag, v)).transpose()
}

/// Parses a length of time such as `30s`, `5m`, `2h`, `1d`, `1500ms` or
/// `1h30m`. `what` names the flag or field in errors.
pub fn duration(what: &str, text: &str) -> Result<Duration> {
    let s = text.trim();
    if s.starts_with('-') {
        bail!("invalid {what}: {s:?} is negative; give {DURATION_FORMS}");
    }
    let bad = || anyhow::anyhow!("invalid {what}: {s:?} is not a duration; give {DURATION_FORMS}");
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let (number, after) = rest.split_at(digits);
        let (unit, ms) = UNITS.iter().find(|(u, _)| after.starts_with(u)).ok_or_else(bad)?;
        let n: u64 = number.parse().map_err(|_| anyhow::anyhow!("invalid {what}: {s:?} is too long"))?;
        total_ms = n
            .checked_mul(*ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| anyhow::anyhow!("invalid {what}: {s:?} is too long"))?;
        rest = &after[unit.len()..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses an RFC 3339 timestamp such as `2030-01-02T03:04:05Z`.
pub fn timestamp(what: &str, text: &str) -> Result<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(text.trim()) {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(e) => bail!("invalid {what}: {text:?} is not an RFC 3339 time such as 2030-01-02T03:04:05Z ({e})"),
    }
}

/// serde_json's message without its ` at line 1 column 7` tail (our inputs
/// are one line each), with the column put back in our own words.
pub fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    let msg = msg.strip_suffix(&tail).unwrap_or(&msg);
    if e.column() > 0 { format!("{msg} at column {}", e.column()) } else { msg.to_owned() }
}

/// Checks that `text` is one JSON document, for `--args`-like flags.
pub fn json(flag: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("invalid {flag}: expected JSON such as '{{\"id\": 42}}': {}", json_error(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, ms) in [("1500ms", 1500), ("30s", 30_000), ("5m", 300_000), ("2h", 7_200_000), ("1d", 86_400_000)] {
            assert_eq!(duration("--delay", text).unwrap(), Duration::from_millis(ms), "{text}");
        }
        assert_eq!(duration("--delay", "1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("--delay", "0s").unwrap(), Duration::ZERO);
        let neg = duration("--delay", "-5s").unwrap_err().to_string();
        assert!(neg.starts_with("invalid --delay: \"-5s\" is negative"), "{neg}");
        for bad in ["", "5", "s", "5 s", "5x", "1.5s", "abc", "5s5"] {
            let e = duration("--delay", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --delay: ") && e.contains("not a duration"), "{bad}: {e}");
        }
        assert!(duration("delay", "99999999999999999999d").unwrap_err().to_string().contains("too long"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp("--run-at", "2030-01-02T03:04:05+01:00").unwrap().to_rfc3339(),
            "2030-01-02T02:04:05+00:00"
        );
        assert!(timestamp("--run-at", "tomorrow").unwrap_err().to_string().starts_with("invalid --run-at: "));
    }

    #[test]
    fn json_errors_name_the_column_only() {
        let e = json("--args", "{bad").unwrap_err().to_string();
        assert!(e.starts_with("invalid --args: expected JSON") && e.ends_with("at column 2"), "{e}");
        assert!(!e.contains("line 1"), "{e}");
    }

    #[test]
    fn non_utf8_arguments_are_named() {
        use std::os::unix::ffi::OsStrExt as _;
        let e = utf8("--queue", OsStr::from_bytes(b"a\xffb")).unwrap_err().to_string();
        assert!(e.starts_with("invalid --queue: is not valid UTF-8"), "{e}");
        let e = utf8_secret("DATABASE_URL", OsStr::from_bytes(b"postgres://a:s3cret\xff@h/d")).unwrap_err();
        assert_eq!(e.to_string(), "invalid DATABASE_URL: is not valid UTF-8");
    }
}
