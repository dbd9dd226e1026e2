//! KPIs: aggregates over watched tables, defined at run time and kept exact at every
//! committed transaction.
//!
//! ```text
//!  KpiDefinition (GraphQL, app database) ─► compile (bound to the table, checked)
//!      ─► KpiSet (engine: incremental aggregates over row deltas)
//!      ─► runtime (task: board for readers, steps for alerts)
//! ```
//!
//! - [`definition`]: the stored, user-facing form;
//! - [`compile`]: binding to a table and a view, and who may read a KPI;
//! - [`engine`]: the pure engine, on [`crate::aggregate`] (the one aggregate engine);
//! - [`health`]: the built-in KPIs of each source's health, sampled rather than defined;
//! - [`runtime`]: the task that runs it after the apply loop.

pub mod compile;
pub mod definition;
pub mod engine;
pub mod health;
pub mod history;
pub mod recorder;
pub mod runtime;

pub use compile::{CompiledKpi, compile_kpi, may_read};
pub use definition::{Aggregation, Comparison, DefinitionError, KpiDefinition};
pub use engine::{GroupValue, KpiId, KpiSet, KpiValue};
pub use health::{SourceHealth, SourceKpi, SourceMeasure};
pub use runtime::{KpiBoard, KpiEntry, KpiHub, KpiRecord, KpiStep};

#[cfg(test)]
mod tests;
