//! What `work --exec` never prints: the worker's database password, and
//! what looks like credentials (a URL's password, `password=…`,
//! `PGPASSWORD=…`). Applied to every line of the commands' stdout, to the
//! attempts' errors (the end of stderr) before they are logged or stored, and
//! to the command's text in the start-up line.
//!
//! And what the commands do not get: the worker's credentials in the
//! environment, [`CREDENTIAL_VARS`], unless `--pass-env-credentials`.

use std::borrow::Cow;

/// The environment variables removed from the commands' environment: those
/// whose *value* is a secret of the worker's. `PGPASSFILE`, `PGSERVICEFILE`,
/// `PGSSLKEY` and the like are kept: they name files, which a command run as
/// the same user can read anyway, and printing them reveals nothing.
pub const CREDENTIAL_VARS: [&str; 2] = [crate::cmd::DATABASE_URL_ENV, "PGPASSWORD"];

/// The secrets to mask, longest first (so that one inside another is
/// masked whole).
pub struct Secrets {
    known: Vec<String>,
}

impl Secrets {
    /// The worker's secrets: the password of its URL (as written, and as
    /// decoded), and `PGPASSWORD` of its environment.
    pub fn new(url: &str, pgpassword: Option<&str>) -> Secrets {
        let as_written = url
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .and_then(|(auth, _)| auth.split_once(':'))
            .map(|(_, pw)| pw.to_owned());
        let config = url.parse::<tokio_postgres::Config>().ok();
        let decoded = config.as_ref().and_then(|c| c.get_password()).map(|pw| String::from_utf8_lossy(pw).into_owned());
        let mut known: Vec<String> = [as_written, decoded, pgpassword.map(str::to_owned)]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        known.sort_by_key(|s| std::cmp::Reverse(s.len()));
        known.dedup();
        Secrets { known }
    }

    /// `text` without the secrets, each replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = Cow::Borrowed(text);
        for secret in &self.known {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        skiplock::redact_credentials(&out)
    }

    /// A line of output without the secrets. A line that is not UTF-8 is
    /// redacted as its lossy text (U+FFFD for each bad sequence); one that
    /// holds nothing to mask is kept as it came.
    pub fn redact_bytes(&self, line: Vec<u8>) -> Vec<u8> {
        let text = String::from_utf8_lossy(&line);
        let redacted = self.redact(&text);
        if redacted == text { line } else { redacted.into_bytes() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_s_password_and_credential_patterns_are_masked() {
        let url = "postgres://ada:p%40ss-w0rd@db:5432/app";
        let secrets = Secrets::new(url, Some("env-pw"));
        assert_eq!(secrets.redact("as written p%40ss-w0rd, decoded p@ss-w0rd"), "as written ***, decoded ***");
        assert_eq!(secrets.redact("PGPASSWORD is env-pw"), "PGPASSWORD is ***");
        assert_eq!(
            secrets.redact("to postgres://bob:other@h/x as password='a b'"),
            "to postgres://bob:***@h/x as password=***"
        );
        assert_eq!(secrets.redact("nothing here"), "nothing here");
        assert_eq!(secrets.redact_bytes(b"bad \xff env-pw\n".to_vec()), "bad \u{fffd} ***\n".as_bytes());
        assert_eq!(secrets.redact_bytes(b"bad \xff\n".to_vec()), b"bad \xff\n", "kept as it came");
        let none = Secrets::new("postgres://ada@db/app", Some(""));
        assert_eq!(none.redact("a b"), "a b");
    }
}
