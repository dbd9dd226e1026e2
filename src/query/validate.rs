//! Checking a filter or query against a table's schema before it runs.
//!
//! Input comes from users (GraphQL arguments, policy files), so everything a filter refers to is
//! checked once here rather than trusted at every row: the columns exist, the operator suits the
//! column's type (no `like` on a number, no ordering on JSON), literals are of a kind the column
//! compares with, and LIKE patterns are well formed. Literals are also normalized to the column's
//! kind where that is lossless, so evaluation and index scans take their fast paths.

use super::compare::{capabilities, literal_fits, normalize_literal};
use super::filter::{CompareOp, Filter};
use super::like::{PatternError, check_pattern};
use super::operand::{Ago, Operand, TimeKind, comparable};
use super::order::OrderBy;
use super::select::Query;
use crate::registry::{ColumnType, TableSchema};
use crate::value::Value;

/// Why a filter or query does not fit its table. Messages name the table and column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("table `{table}` has no column number {column}")]
    NoSuchColumn { table: String, column: usize },
    #[error("column `{column}` of `{table}` is {ty}, which does not support {operation}")]
    Unsupported { table: String, column: String, ty: String, operation: &'static str },
    #[error("column `{column}` of `{table}` is {ty} and cannot be compared with the value {value}")]
    LiteralType { table: String, column: String, ty: String, value: String },
    #[error("column `{column}` of `{table}` is {ty} and cannot be compared with column `{other}` ({other_ty})")]
    Incomparable { table: String, column: String, ty: String, other: String, other_ty: String },
    #[error("column `{column}` of `{table}`: {source}")]
    Pattern {
        table: String,
        column: String,
        #[source]
        source: PatternError,
    },
}

/// A readable name for a column type in messages.
pub fn type_label(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Array(inner) => format!("{}[]", type_label(inner)),
        ColumnType::Other(name) => name.to_string(),
        other => serde_json::to_value(other).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
    }
}

struct Checker<'a> {
    schema: &'a TableSchema,
}

impl Checker<'_> {
    fn table(&self) -> String {
        self.schema.spec.name.to_string()
    }

    fn column(&self, column: usize) -> Result<&crate::registry::Column, QueryError> {
        self.schema.columns.get(column).ok_or_else(|| QueryError::NoSuchColumn { table: self.table(), column })
    }

    fn unsupported(&self, column: usize, operation: &'static str) -> QueryError {
        let (name, ty) = match self.schema.columns.get(column) {
            Some(c) => (c.name.to_string(), type_label(&c.ty)),
            None => (column.to_string(), String::new()),
        };
        QueryError::Unsupported { table: self.table(), column: name, ty, operation }
    }

    fn literal(&self, column: usize, value: Value) -> Result<Value, QueryError> {
        let col = self.column(column)?;
        if !literal_fits(&col.ty, &value) {
            return Err(QueryError::LiteralType {
                table: self.table(),
                column: col.name.to_string(),
                ty: type_label(&col.ty),
                value: serde_json::to_string(&value).unwrap_or_default(),
            });
        }
        Ok(normalize_literal(&col.ty, value))
    }

    fn filter(&self, filter: Filter) -> Result<Filter, QueryError> {
        Ok(match filter {
            Filter::True => Filter::True,
            Filter::False => Filter::False,
            Filter::And(parts) => Filter::And(parts.into_iter().map(|p| self.filter(p)).collect::<Result<_, _>>()?),
            Filter::Or(parts) => Filter::Or(parts.into_iter().map(|p| self.filter(p)).collect::<Result<_, _>>()?),
            Filter::Not(inner) => Filter::Not(Box::new(self.filter(*inner)?)),
            Filter::Compare { column, op, value } => {
                self.operator(column, op)?;
                Filter::Compare { column, op, value: self.literal(column, value)? }
            }
            Filter::CompareWith { column, op, operand } => {
                self.operator(column, op)?;
                let col = self.column(column)?;
                let operand = match operand {
                    Operand::Column(other) => {
                        let that = self.column(other)?;
                        if !comparable(&col.ty, &that.ty) {
                            return Err(QueryError::Incomparable {
                                table: self.table(),
                                column: col.name.to_string(),
                                ty: type_label(&col.ty),
                                other: that.name.to_string(),
                                other_ty: type_label(&that.ty),
                            });
                        }
                        Operand::Column(other)
                    }
                    // The kind comes from the column, whatever the caller put there.
                    Operand::Ago(Ago { micros, .. }) => match TimeKind::of(&col.ty) {
                        Some(kind) => Operand::Ago(Ago { micros, kind }),
                        None => return Err(self.unsupported(column, "`ago` (only date and timestamp columns do)")),
                    },
                    Operand::Instant(at) => match TimeKind::of(&col.ty) {
                        Some(_) => Operand::Instant(at),
                        None => return Err(self.unsupported(column, "comparison with an instant")),
                    },
                };
                Filter::CompareWith { column, op, operand }
            }
            Filter::In { column, values, negated } => {
                if !capabilities(&self.column(column)?.ty).equality {
                    return Err(self.unsupported(column, "in / nin"));
                }
                let values = values.into_iter().map(|v| self.literal(column, v)).collect::<Result<_, _>>()?;
                Filter::In { column, values, negated }
            }
            Filter::Like { column, pattern, case_insensitive } => {
                let col = self.column(column)?;
                if !capabilities(&col.ty).like {
                    return Err(self.unsupported(column, "like / ilike"));
                }
                check_pattern(&pattern).map_err(|source| QueryError::Pattern {
                    table: self.table(),
                    column: col.name.to_string(),
                    source,
                })?;
                Filter::Like { column, pattern, case_insensitive }
            }
            Filter::IsNull { column, is_null } => {
                self.column(column)?;
                Filter::IsNull { column, is_null }
            }
        })
    }

    fn operator(&self, column: usize, op: CompareOp) -> Result<(), QueryError> {
        let caps = capabilities(&self.column(column)?.ty);
        let equality = matches!(op, CompareOp::Eq | CompareOp::Neq);
        if equality && !caps.equality {
            return Err(self.unsupported(column, "equality comparisons"));
        }
        if !equality && !caps.ordering {
            return Err(self.unsupported(column, "ordering comparisons (gt, gte, lt, lte)"));
        }
        Ok(())
    }

    fn order(&self, order: &OrderBy) -> Result<(), QueryError> {
        if !capabilities(&self.column(order.column)?.ty).ordering {
            return Err(self.unsupported(order.column, "ordering"));
        }
        Ok(())
    }
}

impl Filter {
    /// Checks the filter against the table's schema and normalizes its literals; the result is
    /// what [`Filter::matches`] and [`super::select`] should be given.
    pub fn validate(self, schema: &TableSchema) -> Result<Filter, QueryError> {
        Checker { schema }.filter(self)
    }
}

impl OrderBy {
    /// Checks that the column exists and can be ordered.
    pub fn validate(&self, schema: &TableSchema) -> Result<(), QueryError> {
        Checker { schema }.order(self)
    }
}

impl Query {
    /// Checks the filter and the order against the table's schema (see [`Filter::validate`]).
    pub fn validate(self, schema: &TableSchema) -> Result<Query, QueryError> {
        let checker = Checker { schema };
        for term in &self.order {
            checker.order(term)?;
        }
        Ok(Query { filter: checker.filter(self.filter)?, ..self })
    }
}
