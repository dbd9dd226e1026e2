//! The simulator's counters as Prometheus metrics, for `/metrics` when it runs in the same
//! process (`opslive demo`): what was written, next to what was applied. The server takes any
//! collector; the simulator brings its own, so the API knows nothing of it.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::SimStats;

#[derive(Debug)]
pub struct SimCollector(pub Arc<SimStats>);

impl Collector for SimCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let counter = |n: u64| ConstCounter::new(n);
        let mut family = enc.encode_descriptor(
            "sim_events",
            "Simulated business events committed, by kind",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in stats.by_kind() {
            counter(n).encode(family.encode_family(&[("kind", kind.name())])?)?;
        }
        for (name, help, value) in [
            ("sim_skipped", "Simulated events that found nothing to do (the row had moved on)", stats.skipped()),
            ("sim_dropped", "Simulated events not run because the database could not keep up", stats.dropped()),
            ("sim_conflicts", "Simulated events given up after repeated lock conflicts", stats.conflicts()),
            ("sim_failed", "Simulated events the database refused", stats.failed()),
        ] {
            counter(value).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        let rate = enc.encode_descriptor(
            "sim_planned_rate",
            "Events per second the simulator aims at now",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(stats.planned_rate()).encode(rate)
    }
}
