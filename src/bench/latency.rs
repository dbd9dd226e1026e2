//! Commit → frame latencies: recorded by many client tasks, summarised as percentiles.
//!
//! An HDR histogram (microseconds, 3 significant digits) keeps every sample's bucket in fixed
//! memory however long the run, so p99.9 and max are exact to 0.1 %, not estimated from a sample.
//! One histogram per client would cost ~100 KB each (100 MB for 1,000 clients), one shared one
//! would make every delivery queue on its lock: clients record into a few shards instead, each
//! under its own lock, merged once at the end.

use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Highest latency kept apart (an hour, in µs); longer ones are recorded as this.
const MAX_US: u64 = 3_600_000_000;

pub struct LatencyRecorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl LatencyRecorder {
    pub fn new(shards: usize) -> LatencyRecorder {
        let shards = (0..shards.max(1))
            .map(|_| Mutex::new(Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")))
            .collect();
        LatencyRecorder { shards }
    }

    /// Records `values` (µs) into the shard of client `client`.
    pub fn record(&self, client: usize, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let mut h = self.shards[client % self.shards.len()].lock().unwrap_or_else(|p| p.into_inner());
        for &v in values {
            h.saturating_record(v);
        }
    }

    pub fn summary(&self) -> Percentiles {
        let mut all = Histogram::<u64>::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(|p| p.into_inner());
            all.add(&*h).expect("shards share their bounds");
        }
        Percentiles::of(&all)
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        // The highest value equivalent to the quantile's bucket: a percentile is never reported
        // lower than a sample it stands for.
        let q = |q: f64| h.highest_equivalent(h.value_at_quantile(q)).min(h.max()) as f64 / 1000.0;
        Percentiles {
            samples: h.len(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: h.max() as f64 / 1000.0,
            mean_ms: h.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        let r = LatencyRecorder::new(4);
        // 1..=10,000 µs, spread over clients (and so shards).
        for v in 1..=10_000u64 {
            r.record(v as usize, &[v]);
        }
        let p = r.summary();
        assert_eq!(p.samples, 10_000);
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.002 + 0.001;
        assert!(near(p.p50_ms, 5.0), "{p:?}");
        assert!(near(p.p90_ms, 9.0), "{p:?}");
        assert!(near(p.p99_ms, 9.9), "{p:?}");
        assert!(near(p.p999_ms, 9.99), "{p:?}");
        assert!(near(p.max_ms, 10.0), "{p:?}");
        assert!(near(p.mean_ms, 5.0005), "{p:?}");
    }

    #[test]
    fn zeros_and_outliers() {
        let r = LatencyRecorder::new(2);
        r.record(0, &[0; 990]);
        r.record(1, &[50_000; 10]);
        let p = r.summary();
        assert_eq!(p.p50_ms, 0.0);
        assert_eq!(p.p99_ms, 0.0);
        assert!((p.p999_ms - 50.0).abs() < 0.05, "{p:?}");
        assert!((p.max_ms - 50.0).abs() < 0.05, "{p:?}");
        assert_eq!(LatencyRecorder::new(1).summary(), Percentiles::default());
    }

    #[test]
    fn too_long_is_clamped_not_lost() {
        let r = LatencyRecorder::new(1);
        r.record(0, &[MAX_US * 10]);
        assert_eq!(r.summary().samples, 1);
    }
}
