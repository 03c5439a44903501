//! How long a failed job waits before its next attempt.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

/// Longest wait [`Backoff::default`] ever picks: one day.
pub const BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Share of each wait that is random (±10%), so that jobs which failed
/// together do not all come back together.
pub const JITTER_DEFAULT: f64 = 0.1;

/// A retry policy: the wait before attempt `n + 1` after attempt `n` failed.
/// Every policy adds ±[`JITTER_DEFAULT`] jitter and is capped by its maximum.
///
/// The default is polynomial, `attempt⁴` seconds (1s, 16s, 81s, 4m16s,
/// 10m25s, …) capped at a day, as River does: quick retries for blips,
/// patient ones for outages.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use skiplock::Backoff;
/// let b = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(600));
/// let wait = b.delay(3); // about 8s
/// assert!(wait >= Duration::from_millis(7200) && wait <= Duration::from_millis(8800));
/// ```
#[derive(Clone)]
pub enum Backoff {
    /// `attempt^exponent` seconds, capped at `max`.
    Polynomial {
        /// The power (4 by default).
        exponent: u32,
        /// The cap.
        max: Duration,
    },
    /// `base * 2^(attempt - 1)`, capped at `max`.
    Exponential {
        /// The first wait.
        base: Duration,
        /// The cap.
        max: Duration,
    },
    /// Always the same wait.
    Constant(Duration),
    /// Your own function of the attempt number (from 1); no jitter is added.
    Custom(Arc<dyn Fn(i32) -> Duration + Send + Sync>),
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::Polynomial { exponent: 4, max: BACKOFF_MAX_DEFAULT }
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backoff::Polynomial { exponent, max } => write!(f, "Polynomial(attempt^{exponent}s, max {max:?})"),
            Backoff::Exponential { base, max } => write!(f, "Exponential({base:?} * 2^n, max {max:?})"),
            Backoff::Constant(d) => write!(f, "Constant({d:?})"),
            Backoff::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl Backoff {
    /// `base * 2^(attempt - 1)`, capped at `max`.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        Backoff::Exponential { base, max }
    }

    /// The wait after attempt `attempt` (from 1) failed, with jitter.
    pub fn delay(&self, attempt: i32) -> Duration {
        let n = attempt.max(1) as u32;
        let (plain, max) = match self {
            Backoff::Polynomial { exponent, max } => {
                (Duration::from_secs(u64::from(n).checked_pow(*exponent).unwrap_or(u64::MAX)), *max)
            }
            Backoff::Exponential { base, max } => {
                (base.saturating_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX)), *max)
            }
            Backoff::Constant(d) => (*d, *d),
            Backoff::Custom(f) => return f(attempt),
        };
        let capped = plain.min(max);
        let jitter = rand::rng().random_range(-JITTER_DEFAULT..=JITTER_DEFAULT);
        // Saturating: `mul_f64` panics past `Duration::MAX`.
        Duration::try_from_secs_f64(capped.as_secs_f64() * (1.0 + jitter)).unwrap_or(capped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, secs: f64) -> bool {
        let s = d.as_secs_f64();
        s >= secs * 0.9 - 1e-9 && s <= secs * 1.1 + 1e-9
    }

    #[test]
    fn the_default_grows_as_the_fourth_power_and_is_capped() {
        let b = Backoff::default();
        for (attempt, secs) in [(1, 1.0), (2, 16.0), (3, 81.0), (10, 10_000.0)] {
            for _ in 0..50 {
                assert!(within(b.delay(attempt), secs), "attempt {attempt}");
            }
        }
        assert!(within(b.delay(1000), BACKOFF_MAX_DEFAULT.as_secs_f64()));
    }

    #[test]
    fn exponential_doubles_and_custom_is_exact() {
        let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));
        assert!(within(b.delay(1), 1.0));
        assert!(within(b.delay(4), 8.0));
        assert!(within(b.delay(40), 60.0));
        let c = Backoff::Custom(Arc::new(|n| Duration::from_millis(n as u64)));
        assert_eq!(c.delay(7), Duration::from_millis(7));
    }

    #[test]
    fn huge_waits_saturate_instead_of_panicking() {
        assert!(Backoff::Constant(Duration::MAX).delay(1) >= Duration::from_secs(u64::MAX / 2));
        let b = Backoff::exponential(Duration::MAX, Duration::MAX);
        assert!(b.delay(i32::MAX) > Duration::ZERO);
    }
}
