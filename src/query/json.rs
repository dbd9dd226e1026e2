//! Filters written as JSON (KPI and alert definitions): the same `where` language as GraphQL
//! and the policy file, read by the same parser and bound by the same compiler, so a filter
//! copied from the explorer into a KPI means exactly the same rows.

use std::collections::HashMap;

#[cfg(test)]
use crate::value::Value;
use serde_json::Value as Json;

use super::filter::Filter;
use super::validate::QueryError;
use crate::policy::compile::{Binding, ClaimValues, CompileError, compile};
use crate::policy::condition::{Claims, Condition, ConditionError};
use crate::policy::names::column_fields;
use crate::registry::TableSchema;

/// Why a JSON filter does not fit its table; every message names the field (`and[1].status.eq`
/// for shape errors, the column and operator for the rest).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("filter: {0}")]
    Shape(#[from] ConditionError),
    #[error("filter: {0}")]
    Bind(#[from] CompileError),
    #[error("filter: {0}")]
    Query(#[from] QueryError),
}

/// Reads `json` (e.g. `{ "createdAt": { "lt": { "ago": "PT10M" } } }`) as a validated filter
/// over the table of `schema`, with columns named as in GraphQL (camelCase). Claims are
/// refused: a definition belongs to no caller's token.
pub fn parse_json_filter(schema: &TableSchema, json: &Json) -> Result<Filter, FilterError> {
    let condition = Condition::parse(json, Claims::Refused)?;
    let columns: HashMap<String, usize> = column_fields(schema).into_iter().map(|(i, n)| (n, i)).collect();
    let filter = compile(&condition, Binding { schema, columns: &columns }, ClaimValues::Unchecked)?;
    Ok(filter.validate(schema)?)
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::query::{CompareOp, Operand};
    use crate::registry::{Column, ColumnType, Registry};

    fn schema() -> TableSchema {
        let reg = Registry::default();
        let id = reg.add("s".into(), "public", "inventory", "inventory", vec![], vec![]).expect("register");
        let col = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
        TableSchema {
            spec: reg.get(id).expect("spec").clone(),
            columns: vec![
                col("sku", ColumnType::Text),
                col("on_hand", ColumnType::Int4),
                col("reorder_point", ColumnType::Numeric),
                col("updated_at", ColumnType::TimestampTz),
            ],
            key: vec![0],
            indexed: vec![],
            version: 1,
        }
    }

    #[test]
    fn the_where_language_reads_from_json() {
        let s = schema();
        let f = parse_json_filter(
            &s,
            &json!({"onHand": {"lt": {"column": "reorderPoint"}}, "updatedAt": {"gteAgo": "PT10M"}, "sku": {"like": "A%"}}),
        )
        .expect("valid");
        assert!(f.is_time_relative());
        assert_eq!(f.conjuncts()[0], Filter::CompareWith { column: 1, op: CompareOp::Lt, operand: Operand::Column(2) });
        let row = [Value::text("A1"), Value::Int4(3), Value::Numeric("3.5".into()), Value::TimestampTz(0)];
        assert!(f.matches_at(&row, 600_000_000));
        assert!(!f.matches_at(&row, 600_000_001));
    }

    #[test]
    fn errors_name_the_field() {
        let s = schema();
        let err = |j: Json| parse_json_filter(&s, &j).unwrap_err().to_string();
        assert!(
            err(json!({"onHand": {"lt": {"column": "reorderPont"}}}))
                .contains("`onHand.lt`: unknown column `reorderPont`")
        );
        assert!(
            err(json!({"sku": {"eq": {"column": "onHand"}}}))
                .contains("`sku.eq`: column `sku` (text) cannot be compared with column `onHand` (int4)")
        );
        assert!(
            err(json!({"onHand": {"gt": {"ago": "PT1M"}}}))
                .contains("`onHand.gt`: `ago` needs a date or timestamp column")
        );
        assert!(
            err(json!({"updatedAt": {"lt": {"ago": "P1M"}}}))
                .contains("at `updatedAt.lt.ago`: `ago`: months and years")
        );
        assert!(err(json!({"and": [{"x": {"eq": 1}}]})).contains("unknown column `x`"));
        assert!(err(json!({"sku": {"in": {"claim": "skus"}}})).contains("expected a value"));
    }
}
