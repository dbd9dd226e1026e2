//! The boolean expression language of `where` and of the policy's row filters, before it is
//! bound to a table.
//!
//! One JSON shape serves both (Hasura's, in GraphQL's camelCase):
//!
//! ```json
//! { "and": [ { "status": { "in": ["paid", "picking"] } },
//!            { "not": { "warehouseId": { "eq": "WH-BER" } } } ],
//!   "total": { "gte": "100.00" } }
//! ```
//!
//! Keys of one object are AND-ed; `and`/`or` take lists, `not` one expression; a column takes
//! an object of operators (`eq neq gt gte lt lte in nin like ilike isNull`), also AND-ed. In the
//! policy an operand may be `{ "claim": "warehouses" }`: a value taken from the caller's token
//! when a request is answered. Binding to a table's columns and types happens in
//! [`super::compile`].
//!
//! The comparisons (`eq neq gt gte lt lte`) also take two operands that are not values:
//! `{ "column": "reorderPoint" }`, another column of the same row, and `{ "ago": "PT10M" }`,
//! the instant that long before now (a fixed-length ISO 8601 duration, re-evaluated as time
//! passes). GraphQL types `lt` by the column's scalar, so it cannot take an object there; the
//! same operands are spelt `ltColumn: "reorderPoint"` and `ltAgo: "PT10M"` in GraphQL, and
//! both spellings are accepted here so that a filter reads the same wherever it is written.

use serde_json::Value as Json;

/// A parsed expression: structure and operators checked, columns and literals not yet.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Test { column: String, op: Op, operand: Operand },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Like,
    Ilike,
    IsNull,
}

impl Op {
    pub const ALL: [Op; 11] =
        [Op::Eq, Op::Neq, Op::Gt, Op::Gte, Op::Lt, Op::Lte, Op::In, Op::Nin, Op::Like, Op::Ilike, Op::IsNull];

    /// The operator's name in GraphQL and in the policy file.
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::In => "in",
            Op::Nin => "nin",
            Op::Like => "like",
            Op::Ilike => "ilike",
            Op::IsNull => "isNull",
        }
    }

    fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The comparisons, which also take a column or an `ago` operand.
    pub const COMPARISONS: [Op; 6] = [Op::Eq, Op::Neq, Op::Gt, Op::Gte, Op::Lt, Op::Lte];

    pub fn is_comparison(self) -> bool {
        Op::COMPARISONS.contains(&self)
    }
}

/// The suffixes of the companion operators (`ltColumn`, `ltAgo`): GraphQL's spelling of
/// `lt: { column: … }` and `lt: { ago: … }`.
pub const COLUMN_SUFFIX: &str = "Column";
pub const AGO_SUFFIX: &str = "Ago";

/// `ltColumn` → (`lt`, `column`), `gteAgo` → (`gte`, `ago`).
fn companion(name: &str) -> Option<(Op, &'static str)> {
    let (base, key) = match name.strip_suffix(COLUMN_SUFFIX) {
        Some(base) => (base, "column"),
        None => (name.strip_suffix(AGO_SUFFIX)?, "ago"),
    };
    Op::from_name(base).filter(|op| op.is_comparison()).map(|op| (op, key))
}

/// The right-hand side of a test.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Literal(Json),
    /// A claim of the caller's token, by name (a dotted path reaches into nested claims).
    Claim(String),
    /// Another column of the same row, by GraphQL name.
    Column(String),
    /// The instant this many microseconds before now (parsed from an ISO 8601 duration).
    Ago(i64),
}

/// What is wrong with an expression, and where (`and[1].status.eq`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("at `{path}`: ") })]
pub struct ConditionError {
    pub path: String,
    pub message: String,
}

/// Whether `{ claim = … }` operands are allowed (in the policy, not in a client's `where`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claims {
    Allowed,
    Refused,
}

impl Condition {
    /// Parses an expression object.
    pub fn parse(json: &Json, claims: Claims) -> Result<Condition, ConditionError> {
        parse_object(json, "", claims)
    }

    /// The names of the columns it tests.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |c| {
            if let Condition::Test { column, operand, .. } = c {
                out.push(column.as_str());
                // A column compared with another reads that one too (what a role must be
                // allowed to see, what a row alert shows).
                if let Operand::Column(other) = operand {
                    out.push(other.as_str());
                }
            }
        });
        out
    }

    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Condition)) {
        f(self);
        match self {
            Condition::And(parts) | Condition::Or(parts) => parts.iter().for_each(|p| p.visit(f)),
            Condition::Not(inner) => inner.visit(f),
            Condition::Test { .. } => {}
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn error(path: &str, message: impl Into<String>) -> ConditionError {
    ConditionError { path: path.to_string(), message: message.into() }
}

fn parse_object(json: &Json, path: &str, claims: Claims) -> Result<Condition, ConditionError> {
    let Json::Object(map) = json else {
        return Err(error(path, "expected an object such as `{ status: { eq: \"paid\" } }`"));
    };
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        let here = join(path, key);
        match key.as_str() {
            "and" | "or" => {
                let Json::Array(items) = value else {
                    return Err(error(&here, "expected a list of expressions"));
                };
                let inner = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| parse_object(item, &format!("{here}[{i}]"), claims))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.push(if key == "and" { Condition::And(inner) } else { Condition::Or(inner) });
            }
            "not" => parts.push(Condition::Not(Box::new(parse_object(value, &here, claims)?))),
            column => parts.extend(parse_tests(column, value, &here, claims)?),
        }
    }
    Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::And(parts) })
}

fn parse_tests(column: &str, json: &Json, path: &str, claims: Claims) -> Result<Vec<Condition>, ConditionError> {
    let Json::Object(ops) = json else {
        return Err(error(path, "expected an object of operators such as `{ eq: … }`"));
    };
    let mut out = Vec::with_capacity(ops.len());
    for (name, operand) in ops {
        let here = join(path, name);
        if let Some((op, key)) = companion(name) {
            let operand = special_operand(key, operand, &here)?;
            out.push(Condition::Test { column: column.to_string(), op, operand });
            continue;
        }
        let op = Op::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
            error(
                &here,
                format!(
                    "unknown operator `{name}` (operators: {}; and ltColumn, ltAgo, … for each comparison)",
                    known.join(", ")
                ),
            )
        })?;
        let operand = parse_operand(op, operand, &here, claims)?;
        out.push(Condition::Test { column: column.to_string(), op, operand });
    }
    Ok(out)
}

fn parse_operand(op: Op, json: &Json, path: &str, claims: Claims) -> Result<Operand, ConditionError> {
    if let Json::Object(map) = json {
        let single = if map.len() == 1 { map.iter().next() } else { None };
        return match (single, claims) {
            (Some((key, value)), _) if key == "column" || key == "ago" => {
                if !op.is_comparison() {
                    return Err(error(
                        path,
                        format!("`{}` cannot take `{{ {key}: … }}`; only eq, neq, gt, gte, lt and lte do", op.name()),
                    ));
                }
                special_operand(if key == "column" { "column" } else { "ago" }, value, &join(path, key))
            }
            (Some((key, Json::String(name))), Claims::Allowed) if key == "claim" && !name.is_empty() => {
                Ok(Operand::Claim(name.clone()))
            }
            (_, Claims::Allowed) => Err(error(
                path,
                "an object operand must be `{ claim = \"name\" }`, `{ column = \"name\" }` or `{ ago = \"PT10M\" }`",
            )),
            (_, Claims::Refused) => {
                Err(error(path, "expected a value, `{ column: \"otherColumn\" }` or `{ ago: \"PT10M\" }`"))
            }
        };
    }
    match (op, json) {
        // SQL's `= NULL` is never true: refusing it beats silently matching nothing.
        (_, Json::Null) => {
            Err(error(path, format!("`{}` needs a value; test for NULL with `isNull: true`", op.name())))
        }
        (Op::IsNull, Json::Bool(_)) => Ok(Operand::Literal(json.clone())),
        (Op::IsNull, _) => Err(error(path, "`isNull` takes true or false")),
        (Op::In | Op::Nin, Json::Array(items)) if items.iter().any(Json::is_null) => {
            Err(error(path, format!("`{}` lists cannot hold null; use `isNull`", op.name())))
        }
        (Op::In | Op::Nin, Json::Array(_)) => Ok(Operand::Literal(json.clone())),
        (Op::In | Op::Nin, _) => Err(error(path, format!("`{}` takes a list", op.name()))),
        (Op::Like | Op::Ilike, Json::String(_)) => Ok(Operand::Literal(json.clone())),
        (Op::Like | Op::Ilike, _) => Err(error(path, format!("`{}` takes a pattern string", op.name()))),
        (_, Json::Array(_)) => Err(error(path, format!("`{}` takes one value, not a list", op.name()))),
        _ => Ok(Operand::Literal(json.clone())),
    }
}

/// A `column` or `ago` operand: a column name, or a duration read now so that a malformed one
/// is refused where the filter is written (a policy file at load, a request before it runs).
fn special_operand(key: &str, json: &Json, path: &str) -> Result<Operand, ConditionError> {
    match (key, json) {
        ("column", Json::String(name)) if !name.is_empty() => Ok(Operand::Column(name.clone())),
        ("column", _) => Err(error(path, "`column` takes the name of another column, such as \"reorderPoint\"")),
        (_, Json::String(text)) => match crate::query::parse_duration(text) {
            Ok(micros) => Ok(Operand::Ago(micros)),
            Err(e) => Err(error(path, format!("`ago`: {e}"))),
        },
        _ => Err(error(path, "`ago` takes an ISO 8601 duration string such as \"PT10M\"")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_column_compared_with_another_reads_both() {
        let c = Condition::parse(
            &json!({ "onHand": { "lt": { "column": "reorderPoint" } }, "sku": { "eq": "A" } }),
            Claims::Refused,
        )
        .expect("parses");
        let mut columns = c.columns();
        columns.sort_unstable();
        assert_eq!(columns, ["onHand", "reorderPoint", "sku"]);
    }

    fn test(column: &str, op: Op, operand: Json) -> Condition {
        Condition::Test { column: column.into(), op, operand: Operand::Literal(operand) }
    }

    #[test]
    fn keys_and_operators_are_anded() {
        let c = Condition::parse(&json!({"status": {"eq": "paid"}, "total": {"gte": "1", "lt": "9"}}), Claims::Refused)
            .unwrap();
        assert_eq!(
            c,
            Condition::And(vec![
                test("status", Op::Eq, json!("paid")),
                test("total", Op::Gte, json!("1")),
                test("total", Op::Lt, json!("9")),
            ])
        );
        assert_eq!(Condition::parse(&json!({}), Claims::Refused).unwrap(), Condition::And(vec![]));
    }

    #[test]
    fn nesting_and_claims() {
        let j = json!({"or": [{"not": {"id": {"isNull": true}}}, {"warehouseId": {"in": {"claim": "warehouses"}}}]});
        let c = Condition::parse(&j, Claims::Allowed).unwrap();
        assert_eq!(
            c,
            Condition::Or(vec![
                Condition::Not(Box::new(test("id", Op::IsNull, json!(true)))),
                Condition::Test {
                    column: "warehouseId".into(),
                    op: Op::In,
                    operand: Operand::Claim("warehouses".into())
                },
            ])
        );
        assert_eq!(c.columns(), ["id", "warehouseId"]);
        let err = Condition::parse(&j, Claims::Refused).unwrap_err();
        assert_eq!(err.path, "or[1].warehouseId.in");
    }

    #[test]
    fn malformed_expressions_say_where() {
        let err = |j: Json| Condition::parse(&j, Claims::Allowed).unwrap_err().to_string();
        assert!(err(json!({"status": {"equals": 1}})).contains("unknown operator `equals`"));
        assert!(err(json!({"and": {"id": {"eq": 1}}})).starts_with("at `and`: expected a list"));
        assert!(err(json!({"status": {"eq": null}})).contains("isNull"));
        assert!(err(json!({"status": {"in": "paid"}})).contains("takes a list"));
        assert!(err(json!({"status": {"eq": ["a"]}})).contains("not a list"));
        assert!(err(json!({"status": {"eq": {"claim": 3}}})).contains("claim"));
        assert!(err(json!({"status": "paid"})).starts_with("at `status`"));
        assert!(err(json!({"createdAt": {"lt": {"ago": "P1M"}}})).contains("months and years are not fixed lengths"));
        assert!(
            err(json!({"createdAt": {"ltAgo": "ten minutes"}})).starts_with("at `createdAt.ltAgo`: `ago`: expected")
        );
        assert!(err(json!({"onHand": {"in": {"column": "reserved"}}})).contains("`in` cannot take `{ column: … }`"));
        assert!(err(json!({"onHand": {"lt": {"column": 3}}})).contains("the name of another column"));
        assert!(err(json!({"onHand": {"likeColumn": "sku"}})).contains("unknown operator `likeColumn`"));
    }

    #[test]
    fn column_and_ago_operands_have_two_spellings() {
        let parse = |j: Json| Condition::parse(&j, Claims::Refused).unwrap();
        let column =
            |op| Condition::Test { column: "onHand".into(), op, operand: Operand::Column("reorderPoint".into()) };
        assert_eq!(parse(json!({"onHand": {"lt": {"column": "reorderPoint"}}})), column(Op::Lt));
        assert_eq!(parse(json!({"onHand": {"lteColumn": "reorderPoint"}})), column(Op::Lte));
        let ago = Condition::Test { column: "createdAt".into(), op: Op::Gte, operand: Operand::Ago(600_000_000) };
        assert_eq!(parse(json!({"createdAt": {"gte": {"ago": "PT10M"}}})), ago);
        assert_eq!(parse(json!({"createdAt": {"gteAgo": "PT10M"}})), ago);
    }
}
