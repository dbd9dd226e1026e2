//! Binding an expression to a table: column names to positions, literals to typed values,
//! claims to the caller's token — the result is the engine's [`Filter`].
//!
//! A client's `where` is bound to the columns its role may see, so a hidden column cannot be
//! probed through a filter; a policy's row filter is bound to every column of the table (it is
//! the server's own condition) and to the claims of the token being served.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::condition::{Condition, Op, Operand};
use super::literal::{LiteralError, value_of};
use crate::query::{Ago, CompareOp, Filter, TimeKind, capabilities, check_pattern, comparable, type_label};
use crate::registry::TableSchema;
use crate::value::Value;

/// The columns an expression may name: GraphQL name → position in the table's schema.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub schema: &'a TableSchema,
    pub columns: &'a HashMap<String, usize>,
}

/// Where claim operands get their values.
#[derive(Clone, Copy, Debug)]
pub enum ClaimValues<'a> {
    /// Checking a policy file: claims are unknown until a request, only their place is checked.
    Unchecked,
    Token(&'a Map<String, Json>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("unknown column `{name}` (columns: {})", known.join(", "))]
    UnknownColumn { name: String, known: Vec<String> },
    #[error("column `{column}` ({ty}) does not support `{op}`")]
    Operator { column: String, op: &'static str, ty: String },
    #[error("`{column}.{op}`: {error}")]
    Literal { column: String, op: &'static str, error: LiteralError },
    #[error("`{column}.{op}`: unknown column `{name}` (columns: {})", known.join(", "))]
    UnknownOperandColumn { column: String, op: &'static str, name: String, known: Vec<String> },
    #[error("`{column}.{op}`: column `{column}` ({ty}) cannot be compared with column `{other}` ({other_ty})")]
    Incomparable { column: String, op: &'static str, ty: String, other: String, other_ty: String },
    #[error("`{column}.{op}`: `ago` needs a date or timestamp column; `{column}` is {ty}")]
    AgoType { column: String, op: &'static str, ty: String },
    #[error("the token has no claim `{claim}`, which the policy needs")]
    MissingClaim { claim: String },
    #[error("claim `{claim}` does not fit column `{column}`: {error}")]
    ClaimType { claim: String, column: String, error: LiteralError },
}

impl CompileError {
    /// Whether the caller's token (not the expression) is at fault.
    pub fn is_claim_error(&self) -> bool {
        matches!(self, CompileError::MissingClaim { .. } | CompileError::ClaimType { .. })
    }
}

/// Compiles `condition` against `binding`.
pub fn compile(condition: &Condition, binding: Binding<'_>, claims: ClaimValues<'_>) -> Result<Filter, CompileError> {
    Ok(match condition {
        Condition::And(parts) => {
            let parts = parts.iter().map(|p| compile(p, binding, claims)).collect::<Result<Vec<_>, _>>()?;
            parts.into_iter().fold(Filter::True, Filter::and)
        }
        Condition::Or(parts) => {
            Filter::Or(parts.iter().map(|p| compile(p, binding, claims)).collect::<Result<Vec<_>, _>>()?)
        }
        Condition::Not(inner) => Filter::Not(Box::new(compile(inner, binding, claims)?)),
        Condition::Test { column, op, operand } => test(column, *op, operand, binding, claims)?,
    })
}

fn test(
    name: &str,
    op: Op,
    operand: &Operand,
    b: Binding<'_>,
    claims: ClaimValues<'_>,
) -> Result<Filter, CompileError> {
    let Some(&column) = b.columns.get(name) else {
        let mut known: Vec<String> = b.columns.keys().cloned().collect();
        known.sort();
        return Err(CompileError::UnknownColumn { name: name.to_string(), known });
    };
    let ty = &b.schema.columns[column].ty;
    let can = capabilities(ty);
    let supported = match op {
        Op::Eq | Op::Neq | Op::In | Op::Nin => can.equality,
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => can.ordering,
        Op::Like | Op::Ilike => can.like,
        Op::IsNull => true,
    };
    if !supported {
        return Err(CompileError::Operator { column: name.to_string(), op: op.name(), ty: type_label(ty) });
    }
    let compare_op = match op {
        Op::Eq => Some(CompareOp::Eq),
        Op::Neq => Some(CompareOp::Neq),
        Op::Gt => Some(CompareOp::Gt),
        Op::Gte => Some(CompareOp::Gte),
        Op::Lt => Some(CompareOp::Lt),
        Op::Lte => Some(CompareOp::Lte),
        _ => None,
    };
    let json = match operand {
        Operand::Column(other) => {
            // The parser lets these operands through on comparisons only.
            let cmp = compare_op.unwrap_or(CompareOp::Eq);
            let Some(&position) = b.columns.get(other) else {
                let mut known: Vec<String> = b.columns.keys().cloned().collect();
                known.sort();
                return Err(CompileError::UnknownOperandColumn {
                    column: name.to_string(),
                    op: op.name(),
                    name: other.clone(),
                    known,
                });
            };
            let other_ty = &b.schema.columns[position].ty;
            if !comparable(ty, other_ty) {
                return Err(CompileError::Incomparable {
                    column: name.to_string(),
                    op: op.name(),
                    ty: type_label(ty),
                    other: other.clone(),
                    other_ty: type_label(other_ty),
                });
            }
            return Ok(Filter::CompareWith { column, op: cmp, operand: crate::query::Operand::Column(position) });
        }
        Operand::Ago(micros) => {
            let cmp = compare_op.unwrap_or(CompareOp::Eq);
            let Some(kind) = TimeKind::of(ty) else {
                return Err(CompileError::AgoType { column: name.to_string(), op: op.name(), ty: type_label(ty) });
            };
            let operand = crate::query::Operand::Ago(Ago { micros: *micros, kind });
            return Ok(Filter::CompareWith { column, op: cmp, operand });
        }
        Operand::Literal(json) => json.clone(),
        Operand::Claim(claim) => match claims {
            // The shape was checked by the parser; the value comes with a token.
            ClaimValues::Unchecked => return Ok(Filter::True),
            ClaimValues::Token(map) => {
                let value =
                    lookup_claim(map, claim).ok_or_else(|| CompileError::MissingClaim { claim: claim.clone() })?;
                // A single value where the policy expects a list is a list of one.
                match (op, value) {
                    (Op::In | Op::Nin, Json::Array(_)) => value.clone(),
                    (Op::In | Op::Nin, other) => Json::Array(vec![other.clone()]),
                    (_, other) => other.clone(),
                }
            }
        },
    };
    let read = |j: &Json| -> Result<Value, CompileError> {
        value_of(j, ty).map_err(|error| match operand {
            Operand::Claim(claim) => CompileError::ClaimType { claim: claim.clone(), column: name.to_string(), error },
            _ => CompileError::Literal { column: name.to_string(), op: op.name(), error },
        })
    };
    let compare = |op| -> Result<Filter, CompileError> { Ok(Filter::Compare { column, op, value: read(&json)? }) };
    match op {
        Op::Eq => compare(CompareOp::Eq),
        Op::Neq => compare(CompareOp::Neq),
        Op::Gt => compare(CompareOp::Gt),
        Op::Gte => compare(CompareOp::Gte),
        Op::Lt => compare(CompareOp::Lt),
        Op::Lte => compare(CompareOp::Lte),
        Op::In | Op::Nin => {
            let items = json.as_array().map(Vec::as_slice).unwrap_or_default();
            let values = items.iter().map(read).collect::<Result<Vec<_>, _>>()?;
            Ok(Filter::In { column, values, negated: op == Op::Nin })
        }
        Op::Like | Op::Ilike => match json.as_str() {
            Some(pattern) => match check_pattern(pattern) {
                Ok(()) => Ok(Filter::Like { column, pattern: pattern.into(), case_insensitive: op == Op::Ilike }),
                Err(e) => Err(CompileError::Literal {
                    column: name.to_string(),
                    op: op.name(),
                    error: LiteralError { expected: e.to_string() },
                }),
            },
            None => Err(CompileError::Literal {
                column: name.to_string(),
                op: op.name(),
                error: LiteralError { expected: "a pattern string".into() },
            }),
        },
        Op::IsNull => match json.as_bool() {
            Some(is_null) => Ok(Filter::IsNull { column, is_null }),
            None => Err(CompileError::Literal {
                column: name.to_string(),
                op: op.name(),
                error: LiteralError { expected: "true or false".into() },
            }),
        },
    }
}

/// A claim by name: the exact key first, then a namespace claim and a path inside it. Namespace
/// keys contain dots themselves (`https://opslive.dev/claims.warehouses`), so every split point
/// is tried, the longest existing key first.
pub fn lookup_claim<'a>(claims: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    name.rmatch_indices('.').find_map(|(i, _)| {
        let inner = claims.get(&name[..i])?.as_object()?;
        lookup_claim(inner, &name[i + 1..])
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::policy::condition::Claims;
    use crate::registry::{Column, ColumnType, TableId, TableSpec};

    fn schema() -> TableSchema {
        let column = |name: &str, ty| Column { name: name.into(), ty, nullable: true };
        TableSchema {
            spec: Arc::new(TableSpec {
                id: TableId(0),
                source: "shop".into(),
                schema: "public".into(),
                table: "inventory".into(),
                name: "inventory".into(),
                indexes: vec![],
                exclude: vec![],
            }),
            columns: vec![
                column("sku", ColumnType::Text),
                column("warehouse_id", ColumnType::Text),
                column("on_hand", ColumnType::Int4),
                column("attrs", ColumnType::Json),
            ],
            key: vec![0, 1],
            indexed: vec![],
            version: 1,
        }
    }

    fn names() -> HashMap<String, usize> {
        [("sku", 0), ("warehouseId", 1), ("onHand", 2), ("attrs", 3)].map(|(n, i)| (n.to_string(), i)).into()
    }

    fn run(j: Json, claims: ClaimValues<'_>) -> Result<Filter, CompileError> {
        let s = schema();
        let n = names();
        compile(&Condition::parse(&j, Claims::Allowed).unwrap(), Binding { schema: &s, columns: &n }, claims)
    }

    #[test]
    fn literals_take_the_column_type() {
        let f = run(json!({"onHand": {"lt": 5}, "sku": {"like": "ELE-%"}}), ClaimValues::Unchecked).unwrap();
        assert_eq!(
            f,
            Filter::And(vec![
                Filter::Compare { column: 2, op: CompareOp::Lt, value: Value::Int4(5) },
                Filter::Like { column: 0, pattern: "ELE-%".into(), case_insensitive: false },
            ])
        );
    }

    #[test]
    fn claims_fill_in_per_token() {
        let expr = json!({"warehouseId": {"in": {"claim": "warehouses"}}});
        let token = json!({"warehouses": ["WH-BER", "WH-MAD"]});
        let f = run(expr.clone(), ClaimValues::Token(token.as_object().unwrap())).unwrap();
        assert_eq!(
            f,
            Filter::In { column: 1, values: vec![Value::text("WH-BER"), Value::text("WH-MAD")], negated: false }
        );
        let one = json!({"warehouses": "WH-BER"});
        let f = run(expr.clone(), ClaimValues::Token(one.as_object().unwrap())).unwrap();
        assert_eq!(f, Filter::In { column: 1, values: vec![Value::text("WH-BER")], negated: false });
        let none = json!({"role": "warehouse_lead"});
        let err = run(expr.clone(), ClaimValues::Token(none.as_object().unwrap())).unwrap_err();
        assert!(err.is_claim_error() && err.to_string().contains("`warehouses`"), "{err}");
        let wrong = json!({"warehouses": [1, 2]});
        assert!(run(expr, ClaimValues::Token(wrong.as_object().unwrap())).unwrap_err().is_claim_error());
        let nested = json!({"https://opslive.dev/claims": {"warehouses": ["WH-BER"]}});
        assert!(lookup_claim(nested.as_object().unwrap(), "https://opslive.dev/claims.warehouses").is_some());
    }

    #[test]
    fn unknown_columns_and_unsupported_operators_are_refused() {
        let err = run(json!({"customerEmail": {"eq": "x"}}), ClaimValues::Unchecked).unwrap_err().to_string();
        assert!(err.contains("unknown column `customerEmail`") && err.contains("onHand"), "{err}");
        let err = run(json!({"attrs": {"eq": "{}"}}), ClaimValues::Unchecked).unwrap_err().to_string();
        assert!(err.contains("`attrs` (json) does not support `eq`"), "{err}");
        let err = run(json!({"onHand": {"like": "1%"}}), ClaimValues::Unchecked).unwrap_err().to_string();
        assert!(err.contains("does not support `like`"), "{err}");
        let err = run(json!({"onHand": {"eq": "many"}}), ClaimValues::Unchecked).unwrap_err().to_string();
        assert!(err.contains("`onHand.eq`: expected a 32-bit integer"), "{err}");
        assert!(run(json!({"attrs": {"isNull": false}}), ClaimValues::Unchecked).is_ok());
    }

    #[test]
    fn column_and_ago_operands_are_bound_and_checked() {
        let f = run(json!({"onHand": {"lt": {"column": "warehouseId"}}}), ClaimValues::Unchecked).unwrap_err();
        assert_eq!(
            f.to_string(),
            "`onHand.lt`: column `onHand` (int4) cannot be compared with column `warehouseId` (text)"
        );
        let f = run(json!({"sku": {"gtColumn": "warehouseId"}}), ClaimValues::Unchecked).unwrap();
        assert_eq!(f, Filter::CompareWith { column: 0, op: CompareOp::Gt, operand: crate::query::Operand::Column(1) });
        let e = run(json!({"onHand": {"ltColumn": "reorderPont"}}), ClaimValues::Unchecked).unwrap_err().to_string();
        assert!(e.starts_with("`onHand.lt`: unknown column `reorderPont` (columns: "), "{e}");
        let e = run(json!({"onHand": {"lt": {"ago": "PT1M"}}}), ClaimValues::Unchecked).unwrap_err().to_string();
        assert_eq!(e, "`onHand.lt`: `ago` needs a date or timestamp column; `onHand` is int4");
    }
}
