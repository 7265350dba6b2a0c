//! What happened while a server served: the exit summary.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::metrics::FailureKind;

/// What happened while a server served, for the exit summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Tenants registered.
    pub tenants: usize,
    /// Tenants with at least one successful run.
    pub tenants_succeeded: usize,
    /// Runs finished (successes + failures).
    pub runs: u64,
    /// Successful runs.
    pub successes: u64,
    /// Failed runs by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// Runs cut when the grace period ended.
    pub cut: u64,
    /// Events written by successful runs.
    pub events: u64,
    /// Time since [`super::Server::serve`] started (or since the server was created).
    pub wall_time: Duration,
    /// The most runs that executed at once.
    pub peak_in_flight: u64,
    /// Pool capacity.
    pub capacity: usize,
    /// The server ran in once mode.
    pub once: bool,
    /// The server leased its tenants from a fleet: other hosts ran some of them.
    pub fleet: bool,
}

impl Summary {
    /// Failed runs of every kind.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Every tenant ran successfully and no run failed or was cut.
    ///
    /// In a fleet, other hosts run some of the tenants: every run of this host succeeded
    /// and none was cut.
    pub fn all_succeeded(&self) -> bool {
        (self.fleet || self.tenants_succeeded == self.tenants)
            && self.failed() == 0
            && self.cut == 0
    }
}

impl std::fmt::Display for Summary {
    /// One line per figure, each ending in a newline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "serve summary")?;
        writeln!(f, "  tenants                 {}", self.tenants)?;
        writeln!(f, "  runs                    {}", self.runs)?;
        writeln!(f, "  successes               {}", self.successes)?;
        writeln!(f, "  failures                {}", self.failed())?;
        for (kind, n) in &self.failures {
            let label = format!("failures ({kind})");
            writeln!(f, "  {label:<24}{n}")?;
        }
        if self.cut > 0 {
            writeln!(
                f,
                "  cut at shutdown         {} (redelivered by their next runs)",
                self.cut
            )?;
        }
        if self.fleet {
            writeln!(
                f,
                "  tenants run here        {} (the fleet's other hosts ran the rest)",
                self.tenants_succeeded
            )?;
        } else if self.once && self.tenants_succeeded < self.tenants {
            writeln!(
                f,
                "  tenants not succeeded   {}",
                self.tenants - self.tenants_succeeded
            )?;
        }
        writeln!(f, "  events                  {}", self.events)?;
        writeln!(
            f,
            "  wall time               {:.2} s",
            self.wall_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "  peak in flight          {} of {}",
            self.peak_in_flight, self.capacity
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        let mut s = Summary {
            tenants: 2,
            tenants_succeeded: 2,
            runs: 2,
            successes: 2,
            failures: BTreeMap::new(),
            cut: 0,
            events: 20,
            wall_time: Duration::from_millis(1500),
            peak_in_flight: 2,
            capacity: 64,
            once: true,
            fleet: false,
        };
        assert!(s.all_succeeded());
        let text = s.to_string();
        assert!(text.contains("  events                  20\n"), "{text}");
        assert!(text.contains("peak in flight          2 of 64"), "{text}");
        s.failures.insert(FailureKind::Auth, 1);
        s.tenants_succeeded = 1;
        assert!(!s.all_succeeded());
        assert!(s.to_string().contains("\n  failures (auth)         1\n"));
    }
}
