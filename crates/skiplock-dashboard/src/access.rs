//! Access modes: what a dashboard's users may do. Every page reads in any
//! mode; an action not allowed is neither shown nor carried out (its POST
//! answers 403).

use std::fmt;
use std::str::FromStr;

/// One kind of action a user may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Action {
    /// Retry jobs (one, a selection, or all matching a filter).
    Retry,
    /// Cancel jobs.
    Cancel,
    /// Discard waiting jobs.
    Discard,
    /// Delete jobs.
    Delete,
    /// Pause and resume queues.
    Pause,
    /// Pause, resume and run periodic jobs now.
    Periodic,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 6] =
        [Action::Retry, Action::Cancel, Action::Discard, Action::Delete, Action::Pause, Action::Periodic];

    /// Its name: `retry`, `cancel`, `discard`, `delete`, `pause`, `periodic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Discard => "discard",
            Action::Delete => "delete",
            Action::Pause => "pause",
            Action::Periodic => "periodic",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s.trim())
            .ok_or_else(|| format!("{s:?} is not an action (retry, cancel, discard, delete, pause, periodic)"))
    }
}

/// What a dashboard's users may do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Access {
    /// Everything (the default).
    #[default]
    Full,
    /// Nothing but reading: no action is shown, and every POST of one is
    /// refused.
    ReadOnly,
    /// Only these actions.
    Only(Vec<Action>),
}

impl Access {
    /// Whether `action` is allowed.
    pub fn allows(&self, action: Action) -> bool {
        match self {
            Access::Full => true,
            Access::ReadOnly => false,
            Access::Only(list) => list.contains(&action),
        }
    }

    /// A list of actions, as `retry,cancel,pause`.
    ///
    /// # Errors
    ///
    /// The first name that is not an action.
    pub fn only(list: &str) -> Result<Access, String> {
        let actions = list.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect::<Result<_, _>>()?;
        Ok(Access::Only(actions))
    }

    /// Its name for the page footer.
    pub(crate) fn describe(&self) -> String {
        match self {
            Access::Full => "full access".to_owned(),
            Access::ReadOnly => "read-only".to_owned(),
            Access::Only(list) if list.is_empty() => "read-only".to_owned(),
            Access::Only(list) => {
                let names: Vec<&str> = list.iter().map(|a| a.as_str()).collect();
                format!("allowed: {}", names.join(", "))
            }
        }
    }
}

/// What a page may show, for templates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Can {
    pub retry: bool,
    pub cancel: bool,
    pub discard: bool,
    pub delete: bool,
    pub pause: bool,
    pub periodic: bool,
    /// Any job action at all (the selection's checkboxes).
    pub jobs: bool,
}

impl Can {
    pub fn of(access: &Access) -> Can {
        let a = |x| access.allows(x);
        Can {
            retry: a(Action::Retry),
            cancel: a(Action::Cancel),
            discard: a(Action::Discard),
            delete: a(Action::Delete),
            pause: a(Action::Pause),
            periodic: a(Action::Periodic),
            jobs: a(Action::Retry) || a(Action::Cancel) || a(Action::Discard) || a(Action::Delete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_of_actions_parse() {
        assert_eq!(Access::only("retry, pause").unwrap(), Access::Only(vec![Action::Retry, Action::Pause]));
        assert!(Access::only("retry,drop").unwrap_err().contains("drop"));
        assert!(!Access::ReadOnly.allows(Action::Retry));
        assert!(Access::Full.allows(Action::Delete));
    }
}
