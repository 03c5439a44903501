//! Query strings and form bodies as lists of pairs (a selection repeats
//! `ids`), and the job filters they carry. Filters live in the URL, so a
//! page can be bookmarked, shared and reloaded.

use skiplock::{ArgsFilter, JobSearch, JobState};

/// Decoded `key=value` pairs, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Params {
        Params(form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    pub fn query(raw: Option<&str>) -> Params {
        Params::parse(raw.unwrap_or("").as_bytes())
    }

    /// The first non-empty value of `key`, trimmed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.trim()).find(|v| !v.is_empty())
    }

    /// Every non-empty value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()).collect()
    }

    pub fn i64(&self, key: &str) -> Result<Option<i64>, String> {
        self.get(key).map(|v| v.parse::<i64>().map_err(|_| format!("{key}: {v:?} is not a number"))).transpose()
    }
}

/// The job filters of the jobs page, as typed (shown back in the form).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filters {
    pub state: String,
    pub queue: String,
    pub kind: String,
    pub tag: String,
    pub id: String,
    pub args: String,
}

/// The states the filter offers; `hot` and `final` stand for groups.
pub(crate) const STATE_CHOICES: [&str; 9] =
    ["available", "scheduled", "running", "retryable", "completed", "cancelled", "discarded", "hot", "final"];

impl Filters {
    pub fn from(p: &Params) -> Filters {
        let s = |k: &str| p.get(k).unwrap_or("").to_owned();
        Filters { state: s("state"), queue: s("queue"), kind: s("kind"), tag: s("tag"), id: s("id"), args: s("args") }
    }

    /// The search these filters describe (no cursor).
    pub fn search(&self) -> Result<JobSearch, String> {
        let mut s = JobSearch::new();
        match self.state.as_str() {
            "" => {}
            "hot" => s.states = JobState::ALL.into_iter().filter(|st| !st.is_final()).collect(),
            "final" => s.states = JobState::ALL.into_iter().filter(|st| st.is_final()).collect(),
            other => s = s.state(other.parse::<JobState>().map_err(|e| e.to_string())?),
        }
        if !self.queue.is_empty() {
            s = s.queue(&self.queue);
        }
        if !self.kind.is_empty() {
            s = s.kind(&self.kind);
        }
        if !self.tag.is_empty() {
            s = s.tag(&self.tag);
        }
        if !self.id.is_empty() {
            let id = self.id.trim_start_matches('#');
            s = s.id(id.parse().map_err(|_| format!("id: {:?} is not a job id", self.id))?);
        }
        if !self.args.is_empty() {
            s = s.args(ArgsFilter::parse(&self.args).map_err(|e| e.to_string())?);
        }
        Ok(s)
    }

    /// The filters as query pairs (empty ones left out).
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("state", &self.state),
            ("queue", &self.queue),
            ("kind", &self.kind),
            ("tag", &self.tag),
            ("id", &self.id),
            ("args", &self.args),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.as_str()))
        .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// A query string of these filters plus `extra`.
    pub fn query(&self, extra: &[(&str, &str)]) -> String {
        query(self.pairs().into_iter().chain(extra.iter().copied()))
    }
}

/// Encodes pairs as a query string (`a=1&b=x%20y`).
pub(crate) fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_through_the_url() {
        let p = Params::parse(b"state=discarded&queue=mail&args=to%3Dada%26co&ids=1&ids=2&kind=");
        let f = Filters::from(&p);
        assert_eq!(f.args, "to=ada&co");
        assert_eq!(p.all("ids"), vec!["1", "2"]);
        let again = Filters::from(&Params::query(Some(&f.query(&[]))));
        assert_eq!(again, f);
        let s = f.search().unwrap();
        assert_eq!(s.states, vec![JobState::Discarded]);
        assert_eq!(s.queue.as_deref(), Some("mail"));
        assert!(Filters { state: "nope".into(), ..Default::default() }.search().is_err());
    }
}
