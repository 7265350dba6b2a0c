//! When a tenant runs: its interval, jitter and backoff after failures.

use std::time::Duration;

/// When a tenant runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Time from the end of a successful run to the next run.
    pub interval: Duration,
    /// Up to this much random delay is added to the first run and to every next run, so
    /// tenants (and their retries after a shared outage) spread out.
    pub jitter: Duration,
    /// Delay after the first failure in a row; doubled for each further failure.
    pub backoff_initial: Duration,
    /// The longest backoff delay.
    pub backoff_max: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval: Duration::from_secs(3600),
            jitter: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

/// The delay before a tenant's next run, after a run that left it with
/// `consecutive_failures` failures in a row (0: the last run succeeded).
///
/// `interval` after a success; `backoff_initial * 2^(consecutive_failures - 1)`, at most
/// `backoff_max`, after a failure; plus `jitter * jitter_sample` either way.
/// `jitter_sample` is a random number in `0.0..1.0` (clamped; not finite counts as 0).
pub fn next_delay(schedule: &Schedule, consecutive_failures: u32, jitter_sample: f64) -> Duration {
    let base = match consecutive_failures {
        0 => schedule.interval,
        n => {
            let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
            schedule
                .backoff_initial
                .saturating_mul(factor)
                .min(schedule.backoff_max)
        }
    };
    base.saturating_add(jitter(schedule, jitter_sample))
}

/// The delay before a tenant's first run: `jitter * jitter_sample`.
pub fn first_delay(schedule: &Schedule, jitter_sample: f64) -> Duration {
    jitter(schedule, jitter_sample)
}

fn jitter(schedule: &Schedule, sample: f64) -> Duration {
    let sample = if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(schedule.jitter.as_secs_f64() * sample).unwrap_or(Duration::ZERO)
}

/// A random jitter sample in `0.0..1.0` (tenants started together do not tick together).
pub(crate) fn jitter_sample() -> f64 {
    rand::random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            interval: Duration::from_secs(3600),
            jitter: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(600),
        }
    }

    #[test]
    fn success_waits_the_interval_plus_jitter() {
        let s = schedule();
        assert_eq!(next_delay(&s, 0, 0.0), Duration::from_secs(3600));
        assert_eq!(next_delay(&s, 0, 0.5), Duration::from_secs(3750));
        assert_eq!(first_delay(&s, 0.0), Duration::ZERO);
        assert_eq!(first_delay(&s, 0.1), Duration::from_secs(30));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let s = schedule();
        let secs = |n| next_delay(&s, n, 0.0).as_secs();
        assert_eq!(secs(1), 30, "first retry after backoff_initial");
        assert_eq!(secs(2), 60, "then twice that");
        assert_eq!(secs(3), 120);
        assert_eq!(secs(5), 480);
        assert_eq!(secs(6), 600, "capped at backoff_max");
        assert_eq!(secs(40), 600, "no overflow past 32 doublings");
        assert_eq!(secs(u32::MAX), 600);
        assert_eq!(next_delay(&s, 2, 1.0), Duration::from_secs(360));
    }

    #[test]
    fn odd_jitter_samples_cannot_panic_or_stretch_the_delay() {
        let s = schedule();
        assert_eq!(next_delay(&s, 0, f64::NAN), Duration::from_secs(3600));
        assert_eq!(next_delay(&s, 0, -3.0), Duration::from_secs(3600));
        assert_eq!(next_delay(&s, 0, 7.0), Duration::from_secs(3900));
        let huge = Schedule {
            interval: Duration::MAX,
            jitter: Duration::MAX,
            ..s
        };
        assert_eq!(next_delay(&huge, 0, 1.0), Duration::MAX);
    }
}
