//! Printing: aligned text tables, times, and JSON documents.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A text table: a header row and aligned columns, numbers to the right.
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; `right` marks the ones aligned right.
    pub fn new(columns: &[(&'static str, bool)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| *h).collect(),
            right: columns.iter().map(|(_, r)| *r).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row, one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// The table as text, each line without trailing spaces.
    pub fn render(&self) -> String {
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = width[i] - cell.chars().count();
                if self.right[i] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A time as `2024-05-01 12:00:03.123Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

/// A time relative to `now`: `in 30s`, `5m ago`, `now`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_milliseconds() as f64 / 1000.0;
    if secs.abs() < 1.0 {
        "now".to_owned()
    } else if secs > 0.0 {
        format!("in {}", seconds(secs))
    } else {
        format!("{} ago", seconds(-secs))
    }
}

/// A length of time in seconds, in its largest sensible unit: `42s`, `3m`,
/// `2h5m`, `3d4h`.
pub fn seconds(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 1.0 {
        return format!("{}ms", (secs * 1000.0).round());
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{secs:.1}s").replace(".0s", "s"),
        60..3600 => format!("{}m{}", s / 60, trail(s % 60, "s")),
        3600..86_400 => format!("{}h{}", s / 3600, trail(s % 3600 / 60, "m")),
        _ => format!("{}d{}", s / 86_400, trail(s % 86_400 / 3600, "h")),
    }
}

fn trail(n: u64, unit: &str) -> String {
    if n == 0 { String::new() } else { format!("{n}{unit}") }
}

/// At most `max` characters of `s` on one line, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    let one_line = s.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[("QUEUE", false), ("N", true)]);
        t.row(vec!["default".into(), "5".into()]);
        t.row(vec!["m".into(), "1234".into()]);
        assert_eq!(t.render(), "QUEUE       N\ndefault     5\nm        1234\n");
    }

    #[test]
    fn lengths_of_time() {
        assert_eq!(seconds(0.0), "0ms");
        assert_eq!(seconds(0.0254), "25ms");
        assert_eq!(seconds(2.34), "2.3s");
        assert_eq!(seconds(59.0), "59s");
        assert_eq!(seconds(90.0), "1m30s");
        assert_eq!(seconds(3600.0), "1h");
        assert_eq!(seconds(90_000.0), "1d1h");
        let now = Utc::now();
        assert_eq!(relative(now + chrono::Duration::seconds(30), now), "in 30s");
        assert_eq!(relative(now - chrono::Duration::minutes(5), now), "5m ago");
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("a\nb", 4), "a b");
    }
}
