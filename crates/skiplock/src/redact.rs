//! Credentials kept out of everything skiplock stores or prints: stored
//! error texts, log lines, errors about connection strings.

/// Masks a known password (the one a client connects with) and every
/// credential [`redact_credentials`] recognises.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    password: Option<String>,
}

impl Redactor {
    /// Masking `password` too, if there is one.
    pub fn new(password: Option<String>) -> Self {
        Redactor { password: password.filter(|p| !p.is_empty()) }
    }

    /// `text` as it may be stored or printed.
    pub fn apply(&self, text: &str) -> String {
        let mut out = redact_credentials(text);
        if let Some(pw) = &self.password {
            out = out.replace(pw.as_str(), "***");
        }
        out
    }
}

/// Strips a URL's password from a message that may quote it.
pub(crate) fn redact_error(msg: &str, url: &str) -> String {
    match url.split_once("://").and_then(|(_, rest)| rest.split_once('@')).and_then(|(auth, _)| auth.split_once(':')) {
        Some((_, pw)) if !pw.is_empty() => redact_credentials(&msg.replace(pw, "***")),
        _ => redact_credentials(msg),
    }
}

/// Masks the password of every `scheme://user:password@host` in `text`, and
/// every `password=…` of a key-value connection string or `PGPASSWORD=…` of
/// an environment (any case; spaces around `=`; a quoted value, `'…'` or
/// `"…"` with backslash escapes, masked whole).
///
/// # Example: a connection error quoting its string
///
/// ```
/// let text = "cannot connect with host=db password='a b' to postgres://ada:s3cret@db/app";
/// assert_eq!(
///     skiplock::redact_credentials(text),
///     "cannot connect with host=db password=*** to postgres://ada:***@db/app"
/// );
/// ```
pub fn redact_credentials(text: &str) -> String {
    /// The length of the value at the start of `s`: up to its closing quote
    /// when quoted, else up to whitespace.
    fn value_len(s: &str) -> usize {
        let Some(quote) = s.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            return s.find(char::is_whitespace).unwrap_or(s.len());
        };
        let mut escaped = false;
        for (i, c) in s.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == quote => return i + 1,
                _ => {}
            }
        }
        s.len()
    }

    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'').unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@').and_then(|a| authority[..a].find(':').map(|c| (c, a))) {
            Some((colon, at_sign)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    // ASCII lower case keeps every byte offset, so offsets in `lower` are
    // offsets in `out`.
    let lower = out.to_ascii_lowercase();
    let spaces = |s: &str| s.len() - s.trim_start_matches([' ', '\t']).len();
    let mut masked = String::with_capacity(out.len());
    let (mut copied, mut from) = (0, 0);
    while let Some(found) = lower[from..].find("password") {
        let key_end = from + found + "password".len();
        let after = &out[key_end..];
        let eq = spaces(after);
        if !after[eq..].starts_with('=') {
            from = key_end; // prose: "password authentication failed"
            continue;
        }
        let value = key_end + eq + 1 + spaces(&after[eq + 1..]);
        masked.push_str(&out[copied..value]);
        masked.push_str("***");
        copied = value + value_len(&out[value..]);
        from = copied;
    }
    masked.push_str(&out[copied..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::redact_credentials;

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            redact_credentials("connect postgres://app:s3cret@db:5432/x failed"),
            "connect postgres://app:***@db:5432/x failed"
        );
        assert_eq!(redact_credentials("host=db password=hunter2 user=a"), "host=db password=*** user=a");
        assert_eq!(redact_credentials("see https://example.com/a@b"), "see https://example.com/a@b");
        assert_eq!(redact_credentials("no urls"), "no urls");
    }

    #[test]
    fn quoted_and_differently_cased_passwords_are_masked_whole() {
        // libpq's key-value strings quote values with spaces, and allow
        // spaces around `=` and backslash escapes inside quotes.
        assert_eq!(redact_credentials("host=db password='a b' user=x"), "host=db password=*** user=x");
        assert_eq!(redact_credentials(r"password='it\'s a secret' user=x"), "password=*** user=x");
        assert_eq!(redact_credentials(r#"password="a b" user=x"#), "password=*** user=x");
        assert_eq!(redact_credentials("host=db password = 'a b' user=x"), "host=db password = *** user=x");
        assert_eq!(redact_credentials("password='never closed"), "password=***");
        // The environment's names, shells' quoting, any case.
        assert_eq!(redact_credentials("PGPASSWORD=hunter2 psql -h db"), "PGPASSWORD=*** psql -h db");
        assert_eq!(redact_credentials("export PGPASSWORD='a b'; psql"), "export PGPASSWORD=***; psql");
        assert_eq!(redact_credentials("Password=hunter2"), "Password=***");
        // Prose about passwords is left alone.
        assert_eq!(
            redact_credentials("password authentication failed for user \"ada\""),
            "password authentication failed for user \"ada\""
        );
    }
}
