//! Alerts: rules on KPIs and on rows, evaluated on every committed transaction and as time
//! passes, with states, acknowledgement and provenance.
//!
//! ```text
//!  KpiStep (a transaction's KPI changes + its row deltas) ─► AlertSet (engine)
//!      ─► transitions (with the position and commit time that caused them)
//!      ─► writer (app database, unique on cause) ─► durable mark ─► acknowledgement
//! ```
//!
//! - [`rule`]: the stored definition and its binding;
//! - [`engine`]: the pure state machine of every instance;
//! - [`runtime`]: the task that runs it after the KPI runtime and records what it decides;
//! - [`silence`]: label matchers over a time range that suppress notification.
//!
//! Delivery outside the app (Slack, email, SMS) reads the recorded transitions; it is not here.

pub mod engine;
pub mod rule;
pub mod runtime;
pub mod silence;

pub use engine::{Ack, AlertSet, AlertState, Cause, Instance, Transition};
pub use rule::{AlertRuleDefinition, RuleId, Severity};
pub use runtime::{AlertBoard, AlertHub, AlertStart, RuleEntry};

#[cfg(test)]
mod tests;
