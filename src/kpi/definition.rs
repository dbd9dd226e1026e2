//! A KPI as its author defines it: the stored, user-facing form, before it is bound to a table.
//!
//! Definitions are made at run time (GraphQL `createKpi`) and kept in the app database as JSON,
//! so this is a serde type with camelCase names and no unknown fields. Binding it to the
//! table's schema ([`super::compile`]) checks every name and type and says which field is
//! wrong; nothing is stored until that succeeds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// The aggregate a KPI computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Aggregation {
    /// `count(*)`, or `count(column)` when a column is given.
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    P50,
    P90,
    P95,
    P99,
}

impl Aggregation {
    pub const ALL: [Aggregation; 10] = [
        Aggregation::Count,
        Aggregation::CountDistinct,
        Aggregation::Sum,
        Aggregation::Avg,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::P50,
        Aggregation::P90,
        Aggregation::P95,
        Aggregation::P99,
    ];

    /// The GraphQL enum value.
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Count => "COUNT",
            Aggregation::CountDistinct => "COUNT_DISTINCT",
            Aggregation::Sum => "SUM",
            Aggregation::Avg => "AVG",
            Aggregation::Min => "MIN",
            Aggregation::Max => "MAX",
            Aggregation::P50 => "P50",
            Aggregation::P90 => "P90",
            Aggregation::P95 => "P95",
            Aggregation::P99 => "P99",
        }
    }

    pub fn parse(name: &str) -> Option<Aggregation> {
        Aggregation::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// What the aggregate reads from each row: a column, or a simple expression over columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Expression {
    /// `now − column`, in seconds: the age of a timestamp (`age(createdAt)`).
    Age(String),
    /// `later − earlier`: seconds between two timestamps, or the difference of two numbers
    /// (wait time is `firstResponseAt − openedAt`).
    Difference { later: String, earlier: String },
}

/// A time window on a timestamp column that slides as time passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowDef {
    /// The timestamp column rows are placed in time by.
    pub column: String,
    /// `last` an ISO 8601 duration (`PT15M`, `PT24H`), or `today` in the configured zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub today: bool,
}

/// The value the KPI is compared with, from its own history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Comparison {
    /// The value one day earlier.
    DayBefore,
    /// The value one week earlier.
    WeekBefore,
}

impl Comparison {
    pub fn offset_micros(self) -> i64 {
        match self {
            Comparison::DayBefore => 86_400_000_000,
            Comparison::WeekBefore => 7 * 86_400_000_000,
        }
    }
}

/// Whose rows a KPI counts: every row, or what a named role with fixed claims may read (a
/// warehouse lead's "units on hand in WH-BER").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Json>,
}

/// A KPI definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KpiDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The table's GraphQL name (`orders`).
    pub table: String,
    pub aggregate: Aggregation,
    /// The column the aggregate reads (GraphQL name); none for `COUNT` of rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Instead of a column, an expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<Expression>,
    /// A filter in the language of GraphQL `where`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Json>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    #[serde(default)]
    pub view: ViewDef,
    /// A unit for people (`orders/min`, `EUR`, `s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A definition that does not fit, with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DefinitionError {
    pub field: String,
    pub message: String,
}

impl DefinitionError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> DefinitionError {
        DefinitionError { field: field.into(), message: message.into() }
    }
}

/// Longest name accepted: names label charts and alerts, not documents.
pub const MAX_NAME: usize = 120;

/// Checks a name: present, printable, not too long.
pub fn check_name(field: &str, name: &str) -> Result<(), DefinitionError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(DefinitionError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(DefinitionError::new(field, format!("must be at most {MAX_NAME} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DefinitionError::new(field, "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip_through_their_stored_json() {
        let json = serde_json::json!({
            "name": "Orders per minute by channel",
            "table": "orders",
            "aggregate": "COUNT",
            "groupBy": ["channel"],
            "window": { "column": "createdAt", "last": "PT1M" },
            "view": {}
        });
        let def: KpiDefinition = serde_json::from_value(json).expect("parses");
        assert_eq!(def.aggregate, Aggregation::Count);
        assert_eq!(def.window.as_ref().map(|w| w.last.as_deref()), Some(Some("PT1M")));
        let back: KpiDefinition = serde_json::from_value(serde_json::to_value(&def).unwrap()).unwrap();
        assert_eq!(back, def);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let json = serde_json::json!({ "name": "x", "table": "orders", "aggregate": "COUNT", "colum": "id" });
        let e = serde_json::from_value::<KpiDefinition>(json).unwrap_err().to_string();
        assert!(e.contains("colum"), "{e}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("name", "  ").is_err());
        assert!(check_name("name", &"x".repeat(MAX_NAME + 1)).is_err());
        assert!(check_name("name", "a\u{7}b").is_err());
        assert!(check_name("name", "Orders per minute").is_ok());
    }
}
