//! What a run reports: one [`Section`] per workload, printed as a table and
//! gathered into one JSON [`Document`].

use std::collections::BTreeMap;

use serde::Serialize;

use super::env::Machine;
use super::stats::Measure;
use crate::output::Table;

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Jobs per second.
    JobsPerSec,
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Bytes.
    Bytes,
    /// A share, in percent.
    Percent,
}

impl Unit {
    fn label(self) -> &'static str {
        match self {
            Unit::JobsPerSec => "jobs/s",
            Unit::Seconds => "s",
            Unit::Millis => "ms",
            Unit::Bytes => "MiB",
            Unit::Percent => "%",
        }
    }

    /// `v` as the table shows it.
    fn show(self, v: f64) -> String {
        if !v.is_finite() {
            return "-".to_owned();
        }
        match self {
            Unit::JobsPerSec => thousands(v.round() as i64),
            Unit::Seconds => format!("{v:.2}"),
            Unit::Millis if v < 10.0 => format!("{v:.2}"),
            Unit::Millis => format!("{v:.1}"),
            Unit::Bytes => format!("{:.2}", v / (1u64 << 20) as f64),
            Unit::Percent => format!("{v:.1}"),
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// One figure of a workload: what was measured, its runs, and what it is
/// compared with.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Which case of the workload (`c=100`, `5,000,000 queued`).
    pub case: String,
    /// What was measured (`throughput`, `p99 latency`).
    pub metric: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The runs.
    #[serde(flatten)]
    pub value: Measure,
    /// The same figure for the bare-SQL ceiling, where there is one.
    pub ceiling: Option<Measure>,
    /// `value.median / ceiling.median`, or for workloads compared with their
    /// own baseline (W4, W5), the ratio to it; the section's notes say which.
    pub ratio: Option<f64>,
    /// Anything else worth printing beside the figure.
    pub note: Option<String>,
}

impl Row {
    /// A figure from its samples, compared with nothing yet.
    pub fn new(case: impl Into<String>, metric: &'static str, unit: Unit, samples: Vec<f64>) -> Row {
        Row { case: case.into(), metric, unit, value: Measure::of(samples), ceiling: None, ratio: None, note: None }
    }

    /// Compares the figure with the ceiling's samples of the same thing.
    pub fn against(mut self, ceiling: Vec<f64>) -> Row {
        let c = Measure::of(ceiling);
        self.ratio = Some(self.value.median / c.median);
        self.ceiling = Some(c);
        self
    }

    /// Sets the ratio to a baseline figure (not a ceiling).
    pub fn ratio_to(mut self, baseline: f64) -> Row {
        self.ratio = Some(self.value.median / baseline);
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }
}

/// One workload's results.
#[derive(Debug, Serialize)]
pub struct Section {
    /// `w1` … `w5`.
    pub id: &'static str,
    /// A one-line title.
    pub title: String,
    /// How it was measured, in a sentence or two.
    pub method: String,
    /// How many times each figure was measured.
    pub runs: usize,
    /// The machine's load average (1, 5, 15 minutes) before and after.
    pub load_before: [f64; 3],
    /// See `load_before`.
    pub load_after: [f64; 3],
    /// Wall time of the whole workload, set-up included.
    pub seconds: f64,
    /// The figures.
    pub rows: Vec<Row>,
    /// What the ratios mean, and anything a reader should know.
    pub notes: Vec<String>,
}

impl Section {
    /// A section with no figures yet.
    pub fn new(id: &'static str, title: impl Into<String>, method: impl Into<String>, runs: usize) -> Section {
        Section {
            id,
            title: title.into(),
            method: method.into(),
            runs,
            load_before: [0.0; 3],
            load_after: [0.0; 3],
            seconds: 0.0,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The section as text: title, method, table, notes.
    pub fn render(&self) -> String {
        let mut table = Table::new(&[
            ("case", false),
            ("metric", false),
            ("unit", false),
            ("median", true),
            ("range (min-max)", true),
            ("ceiling", true),
            ("ratio", true),
            ("note", false),
        ]);
        for r in &self.rows {
            let range = if self.runs > 1 && r.value.min.is_finite() {
                format!("{}-{}", r.unit.show(r.value.min), r.unit.show(r.value.max))
            } else {
                "-".into()
            };
            table.row(vec![
                r.case.clone(),
                r.metric.to_owned(),
                r.unit.label().to_owned(),
                r.unit.show(r.value.median),
                range,
                r.ceiling.as_ref().map_or_else(|| "-".into(), |c| r.unit.show(c.median)),
                r.ratio.filter(|x| x.is_finite()).map_or_else(|| "-".into(), |x| format!("{x:.2}")),
                r.note.clone().unwrap_or_default(),
            ]);
        }
        let load = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
        let mut out = format!(
            "\n{} {} ({} run{}, {:.0}s, load {} -> {})\n{}\n\n",
            self.id.to_uppercase(),
            self.title,
            self.runs,
            if self.runs == 1 { "" } else { "s" },
            self.seconds,
            load(self.load_before),
            load(self.load_after),
            self.method
        );
        out.push_str(&table.render());
        for n in &self.notes {
            out.push_str(&format!("  * {n}\n"));
        }
        out
    }
}

/// Everything one `skiplock bench` run measured.
#[derive(Debug, Serialize)]
pub struct Document {
    /// The skiplock version measured.
    pub skiplock_version: &'static str,
    /// The command line that produced this document.
    pub command: String,
    /// Whether sizes were the small ones of `--quick`.
    pub quick: bool,
    /// Runs per workload.
    pub runs: usize,
    /// When the run started (UTC).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Where it ran.
    pub machine: Machine,
    /// The workloads, by id.
    pub workloads: BTreeMap<&'static str, Section>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shown_for_reading() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
        assert_eq!(Unit::JobsPerSec.show(123456.7), "123,457");
        assert_eq!(Unit::Millis.show(1.234), "1.23");
        assert_eq!(Unit::Bytes.show(3.0 * 1048576.0), "3.00");
        assert_eq!(Unit::Seconds.show(f64::NAN), "-");
    }

    #[test]
    fn a_row_compares_medians() {
        let r = Row::new("c=1", "throughput", Unit::JobsPerSec, vec![50.0, 60.0, 70.0]).against(vec![100.0, 120.0]);
        assert_eq!(r.ratio, Some(60.0 / 110.0));
        let text = Section { rows: vec![r], ..Section::new("w9", "test", "how", 3) }.render();
        assert!(text.contains("W9 test (3 runs"), "{text}");
        assert!(text.contains("50-70"), "{text}");
    }
}
