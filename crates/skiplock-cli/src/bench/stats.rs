//! Summaries of repeated measurements: the median and the spread of a few
//! runs, and percentiles of many samples.

use serde::Serialize;

/// One figure measured several times.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    /// The middle sample (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// Half the range as a share of the median (0.05 = ±5%); 0 for one
    /// sample.
    pub spread: f64,
    /// Every sample, in the order taken.
    pub samples: Vec<f64>,
}

impl Measure {
    /// Summarises `samples`; with none, every figure is NaN (null in JSON).
    pub fn of(samples: Vec<f64>) -> Measure {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = percentile_sorted(&sorted, 0.5).unwrap_or(f64::NAN);
        let min = sorted.first().copied().unwrap_or(f64::NAN);
        let max = sorted.last().copied().unwrap_or(f64::NAN);
        let spread = if median == 0.0 { 0.0 } else { (max - min) / 2.0 / median.abs() };
        Measure { median, min, max, spread, samples }
    }
}

/// The `q` quantile (0 to 1) of `values`, interpolating between neighbours
/// as PostgreSQL's `percentile_cont` does; `None` when empty.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, q)
}

fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_spread_and_percentiles() {
        let m = Measure::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((m.median, m.min, m.max), (2.0, 1.0, 3.0));
        assert_eq!(m.spread, 0.5);
        assert_eq!(m.samples, vec![3.0, 1.0, 2.0]);
        assert_eq!(Measure::of(vec![1.0, 2.0, 3.0, 4.0]).median, 2.5);
        assert_eq!(Measure::of(vec![7.0]).spread, 0.0);
        assert!(Measure::of(vec![]).median.is_nan());
        let hundred: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.99), Some(100.0));
        assert_eq!(percentile(&[1.0, 2.0], 0.5), Some(1.5));
    }
}
